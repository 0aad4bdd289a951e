//! The provenance step: the in-toto Statement of one build, serialized as RFC
//! 8785 (JCS). These exact bytes are provenance.json and their SHA-256 goes
//! into report_data.

use std::collections::BTreeMap;

use kettle_provenance::merkle::{input_merkle_root_hex, INPUT_MERKLE_ROOT_KEY};
use kettle_provenance::statement::{DIGEST_GIT_COMMIT, DIGEST_GIT_TREE, DIGEST_SHA256};
use kettle_provenance::{
    ids, jcs, purl, BuildDefinition, BuildMetadata, Builder, JsonObject, Provenance,
    ResourceDescriptor, RunDetails, Statement,
};
use serde_json::Value;
use thiserror::Error;

use kettle_provenance::Sha256Digest;
use kettle_wire::lockfile::LockedCrate;
use kettle_wire::{BuildRequest, BuildType, Pin};

use super::hash::Subject;
use super::Tools;
use crate::error::{InStep, Step, StepError};

/// Version of this builder, recorded in builder.version and internalParameters.
pub const KETTLE_VERSION: &str = env!("CARGO_PKG_VERSION");

/// Why provenance could not be produced.
#[derive(Debug, Error)]
pub enum ProvenanceError {
    /// A crate name/version cannot be a Package URL.
    #[error("{0}")]
    Purl(#[from] purl::PurlError),
    /// Canonicalization failed.
    #[error("JCS: {0}")]
    Jcs(#[from] jcs::JcsError),
    /// The Statement breaks a rule (a bug, reported rather than emitted).
    #[error("the Statement is invalid: {0}")]
    Invalid(#[from] kettle_provenance::validate::ValidationError),
}

/// What a Statement is made from.
pub struct ProvenanceInputs<'a> {
    /// The request (repository and ref go into externalParameters verbatim).
    pub request: &'a BuildRequest,
    /// The recipe's type (buildType).
    pub build_type: BuildType,
    /// The verified tree id of the commit.
    pub tree: &'a str,
    /// Registry crates from Cargo.lock.
    pub crates: &'a [LockedCrate],
    /// Toolchain pin, if any.
    pub toolchain: Option<&'a Pin>,
    /// Rootfs pin.
    pub rootfs: &'a Pin,
    /// Pinned or host tools.
    pub tools: &'a Tools,
    /// The hashed outputs.
    pub subjects: &'a [Subject],
    /// RFC 3339 UTC start time.
    pub started_on: &'a str,
    /// RFC 3339 UTC finish time.
    pub finished_on: &'a str,
}

/// The resolvedDependencies list: source, crates, toolchain, rootfs.
pub fn resolved_dependencies(
    p: &ProvenanceInputs<'_>,
) -> Result<Vec<ResourceDescriptor>, ProvenanceError> {
    let req = p.request;
    let mut deps =
        vec![
            ResourceDescriptor::from_uri(format!("git+{}@{}", req.repository, req.git_ref))
                .with_name("source")
                .with_digest(DIGEST_GIT_COMMIT, req.commit.clone())
                .with_digest(DIGEST_GIT_TREE, p.tree.to_string()),
        ];
    for k in p.crates {
        deps.push(
            ResourceDescriptor::from_uri(purl::cargo(&k.name, &k.version)?)
                .with_digest(DIGEST_SHA256, k.checksum.to_hex()),
        );
    }
    match p.tools {
        Tools::Pinned => {
            if let Some(t) = p.toolchain {
                deps.push(
                    ResourceDescriptor::from_uri(t.url.clone())
                        .with_name("toolchain")
                        .with_digest(DIGEST_SHA256, t.sha256.to_hex()),
                );
            }
            deps.push(
                ResourceDescriptor::from_uri(p.rootfs.url.clone())
                    .with_name("rootfs")
                    .with_digest(DIGEST_SHA256, p.rootfs.sha256.to_hex()),
            );
        }
        Tools::Host { toolchain_root } => {
            // Not pinned: say where they came from and that they were not verified.
            deps.push(
                ResourceDescriptor::from_uri(format!("file://{}", toolchain_root.display()))
                    .with_name("toolchain")
                    .with_annotation("kettle_unverifiedHostTool", true),
            );
            deps.push(
                ResourceDescriptor::from_uri("file:///")
                    .with_name("rootfs")
                    .with_annotation("kettle_unverifiedHostTool", true),
            );
        }
    }
    Ok(deps)
}

/// Builds, validates and canonicalizes the Statement.
pub fn build(p: &ProvenanceInputs<'_>) -> Result<Vec<u8>, ProvenanceError> {
    let req = p.request;
    let deps = resolved_dependencies(p)?;
    let host_tools = matches!(p.tools, Tools::Host { .. });
    let mut external = JsonObject::new();
    external.insert("repository".into(), Value::String(req.repository.clone()));
    external.insert("ref".into(), Value::String(req.git_ref.clone()));
    let mut internal = JsonObject::new();
    internal.insert(
        "tee_platform".into(),
        Value::String(req.tee.platform_name().into()),
    );
    internal.insert(
        "kettle_version".into(),
        Value::String(KETTLE_VERSION.into()),
    );
    internal.insert(
        INPUT_MERKLE_ROOT_KEY.into(),
        Value::String(input_merkle_root_hex(&deps)?),
    );
    internal.insert("hermetic".into(), Value::Bool(!host_tools));
    if host_tools {
        internal.insert("kettle_hostTools".into(), Value::Bool(true));
    }
    let subjects = p
        .subjects
        .iter()
        .map(|s| {
            ResourceDescriptor::default()
                .with_name(s.name.clone())
                .with_digest(DIGEST_SHA256, s.sha256.to_hex())
        })
        .collect();
    let statement = Statement::new(
        subjects,
        Provenance {
            build_definition: BuildDefinition {
                build_type: p.build_type.uri().into(),
                external_parameters: external,
                internal_parameters: internal,
                resolved_dependencies: deps,
            },
            run_details: RunDetails {
                builder: Builder {
                    id: ids::BUILDER_ID.into(),
                    version: BTreeMap::from([(
                        "kettle-init".to_string(),
                        KETTLE_VERSION.to_string(),
                    )]),
                    ..Default::default()
                },
                metadata: Some(BuildMetadata {
                    invocation_id: Some(req.invocation_id.clone()),
                    started_on: Some(p.started_on.into()),
                    finished_on: Some(p.finished_on.into()),
                }),
                byproducts: Vec::new(),
            },
        },
    );
    statement.validate()?;
    Ok(jcs::to_canonical_bytes(&statement)?)
}

/// The step: the Statement's bytes, and a summary naming their size and digest.
pub fn document(p: &ProvenanceInputs<'_>) -> Result<(Vec<u8>, String), StepError> {
    let bytes = build(p).in_step(Step::Provenance)?;
    let summary = format!(
        "{} bytes, sha256 {}",
        bytes.len(),
        Sha256Digest::of_bytes(&bytes)
    );
    Ok((bytes, summary))
}
