//! Guest side of the simulated PSP: sends requests over a virtio-serial port.

use std::io::{Read, Write};

use crate::provider::{Evidence, ReportProvider, RequestError};

/// Byte stream to the simulated PSP.
trait Channel: Read + Write + Send {}
impl<T: Read + Write + Send> Channel for T {}

/// A client of the simulated PSP, usable as a [`ReportProvider`].
pub struct PspClient {
    #[allow(dead_code)]
    stream: Box<dyn Channel>,
}

impl PspClient {
    /// Opens the virtio-serial port whose name is `name` (Kettle uses "kettle.psp").
    pub fn open_port(name: &str) -> Result<PspClient, RequestError> {
        Err(RequestError::Unavailable(format!("virtio port {name}: not implemented yet")))
    }

    /// Wraps an already-open stream (tests, host-side sockets).
    pub fn new(stream: impl Read + Write + Send + 'static) -> PspClient {
        PspClient { stream: Box::new(stream) }
    }
}

impl ReportProvider for PspClient {
    fn request_report(&mut self, _report_data: &[u8; 64]) -> Result<Evidence, RequestError> {
        Err(RequestError::Unavailable("simulated PSP client: not implemented yet".into()))
    }
}
