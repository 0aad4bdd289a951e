//! The /dev/sev-guest ioctl provider: SNP_GET_EXT_REPORT (report + the host's
//! certificate table), falling back to SNP_GET_REPORT.

use std::fs::File;
use std::path::PathBuf;

use rustix::io::Errno;
use rustix::ioctl::{ioctl, Updater};

use super::uapi::{
    SnpExtReportReq, SnpGuestRequestIoctl, SnpReportReq, SnpReportResp, RSP_REPORT,
    RSP_REPORT_SIZE, RSP_STATUS, SEV_FW_BLOB_MAX_SIZE, SNP_GET_EXT_REPORT, SNP_GET_REPORT,
};
use super::FirmwareError;
use crate::provider::{Evidence, ReportProvider, RequestError, Tee};
use crate::report::{read_u32, REPORT_LEN};

/// The SEV guest device node.
pub const SEV_GUEST_DEVICE: &str = "/dev/sev-guest";
/// Largest certificate buffer we allocate when the hypervisor asks for more.
const MAX_CERTS_LEN: usize = 1 << 20;
/// Guest message version.
const MSG_VERSION: u8 = 1;
/// The VMPL every Kettle report is requested at.
const VMPL: u32 = 0;

/// Report requests through the /dev/sev-guest ioctls.
pub struct SevGuestDevice {
    path: PathBuf,
}

impl Default for SevGuestDevice {
    fn default() -> Self {
        SevGuestDevice::new()
    }
}

enum ExtOutcome {
    Done(Evidence),
    /// The kernel or host does not do extended requests; use SNP_GET_REPORT.
    NotSupported(Errno),
}

/// Sends one guest request (`OP`: SNP_GET_REPORT or SNP_GET_EXT_REPORT) with `req`;
/// returns the response buffer, or the errno and the firmware's exitinfo2.
///
/// # Safety
/// `Req` must be the request structure the kernel expects for `OP` (layouts are tested
/// against the UAPI header), and any buffer it points to must outlive the call.
unsafe fn guest_request<const OP: rustix::ioctl::Opcode, Req>(
    file: &File,
    req: &mut Req,
) -> Result<Box<SnpReportResp>, (Errno, u64)> {
    let mut resp = Box::new(SnpReportResp { data: [0; 4000] });
    let mut io = SnpGuestRequestIoctl {
        msg_version: MSG_VERSION,
        req_data: req as *mut Req as u64,
        resp_data: &mut *resp as *mut SnpReportResp as u64,
        exitinfo2: 0,
    };
    // SAFETY: the caller guarantees `req` matches OP; `io` and `resp` live across the call.
    match unsafe { ioctl(file, Updater::<OP, SnpGuestRequestIoctl>::new(&mut io)) } {
        Ok(()) => Ok(resp),
        Err(errno) => Err((errno, io.exitinfo2)),
    }
}

impl SevGuestDevice {
    /// The provider on /dev/sev-guest.
    pub fn new() -> SevGuestDevice {
        SevGuestDevice {
            path: PathBuf::from(SEV_GUEST_DEVICE),
        }
    }

    fn open(&self) -> Result<File, RequestError> {
        std::fs::OpenOptions::new()
            .read(true)
            .write(true)
            .open(&self.path)
            .map_err(|source| RequestError::Io {
                what: format!("opening {}", self.path.display()),
                source,
            })
    }

    fn ext_report(&self, file: &File, report_data: &[u8; 64]) -> Result<ExtOutcome, RequestError> {
        let mut certs = vec![0u8; SEV_FW_BLOB_MAX_SIZE];
        for attempt in 0..2 {
            let mut req = SnpExtReportReq {
                data: SnpReportReq {
                    user_data: *report_data,
                    vmpl: VMPL,
                    rsvd: [0; 28],
                },
                certs_address: certs.as_mut_ptr() as u64,
                certs_len: u32::try_from(certs.len())
                    .expect("certs holds at most MAX_CERTS_LEN bytes, which fits u32"),
            };
            // SAFETY: a snp_ext_report_req for SNP_GET_EXT_REPORT; `certs` outlives the call.
            let result = unsafe { guest_request::<{ SNP_GET_EXT_REPORT }, _>(file, &mut req) };
            match result {
                Ok(resp) => {
                    let report = parse_response(&resp.data)?;
                    return Ok(ExtOutcome::Done(Evidence {
                        report,
                        cert_chain_pem: super::cert_table_to_pem(&certs),
                        provider: Tee::SevSnp,
                    }));
                }
                Err((errno, exitinfo2)) => {
                    let mut error = FirmwareError::from_exitinfo2(exitinfo2);
                    error.errno = Some(errno.raw_os_error());
                    // The kernel wrote the needed size back into our request.
                    // SAFETY: plain read of our own struct after the kernel wrote it.
                    let needed_len = unsafe { std::ptr::read_volatile(&req.certs_len) };
                    let needed = needed_len as usize;
                    if error.is_invalid_length() {
                        error.required_len = Some(needed_len);
                        if attempt == 0 && needed > certs.len() && needed <= MAX_CERTS_LEN {
                            certs = vec![0u8; needed];
                            continue;
                        }
                    }
                    if exitinfo2 == 0 {
                        return Ok(ExtOutcome::NotSupported(errno));
                    }
                    return Err(RequestError::Firmware {
                        what: "SNP_GET_EXT_REPORT",
                        error,
                    });
                }
            }
        }
        unreachable!("the loop returns or retries once")
    }

