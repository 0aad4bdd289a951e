//! The guest's console line format: kettle-init writes one line per step
//! (through `log`, so the logger may prefix a time and level), and the host's
//! progress display reads them back. The console is untrusted output: it only
//! informs the user; success is decided by the output disk and verification.

use crate::steps::Step;

/// Marks a line of the sandboxed build's own output.
const BUILD_OUTPUT_TAG: &str = "  build| ";
/// Marks the guest's final success line.
const SUCCEEDED_TAG: &str = "build succeeded: ";

/// The line a step logs when it succeeds: `[fetch] ok in 1.20s: source: <summary>`.
pub fn step_ok(step: Step, secs: f64, what: &str, summary: &str) -> String {
    let sep = if summary.is_empty() { "" } else { ": " };
    format!("[{step}] ok in {secs:.2}s: {what}{sep}{summary}")
}

/// The line a step logs when it fails: `[verify] FAILED after 0.10s: <what>: <message> (input: X)`.
pub fn step_failed(
    step: Step,
    secs: f64,
    what: &str,
    message: &str,
    input: Option<&str>,
) -> String {
    let input = input.map(|i| format!(" (input: {i})")).unwrap_or_default();
    format!("[{step}] FAILED after {secs:.2}s: {what}: {message}{input}")
}

/// One line of the build's own output, as the guest relays it.
pub fn build_output(line: &str) -> String {
    format!("{BUILD_OUTPUT_TAG}{line}")
}

/// The guest's final line after a successful build.
pub fn succeeded(summary: &str) -> String {
    format!("{SUCCEEDED_TAG}{summary}")
}

/// What one console line says about the pipeline.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ConsoleEvent {
    /// A step finished successfully.
    StepOk {
        /// The step.
        step: Step,
        /// What it reported.
        summary: String,
    },
    /// A step failed.
    StepFailed {
        /// The step.
        step: Step,
        /// What it reported.
        message: String,
    },
    /// A line of the build's own output.
    BuildOutput(String),
    /// The guest said the whole build succeeded.
    Succeeded(String),
    /// Any other line (kernel messages, logger noise).
    Other,
}

/// Reads one console line (whatever the logger put before the tag).
pub fn parse_line(line: &str) -> ConsoleEvent {
    if let Some((_, rest)) = line.split_once(BUILD_OUTPUT_TAG) {
        return ConsoleEvent::BuildOutput(rest.to_string());
    }
    if let Some((_, rest)) = line.split_once(SUCCEEDED_TAG) {
        return ConsoleEvent::Succeeded(rest.trim().to_string());
    }
    for step in Step::ALL {
        let tag = format!("[{step}] ");
        let Some((_, rest)) = line.split_once(&tag) else {
            continue;
        };
        let after_colon = || {
            rest.split_once(": ")
                .map(|(_, s)| s.trim().to_string())
                .unwrap_or_default()
        };
        if rest.starts_with("ok") {
            return ConsoleEvent::StepOk {
                step,
                summary: after_colon(),
            };
        }
        if rest.starts_with("FAILED") {
            return ConsoleEvent::StepFailed {
                step,
                message: after_colon(),
            };
        }
    }
    ConsoleEvent::Other
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_what_the_guest_writes_behind_a_logger_prefix() {
        let ok = step_ok(
            Step::Fetch,
            1.2,
            "cache disk",
            "12 entries, 3 bytes from /dev/vdb",
        );
        assert_eq!(
            ok,
            "[fetch] ok in 1.20s: cache disk: 12 entries, 3 bytes from /dev/vdb"
        );
        assert_eq!(
            parse_line(&format!("10:01:02 [INFO] {ok}")),
            ConsoleEvent::StepOk {
                step: Step::Fetch,
                summary: "cache disk: 12 entries, 3 bytes from /dev/vdb".into()
            }
        );
        let failed = step_failed(
            Step::Verify,
            0.1,
            "inputs",
            "crate hex 0.4.3: sha256 mismatch",
            Some("crate hex 0.4.3"),
        );
        assert_eq!(
            parse_line(&format!("[ERROR] {failed}")),
            ConsoleEvent::StepFailed {
                step: Step::Verify,
                message: "inputs: crate hex 0.4.3: sha256 mismatch (input: crate hex 0.4.3)".into()
            }
        );
        assert_eq!(
            parse_line(&format!(
                "[INFO] {}",
                build_output("Compiling hello v0.1.0")
            )),
            ConsoleEvent::BuildOutput("Compiling hello v0.1.0".into())
        );
        assert_eq!(
            parse_line(&format!("[INFO] {}", succeeded("1 artifacts, attested"))),
            ConsoleEvent::Succeeded("1 artifacts, attested".into())
        );
        assert_eq!(
            parse_line("[    0.000000] Linux version 6.12"),
            ConsoleEvent::Other
        );
        assert_eq!(parse_line("[fetchx] ok"), ConsoleEvent::Other);
    }
}
