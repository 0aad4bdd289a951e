//! The emit step: write the results to the output (a directory in local mode,
//! a tar stream on the output disk in the guest). status.json comes last, so an
//! output without it is a failed build; a failed build gets only error.json.

use kettle_attest::{Evidence, Tee};
use kettle_wire::output::{
    OutputSink, ARTIFACTS_DIR, CHAIN_FILE, ERROR_FILE, EVIDENCE_FILE, PROVENANCE_FILE, STATUS_FILE,
};
use kettle_wire::BuildStatus;
use thiserror::Error;

use super::timed;
use crate::error::{Step, StepError};
use crate::pipeline::Built;

/// Errors of the emit step.
#[derive(Debug, Error)]
pub enum EmitError {
    /// Writing the output failed.
    #[error("writing {what}: {source}")]
    Io {
        /// What.
        what: String,
        /// Cause.
        #[source]
        source: std::io::Error,
    },
}

impl EmitError {
    /// An I/O failure writing `what`, as a failure of the emit step.
    pub fn io(what: impl Into<String>) -> impl FnOnce(std::io::Error) -> StepError {
        let what = what.into();
        move |source| StepError::new(Step::Emit, EmitError::Io { what, source })
    }
}

/// What a build's evidence amounts to, said the same way in status.json and on the console.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Attestation {
    /// AMD SEV-SNP hardware evidence (status.json `attested`).
    pub attested: bool,
    /// Evidence from the simulated PSP (status.json `simulated`).
    pub simulated: bool,
    /// status.json `attestation`.
    pub status_text: &'static str,
    /// How the guest's success line and the emit step's summary put it.
    pub console: &'static str,
}

/// Describes `evidence` (None: no report was requested) without overstating it.
pub fn attestation_of(evidence: Option<&Evidence>) -> Attestation {
    match evidence.map(|e| e.provider) {
        Some(Tee::SevSnp) => Attestation {
            attested: true,
            simulated: false,
            status_text: "sev-snp: an AMD SEV-SNP hardware report binds provenance.json (check it with kettle verify)",
            console: "attested (AMD SEV-SNP)",
        },
        Some(Tee::Simulated) => Attestation {
            attested: false,
            simulated: true,
            status_text: "SIMULATED: the report comes from Kettle's software PSP, signed with public test keys; nothing is hardware-attested",
            console: "SIMULATED evidence (test keys), NOT hardware-attested",
        },
        None => Attestation {
            attested: false,
            simulated: false,
            status_text: "none: no report provider was given, so nothing is hardware-attested",
            console: "NOT attested",
        },
    }
}

/// Writes a successful build to `sink` (artifacts, provenance.json, evidence, chain.pem, then status.json).
pub fn emit(built: &Built, sink: &mut dyn OutputSink) -> Result<(), StepError> {
    timed(Step::Emit, "outputs", || {
        for s in &built.subjects {
            sink.put_file(&format!("{ARTIFACTS_DIR}/{}", s.name), &s.path)
                .map_err(EmitError::io(&s.name))?;
        }
        sink.put_bytes(PROVENANCE_FILE, &built.provenance)
            .map_err(EmitError::io(PROVENANCE_FILE))?;
        if let Some(ev) = &built.evidence {
            sink.put_bytes(EVIDENCE_FILE, &ev.report)
                .map_err(EmitError::io(EVIDENCE_FILE))?;
            if let Some(chain) = &ev.cert_chain_pem {
                sink.put_bytes(CHAIN_FILE, chain)
                    .map_err(EmitError::io(CHAIN_FILE))?;
            }
        }
        let attestation = attestation_of(built.evidence.as_ref());
        let status = BuildStatus {
            ok: true,
            attested: attestation.attested,
            simulated: attestation.simulated,
            attestation: attestation.status_text.to_string(),
            artifacts: built.subjects.iter().map(|s| s.name.clone()).collect(),
        };
        sink.put_bytes(
            STATUS_FILE,
            &serde_json::to_vec_pretty(&status).expect("json"),
        )
        .map_err(EmitError::io(STATUS_FILE))?;
        sink.finish().map_err(EmitError::io("output"))?;
        Ok((
            (),
            format!(
                "{} artifacts, {}",
                built.subjects.len(),
                attestation.console
            ),
        ))
    })
}

/// Writes `error.json` for a failed build to `sink`.
pub fn emit_error(err: &StepError, sink: &mut dyn OutputSink) -> std::io::Result<()> {
    sink.put_bytes(
        ERROR_FILE,
        &serde_json::to_vec_pretty(&err.to_error_json()).expect("json"),
    )?;
    sink.finish()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn evidence(tee: Tee) -> Evidence {
        Evidence {
            report: vec![0; 4],
            cert_chain_pem: None,
            provider: tee,
        }
    }

    #[test]
    fn only_hardware_evidence_is_attested() {
        let snp = attestation_of(Some(&evidence(Tee::SevSnp)));
        assert!(snp.attested && !snp.simulated);
        let sim = attestation_of(Some(&evidence(Tee::Simulated)));
        assert!(!sim.attested && sim.simulated);
        assert!(
            sim.status_text.starts_with("SIMULATED"),
            "{}",
            sim.status_text
        );
        assert!(sim.console.contains("SIMULATED evidence (test keys)"));
        let none = attestation_of(None);
        assert!(!none.attested && !none.simulated);
        assert_eq!(none.console, "NOT attested");
    }
}
