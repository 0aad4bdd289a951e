//! The checks as the verifier runs them: one push per outcome, per-artifact checks
//! with their subject, and skips that name the check they depend on.

use super::{Check, CheckId, Failure, Outcome, Skipped, Status};

/// The checks as they are run, kept in trust-chain order.
#[derive(Debug, Default)]
pub struct CheckList(Vec<Check>);

impl FromIterator<(CheckId, Outcome)> for CheckList {
    /// The outcomes of whole-bundle checks, in any order (a [`crate::Verdict`] sorts them).
    fn from_iter<I: IntoIterator<Item = (CheckId, Outcome)>>(outcomes: I) -> Self {
        let mut list = CheckList::default();
        for (id, outcome) in outcomes {
            list.push(id, outcome);
        }
        list
    }
}

impl CheckList {
    /// Records a check's outcome.
    pub fn push(&mut self, id: CheckId, outcome: Outcome) {
        self.0.push(Check {
            id,
            subject: None,
            outcome,
            policy_field: None,
            opt_in: None,
            unchecked_part: None,
        });
    }

    /// Records a pass that holds only because the verifier opted in to `opt_in`.
    pub fn push_opted_in(&mut self, id: CheckId, detail: String, opt_in: impl Into<String>) {
        self.push(id, Outcome::Pass(detail));
        self.last_mut().opt_in = Some(opt_in.into());
    }

    /// Records an outcome of which `part` was not checked (for want of an input).
    pub fn push_partial(&mut self, id: CheckId, outcome: Outcome, part: Option<String>) {
        self.push(id, outcome);
        self.last_mut().unchecked_part = part;
    }

    fn last_mut(&mut self) -> &mut Check {
        self.0.last_mut().expect("a check was just pushed")
    }

    /// Records a per-artifact check's outcome.
    pub fn push_for(&mut self, id: CheckId, subject: impl Into<String>, outcome: Outcome) {
        self.0.push(Check {
            id,
            subject: Some(subject.into()),
            outcome,
            policy_field: None,
            opt_in: None,
            unchecked_part: None,
        });
    }

    /// Records `ok` as pass or `failure` as fail.
    pub fn push_result(&mut self, id: CheckId, result: Result<String, Failure>) {
        self.push(
            id,
            match result {
                Ok(d) => Outcome::Pass(d),
                Err(f) => Outcome::Fail(f),
            },
        );
    }

    /// Skips `ids` because `dependency` failed.
    pub fn skip_dependents(&mut self, ids: &[CheckId], dependency: CheckId, message: &str) {
        for id in ids {
            self.push(
                *id,
                Outcome::Skip(Skipped::DependsOn {
                    check: dependency,
                    message: message.to_string(),
                }),
            );
        }
    }

    /// Whether `id` was recorded as passed.
    pub fn passed(&self, id: CheckId) -> bool {
        self.0
            .iter()
            .any(|c| c.id == id && c.status() == Status::Pass)
    }

    /// The checks, sorted into trust-chain order (stable within one id).
    pub fn into_sorted(mut self) -> Vec<Check> {
        self.0.sort_by_key(|c| c.id);
        self.0
    }
}
