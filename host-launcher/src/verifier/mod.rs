//! The verifier `kettle verify` and `kettle build` share: DESIGN.md's trust
//! chain, each step a named check.

pub mod checks;
pub mod provenance;

pub use checks::{Check, Status, Verdict};
pub use provenance::{check_provenance, Artifact, ProvenanceExpectations};
