//! In-toto Statement v1 with the SLSA build provenance v1 predicate, RFC 8785
//! canonical JSON, Package URLs, the RFC 6962 input Merkle root and git object
//! hashing.

pub mod git;
pub mod ids;
pub mod jcs;
pub mod merkle;
pub mod purl;
pub mod statement;
pub mod timestamp;
pub mod validate;

pub use statement::{
    BuildDefinition, BuildMetadata, Builder, JsonObject, Provenance, ResourceDescriptor, RunDetails,
    Statement,
};
pub use validate::ValidationError;
