//! The guest's serial console on the host: every line goes to build.log, and
//! the init steps' lines (`[fetch] ok in 1.20s: ...`, `[build] FAILED ...`)
//! drive a progress display. The console is untrusted output: it only informs
//! the user; success is decided by the output disk and verification.

use std::io::{self, BufRead, Write};

use indicatif::{ProgressBar, ProgressStyle};

/// The guest pipeline's steps, in order (kettle-init's step names).
pub const STEPS: [&str; 10] = [
    "boot",
    "request",
    "fetch",
    "verify",
    "unpack",
    "build",
    "hash",
    "provenance",
    "attest",
    "emit",
];

/// What one console line says about the pipeline.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ConsoleEvent {
    /// A step finished successfully.
    StepOk {
        /// The step's name.
        step: String,
        /// What it reported.
        summary: String,
    },
    /// A step failed.
    StepFailed {
        /// The step's name.
        step: String,
        /// What it reported.
        message: String,
    },
    /// A line of the build's own output.
    BuildOutput(String),
    /// The guest said the whole build succeeded.
    Succeeded(String),
    /// Any other line.
    Other,
}

/// Reads one console line.
pub fn parse_line(line: &str) -> ConsoleEvent {
    if let Some(rest) = line.split_once("  build| ").map(|(_, r)| r) {
        return ConsoleEvent::BuildOutput(rest.to_string());
    }
    if let Some((_, rest)) = line.split_once("build succeeded: ") {
        return ConsoleEvent::Succeeded(rest.trim().to_string());
    }
    for step in STEPS {
        let tag = format!("[{step}] ");
        if let Some((_, rest)) = line.split_once(&tag) {
            if rest.starts_with("ok") {
                let summary = rest
                    .split_once(": ")
                    .map(|(_, s)| s.trim().to_string())
                    .unwrap_or_default();
                return ConsoleEvent::StepOk {
                    step: step.to_string(),
                    summary,
                };
            }
            if rest.starts_with("FAILED") {
                let message = rest
                    .split_once(": ")
                    .map(|(_, s)| s.trim().to_string())
                    .unwrap_or_default();
                return ConsoleEvent::StepFailed {
                    step: step.to_string(),
                    message,
                };
            }
        }
    }
    ConsoleEvent::Other
}

/// Shows the guest's progress: one bar over the steps, with the current step's name.
pub struct Progress {
    bar: ProgressBar,
    /// Without a terminal the bar is hidden and step lines go to stderr as plain lines.
    visible: bool,
    failed: Option<(String, String)>,
}

impl Progress {
    /// A progress bar over [`STEPS`]; hidden when `visible` is false (e.g. not a terminal).
    pub fn new(visible: bool) -> Progress {
        let bar = if visible {
            ProgressBar::new(STEPS.len() as u64)
        } else {
            ProgressBar::hidden()
        };
        bar.set_style(
            ProgressStyle::with_template(
                "{spinner} [{elapsed_precise}] guest step {pos}/{len} {msg}",
            )
            .expect("valid template"),
        );
        bar.enable_steady_tick(std::time::Duration::from_millis(200));
        bar.set_message(format!("{}: booting the CVM", STEPS[0]));
        Progress {
            bar,
            visible,
            failed: None,
        }
    }

    /// Feeds one console line.
    pub fn line(&mut self, line: &str) {
        match parse_line(line) {
            ConsoleEvent::StepOk { step, summary } => {
                let done = STEPS.iter().position(|s| *s == step).map_or(0, |i| i + 1);
                self.bar.set_position(done as u64);
                self.say(format!("  [{step}] ok: {summary}"));
                if let Some(next) = STEPS.get(done) {
                    self.bar.set_message(next.to_string());
                }
            }
            ConsoleEvent::StepFailed { step, message } => {
                self.say(format!("  [{step}] FAILED: {message}"));
                self.failed = Some((step, message));
            }
            ConsoleEvent::BuildOutput(text) => {
                let short: String = text.chars().take(60).collect();
                self.bar.set_message(format!("build: {short}"));
            }
            ConsoleEvent::Succeeded(_) | ConsoleEvent::Other => {}
        }
    }

    fn say(&self, line: String) {
        if self.visible {
            self.bar.println(line);
        } else {
            eprintln!("{line}");
        }
    }

    /// The step the guest reported as failed, if any.
    pub fn failure(&self) -> Option<&(String, String)> {
        self.failed.as_ref()
    }

    /// Removes the bar.
    pub fn finish(&self) {
        self.bar.finish_and_clear();
    }
}

/// Copies `console` line by line into `log` (bytes as received) and `progress`, until EOF.
pub fn pump(
    console: impl io::Read,
    mut log: impl Write,
    progress: &mut Progress,
) -> io::Result<()> {
    let mut reader = io::BufReader::new(console);
    let mut buf = Vec::new();
    loop {
        buf.clear();
        if reader.read_until(b'\n', &mut buf)? == 0 {
            break;
        }
        log.write_all(&buf)?;
        let text = String::from_utf8_lossy(&buf);
        let line = text.trim_end_matches(['\n', '\r']);
        log::debug!("guest: {line}");
        progress.line(line);
    }
    log.flush()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_init_step_lines() {
        assert_eq!(
            parse_line("10:01:02 [INFO] [fetch] ok in 1.20s: cache disk: 12 entries, 3 bytes from /dev/vdb"),
            ConsoleEvent::StepOk { step: "fetch".into(), summary: "cache disk: 12 entries, 3 bytes from /dev/vdb".into() }
        );
        assert_eq!(
            parse_line(
                "[ERROR] [verify] FAILED after 0.10s: inputs: crate hex 0.4.3: sha256 mismatch"
            ),
            ConsoleEvent::StepFailed {
                step: "verify".into(),
                message: "inputs: crate hex 0.4.3: sha256 mismatch".into()
            }
        );
        assert_eq!(
            parse_line("[INFO]   build| Compiling hello v0.1.0"),
            ConsoleEvent::BuildOutput("Compiling hello v0.1.0".into())
        );
        assert_eq!(
            parse_line("[INFO] build succeeded: 1 artifacts, attested"),
            ConsoleEvent::Succeeded("1 artifacts, attested".into())
        );
        assert_eq!(
            parse_line("[    0.000000] Linux version 6.12"),
            ConsoleEvent::Other
        );
        assert_eq!(parse_line("[fetchx] ok"), ConsoleEvent::Other);
    }

    #[test]
    fn pump_keeps_every_byte_and_tracks_failure() {
        let console = b"[    0.1] kernel\r\n[INFO] [boot] ok in 0.01s: up\n[ERROR] [fetch] FAILED after 0.2s: no disk\npartial";
        let mut log = Vec::new();
        let mut p = Progress::new(false);
        pump(&console[..], &mut log, &mut p).unwrap();
        assert_eq!(log, console);
        assert_eq!(
            p.failure(),
            Some(&("fetch".to_string(), "no disk".to_string()))
        );
        assert_eq!(p.bar.position(), 1);
    }
}
