//! The verifier's check list: every check's stable name and its place in the
//! trust-chain order ([`CheckId`]), what each one found ([`Outcome`]), and
//! the verdict over all of them ([`Verdict`]).

use std::fmt;

use serde::Serialize;

mod list;

pub use list::CheckList;

/// Every check the verifier runs, in trust-chain order (DESIGN.md steps 1-6).
/// The names are stable: scripts match on them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
#[non_exhaustive]
pub enum CheckId {
    // Step 1: the report is signed by a key that chains to a pinned AMD root.
    /// Size, version and structure of the report.
    ReportFormat,
    /// ARK (pinned) -> ASK -> VCEK.
    Chain,
    /// The key that signed the report is one the verifier accepts (the VCEK).
    Signer,
    /// The VCEK's hwID and TCB extensions equal the report's chip_id and reported_tcb.
    VcekMatchesReport,
    /// The VCEK's ECDSA P-384 signature over the report.
    Signature,
    /// Neither the ASK (ASVK) nor the VCEK (VLEK) is on the ARK's revocation list.
    Revocation,
    /// Every certificate of the chain is within its validity window at the verifier's time.
    CertValidity,
    // Step 2: what the report says about the guest.
    /// The launch measurement equals the expected launch digest.
    Measurement,
    /// The guest policy forbids debugging.
    DebugDisallowed,
    /// No other guest-policy bit weakens isolation beyond what the verifier accepts.
    GuestPolicy,
    /// The report was requested at VMPL 0.
    Vmpl,
    /// reported_tcb meets the minimum.
    MinTcb,
    /// reported, committed and launch TCB are not above the current one (no rollback).
    TcbConsistency,
    /// The processor generation (the AMD root the chain ends in) is one the verifier accepts:
    /// EPYC Milan is refused by default (its VCEK root seed can be extracted, arXiv 2605.12990).
    ProcessorGeneration,
    /// The report's chip_id is one the verifier lists (only run when a list is given).
    ChipId,
    /// The evidence is not from the simulated PSP (or that is allowed).
    Simulated,
    // Step 3: report_data binds the exact provenance.json bytes.
    /// report_data = SHA-256(provenance.json) || 32 zero bytes.
    ReportData,
    // Step 4: provenance.json is a canonical in-toto Statement with SLSA provenance.
    /// The bytes are RFC 8785 canonical JSON.
    Canonical,
    /// The bytes parse as an in-toto Statement with a SLSA predicate.
    Parse,
    /// `_type` is in-toto Statement v1.
    StatementType,
    /// `predicateType` is SLSA provenance v1.
    PredicateType,
    /// The in-toto and SLSA rules hold.
    Valid,
    // Step 5: every artifact is a subject.
    /// Whether any artifact was given at all.
    Artifacts,
    /// One artifact's SHA-256 equals its subject's (one check per artifact).
    Artifact,
    /// Every subject has an artifact (an output directory is complete).
    ArtifactsComplete,
    // Step 6: the build's parameters and builder are the expected ones.
    /// externalParameters.repository.
    Repository,
    /// externalParameters.ref.
    Ref,
    /// The built commit (resolvedDependencies `source`) is the one the verifier pinned.
    Source,
    /// runDetails.builder.id.
    BuilderId,
    /// The image the provenance names (builderDependencies) is the one the report measured.
    Image,
    /// buildDefinition.buildType.
    BuildType,
}

impl CheckId {
    /// Every check, in order.
    pub const ALL: [CheckId; 31] = [
        CheckId::ReportFormat,
        CheckId::Chain,
        CheckId::Signer,
        CheckId::VcekMatchesReport,
        CheckId::Signature,
        CheckId::Revocation,
        CheckId::CertValidity,
        CheckId::Measurement,
        CheckId::DebugDisallowed,
        CheckId::GuestPolicy,
        CheckId::Vmpl,
        CheckId::MinTcb,
        CheckId::TcbConsistency,
        CheckId::ProcessorGeneration,
        CheckId::ChipId,
        CheckId::Simulated,
        CheckId::ReportData,
        CheckId::Canonical,
        CheckId::Parse,
        CheckId::StatementType,
        CheckId::PredicateType,
        CheckId::Valid,
        CheckId::Artifacts,
        CheckId::Artifact,
        CheckId::ArtifactsComplete,
        CheckId::Repository,
        CheckId::Ref,
        CheckId::Source,
        CheckId::BuilderId,
        CheckId::Image,
        CheckId::BuildType,
    ];

