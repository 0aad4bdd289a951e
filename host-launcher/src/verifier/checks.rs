//! The outcome of verification: a list of named checks, each passed, failed
//! or skipped (with the reason), and the overall verdict over them.

use std::fmt;

use serde::Serialize;

/// Result of one named check.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Status {
    /// The check ran and held.
    Pass,
    /// The check ran and did not hold.
    Fail,
    /// The check did not run; `detail` says why.
    Skip,
}

/// One named check with a human-readable detail.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Check {
    /// Stable dotted name, e.g. `binding.report_data`.
    pub name: String,
    /// Pass, fail or skip.
    pub status: Status,
    /// What was compared (on pass), what differed (on fail), why not run (on skip).
    pub detail: String,
}

impl Check {
    /// A passed check.
    pub fn pass(name: impl Into<String>, detail: impl Into<String>) -> Check {
        Check {
            name: name.into(),
            status: Status::Pass,
            detail: detail.into(),
        }
    }
    /// A failed check.
    pub fn fail(name: impl Into<String>, detail: impl Into<String>) -> Check {
        Check {
            name: name.into(),
            status: Status::Fail,
            detail: detail.into(),
        }
    }
    /// A check that could not run, with the reason.
    pub fn skip(name: impl Into<String>, reason: impl Into<String>) -> Check {
        Check {
            name: name.into(),
            status: Status::Skip,
            detail: reason.into(),
        }
    }
    /// Pass when `ok`, else fail; the detail is the same either way.
    pub fn from_bool(name: impl Into<String>, ok: bool, detail: impl Into<String>) -> Check {
        if ok {
            Check::pass(name, detail)
        } else {
            Check::fail(name, detail)
        }
    }
}

/// Every check run over one piece of evidence, and what it amounts to.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Verdict {
    /// True when no check failed.
    pub verified: bool,
    /// True when the report was bound to a provenance (report_data checked).
    pub binding_checked: bool,
    /// True when the report was signed by the simulated PSP (never hardware-attested).
    pub simulated: bool,
    /// Every check, in trust-chain order.
    pub checks: Vec<Check>,
    /// What the reader must know about how the checks were set up (e.g. where the expected measurement came from).
    pub notes: Vec<String>,
}

impl Verdict {
    /// Builds the verdict from the checks (verified iff none failed).
    pub fn new(checks: Vec<Check>, binding_checked: bool, simulated: bool) -> Verdict {
        let verified = !checks.iter().any(|c| c.status == Status::Fail);
        Verdict {
            verified,
            binding_checked,
            simulated,
            checks,
            notes: Vec::new(),
        }
    }

    /// The checks that failed.
    pub fn failures(&self) -> impl Iterator<Item = &Check> {
        self.checks.iter().filter(|c| c.status == Status::Fail)
    }

    /// The check named `name`, if it was run (or skipped).
    pub fn check(&self, name: &str) -> Option<&Check> {
        self.checks.iter().find(|c| c.name == name)
    }
}

impl fmt::Display for Verdict {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let width = self.checks.iter().map(|c| c.name.len()).max().unwrap_or(0);
        for c in &self.checks {
            let tag = match c.status {
                Status::Pass => "PASS",
                Status::Fail => "FAIL",
                Status::Skip => "SKIP",
            };
            writeln!(f, "[{tag}] {:width$}  {}", c.name, c.detail)?;
        }
        writeln!(f)?;
        for note in &self.notes {
            writeln!(f, "NOTE: {note}")?;
        }
        if self.simulated {
            writeln!(f, "NOTE: this report was signed by the SIMULATED PSP: nothing here is hardware-attested.")?;
        }
        if !self.binding_checked {
            writeln!(
                f,
                "NOTE: the binding to a provenance was NOT checked (no provenance given): only the report itself was verified."
            )?;
        }
        if self.verified {
            write!(f, "VERIFIED")
        } else {
            let names: Vec<&str> = self.failures().map(|c| c.name.as_str()).collect();
            write!(
                f,
                "REJECTED: {} check(s) failed: {}",
                names.len(),
                names.join(", ")
            )
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn verdict_fails_when_any_check_fails_and_names_them() {
        let v = Verdict::new(
            vec![
                Check::pass("a", "ok"),
                Check::fail("b", "differs"),
                Check::skip("c", "no input"),
                Check::fail("d", "x"),
            ],
            true,
            false,
        );
        assert!(!v.verified);
        let text = v.to_string();
        assert!(text.contains("[FAIL] b"), "{text}");
        assert!(text.contains("[SKIP] c  no input"), "{text}");
        assert!(
            text.ends_with("REJECTED: 2 check(s) failed: b, d"),
            "{text}"
        );
    }

    #[test]
    fn skips_do_not_fail_but_unbound_reports_say_so() {
        let v = Verdict::new(
            vec![
                Check::pass("a", "ok"),
                Check::skip("binding.report_data", "no provenance"),
            ],
            false,
            true,
        );
        assert!(v.verified);
        let text = v.to_string();
        assert!(text.contains("NOT checked"), "{text}");
        assert!(text.contains("SIMULATED"), "{text}");
        assert!(text.ends_with("VERIFIED"));
        let json = serde_json::to_value(&v).unwrap();
        assert_eq!(json["checks"][1]["status"], "skip");
        assert_eq!(json["verified"], true);
        assert_eq!(json["binding_checked"], false);
    }
}
