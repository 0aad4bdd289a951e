//! The host side of `--tee simulated`: attest's software PSP answering the
//! guest's report requests on the unix socket behind QEMU's `kettle.psp`
//! virtio-serial port, on its own thread.

use std::io;
use std::os::unix::net::UnixListener;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::thread::{self, JoinHandle};
use std::time::Duration;

use kettle_attest::simulated::SimulatedPsp;

/// A running simulated PSP; [`PspServer::stop`] ends it.
pub struct PspServer {
    socket: PathBuf,
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
}

impl PspServer {
    /// Listens on `socket` (created; must not exist) and serves the first connection (QEMU's).
    pub fn start(socket: &Path, psp: SimulatedPsp) -> io::Result<PspServer> {
        let listener = UnixListener::bind(socket)?;
        listener.set_nonblocking(true)?;
        let stop = Arc::new(AtomicBool::new(false));
        let flag = stop.clone();
        let thread = thread::Builder::new()
            .name("simulated-psp".into())
            .spawn(move || {
                // Poll so that a QEMU that never connects does not leave this thread blocked.
                let stream = loop {
                    match listener.accept() {
                        Ok((s, _)) => break s,
                        Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                            if flag.load(Ordering::SeqCst) {
                                return;
                            }
                            thread::sleep(Duration::from_millis(50));
                        }
                        Err(e) => {
                            log::error!("simulated PSP: accept: {e}");
                            return;
                        }
                    }
                };
                if let Err(e) = stream.set_nonblocking(false) {
                    log::error!("simulated PSP: {e}");
                    return;
                }
                log::debug!("simulated PSP: QEMU connected");
                match psp.serve(stream) {
                    Ok(()) => log::debug!("simulated PSP: session ended"),
                    Err(e) => log::warn!("simulated PSP: {e}"),
                }
            })?;
        Ok(PspServer {
            socket: socket.into(),
            stop,
            thread: Some(thread),
        })
    }

    /// Stops accepting, waits for the session to end (QEMU gone) and removes the socket.
    pub fn stop(mut self) {
        self.shutdown();
    }

    fn shutdown(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
        let _ = std::fs::remove_file(&self.socket);
    }
}

impl Drop for PspServer {
    fn drop(&mut self) {
        self.shutdown();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use kettle_attest::simulated::PspClient;
    use kettle_attest::{Report, ReportProvider};
    use std::os::unix::net::UnixStream;

    /// A server for `measurement` on a socket in a fresh scratch directory.
    fn serve(measurement: [u8; 48]) -> (tempfile::TempDir, PathBuf, PspServer) {
        let dir = tempfile::tempdir().unwrap();
        let sock = dir.path().join("psp.sock");
        let server = PspServer::start(&sock, SimulatedPsp::new(measurement)).unwrap();
        (dir, sock, server)
    }

    #[test]
    fn answers_a_guest_over_the_socket() {
        let (_dir, sock, server) = serve([3; 48]);
        let mut client = PspClient::new(UnixStream::connect(&sock).unwrap());
        let evidence = client.request_report(&[9; 64]).unwrap();
        let report = Report::parse(&evidence.report).unwrap();
        assert_eq!(report.measurement(), [3; 48]);
        assert_eq!(report.report_data(), [9; 64]);
        assert!(evidence.cert_chain_pem.is_some());
        drop(client);
        server.stop();
        assert!(!sock.exists());
    }

    #[test]
    fn stops_when_nobody_connected() {
        let (_dir, sock, server) = serve([0; 48]);
        server.stop();
        assert!(!sock.exists());
    }
}
