//! What the checks amount to: the verdict over one bundle of evidence, which fails
//! closed (a skip blaming a check that did not fail rejects).

use serde::Serialize;

use crate::check::{Check, CheckId, CheckList, Outcome, Skipped, Status};

/// Every check run over one bundle of evidence, and what they amount to. Only
/// [`crate::verify`] makes one (its fields are private), so no caller can construct a verdict.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Verdict {
    /// True when no check failed and every skip is explained by a failed or unrequested check.
    pub(crate) verified: bool,
    /// True when the report was bound to a provenance (report_data checked against it).
    pub(crate) binding_checked: bool,
    /// True when the report was signed by the simulated PSP (never hardware-attested).
    pub(crate) simulated: bool,
    /// The commit the provenance says was built (resolvedDependencies `source`), when it says one.
    pub(crate) built_commit: Option<String>,
    /// The verification policy applied, when there was one.
    pub(crate) policy: Option<AppliedPolicy>,
    /// Every check, in trust-chain order.
    pub(crate) checks: Vec<Check>,
    /// What the reader must know about how the checks were set up.
    pub(crate) notes: Vec<String>,
}

impl Verdict {
    /// The verdict over `checks`.
    pub(crate) fn new(checks: CheckList, binding_checked: bool, simulated: bool) -> Verdict {
        let checks = checks.into_sorted();
        let failed = |id: CheckId| {
            checks
                .iter()
                .any(|c| c.id == id && c.status() == Status::Fail)
        };
        // Fail closed: a check skipped "because X failed" while X did not fail is a
        // verifier bug, and must never let evidence through.
        let consistent = checks.iter().all(|c| match &c.outcome {
            Outcome::Skip(Skipped::DependsOn { check, .. }) => failed(*check),
            _ => true,
        });
        let verified = consistent && !checks.iter().any(|c| c.status() == Status::Fail);
        Verdict {
            verified,
            binding_checked,
            simulated,
            built_commit: None,
            policy: None,
            checks,
            notes: Vec::new(),
        }
    }

    /// Records that `policy` was applied: every check names the policy field it enforces,
    /// and the notes say which fields the caller's flags replaced.
    pub fn under_policy(mut self, policy: AppliedPolicy) -> Verdict {
        for c in &mut self.checks {
            c.policy_field = c.id.policy_field();
        }
        for (field, flag) in &policy.overrides {
            self.notes.push(format!(
                "policy field {field} was replaced by {flag} (LOOSENED: --loosen-policy {field})"
            ));
        }
        for (field, flag) in &policy.narrowed {
            self.notes.push(format!(
                "policy field {field} was narrowed by {flag} (both must hold)"
            ));
        }
        for (field, flag) in &policy.not_applied {
            self.notes.push(format!(
                "{flag} was NOT applied: it would loosen policy field {field}; pass --loosen-policy {field} to replace the field"
            ));
        }
        self.policy = Some(policy);
        self
    }

    /// The verdict in one line; it never claims more than was shown:
    /// `VERIFIED`, `VERIFIED (SIMULATED ...)`, `VERIFIED (report only ...)` or `REJECTED: ...`;
    /// under a policy its name, digest and every field a flag LOOSENED; a VERIFIED line then
    /// names every explicit opt-in a check passed by (`; OPTED IN: ...`: Milan, host-resolved
    /// sources) and ends `; not checked: <checks>` when checks (or parts of them) were skipped
    /// for want of an expectation or an input (no CRL, no trusted time, no `--repo`, no
    /// artifact, the CRL's age without `--at`).
    pub fn headline(&self) -> String {
        let under = match &self.policy {
            Some(p) => {
                let loosened: Vec<String> = p
                    .overrides
                    .iter()
                    .map(|(field, flag)| format!("{field} by {flag}"))
                    .collect();
                format!(
                    " under policy {:?} (sha256 {}{})",
                    crate::render::escape(&p.name),
                    p.sha256,
                    if loosened.is_empty() {
                        String::new()
                    } else {
                        format!("; LOOSENED: {}", loosened.join(", "))
                    }
                )
            }
            None => String::new(),
        };
        if !self.verified {
            let names: Vec<String> = self
                .failures()
                .map(|c| crate::render::escape(&c.name()))
                .collect();
            return format!(
                "REJECTED{under}: {} check(s) failed: {}",
                names.len(),
                names.join(", ")
            );
        }
        let line: String = match (self.simulated, self.binding_checked) {
            (false, true) => "VERIFIED".into(),
            (true, true) => {
                "VERIFIED (SIMULATED: signed with test keys; nothing is hardware-attested)".into()
            }
            (false, false) => "VERIFIED (report only: not bound to any build)".into(),
            (true, false) => {
                "VERIFIED (SIMULATED, report only: test keys, not bound to any build)".into()
            }
        };
        let mut opted_in: Vec<String> = Vec::new();
        for o in self.checks.iter().filter_map(|c| c.opt_in.as_deref()) {
            let o = crate::render::escape(o);
            if !opted_in.contains(&o) {
                opted_in.push(o);
            }
        }
        let not_checked: Vec<String> = self
            .checks
            .iter()
            .filter_map(|c| match (&c.outcome, &c.unchecked_part) {
                (Outcome::Skip(Skipped::NotRequested { .. }), _) => {
                    Some(crate::render::escape(&c.name()))
                }
                // No provenance is said by "report only"; any other missing input (no
                // artifact given, no image named) is named, so the line never says more.
                (Outcome::Skip(Skipped::NoInput { .. }), _) if c.id != CheckId::ReportData => {
                    Some(crate::render::escape(&c.name()))
                }
                (_, Some(part)) => Some(format!(
                    "{} ({})",
                    crate::render::escape(&c.name()),
                    crate::render::escape(part.split(':').next().unwrap_or(part))
                )),
                _ => None,
            })
            .collect();
        let mut out = format!("{line}{under}");
        if !opted_in.is_empty() {
            out.push_str(&format!("; OPTED IN: {}", opted_in.join("; ")));
        }
        if !not_checked.is_empty() {
            out.push_str(&format!("; not checked: {}", not_checked.join(", ")));
        }
        out
    }

