//! The attest step: request the report with report_data = SHA-256(provenance.json)
//! followed by 32 zero bytes. The pipeline only gets here when every step
//! before succeeded, so no failed build is ever attested.

use kettle_attest::{Evidence, ReportProvider, Tee};
use kettle_wire::devices::PSP_PORT;
use thiserror::Error;

use super::provenance::BuilderMode;
use crate::error::{InStep, Step, StepError};

/// Errors of the attest step.
#[derive(Debug, Error)]
pub enum AttestError {
    /// No provider for the requested tee.
    #[error("no SEV-SNP attestation device in this guest (neither configfs-tsm nor /dev/sev-guest); use tee simulated on hosts without SNP")]
    NoHardware,
    /// The provider failed.
    #[error(transparent)]
    Request(#[from] kettle_attest::RequestError),
    /// The evidence is not of the TEE the provenance names (builder.id, kettle_teePlatform).
    #[error("the report provider produced {got} evidence, but the provenance names tee {wanted} (the request's tee): refusing to bind a provenance that misstates how it was attested")]
    WrongTee {
        /// The TEE the provenance names.
        wanted: Tee,
        /// The TEE the evidence came from.
        got: Tee,
    },
}

/// Which provider is asked for the report.
pub enum Attestor<'a> {
    /// No report (local mode without a provider): nothing is hardware-attested.
    None,
    /// A provider the caller chose.
    Given(&'a mut dyn ReportProvider),
    /// The guest's provider for the request's tee, opened only at the attest step.
    Guest,
}

/// Requests the report binding `provenance` from `attestor`. `mode` is what the provenance
/// says (its tee picks the guest's provider); evidence of any other tee is refused.
pub fn report(
    mode: BuilderMode,
    attestor: Attestor<'_>,
    provenance: &[u8],
) -> Result<(Option<Evidence>, String), StepError> {
    let report_data = kettle_attest::binding::report_data_for(provenance);
    let mut guest_provider: Box<dyn ReportProvider>;
    let (tee, provider): (Tee, &mut dyn ReportProvider) = match (mode.tee(), attestor) {
        (Some(tee), Attestor::Given(p)) => (tee, p),
        (Some(tee), Attestor::Guest) => {
            guest_provider = match tee {
                Tee::SevSnp => kettle_attest::detect_hardware()
                    .ok_or(AttestError::NoHardware)
                    .in_step(Step::Attest)?,
                Tee::Simulated => Box::new(
                    kettle_attest::simulated::PspClient::open_port(PSP_PORT)
                        .map_err(AttestError::from)
                        .in_step(Step::Attest)?,
                ),
            };
            (tee, guest_provider.as_mut())
        }
        // Local mode (no provider): nothing is asked, nothing is attested.
        _ => return Ok((None, "no provider: NOT attested".to_string())),
    };
    let evidence = provider
        .request_report(&report_data)
        .map_err(AttestError::from)
        .in_step(Step::Attest)?;
    if evidence.provider != tee {
        return Err(StepError::new(
            Step::Attest,
            AttestError::WrongTee {
                wanted: tee,
                got: evidence.provider,
            },
        ));
    }
    let summary = format!(
        "{} report of {} bytes",
        evidence.provider,
        evidence.report.len()
    );
    Ok((Some(evidence), summary))
}
