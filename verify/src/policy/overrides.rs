//! The verifier's own flags over a published policy (`kettle verify --policy FILE` with
//! `--ref`, `--min-tcb`, `--allow-*`, ...): the one place that decides, for every flag that
//! touches a policy field, whether it narrows the field (both must hold), replaces it
//! (loosening, only with `--loosen-policy FIELD`) or is not applied, and records which for
//! the verdict. Without a policy the flags are the expectations, over the strict defaults.

use std::collections::{BTreeMap, BTreeSet};

use kettle_attest::chain::Product;

use super::LoadedPolicy;
use crate::expect::{Expectations, MinTcb, SourcePin, TcbFloor};
use crate::verdict::AppliedPolicy;

/// Which of the policy's fields the caller's flags replaced, narrowed or left (field -> flag).
pub type Overrides = BTreeMap<&'static str, String>;

/// Every policy field a flag can replace (`kettle verify --loosen-policy FIELD`).
pub const LOOSENABLE_FIELDS: [&str; 11] = [
    "measurements",
    "min_tcb",
    "allow_simulated",
    "signers",
    "processor_generations",
    "source.repository",
    "source.refs",
    "source.any_commit",
    "source.accept_host_resolved",
    "builder_ids",
    "build_types",
];

/// A launch digest the verifier names itself, where it comes from and the flag that named it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NamedMeasurement {
    /// The digest.
    pub digest: [u8; 48],
    /// Where it comes from, for messages (`manifest image/manifest.json`).
    pub source: String,
    /// The flag (`--manifest`, `--measurement`).
    pub flag: &'static str,
}

/// What the verifier's flags ask, filled by a CLI; [`VerifierFlags::expectations`] meets it
/// with a policy.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct VerifierFlags {
    /// `--manifest` / `--measurement`.
    pub measurement: Option<NamedMeasurement>,
    /// `--min-tcb`.
    pub min_tcb: Option<MinTcb>,
    /// `--allow-simulated`.
    pub allow_simulated: bool,
    /// `--repo`.
    pub repository: Option<String>,
    /// `--allow-vlek`.
    pub allow_vlek: bool,
    /// `--ref`, as the full ref (resolved in the auditor's clone when there is one).
    pub git_ref: Option<String>,
    /// `--allow-milan`.
    pub allow_milan: bool,
    /// `--builder-id` (repeatable).
    pub builder_ids: Vec<String>,
    /// `--accept-host-resolved`.
    pub accept_host_resolved: bool,
    /// `--build-type`.
    pub build_type: Option<String>,
    /// The commit the auditor pinned (`--commit`, `--source`, `--any-source`; Unpinned: none).
    pub source: SourcePin,
    /// commit -> tree in the auditor's clone (`--source`).
    pub source_trees: BTreeMap<String, String>,
    /// `--loosen-policy FIELD` (repeatable).
    pub loosen: BTreeSet<String>,
}

/// Why the flags and the policy do not make expectations.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum FlagsError {
    /// Neither a policy nor a measurement the verifier names.
    #[error("no expected measurement: pass --policy (the platform team's verification policy), --manifest with the image's PUBLISHED manifest.json, or --measurement HEX (the manifest.json a build leaves in its output directory is a copy the untrusted build host wrote, so it is never used)")]
    NoMeasurement,
    /// `--loosen-policy` without a policy.
    #[error("--loosen-policy: there is no policy to loosen (pass --policy FILE)")]
    NothingToLoosen,
    /// A `--loosen-policy FIELD` that no flag used.
    #[error("--loosen-policy: {field}: no flag given replaces this policy field (or it already allows what the flag asks)")]
    UnusedLoosen {
        /// The field named.
        field: String,
    },
}

/// How the flags meet a policy, as they are applied: what each did to which field.
struct FlagsOverPolicy<'a> {
    under_policy: bool,
    loosen: &'a BTreeSet<String>,
    overrides: Overrides,
    narrowed: Overrides,
    not_applied: Overrides,
}

impl FlagsOverPolicy<'_> {
    /// A flag that either narrows `field` or replaces it: true when it replaces (no policy,
    /// or `--loosen-policy field`), false when it narrows. Either way recorded.
    fn narrows_or_replaces(&mut self, field: &'static str, flag: &str) -> bool {
        self.replaces(field, flag, |f| &mut f.narrowed)
    }

    /// A flag that can only loosen `field`: true when it applies (no policy, or
    /// `--loosen-policy field`); false, recorded as not applied, otherwise.
    fn loosens(&mut self, field: &'static str, flag: &str) -> bool {
        self.replaces(field, flag, |f| &mut f.not_applied)
    }

    /// True when `flag` replaces `field` (no policy, or `--loosen-policy field`: recorded
    /// as an override); otherwise records it where `kept` says and returns false.
    fn replaces(
        &mut self,
        field: &'static str,
        flag: &str,
        kept: fn(&mut Self) -> &mut Overrides,
    ) -> bool {
        if !self.under_policy {
            return true;
        }
        let replaced = self.loosen.contains(field);
        let record = if replaced {
            &mut self.overrides
        } else {
            kept(self)
        };
        record.insert(field, flag.to_string());
        replaced
    }

    /// Every `--loosen-policy FIELD` must have loosened something: a stray one is a mistake.
    fn check_all_used(&self) -> Result<(), FlagsError> {
        if !self.loosen.is_empty() && !self.under_policy {
            return Err(FlagsError::NothingToLoosen);
        }
        match self
            .loosen
            .iter()
            .find(|f| !self.overrides.contains_key(f.as_str()))
        {
            Some(field) => Err(FlagsError::UnusedLoosen {
                field: field.clone(),
            }),
            None => Ok(()),
        }
    }
}

