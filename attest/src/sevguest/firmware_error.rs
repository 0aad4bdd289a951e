//! Readable errors from the guest request's exitinfo2 (VMM and firmware codes)
//! and from MSG_REPORT_RSP.status.

use std::fmt;

use super::uapi::{SNP_GUEST_VMM_ERR_BUSY, SNP_GUEST_VMM_ERR_INVALID_LEN, SNP_GUEST_VMM_ERR_SHIFT};

/// A failed guest request, decoded.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FirmwareError {
    /// Firmware error (exitinfo2 bits 31:0, or MSG_REPORT_RSP.status).
    pub fw_error: u32,
    /// Hypervisor error (exitinfo2 bits 63:32).
    pub vmm_error: u32,
    /// For "certificate buffer too small": the size the hypervisor needs, in bytes.
    pub required_len: Option<u32>,
    /// errno of the failed ioctl, if any.
    pub errno: Option<i32>,
}

impl FirmwareError {
    /// Splits exitinfo2 into its VMM and firmware halves.
    pub fn from_exitinfo2(exitinfo2: u64) -> FirmwareError {
        FirmwareError {
            fw_error: (exitinfo2 & 0xffff_ffff) as u32,
            vmm_error: (exitinfo2 >> SNP_GUEST_VMM_ERR_SHIFT) as u32,
            required_len: None,
            errno: None,
        }
    }

    /// A non-zero MSG_REPORT_RSP.status.
    pub fn from_status(status: u32) -> FirmwareError {
        FirmwareError {
            fw_error: status,
            vmm_error: 0,
            required_len: None,
            errno: None,
        }
    }

    /// Whether the hypervisor throttled the request (worth retrying later).
    pub fn is_busy(&self) -> bool {
        self.vmm_error == SNP_GUEST_VMM_ERR_BUSY
    }

    /// Whether the certificate buffer was too small.
    pub fn is_invalid_length(&self) -> bool {
        self.vmm_error == SNP_GUEST_VMM_ERR_INVALID_LEN
    }
}

/// Names of SEV firmware status codes (psp-sev.h `sev_ret_code`) with a hint.
fn firmware_status(code: u32) -> (&'static str, &'static str) {
    match code {
        0x00 => ("SUCCESS", ""),
        0x01 => (
            "INVALID_PLATFORM_STATE",
            "the PSP is not in a state that allows this",
        ),
        0x02 => (
            "INVALID_GUEST_STATE",
            "the guest is not in a state that allows this",
        ),
        0x03 => ("INVALID_CONFIG", "invalid platform configuration"),
        0x04 => ("INVALID_LEN", "a buffer has the wrong length"),
        0x05 => ("ALREADY_OWNED", ""),
        0x06 => ("INVALID_CERTIFICATE", ""),
        0x07 => ("POLICY_FAILURE", "the guest policy forbids this request"),
        0x08 => ("INACTIVE", "the guest is not active"),
        0x09 => ("INVALID_ADDRESS", "a buffer address is invalid"),
        0x0A => ("BAD_SIGNATURE", ""),
        0x0B => ("BAD_MEASUREMENT", ""),
        0x0C => ("ASID_OWNED", ""),
        0x0D => ("INVALID_ASID", ""),
        0x0E => ("WBINVD_REQUIRED", ""),
        0x0F => ("DFFLUSH_REQUIRED", ""),
        0x10 => ("INVALID_GUEST", "the PSP does not know this guest"),
        0x11 => ("INVALID_COMMAND", "the PSP does not support this command"),
        0x12 => ("ACTIVE", ""),
        0x13 => ("HWSEV_RET_PLATFORM", "hardware error in the platform"),
        0x14 => ("HWSEV_RET_UNSAFE", "hardware reported an unsafe condition"),
        0x15 => (
            "UNSUPPORTED",
            "the request is not supported by this firmware",
        ),
        0x16 => (
            "INVALID_PARAM",
            "invalid parameters (e.g. a VMPL below the guest's own, or non-zero reserved fields)",
        ),
        0x17 => (
            "RESOURCE_LIMIT",
            "the PSP ran out of a resource; retry later",
        ),
        0x18 => ("SECURE_DATA_INVALID", ""),
        0x19 => ("INVALID_PAGE_SIZE", ""),
        0x1A => ("INVALID_PAGE_STATE", ""),
        0x1B => ("INVALID_MDATA_ENTRY", ""),
        0x1C => ("INVALID_PAGE_OWNER", ""),
        0x1D => (
            "AEAD_OFLOW",
            "the guest message sequence number overflowed; the VMPCK is no longer usable",
        ),
        0x1F => ("EXIT_RING_BUFFER", ""),
        0x20 => ("RMP_INIT_REQUIRED", ""),
        0x21 => ("BAD_SVN", ""),
        0x22 => ("BAD_VERSION", ""),
        0x23 => ("SHUTDOWN_REQUIRED", ""),
        0x24 => ("UPDATE_FAILED", ""),
        0x25 => ("RESTORE_REQUIRED", ""),
        0x26 => ("RMP_INITIALIZATION_FAILED", ""),
        0x27 => (
            "INVALID_KEY",
            "the requested signing key is not available (e.g. no VLEK installed)",
        ),
        _ => ("UNKNOWN", "not a code this program knows"),
    }
}

