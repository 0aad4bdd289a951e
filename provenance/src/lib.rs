//! In-toto Statement v1 with the SLSA build provenance v1 predicate, RFC 8785
//! canonical JSON, Package URLs, the RFC 6962 input Merkle root, git object
//! hashing, and the vocabulary of Kettle's extension fields ([`vocab`]).
//!
//! What the guest does with it, in order:
//!
//! ```
//! use kettle_provenance::{ids, jcs, merkle, purl, timestamp, vocab, statement::DIGEST_SHA256};
//! use kettle_provenance::{BuildDefinition, BuildMetadata, Builder, JsonObject, Provenance,
//!     ResourceDescriptor, RunDetails, Statement};
//!
//! let started = timestamp::now_rfc3339_utc();
//! // Every input, pinned by digest (source commit/tree, crates, toolchain, rootfs).
//! let deps = vec![ResourceDescriptor::from_uri(purl::cargo("serde", "1.0.228").unwrap())
//!     .with_digest(DIGEST_SHA256, "ab".repeat(32))];
//! let mut internal = JsonObject::new();
//! internal.insert(vocab::INPUT_MERKLE_ROOT.into(), merkle::input_merkle_root_hex(&deps).unwrap().into());
//! let mut external = JsonObject::new();
//! external.insert("repository".into(), "https://github.com/o/r".into());
//! let statement = Statement::new(
//!     vec![ResourceDescriptor::for_bytes("target/release/app", b"binary")],
//!     Provenance {
//!         build_definition: BuildDefinition {
//!             build_type: ids::BUILD_TYPE_CARGO.into(),
//!             external_parameters: external,
//!             internal_parameters: internal,
//!             resolved_dependencies: deps,
//!         },
//!         run_details: RunDetails {
//!             builder: Builder { id: ids::BUILDER_ID_SEV_SNP.into(), ..Default::default() },
//!             metadata: Some(BuildMetadata {
//!                 started_on: Some(started),
//!                 finished_on: Some(timestamp::now_rfc3339_utc()),
//!                 ..Default::default()
//!             }),
//!             ..Default::default()
//!         },
//!     },
//! );
//! statement.validate().unwrap();
//! // These exact bytes go to provenance.json and into SHA-256 for report_data.
//! let bytes = statement.to_canonical_bytes().unwrap();
//! assert!(jcs::is_canonical(&bytes));
//!
//! // The verifier's side: same bytes back, same rules.
//! let parsed = Statement::from_json(&bytes).unwrap();
//! parsed.validate().unwrap();
//! merkle::check_input_merkle_root(&parsed.predicate).unwrap();
//! ```
// Unit tests build fixtures with small casts; the lint guards the formats themselves.
#![cfg_attr(test, allow(clippy::cast_possible_truncation))]

pub mod digest;
pub mod git;
pub mod ids;
pub mod jcs;
pub mod merkle;
pub mod purl;
pub mod statement;
pub mod timestamp;
pub mod validate;
pub mod vocab;

pub use digest::Sha256Digest;
pub use statement::{
    BuildDefinition, BuildMetadata, Builder, JsonObject, Provenance, ResourceDescriptor,
    RunDetails, Statement,
};
pub use validate::ValidationError;