    /// True when no check failed and every skip is explained by a failed or unrequested check.
    pub fn verified(&self) -> bool {
        self.verified
    }

    /// True when the report was bound to a provenance (report_data checked against it).
    pub fn binding_checked(&self) -> bool {
        self.binding_checked
    }

    /// True when the report was signed by the simulated PSP (never hardware-attested).
    pub fn simulated(&self) -> bool {
        self.simulated
    }

    /// The commit the provenance says was built, when it says one.
    pub fn built_commit(&self) -> Option<&str> {
        self.built_commit.as_deref()
    }

    /// The verification policy applied, when there was one.
    pub fn policy(&self) -> Option<&AppliedPolicy> {
        self.policy.as_ref()
    }

    /// Every check, in trust-chain order.
    pub fn checks(&self) -> &[Check] {
        &self.checks
    }

    /// What the reader must know about how the checks were set up.
    pub fn notes(&self) -> &[String] {
        &self.notes
    }

    /// The checks that failed.
    pub fn failures(&self) -> impl Iterator<Item = &Check> {
        self.checks.iter().filter(|c| c.status() == Status::Fail)
    }

    /// The first check with this id.
    pub fn check(&self, id: CheckId) -> Option<&Check> {
        self.checks.iter().find(|c| c.id == id)
    }

    /// The check shown under `name` (e.g. `artifact:out/hello.txt`).
    pub fn check_named(&self, name: &str) -> Option<&Check> {
        self.checks.iter().find(|c| c.name() == name)
    }
}

/// A policy as applied to one verification.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct AppliedPolicy {
    /// Its name.
    pub name: String,
    /// SHA-256 of the policy file's bytes.
    pub sha256: kettle_provenance::Sha256Digest,
    /// Fields the caller's flags replaced (loosened, each by `--loosen-policy FIELD`): field -> flag.
    pub overrides: std::collections::BTreeMap<&'static str, String>,
    /// Fields a flag narrowed (the flag and the field must both hold): field -> flag.
    pub narrowed: std::collections::BTreeMap<&'static str, String>,
    /// Flags given but not applied, because they would loosen a field: field -> flag.
    pub not_applied: std::collections::BTreeMap<&'static str, String>,
}

impl Serialize for Verdict {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        use serde::ser::SerializeMap;
        let mut m = s.serialize_map(None)?;
        m.serialize_entry("verified", &self.verified)?;
        m.serialize_entry("verdict", &self.headline())?;
        m.serialize_entry("binding_checked", &self.binding_checked)?;
        m.serialize_entry("simulated", &self.simulated)?;
        m.serialize_entry("built_commit", &self.built_commit)?;
        m.serialize_entry("policy", &self.policy)?;
        m.serialize_entry("checks", &self.checks)?;
        m.serialize_entry("notes", &self.notes)?;
        m.end()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::check::Failure;

    #[test]
    fn any_failure_rejects_and_skips_do_not() {
        let list = [
            (CheckId::Signature, Outcome::Pass("ok".into())),
            (CheckId::Repository, Outcome::not_requested("no --repo")),
        ];
        let v = Verdict::new(list.into_iter().collect(), true, false);
        assert!(v.verified);
        let list = [
            (
                CheckId::Ref,
                Outcome::Fail(Failure::mismatch("ref", "\"a\"", "\"b\"")),
            ),
            (CheckId::ReportFormat, Outcome::Pass("ok".into())),
        ];
        let v = Verdict::new(list.into_iter().collect(), true, false);
        assert!(!v.verified);
        assert_eq!(
            v.checks[0].id,
            CheckId::ReportFormat,
            "sorted into trust-chain order"
        );
        assert_eq!(
            v.failures().map(|c| c.name()).collect::<Vec<_>>(),
            ["provenance.ref"]
        );
    }

    #[test]
    fn a_skip_blaming_a_check_that_did_not_fail_rejects() {
        let mut list = CheckList::default();
        list.push(CheckId::Parse, Outcome::Pass("parsed".into()));
        list.skip_dependents(
            &[CheckId::Valid],
            CheckId::Parse,
            "provenance.json does not parse",
        );
        assert!(!Verdict::new(list, true, false).verified);
    }

    #[test]
    fn json_names_status_step_and_typed_reason() {
        let mut list = CheckList::default();
        list.push_for(
            CheckId::Artifact,
            "out/a",
            Outcome::Fail(Failure::mismatch("sha256", "aa", "bb").meaning("replaced")),
        );
        let v = Verdict::new(list, true, false);
        let json = serde_json::to_value(&v).unwrap();
        let c = &json["checks"][0];
        assert_eq!(c["name"], "artifact:out/a");
        assert_eq!(c["status"], "fail");
        assert_eq!(c["step"], 5);
        assert_eq!(c["failure"]["kind"], "mismatch");
        assert_eq!(c["failure"]["expected"], "bb");
        assert_eq!(c["detail"], "sha256 aa, expected bb: replaced");
    }
}