impl fmt::Display for FirmwareError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.vmm_error {
            0 => {}
            SNP_GUEST_VMM_ERR_INVALID_LEN => {
                write!(f, "hypervisor: certificate buffer too small")?;
                if let Some(n) = self.required_len {
                    write!(f, " ({n} bytes required)")?;
                }
            }
            SNP_GUEST_VMM_ERR_BUSY => write!(
                f,
                "hypervisor busy: the guest request was throttled; retry later"
            )?,
            n => write!(f, "hypervisor error {n}")?,
        }
        if self.fw_error != 0 {
            if self.vmm_error != 0 {
                write!(f, "; ")?;
            }
            if self.fw_error == u32::MAX {
                write!(
                    f,
                    "no firmware call was made (the guest driver could not reach the PSP)"
                )?;
            } else {
                let (name, hint) = firmware_status(self.fw_error);
                write!(f, "firmware error 0x{:x} {name}", self.fw_error)?;
                if !hint.is_empty() {
                    write!(f, ": {hint}")?;
                }
            }
        }
        if self.vmm_error == 0 && self.fw_error == 0 {
            write!(
                f,
                "the request failed without a firmware or hypervisor error code"
            )?;
        }
        if let Some(errno) = self.errno {
            write!(f, " (ioctl: {})", std::io::Error::from_raw_os_error(errno))?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn splits_exitinfo2() {
        let e = FirmwareError::from_exitinfo2((2u64 << 32) | 0x16);
        assert_eq!((e.vmm_error, e.fw_error), (2, 0x16));
        assert!(e.is_busy());
        let text = e.to_string();
        assert!(
            text.contains("throttled") && text.contains("INVALID_PARAM"),
            "{text}"
        );
    }

    #[test]
    fn messages_are_readable() {
        let mut e = FirmwareError::from_exitinfo2(1u64 << 32);
        e.required_len = Some(0x5000);
        assert!(e.is_invalid_length());
        assert_eq!(
            e.to_string(),
            "hypervisor: certificate buffer too small (20480 bytes required)"
        );
        assert_eq!(
            FirmwareError::from_exitinfo2(0xffff_ffff).to_string(),
            "no firmware call was made (the guest driver could not reach the PSP)"
        );
        assert!(FirmwareError::from_status(0x27)
            .to_string()
            .contains("INVALID_KEY"));
        assert!(FirmwareError::from_status(0x99)
            .to_string()
            .contains("0x99 UNKNOWN"));
        let mut e = FirmwareError::from_exitinfo2(0);
        e.errno = Some(5);
        assert!(
            e.to_string().contains("without a firmware") && e.to_string().contains("ioctl"),
            "{e}"
        );
    }
}
