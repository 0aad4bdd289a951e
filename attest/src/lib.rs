//! SEV-SNP evidence: the report format, the guest's report request, offline
//! verification of the trust chain, and a simulated PSP for machines without SNP.
//!
//! * guest: [`detect_hardware`] or [`simulated::PspClient::open_port`], then
//!   [`ReportProvider::request_report`] with [`report_data_for`] the provenance;
//! * host: [`simulated::SimulatedPsp::serve`] on the virtio-serial socket;
//! * auditor: [`Report::parse`], [`chain::check_chain`] and
//!   [`signature::verify_report_signature`] are the primitives the verifier
//!   (the `kettle-verify` crate) builds its checks from.
// Unit tests build fixtures with small casts; the lint guards the formats themselves.
#![cfg_attr(test, allow(clippy::cast_possible_truncation))]

pub mod binding;
pub mod chain;
pub mod provider;
pub mod report;
pub mod revocation;
pub mod sevguest;
pub mod signature;
pub mod simulated;

/// The real AMD evidence in the `sev` crate's test data, for tests (feature `testdata`).
#[cfg(any(test, feature = "testdata"))]
pub mod testdata;

pub use binding::report_data_for;
pub use chain::{CertChain, ChainError, Product};
pub use provider::{detect_hardware, Evidence, ReportProvider, RequestError, Tee};
pub use report::{Report, ReportError, Tcb};