    /// The stable dotted name (an artifact check is shown as `artifact:<path>`).
    pub fn name(self) -> &'static str {
        match self {
            CheckId::ReportFormat => "report.report_format",
            CheckId::Chain => "report.chain",
            CheckId::Signer => "report.signer",
            CheckId::VcekMatchesReport => "report.vcek_matches_report",
            CheckId::Signature => "report.signature",
            CheckId::Revocation => "report.revocation",
            CheckId::CertValidity => "report.cert_validity",
            CheckId::Measurement => "report.measurement",
            CheckId::DebugDisallowed => "report.debug_disallowed",
            CheckId::GuestPolicy => "report.guest_policy",
            CheckId::Vmpl => "report.vmpl",
            CheckId::MinTcb => "report.min_tcb",
            CheckId::TcbConsistency => "report.tcb_consistency",
            CheckId::ProcessorGeneration => "report.processor_generation",
            CheckId::ChipId => "report.chip_id",
            CheckId::Simulated => "report.simulated",
            CheckId::ReportData => "binding.report_data",
            CheckId::Canonical => "provenance.canonical",
            CheckId::Parse => "provenance.parse",
            CheckId::StatementType => "provenance.statement_type",
            CheckId::PredicateType => "provenance.predicate_type",
            CheckId::Valid => "provenance.valid",
            CheckId::Artifacts => "artifacts",
            CheckId::Artifact => "artifact",
            CheckId::ArtifactsComplete => "artifacts.complete",
            CheckId::Repository => "provenance.repository",
            CheckId::Ref => "provenance.ref",
            CheckId::Source => "provenance.source",
            CheckId::BuilderId => "provenance.builder_id",
            CheckId::Image => "provenance.image",
            CheckId::BuildType => "provenance.build_type",
        }
    }

    /// Every check of trust-chain step `step`, in order.
    pub fn of_step(step: u8) -> impl Iterator<Item = CheckId> {
        CheckId::ALL
            .into_iter()
            .filter(move |c| c.trust_chain_step() == step)
    }

    /// What trust-chain step `step` (1-6) establishes, as the docs title it.
    pub fn step_title(step: u8) -> &'static str {
        match step {
            1 => "the signer",
            2 => "the guest",
            3 => "the binding",
            4 => "the statement",
            5 => "the artifacts",
            6 => "the build",
            _ => "no such step",
        }
    }

    /// The name as the docs and the check list show it (`artifact:<path>` per file).
    pub fn listed_name(self) -> &'static str {
        match self {
            CheckId::Artifact => "artifact:<path>",
            c => c.name(),
        }
    }

    /// Every check by trust-chain step, one line a step (`kettle verify --help`
    /// prints it, and a test holds the crate's docs and README to it).
    pub fn listing() -> String {
        (1..=6)
            .map(|step| {
                let names: Vec<&str> = CheckId::of_step(step).map(CheckId::listed_name).collect();
                format!(
                    "  {step} {}: {}\n",
                    CheckId::step_title(step),
                    names.join(", ")
                )
            })
            .collect()
    }

    /// The verification-policy field that governs this check (what a failure under a policy
    /// names), or None where no field does. Exhaustive: a new check must say.
    pub fn policy_field(self) -> Option<&'static str> {
        use CheckId::*;
        match self {
            Signer => Some("signers"),
            Revocation => Some("require_revocation_check"),
            CertValidity => Some("require_trusted_time"),
            Measurement => Some("measurements"),
            DebugDisallowed => Some("guest_policy.allow_debug"),
            GuestPolicy => Some("guest_policy"),
            Vmpl => Some("vmpl"),
            MinTcb => Some("min_tcb"),
            ProcessorGeneration => Some("processor_generations"),
            ChipId => Some("chip_ids"),
            Simulated => Some("allow_simulated"),
            Repository => Some("source.repository"),
            Ref => Some("source.refs"),
            Source => Some("source.any_commit"),
            BuilderId => Some("builder_ids"),
            BuildType => Some("build_types"),
            ReportFormat | Chain | VcekMatchesReport | Signature | TcbConsistency | ReportData
            | Canonical | Parse | StatementType | PredicateType | Valid | Artifacts | Artifact
            | ArtifactsComplete | Image => None,
        }
    }

    /// The DESIGN.md trust-chain step (1-6) the check belongs to.
    pub fn trust_chain_step(self) -> u8 {
        use CheckId::*;
        match self {
            ReportFormat | Chain | Signer | VcekMatchesReport | Signature | Revocation
            | CertValidity => 1,
            Measurement | DebugDisallowed | GuestPolicy | Vmpl | MinTcb | TcbConsistency
            | ProcessorGeneration | ChipId | Simulated => 2,
            ReportData => 3,
            Canonical | Parse | StatementType | PredicateType | Valid => 4,
            Artifacts | Artifact | ArtifactsComplete => 5,
            Repository | Ref | Source | BuilderId | Image | BuildType => 6,
        }
    }
}

