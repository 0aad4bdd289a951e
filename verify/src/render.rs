//! The verdict as text for a terminal or a log. Names and details carry
//! strings taken from the evidence (artifact file names, provenance fields),
//! which the build host chose: every control or formatting character is
//! escaped, so a file name cannot forge a line of the verdict.

use std::fmt;

use crate::check::Status;
use crate::verdict::Verdict;

/// `text` with control characters (C0, DEL, C1) and bidirectional or zero-width
/// formatting characters shown as `\u{..}` escapes, and backslashes doubled.
pub fn escape(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        let hidden = c.is_control()
            || matches!(c, '\u{200B}'..='\u{200F}' | '\u{202A}'..='\u{202E}' | '\u{2066}'..='\u{2069}' | '\u{FEFF}');
        if c == '\\' {
            out.push_str("\\\\");
        } else if hidden {
            out.push_str(&format!("\\u{{{:x}}}", c as u32));
        } else {
            out.push(c);
        }
    }
    out
}

impl fmt::Display for Verdict {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let rows: Vec<(Status, String, String)> = self
            .checks
            .iter()
            .map(|c| {
                let mut detail = escape(&c.detail());
                if let (Status::Fail, Some(field)) = (c.status(), c.policy_field) {
                    detail.push_str(&format!(" [policy field: {field}]"));
                }
                (c.status(), escape(&c.name()), detail)
            })
            .collect();
        let width = rows.iter().map(|r| r.1.chars().count()).max().unwrap_or(0);
        for (status, name, detail) in &rows {
            let tag = match status {
                Status::Pass => "PASS",
                Status::Fail => "FAIL",
                Status::Skip => "SKIP",
            };
            writeln!(f, "[{tag}] {name:width$}  {detail}")?;
        }
        writeln!(f)?;
        for note in &self.notes {
            writeln!(f, "NOTE: {}", escape(note))?;
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
        if let Some(commit) = &self.built_commit {
            writeln!(f, "built commit: {}", escape(commit))?;
        }
        write!(f, "{}", self.headline())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::check::{CheckId, CheckList, Failure, Outcome};

    #[test]
    fn verdict_fails_when_any_check_fails_and_names_them() {
        let mut list = CheckList::default();
        list.push(CheckId::Chain, Outcome::Pass("ok".into()));
        list.push_result(CheckId::Signature, Err(Failure::untrusted("differs")));
        list.push(CheckId::Repository, Outcome::not_requested("no input"));
        list.push_result(CheckId::Ref, Err(Failure::mismatch("ref", "x", "y")));
        let v = Verdict::new(list, true, false);
        assert!(!v.verified);
        let text = v.to_string();
        assert!(text.contains("[FAIL] report.signature"), "{text}");
        assert!(
            text.contains("[SKIP] provenance.repository  no input"),
            "{text}"
        );
        assert!(
            text.ends_with("REJECTED: 2 check(s) failed: report.signature, provenance.ref"),
            "{text}"
        );
    }

    #[test]
    fn verdict_lines_never_overstate() {
        let line = |simulated, bound| {
            let list = [(CheckId::Signature, Outcome::Pass("ok".into()))];
            Verdict::new(list.into_iter().collect(), bound, simulated)
                .to_string()
                .lines()
                .last()
                .unwrap()
                .to_string()
        };
        assert_eq!(line(false, true), "VERIFIED");
        assert!(line(true, true).starts_with("VERIFIED (SIMULATED"));
        assert!(line(false, false).starts_with("VERIFIED (report only"));
    }

    #[test]
    fn a_verified_line_names_the_checks_nobody_asked_for() {
        let list = [
            (CheckId::Signature, Outcome::Pass("ok".into())),
            (CheckId::Revocation, Outcome::not_requested("no CRL given")),
            (
                CheckId::CertValidity,
                Outcome::not_requested("no trusted clock"),
            ),
            (CheckId::ReportData, Outcome::Pass("bound".into())),
        ];
        let v = Verdict::new(list.into_iter().collect(), true, false);
        assert!(v.verified);
        assert_eq!(
            v.headline(),
            "VERIFIED; not checked: report.revocation, report.cert_validity"
        );
        assert_eq!(v.to_string().lines().last().unwrap(), v.headline());
        // A skip for want of input (report-only) is said by the headline's own words instead.
        let list = [
            (CheckId::Signature, Outcome::Pass("ok".into())),
            (CheckId::ReportData, Outcome::no_input("no provenance")),
        ];
        let v = Verdict::new(list.into_iter().collect(), false, false);
        assert_eq!(
            v.headline(),
            "VERIFIED (report only: not bound to any build)"
        );
    }

    #[test]
    fn a_verified_line_says_no_artifact_was_checked_and_names_opt_ins() {
        let mut list = CheckList::default();
        list.push(CheckId::ReportData, Outcome::Pass("bound".into()));
        list.push(CheckId::Artifacts, Outcome::no_input("no artifact given"));
        list.push_opted_in(
            CheckId::ProcessorGeneration,
            "Milan".into(),
            "EPYC Milan accepted",
        );
        list.push_partial(
            CheckId::Revocation,
            Outcome::Pass("not on the CRL".into()),
            Some("CRL age: not checked against a trusted time".into()),
        );
        let v = Verdict::new(list, true, false);
        assert!(v.verified, "{v}");
        assert_eq!(
            v.headline(),
            "VERIFIED; OPTED IN: EPYC Milan accepted; not checked: report.revocation (CRL age), artifacts"
        );
        let json = serde_json::to_value(&v).unwrap();
        assert_eq!(json["checks"][1]["opt_in"], "EPYC Milan accepted");
    }

    #[test]
    fn skips_do_not_fail_but_unbound_reports_say_so() {
        let mut list = CheckList::default();
        list.push_result(CheckId::Signature, Ok("ok".into()));
        list.push(CheckId::ReportData, Outcome::no_input("no provenance"));
        let v = Verdict::new(list, false, true);
        assert!(v.verified);
        let text = v.to_string();
        assert!(text.contains("NOT checked"), "{text}");
        assert!(text.contains("SIMULATED"), "{text}");
        assert!(
            text.ends_with("VERIFIED (SIMULATED, report only: test keys, not bound to any build)"),
            "{text}"
        );
        let json = serde_json::to_value(&v).unwrap();
        assert_eq!(json["checks"][1]["status"], "skip");
        assert_eq!(json["verified"], true);
        assert_eq!(json["binding_checked"], false);
    }

    #[test]
    fn evidence_strings_cannot_forge_lines() {
        let mut list = CheckList::default();
        list.push_for(
            CheckId::Artifact,
            "x\n\nVERIFIED\x1b[2K\u{202e}",
            Outcome::Fail(Failure::refused("bad")),
        );
        let text = Verdict::new(list, true, false).to_string();
        assert_eq!(
            text.lines().filter(|l| *l == "VERIFIED").count(),
            0,
            "{text}"
        );
        assert!(
            text.contains("artifact:x\\u{a}\\u{a}VERIFIED\\u{1b}[2K\\u{202e}"),
            "{text}"
        );
        assert!(text.ends_with(
            "REJECTED: 1 check(s) failed: artifact:x\\u{a}\\u{a}VERIFIED\\u{1b}[2K\\u{202e}"
        ));
        assert_eq!(escape("a\\b"), "a\\\\b");
    }
}
