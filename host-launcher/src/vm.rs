//! Running the build CVM: QEMU as a child in its own process group, its
//! console streamed to build.log and the progress display, a timeout, and
//! an interrupt flag (SIGINT, SIGTERM, SIGHUP: [`crate::interrupt`]). QEMU
//! is always killed and reaped before this returns (also on panic, via
//! [`ChildGuard`]).

use std::ffi::OsString;
use std::fs::File;
use std::io::{BufWriter, Read};
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::thread;
use std::time::{Duration, Instant};

use crate::console::{self, Progress};

/// How a VM run ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum VmEnd {
    /// QEMU exited by itself (the guest ended the VM, or QEMU failed).
    Exited(ExitStatus),
    /// The timeout passed and QEMU was killed.
    TimedOut(Duration),
    /// A signal (SIGINT, SIGTERM, SIGHUP) set the interrupt flag and QEMU was killed.
    Interrupted,
}

/// What a VM run produced besides its end.
#[derive(Debug)]
pub struct VmRun {
    /// How it ended.
    pub end: VmEnd,
    /// The step the guest console reported as failed, if any (step, message).
    pub console_failure: Option<(kettle_wire::Step, String)>,
    /// What QEMU wrote on stderr (its own errors).
    pub qemu_stderr: String,
}

/// Why the VM could not be run at all.
#[derive(Debug, thiserror::Error)]
pub enum VmError {
    /// QEMU could not be started.
    #[error("cannot start {qemu}: {source} (install qemu-system-x86, or pass --qemu PATH)")]
    Spawn {
        /// The binary.
        qemu: String,
        /// Why.
        #[source]
        source: std::io::Error,
    },
    /// build.log could not be created.
    #[error("cannot create the console log {path}: {source}")]
    Log {
        /// The path.
        path: PathBuf,
        /// Why.
        #[source]
        source: std::io::Error,
    },
    /// Waiting for QEMU failed.
    #[error("waiting for QEMU: {0}")]
    Wait(#[source] std::io::Error),
}

/// Kills and reaps the child when dropped, whatever happened before.
pub struct ChildGuard(Option<Child>);

impl ChildGuard {
    /// Guards `child`, which must lead its own process group (`process_group(0)`).
    pub fn new(child: Child) -> ChildGuard {
        ChildGuard(Some(child))
    }

    /// The guarded child.
    pub fn child(&mut self) -> &mut Child {
        self.0.as_mut().expect("child present until drop")
    }

