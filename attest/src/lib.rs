//! SEV-SNP evidence: the report format, the guest's report request, offline
//! verification of the trust chain, and a simulated PSP for machines without SNP.

pub mod binding;
pub mod provider;
pub mod simulated;

pub use binding::report_data_for;
pub use provider::{detect_hardware, Evidence, ProviderKind, ReportProvider, RequestError};
pub mod chain;
pub mod report;
#[cfg(test)]
pub(crate) mod testdata;
