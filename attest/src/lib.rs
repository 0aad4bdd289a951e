//! SEV-SNP evidence: the report format, the guest's report request, offline
//! verification of the trust chain, and a simulated PSP for machines without SNP.
//!
//! * guest: [`detect_hardware`] or [`simulated::PspClient::open_port`], then
//!   [`ReportProvider::request_report`] with [`report_data_for`] the provenance;
//! * host: [`simulated::SimulatedPsp::serve`] on the virtio-serial socket;
//! * auditor: [`CertChain`] + [`Policy`] -> [`verify`] -> [`Verdict`].

#![warn(missing_docs)]

pub mod binding;
pub mod chain;
pub mod provider;
pub mod report;
pub mod sevguest;
pub mod simulated;
pub mod verify;

#[cfg(test)]
pub(crate) mod testdata;

pub use binding::report_data_for;
pub use chain::{CertChain, ChainError, Product};
pub use provider::{detect_hardware, Evidence, ProviderKind, ReportProvider, RequestError};
pub use report::{Report, ReportError, Tcb};
pub use verify::{check_names, verify, Check, ExpectedReportData, MinTcb, Policy, Verdict};