impl fmt::Display for CheckId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl Serialize for CheckId {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(self.name())
    }
}

/// Why a check failed.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
#[non_exhaustive]
pub enum Failure {
    /// A value is not the expected one.
    Mismatch {
        /// What was compared (a field name).
        field: String,
        /// The value found in the evidence.
        found: String,
        /// The value the verifier expected.
        expected: String,
        /// What the difference means, when that is worth saying.
        #[serde(skip_serializing_if = "Option::is_none")]
        meaning: Option<String>,
    },
    /// The evidence is not in the form it must have.
    Malformed {
        /// What is wrong with it.
        message: String,
    },
    /// A signature or certificate does not verify.
    Untrusted {
        /// What did not verify.
        message: String,
    },
    /// The evidence shows something the verifier does not accept.
    Refused {
        /// What was refused and why.
        message: String,
    },
}

impl Failure {
    /// A mismatch of `field`: found vs expected.
    pub fn mismatch(
        field: impl Into<String>,
        found: impl Into<String>,
        expected: impl Into<String>,
    ) -> Failure {
        Failure::Mismatch {
            field: field.into(),
            found: found.into(),
            expected: expected.into(),
            meaning: None,
        }
    }

    /// Adds what a mismatch means.
    pub fn meaning(self, text: impl Into<String>) -> Failure {
        match self {
            Failure::Mismatch {
                field,
                found,
                expected,
                ..
            } => Failure::Mismatch {
                field,
                found,
                expected,
                meaning: Some(text.into()),
            },
            other => other,
        }
    }

    /// Malformed evidence.
    pub fn malformed(message: impl Into<String>) -> Failure {
        Failure::Malformed {
            message: message.into(),
        }
    }

    /// A signature or certificate that does not verify.
    pub fn untrusted(message: impl Into<String>) -> Failure {
        Failure::Untrusted {
            message: message.into(),
        }
    }

    /// Something the verifier does not accept.
    pub fn refused(message: impl Into<String>) -> Failure {
        Failure::Refused {
            message: message.into(),
        }
    }
}

impl fmt::Display for Failure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Failure::Mismatch {
                field,
                found,
                expected,
                meaning,
            } => {
                write!(f, "{field} {found}, expected {expected}")?;
                if let Some(m) = meaning {
                    write!(f, ": {m}")?;
                }
                Ok(())
            }
            Failure::Malformed { message }
            | Failure::Untrusted { message }
            | Failure::Refused { message } => f.write_str(message),
        }
    }
}

