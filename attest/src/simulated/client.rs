//! Guest side of the simulated PSP: sends framed requests over a virtio-serial port.

use std::io::{Read, Write};
use std::path::{Path, PathBuf};

use crate::provider::{Evidence, ReportProvider, RequestError, Tee};
use crate::report::REPORT_LEN;

use super::protocol::{self, ReportRequest, Response};

/// Where the kernel lists virtio-serial ports and their names.
pub const VIRTIO_PORTS_DIR: &str = "/sys/class/virtio-ports";

/// How long the guest waits for the host's simulated PSP to answer.
pub const RESPONSE_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(120);

/// A virtio-serial port whose reads give up after a timeout, so a host that
/// never answers makes the request fail instead of hanging the guest.
struct PortStream {
    file: std::fs::File,
    path: PathBuf,
    timeout: std::time::Duration,
}

impl Read for PortStream {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        use rustix::event::{poll, PollFd, PollFlags, Timespec};
        let timeout = Timespec {
            tv_sec: self.timeout.as_secs() as _,
            tv_nsec: self.timeout.subsec_nanos() as _,
        };
        loop {
            let mut fds = [PollFd::new(&self.file, PollFlags::IN)];
            match poll(&mut fds, Some(&timeout)) {
                Ok(0) => {
                    return Err(std::io::Error::new(
                        std::io::ErrorKind::TimedOut,
                        format!(
                            "no answer from the simulated PSP on {} within {:?}",
                            self.path.display(),
                            self.timeout
                        ),
                    ))
                }
                Ok(_) => return self.file.read(buf),
                Err(rustix::io::Errno::INTR) => continue,
                Err(e) => return Err(e.into()),
            }
        }
    }
}

impl Write for PortStream {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.file.write(buf)
    }
    fn flush(&mut self) -> std::io::Result<()> {
        self.file.flush()
    }
}

/// Byte stream to the simulated PSP.
trait Channel: Read + Write + Send {}
impl<T: Read + Write + Send> Channel for T {}

/// A client of the simulated PSP, usable as a [`ReportProvider`].
pub struct PspClient {
    stream: Box<dyn Channel>,
}

/// Finds the device node of the virtio-serial port called `name` under `sys_dir`
/// (normally /sys/class/virtio-ports: one `vportNpM` directory per port, each with a `name` file).
pub fn find_port(sys_dir: &Path, name: &str) -> Result<PathBuf, RequestError> {
    let entries = std::fs::read_dir(sys_dir).map_err(|source| RequestError::Io {
        what: format!("listing {}", sys_dir.display()),
        source,
    })?;
    let mut seen = Vec::new();
    for entry in entries {
        let entry = entry.map_err(|source| RequestError::Io {
            what: format!("listing {}", sys_dir.display()),
            source,
        })?;
        let port_name = match std::fs::read_to_string(entry.path().join("name")) {
            Ok(n) => n.trim_end_matches('\n').to_string(),
            Err(_) => continue, // a port without a name
        };
        if port_name == name {
            return Ok(Path::new("/dev").join(entry.file_name()));
        }
        seen.push(port_name);
    }
    seen.sort();
    Err(RequestError::PortNotFound {
        name: name.to_string(),
        seen,
    })
}

impl PspClient {
    /// Opens the virtio-serial port whose name is `name` (Kettle uses "kettle.psp").
    pub fn open_port(name: &str) -> Result<PspClient, RequestError> {
        let dev = find_port(Path::new(VIRTIO_PORTS_DIR), name)?;
        let file = std::fs::OpenOptions::new()
            .read(true)
            .write(true)
            .open(&dev)
            .map_err(|source| RequestError::Io {
                what: format!("opening {}", dev.display()),
                source,
            })?;
        log::info!("simulated PSP on virtio port {name} ({})", dev.display());
        Ok(PspClient::new(PortStream {
            file,
            path: dev,
            timeout: RESPONSE_TIMEOUT,
        }))
    }

    /// Wraps an already-open stream (tests, host-side sockets).
    pub fn new(stream: impl Read + Write + Send + 'static) -> PspClient {
        PspClient {
            stream: Box::new(stream),
        }
    }
}

impl ReportProvider for PspClient {
    fn request_report(&mut self, report_data: &[u8; 64]) -> Result<Evidence, RequestError> {
        let request = ReportRequest {
            report_data: *report_data,
            vmpl: 0,
        };
        protocol::write_request(&mut self.stream, &request)?;
        match protocol::read_response(&mut self.stream)? {
            Response::Report {
                report,
                cert_chain_pem,
            } => {
                if report.len() != REPORT_LEN {
                    return Err(RequestError::BadReport(format!(
                        "simulated PSP returned {} bytes, a report is {REPORT_LEN}",
                        report.len()
                    )));
                }
                Ok(Evidence {
                    report,
                    cert_chain_pem: (!cert_chain_pem.is_empty()).then_some(cert_chain_pem),
                    provider: Tee::Simulated,
                })
            }
            Response::Error { code, message } => Err(RequestError::Simulated {
                code: code as u32,
                message,
            }),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn port_reads_time_out_when_nobody_answers() {
        use std::os::fd::OwnedFd;
        let (reader, writer) = std::os::unix::net::UnixStream::pair().unwrap();
        let file = std::fs::File::from(OwnedFd::from(reader));
        let mut port = PortStream {
            file,
            path: PathBuf::from("/dev/vport9p9"),
            timeout: std::time::Duration::from_millis(10),
        };
        let err = port.read(&mut [0u8; 4]).unwrap_err();
        assert_eq!(err.kind(), std::io::ErrorKind::TimedOut);
        assert!(err.to_string().contains("/dev/vport9p9"), "{err}");
        // Data that is there is read.
        (&writer).write_all(b"KPSP").unwrap();
        let mut buf = [0u8; 4];
        assert_eq!(port.read(&mut buf).unwrap(), 4);
        assert_eq!(&buf, b"KPSP");
    }

    #[test]
    fn finds_port_by_name() {
        let sys = std::env::temp_dir().join(format!("kettle-vports-{}", std::process::id()));
        for (dir, name) in [
            ("vport0p1", "org.qemu.guest_agent.0\n"),
            ("vport1p1", "kettle.psp\n"),
        ] {
            std::fs::create_dir_all(sys.join(dir)).unwrap();
            std::fs::write(sys.join(dir).join("name"), name).unwrap();
        }
        std::fs::create_dir_all(sys.join("vport2p0")).unwrap(); // console port, no name file
        assert_eq!(
            find_port(&sys, "kettle.psp").unwrap(),
            Path::new("/dev/vport1p1")
        );
        match find_port(&sys, "kettle.other") {
            Err(RequestError::PortNotFound { name, seen }) => {
                assert_eq!(name, "kettle.other");
                assert_eq!(
                    seen,
                    vec![
                        "kettle.psp".to_string(),
                        "org.qemu.guest_agent.0".to_string()
                    ]
                );
            }
            other => panic!("{other:?}"),
        }
        std::fs::remove_dir_all(&sys).unwrap();
        assert!(matches!(
            find_port(&sys, "kettle.psp"),
            Err(RequestError::Io { .. })
        ));
    }
}
