//! The attest step: request the report with report_data = SHA-256(provenance.json)
//! followed by 32 zero bytes. The pipeline only gets here when every step
//! before succeeded, so no failed build is ever attested.

use kettle_attest::{Evidence, ReportProvider, Tee};
use kettle_wire::devices::PSP_PORT;
use thiserror::Error;

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

/// Requests the report binding `provenance` from `attestor` (the request's `tee` picks the guest's provider).
pub fn report(
    tee: Tee,
    attestor: Attestor<'_>,
    provenance: &[u8],
) -> Result<(Option<Evidence>, String), StepError> {
    let report_data = kettle_attest::binding::report_data_for(provenance);
    let mut guest_provider: Box<dyn ReportProvider>;
    let provider: &mut dyn ReportProvider = match attestor {
        Attestor::None => return Ok((None, "no provider: NOT attested".to_string())),
        Attestor::Given(p) => p,
        Attestor::Guest => {
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
            guest_provider.as_mut()
        }
    };
    let evidence = provider
        .request_report(&report_data)
        .map_err(AttestError::from)
        .in_step(Step::Attest)?;
    let summary = format!(
        "{} report of {} bytes",
        evidence.provider,
        evidence.report.len()
    );
    Ok((Some(evidence), summary))
}