impl VerifierFlags {
    /// What the verifier requires: the policy's fields (or the strict defaults), and each
    /// flag narrowing or (with `--loosen-policy`) replacing one field, recorded so the
    /// verdict says which. The trusted time and report_data stay the caller's to set.
    pub fn expectations(
        &self,
        policy: Option<&LoadedPolicy>,
    ) -> Result<(Expectations, Option<AppliedPolicy>), FlagsError> {
        let mut flags = FlagsOverPolicy {
            under_policy: policy.is_some(),
            loosen: &self.loosen,
            overrides: Overrides::new(),
            narrowed: Overrides::new(),
            not_applied: Overrides::new(),
        };
        let mut expect = match (policy, &self.measurement) {
            (Some(l), m) => {
                let mut e = l.policy.expectations();
                if let Some(m) = m {
                    if flags.narrows_or_replaces("measurements", m.flag) {
                        e.measurements = vec![(m.digest, m.source.clone())];
                    } else {
                        // Both must hold: only the named digest, if the policy accepts it.
                        e.measurements.retain(|(d, _)| *d == m.digest);
                    }
                }
                e
            }
            (None, Some(m)) => Expectations::new(m.digest, m.source.clone()),
            (None, None) => return Err(FlagsError::NoMeasurement),
        };
        if let Some(t) = self.min_tcb {
            expect.min_tcb = if flags.narrows_or_replaces("min_tcb", "--min-tcb") {
                TcbFloor::Fixed(t)
            } else {
                TcbFloor::AtLeast(Box::new(expect.min_tcb.clone()), t)
            };
        }
        self.apply_opt_ins(&mut expect, &mut flags);
        self.apply_source(&mut expect, &mut flags);
        flags.check_all_used()?;
        let applied = policy.map(|l| AppliedPolicy {
            name: l.policy.name.clone(),
            sha256: l.sha256,
            overrides: flags.overrides,
            narrowed: flags.narrowed,
            not_applied: flags.not_applied,
        });
        Ok((expect, applied))
    }

    /// The flags that can only loosen: each applies only where it replaces its field.
    fn apply_opt_ins(&self, expect: &mut Expectations, flags: &mut FlagsOverPolicy) {
        if self.allow_simulated
            && !expect.allow_simulated
            && flags.loosens("allow_simulated", "--allow-simulated")
        {
            expect.accept_simulated();
        }
        if self.allow_vlek && !expect.accept_vlek && flags.loosens("signers", "--allow-vlek") {
            expect.accept_vlek = true;
        }
        if self.allow_milan
            && !expect.processor_generations.contains(&Product::Milan)
            && flags.loosens("processor_generations", "--allow-milan")
        {
            expect.processor_generations.push(Product::Milan);
        }
        if self.accept_host_resolved
            && !expect.provenance.accept_host_resolved
            && flags.loosens("source.accept_host_resolved", "--accept-host-resolved")
        {
            expect.provenance.accept_host_resolved = true;
        }
    }

    /// Repository, ref, builder, build type and the pinned commit.
    fn apply_source(&self, expect: &mut Expectations, flags: &mut FlagsOverPolicy) {
        let simulated_by_flag = self.allow_simulated && expect.allow_simulated;
        let p = &mut expect.provenance;
        if let Some(r) = &self.repository {
            if flags.narrows_or_replaces("source.repository", "--repo") {
                p.repository = Some(r.clone());
            } else {
                p.also_repository = Some(r.clone());
            }
        }
        if let Some(r) = &self.git_ref {
            if flags.narrows_or_replaces("source.refs", "--ref") {
                p.refs.clear();
            }
            p.git_ref = Some(r.clone());
        }
        if !self.builder_ids.is_empty() {
            if flags.narrows_or_replaces("builder_ids", "--builder-id") {
                p.builder_ids = self.builder_ids.clone();
                // Replaced builder ids still admit the simulated builder when the flags allow
                // simulated evidence.
                let id = kettle_provenance::ids::BUILDER_ID_SIMULATED.to_string();
                if simulated_by_flag && !p.builder_ids.contains(&id) {
                    p.builder_ids.push(id);
                }
            } else {
                p.builder_ids.retain(|b| self.builder_ids.contains(b));
            }
        }
        if let Some(t) = &self.build_type {
            if flags.narrows_or_replaces("build_types", "--build-type") {
                p.build_types = vec![t.clone()];
            } else {
                p.build_types.retain(|b| b == t);
            }
        }
        match (&self.source, p.source == SourcePin::Any) {
            (SourcePin::Unpinned, _) => {}
            // The policy asks the auditor to pin the commit: --any-source would loosen that.
            (SourcePin::Any, false) => {
                if flags.loosens("source.any_commit", "--any-source") {
                    p.source = SourcePin::Any;
                }
            }
            (SourcePin::Any, true) => {}
            (pin, policy_any) => {
                if policy_any {
                    flags
                        .narrowed
                        .insert("source.any_commit", "--commit/--source".into());
                }
                p.source = pin.clone();
            }
        }
        if !self.source_trees.is_empty() {
            p.source_trees = self.source_trees.clone();
        }
    }
}

#[cfg(test)]
mod tests;
