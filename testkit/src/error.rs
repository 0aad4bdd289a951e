//! The one error type of the test helpers.

use std::path::PathBuf;
use std::process::ExitStatus;
use std::time::Duration;

/// Why a test helper could not do what it was asked; each says what to look at.
#[derive(Debug, thiserror::Error)]
pub enum TestError {
    /// A file or directory operation failed.
    #[error("{action} {path}: {source}")]
    Io {
        /// What was being done.
        action: &'static str,
        /// The path it was done to.
        path: PathBuf,
        /// The underlying error.
        source: std::io::Error,
    },
    /// A program could not be started (not installed, not on PATH?).
    #[error("cannot run {program} (is it installed and on PATH?): {source}")]
    Spawn {
        /// The program that failed to start.
        program: String,
        /// The underlying error.
        source: std::io::Error,
    },
    /// A helper program ran but failed.
    #[error("{program} failed ({status}):\n{stderr}")]
    ToolFailed {
        /// The program that failed.
        program: String,
        /// Its exit status.
        status: ExitStatus,
        /// What it printed on stderr.
        stderr: String,
    },
    /// The console never showed the expected line within the deadline.
    #[error("no console line containing {needle:?} within {waited:?}; console so far:\n{console}")]
    Timeout {
        /// The text that was waited for.
        needle: String,
        /// How long was waited.
        waited: Duration,
        /// The tail of the serial console.
        console: String,
    },
    /// QEMU exited before the console showed the expected line.
    #[error("QEMU exited ({status}) before the console showed {needle:?}; console:\n{console}\nQEMU stderr:\n{stderr}")]
    ExitedEarly {
        /// The text that was waited for.
        needle: String,
        /// QEMU's exit status.
        status: ExitStatus,
        /// The tail of the serial console.
        console: String,
        /// What QEMU printed on stderr.
        stderr: String,
    },
    /// QEMU kept running past the deadline for exiting by itself.
    #[error("QEMU did not exit within {waited:?}; console tail:\n{console}")]
    DidNotExit {
        /// How long was waited.
        waited: Duration,
        /// The tail of the serial console.
        console: String,
    },
}

impl TestError {
    /// An [`TestError::Io`] for `path`.
    pub fn io(action: &'static str, path: impl Into<PathBuf>, source: std::io::Error) -> Self {
        TestError::Io {
            action,
            path: path.into(),
            source,
        }
    }
}
