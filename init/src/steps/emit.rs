//! The emit step: write the results to the output (a directory in local mode,
//! a tar stream on the output disk in the guest). status.json comes last, so an
//! output without it is a failed build; a failed build gets only error.json.

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

/// Writes a successful build to `sink` (artifacts, provenance.json, evidence, chain.pem, then status.json).
pub fn emit(built: &Built, sink: &mut dyn OutputSink) -> Result<(), StepError> {
    timed(Step::Emit, "outputs", || {
        for s in &built.subjects {
            sink.put_file(&format!("{ARTIFACTS_DIR}/{}", s.name), &s.path)
                .map_err(EmitError::io(&s.name))?;
        }
        sink.put_bytes(PROVENANCE_FILE, &built.provenance)
            .map_err(EmitError::io(PROVENANCE_FILE))?;
        let attestation = match &built.evidence {
            Some(ev) => {
                sink.put_bytes(EVIDENCE_FILE, &ev.report)
                    .map_err(EmitError::io(EVIDENCE_FILE))?;
                if let Some(chain) = &ev.cert_chain_pem {
                    sink.put_bytes(CHAIN_FILE, chain)
                        .map_err(EmitError::io(CHAIN_FILE))?;
                }
                ev.provider.to_string()
            }
            None => {
                "none: no report provider was given, so nothing is hardware-attested".to_string()
            }
        };
        let status = BuildStatus {
            ok: true,
            attested: built.evidence.is_some(),
            attestation,
            artifacts: built.subjects.iter().map(|s| s.name.clone()).collect(),
        };
        sink.put_bytes(
            STATUS_FILE,
            &serde_json::to_vec_pretty(&status).expect("json"),
        )
        .map_err(EmitError::io(STATUS_FILE))?;
        sink.finish().map_err(EmitError::io("output"))?;
        let attested = if built.evidence.is_some() {
            " with evidence"
        } else {
            ", NOT attested"
        };
        Ok(((), format!("{} artifacts{attested}", built.subjects.len())))
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