    fn plain_report(&self, file: &File, report_data: &[u8; 64]) -> Result<Evidence, RequestError> {
        let mut req = SnpReportReq {
            user_data: *report_data,
            vmpl: VMPL,
            rsvd: [0; 28],
        };
        // SAFETY: a snp_report_req for SNP_GET_REPORT.
        let resp = unsafe { guest_request::<{ SNP_GET_REPORT }, _>(file, &mut req) }.map_err(
            |(errno, exitinfo2)| {
                let mut error = FirmwareError::from_exitinfo2(exitinfo2);
                error.errno = Some(errno.raw_os_error());
                RequestError::Firmware {
                    what: "SNP_GET_REPORT",
                    error,
                }
            },
        )?;
        Ok(Evidence {
            report: parse_response(&resp.data)?,
            cert_chain_pem: None,
            provider: Tee::SevSnp,
        })
    }
}

/// Extracts the report from MSG_REPORT_RSP (status, report_size, reserved, report).
fn parse_response(data: &[u8; 4000]) -> Result<Vec<u8>, RequestError> {
    let status = read_u32(data, RSP_STATUS);
    if status != 0 {
        return Err(RequestError::Firmware {
            what: "MSG_REPORT_RSP",
            error: FirmwareError::from_status(status),
        });
    }
    let size = read_u32(data, RSP_REPORT_SIZE) as usize;
    if size != REPORT_LEN {
        return Err(RequestError::BadReport(format!(
            "the PSP returned a {size}-byte report; expected {REPORT_LEN}"
        )));
    }
    Ok(data[RSP_REPORT..RSP_REPORT + size].to_vec())
}

impl ReportProvider for SevGuestDevice {
    fn request_report(&mut self, report_data: &[u8; 64]) -> Result<Evidence, RequestError> {
        let file = self.open()?;
        match self.ext_report(&file, report_data)? {
            ExtOutcome::Done(evidence) => Ok(evidence),
            ExtOutcome::NotSupported(errno) => {
                log::info!("SNP_GET_EXT_REPORT unavailable ({errno}); using SNP_GET_REPORT without certificates");
                self.plain_report(&file, report_data)
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn response_parsing() {
        let mut data = [0u8; 4000];
        data[RSP_REPORT_SIZE..RSP_REPORT_SIZE + 4]
            .copy_from_slice(&(REPORT_LEN as u32).to_le_bytes());
        data[RSP_REPORT] = 3;
        let report = parse_response(&data).unwrap();
        assert_eq!((report.len(), report[0]), (REPORT_LEN, 3));

        data[RSP_STATUS] = 0x16;
        match parse_response(&data) {
            Err(RequestError::Firmware { error, .. }) => {
                assert!(error.to_string().contains("INVALID_PARAM"))
            }
            other => panic!("{other:?}"),
        }
        data[RSP_STATUS] = 0;
        data[RSP_REPORT_SIZE] = 0xFF;
        assert!(matches!(
            parse_response(&data),
            Err(RequestError::BadReport(_))
        ));
    }

    #[test]
    fn missing_device_is_an_io_error_naming_the_path() {
        let mut dev = SevGuestDevice {
            path: PathBuf::from("/nonexistent/sev-guest"),
        };
        let err = dev.request_report(&[0; 64]).unwrap_err();
        assert!(err.to_string().contains("/nonexistent/sev-guest"), "{err}");
    }
}