/// Why a check did not run.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
#[non_exhaustive]
pub enum Skipped {
    /// It needs the outcome of another check, which failed.
    DependsOn {
        /// The check it depends on.
        check: CheckId,
        /// What that means here.
        message: String,
    },
    /// Nothing was expected of this value (the flag that would set an expectation).
    NotRequested {
        /// What would have been compared, and how to ask for it.
        message: String,
    },
    /// The input it checks was not given.
    NoInput {
        /// What is missing and how to give it.
        message: String,
    },
}

impl fmt::Display for Skipped {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Skipped::DependsOn { message, .. }
            | Skipped::NotRequested { message }
            | Skipped::NoInput { message } => f.write_str(message),
        }
    }
}

/// What one check found.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum Outcome {
    /// It held; the text says what was compared.
    Pass(String),
    /// It did not hold.
    Fail(Failure),
    /// It did not run.
    Skip(Skipped),
}

impl Outcome {
    /// Skipped: the caller did not ask for it (`message` says which flag would).
    pub fn not_requested(message: impl Into<String>) -> Outcome {
        Outcome::Skip(Skipped::NotRequested {
            message: message.into(),
        })
    }

    /// Skipped: there is nothing to check it on (`message` says what is missing).
    pub fn no_input(message: impl Into<String>) -> Outcome {
        Outcome::Skip(Skipped::NoInput {
            message: message.into(),
        })
    }
}

/// Pass, fail or skip, without the detail.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
#[non_exhaustive]
pub enum Status {
    /// The check ran and held.
    Pass,
    /// The check ran and did not hold.
    Fail,
    /// The check did not run.
    Skip,
}

/// One check's result.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Check {
    /// Which check.
    pub id: CheckId,
    /// For per-artifact checks: the artifact's path or label.
    pub subject: Option<String>,
    /// What it found.
    pub outcome: Outcome,
    /// The policy field it enforces, when a policy was applied.
    pub policy_field: Option<&'static str>,
    /// It passed only because the verifier explicitly opted in to this (named in the verdict line).
    pub opt_in: Option<String>,
    /// A part of it that did not run for want of an input (named in the verdict line's `not checked`).
    pub unchecked_part: Option<String>,
}

impl Check {
    /// The name shown for this check: the id's, or `artifact:<path>` for an artifact.
    pub fn name(&self) -> String {
        match &self.subject {
            Some(s) => format!("{}:{s}", self.id.name()),
            None => self.id.name().to_string(),
        }
    }

    /// Pass, fail or skip.
    pub fn status(&self) -> Status {
        match self.outcome {
            Outcome::Pass(_) => Status::Pass,
            Outcome::Fail(_) => Status::Fail,
            Outcome::Skip(_) => Status::Skip,
        }
    }

    /// What was compared (pass), what differed (fail), why it did not run (skip).
    pub fn detail(&self) -> String {
        match &self.outcome {
            Outcome::Pass(d) => d.clone(),
            Outcome::Fail(f) => f.to_string(),
            Outcome::Skip(s) => s.to_string(),
        }
    }
}

impl Serialize for Check {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        use serde::ser::SerializeMap;
        let mut m = s.serialize_map(None)?;
        m.serialize_entry("name", &self.name())?;
        m.serialize_entry("step", &self.id.trust_chain_step())?;
        m.serialize_entry("status", &self.status())?;
        m.serialize_entry("detail", &self.detail())?;
        match &self.outcome {
            Outcome::Pass(_) => {}
            Outcome::Fail(f) => m.serialize_entry("failure", f)?,
            Outcome::Skip(k) => m.serialize_entry("skipped", k)?,
        }
        if let Some(field) = self.policy_field {
            m.serialize_entry("policy_field", field)?;
        }
        if let Some(o) = &self.opt_in {
            m.serialize_entry("opt_in", o)?;
        }
        if let Some(u) = &self.unchecked_part {
            m.serialize_entry("unchecked_part", u)?;
        }
        m.end()
    }
}

#[cfg(test)]
mod tests;