    /// Sends `signal` to the child's whole process group.
    pub fn signal_group(&mut self, signal: rustix::process::Signal) {
        if let Some(pid) = rustix::process::Pid::from_raw(self.child().id() as i32) {
            let _ = rustix::process::kill_process_group(pid, signal);
        }
    }
}

impl Drop for ChildGuard {
    fn drop(&mut self) {
        if let Some(mut child) = self.0.take() {
            if let Ok(None) = child.try_wait() {
                // The whole group: nothing QEMU started may outlive it or hold the console pipe.
                if let Some(pid) = rustix::process::Pid::from_raw(child.id() as i32) {
                    let _ = rustix::process::kill_process_group(pid, rustix::process::Signal::KILL);
                }
                let _ = child.kill();
            }
            let _ = child.wait();
        }
    }
}

/// Runs `qemu argv`, streaming the console into `log_path` and `progress`,
/// until QEMU exits, `timeout` passes or `interrupted` is set.
pub fn run(
    qemu: &str,
    argv: &[OsString],
    log_path: &Path,
    timeout: Duration,
    interrupted: &AtomicBool,
    progress: Progress,
) -> Result<VmRun, VmError> {
    let log = File::create(log_path).map_err(|source| VmError::Log {
        path: log_path.into(),
        source,
    })?;
    log::debug!(
        "running {qemu} {}",
        argv.iter()
            .map(|a| a.to_string_lossy())
            .collect::<Vec<_>>()
            .join(" ")
    );
    let child = Command::new(qemu)
        .args(argv)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        // Its own process group: the terminal's Ctrl-C reaches us, and we decide when QEMU dies.
        .process_group(0)
        .spawn()
        .map_err(|source| VmError::Spawn {
            qemu: qemu.into(),
            source,
        })?;
    let mut guard = ChildGuard(Some(child));
    let stdout = guard.child().stdout.take().expect("stdout piped");
    let mut stderr = guard.child().stderr.take().expect("stderr piped");

    let ticker = progress.clone();
    let console = thread::spawn(move || {
        let mut progress = progress;
        if let Err(e) = console::pump(stdout, BufWriter::new(log), &mut progress) {
            log::warn!("guest console: {e}");
        }
        progress.finish();
        progress.failure()
    });
    let errors = thread::spawn(move || {
        let mut text = String::new();
        let _ = stderr.read_to_string(&mut text);
        text
    });

    let start = Instant::now();
    let end = loop {
        if let Some(status) = guard.child().try_wait().map_err(VmError::Wait)? {
            break VmEnd::Exited(status);
        }
        if interrupted.load(Ordering::SeqCst) {
            break VmEnd::Interrupted;
        }
        if start.elapsed() >= timeout {
            break VmEnd::TimedOut(timeout);
        }
        ticker.tick();
        thread::sleep(Duration::from_millis(100));
    };
    drop(guard); // kills (if still running) and reaps QEMU, closing its pipes
    let console_failure = console.join().unwrap_or(None);
    let qemu_stderr = errors.join().unwrap_or_default();
    Ok(VmRun {
        end,
        console_failure,
        qemu_stderr,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn run_sh(script: &str, timeout: Duration, interrupted: bool) -> (VmRun, String) {
        let dir = tempfile::tempdir().unwrap();
        let log = dir.path().join("build.log");
        let flag = AtomicBool::new(interrupted);
        let argv = vec![OsString::from("-c"), OsString::from(script)];
        let r = run("sh", &argv, &log, timeout, &flag, Progress::new(false)).unwrap();
        (r, std::fs::read_to_string(&log).unwrap())
    }

    #[test]
    fn streams_the_console_to_the_log_and_reports_the_exit() {
        let (r, log) = run_sh(
            "echo '[INFO] [boot] ok in 0.1s: up'; echo '[ERROR] [fetch] FAILED after 0.1s: no cache disk'; echo oops >&2; exit 3",
            Duration::from_secs(60),
            false,
        );
        assert!(
            matches!(r.end, VmEnd::Exited(s) if s.code() == Some(3)),
            "{:?}",
            r.end
        );
        assert_eq!(
            r.console_failure,
            Some((kettle_wire::Step::Fetch, "no cache disk".into()))
        );
        assert_eq!(r.qemu_stderr.trim(), "oops");
        assert!(
            log.contains("[boot] ok") && log.contains("[fetch] FAILED"),
            "{log}"
        );
    }

    #[test]
    fn kills_on_timeout() {
        // A zero timeout is already passed at the first check: the child is killed, not awaited.
        let (r, _) = run_sh("exec sleep 600", Duration::ZERO, false);
        assert_eq!(r.end, VmEnd::TimedOut(Duration::ZERO));
    }

    #[test]
    fn kills_on_interrupt() {
        let (r, _) = run_sh("exec sleep 600", Duration::from_secs(600), true);
        assert_eq!(r.end, VmEnd::Interrupted);
    }

    #[test]
    fn missing_binary_says_what_to_install() {
        let dir = tempfile::tempdir().unwrap();
        let err = run(
            "/nonexistent/qemu",
            &[],
            &dir.path().join("log"),
            Duration::from_secs(1),
            &AtomicBool::new(false),
            Progress::new(false),
        )
        .unwrap_err();
        assert!(err.to_string().contains("qemu-system-x86"), "{err}");
    }
}
