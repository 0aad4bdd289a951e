//! The provenance step: the in-toto Statement of one build, serialized as RFC
//! 8785 (JCS). These exact bytes are provenance.json and their SHA-256 goes
//! into report_data.
//!
//! It never overstates: `builder.id` and `kettle_teePlatform` name the security mode
//! the build really ran in ([`BuilderMode`]); `kettle_refResolvedBy` says who
//! mapped the requested ref to the commit (in cached mode the host did, so
//! repository and ref are the requester's claim and only the commit is
//! witnessed); `kettle_clock` says the timestamps come from the host's clock.
//! Every extension key is the vocabulary's (`kettle_provenance::vocab`).

use std::collections::BTreeMap;

use kettle_provenance::merkle::input_merkle_root_hex;
use kettle_provenance::statement::{DIGEST_GIT_COMMIT, DIGEST_GIT_TREE, DIGEST_SHA256};
use kettle_provenance::{
    ids, jcs, purl, vocab, BuildDefinition, BuildMetadata, Builder, JsonObject, Provenance,
    ResourceDescriptor, RunDetails, Statement,
};
use serde_json::Value;
use thiserror::Error;

use kettle_attest::Tee;
use kettle_provenance::timestamp::format_rfc3339_utc;
use kettle_provenance::Sha256Digest;
use kettle_wire::recipe::Dependency;
use kettle_wire::{BuildRequest, BuildType, Pin};

use super::attest::Attestor;
use super::hash::Subject;
use super::unpack::BundleManifests;
use super::Tools;
use crate::clock::{check_not_before_build, ClockError, CLOCK_PROVENANCE};
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
    /// The (host-set) clock cannot be right, so no timestamps can be written.
    #[error(transparent)]
    Clock(#[from] ClockError),
}

/// [`vocab::TEE_PLATFORM`]'s value for a build with no TEE (local mode).
pub const NO_TEE: &str = "none";

/// The security mode a build runs in, which decides its `builder.id` and `kettle_teePlatform`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BuilderMode {
    /// Local mode without a report provider: no VM, no TEE, no evidence.
    Local,
    /// In the image under the simulated PSP (test keys, no hardware isolation).
    Simulated,
    /// In the measured image under AMD SEV-SNP.
    SevSnp,
}

impl BuilderMode {
    /// The mode of a run: no provider is local mode; otherwise the request's tee (a given
    /// provider must then produce evidence of that tee: the attest step checks it).
    pub fn of(attestor: &Attestor<'_>, tee: Tee) -> BuilderMode {
        match (attestor, tee) {
            (Attestor::None, _) => BuilderMode::Local,
            (_, Tee::Simulated) => BuilderMode::Simulated,
            (_, Tee::SevSnp) => BuilderMode::SevSnp,
        }
    }

    /// `runDetails.builder.id`.
    pub fn builder_id(self) -> &'static str {
        match self {
            BuilderMode::Local => ids::BUILDER_ID_LOCAL,
            BuilderMode::Simulated => ids::BUILDER_ID_SIMULATED,
            BuilderMode::SevSnp => ids::BUILDER_ID_SEV_SNP,
        }
    }

    /// The TEE whose evidence binds the provenance, if any.
    pub fn tee(self) -> Option<Tee> {
        match self {
            BuilderMode::Local => None,
            BuilderMode::Simulated => Some(Tee::Simulated),
            BuilderMode::SevSnp => Some(Tee::SevSnp),
        }
    }

    /// `internalParameters.kettle_teePlatform` ([`vocab::TEE_PLATFORM`]).
    pub fn tee_platform(self) -> &'static str {
        self.tee().map_or(NO_TEE, Tee::platform_name)
    }
}

/// Who resolved the requested ref to the built commit.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RefResolvedBy {
    /// Cached mode: the host did; the guest only witnessed the commit.
    Host,
    /// Upstream mode: the guest asked the repository over HTTPS and got the commit for
    /// this full ref (`refs/heads/...` or `refs/tags/...`), which the provenance records:
    /// a short name would not say whether a branch or a tag was built.
    Guest {
        /// The full name the repository advertised for the requested ref.
        full_ref: String,
    },
}

impl RefResolvedBy {
    /// The value of [`vocab::REF_RESOLVED_BY`].
    pub fn as_str(&self) -> &'static str {
        match self {
            RefResolvedBy::Host => vocab::RESOLVED_BY_HOST,
            RefResolvedBy::Guest { .. } => vocab::RESOLVED_BY_GUEST,
        }
    }
}

/// What a Statement is made from.
pub struct ProvenanceInputs<'a> {
    /// The request (repository and ref go into externalParameters verbatim).
    pub request: &'a BuildRequest,
    /// The recipe's type (buildType).
    pub build_type: BuildType,
    /// The verified tree id of the commit.
    pub tree: &'a str,
    /// The packages the recipe's lockfile pins.
    pub dependencies: &'a [Dependency],
    /// Toolchain pin, if any.
    pub toolchain: Option<&'a Pin>,
    /// Rootfs pin.
    pub rootfs: &'a Pin,
    /// Pinned or host tools.
    pub tools: &'a Tools,
    /// What the pinned bundles say they hold (their packages become dependencies).
    pub manifests: &'a BundleManifests,
    /// The hashed outputs.
    pub subjects: &'a [Subject],
    /// The security mode (builder.id, kettle_teePlatform).
    pub mode: BuilderMode,
    /// Who resolved the ref to the commit.
    pub ref_resolved_by: RefResolvedBy,
    /// Start time, Unix seconds (the host's clock).
    pub started_on: i64,
    /// Finish time, Unix seconds (the host's clock).
    pub finished_on: i64,
}

/// The resolvedDependencies list: source, the lockfile's packages, toolchain, rootfs, then the rootfs's
/// packages as its manifest lists them.
pub fn resolved_dependencies(
    p: &ProvenanceInputs<'_>,
) -> Result<Vec<ResourceDescriptor>, ProvenanceError> {
    let req = p.request;
    let mut deps =
        vec![
            ResourceDescriptor::from_uri(format!("git+{}@{}", req.repository, recorded_ref(p)))
                .with_name("source")
                .with_digest(DIGEST_GIT_COMMIT, req.commit.clone())
                .with_digest(DIGEST_GIT_TREE, p.tree.to_string()),
        ];
    for d in p.dependencies {
        deps.push(
            ResourceDescriptor::from_uri(d.purl()?).with_digest(DIGEST_SHA256, d.sha256.to_hex()),
        );
    }
    match p.tools {
        Tools::Pinned => {
            if let Some(t) = p.toolchain {
                let mut dep = ResourceDescriptor::from_uri(t.url.clone())
                    .with_name("toolchain")
                    .with_digest(DIGEST_SHA256, t.sha256.to_hex());
                if let Some(rustc) = p
                    .manifests
                    .toolchain
                    .as_ref()
                    .and_then(|m| m.rustc.as_ref())
                {
                    dep = dep.with_annotation(vocab::RUSTC_VERSION, rustc.version.clone());
                }
                deps.push(dep);
            }
            deps.push(
                ResourceDescriptor::from_uri(p.rootfs.url.clone())
                    .with_name("rootfs")
                    .with_digest(DIGEST_SHA256, p.rootfs.sha256.to_hex()),
            );
            for package in p.manifests.rootfs.iter().flat_map(|m| &m.packages) {
                deps.push(
                    ResourceDescriptor::from_uri(package.purl.clone())
                        .with_annotation(vocab::LISTED_BY_BUNDLE, "rootfs"),
                );
            }
        }
        Tools::Host { toolchain_root } => {
            // Not pinned: say where they came from and that they were not verified.
            deps.push(
                ResourceDescriptor::from_uri(format!("file://{}", toolchain_root.display()))
                    .with_name("toolchain")
                    .with_annotation(vocab::UNVERIFIED_HOST_TOOL, true),
            );
            deps.push(
                ResourceDescriptor::from_uri("file:///")
                    .with_name("rootfs")
                    .with_annotation(vocab::UNVERIFIED_HOST_TOOL, true),
            );
        }
    }
    Ok(deps)
}

/// The image the host says the build ran in, as a builderDependencies entry. A claim
/// (the host wrote the request); the verifier holds its launch digest against the report's.
fn image_dependency(req: &BuildRequest) -> Vec<ResourceDescriptor> {
    req.image
        .iter()
        .map(|image| {
            ResourceDescriptor::from_uri("kettle-image:manifest.json")
                .with_name(ids::IMAGE_DEPENDENCY)
                .with_digest(DIGEST_SHA256, image.manifest_sha256.to_hex())
                .with_digest("sha384", image.launch_digest.clone())
                .with_annotation(vocab::CLAIMED_BY, "host")
        })
        .collect()
}

/// The ref the provenance records (and a verifier compares): the full name the guest resolved
/// (upstream mode), else the request's (cached mode: the host's claim, which it sends in full).
fn recorded_ref<'a>(p: &'a ProvenanceInputs<'_>) -> &'a str {
    match &p.ref_resolved_by {
        RefResolvedBy::Guest { full_ref } => full_ref,
        RefResolvedBy::Host => &p.request.git_ref,
    }
}

/// Builds, validates and canonicalizes the Statement; refuses a clock before the build date.
pub fn build(p: &ProvenanceInputs<'_>) -> Result<Vec<u8>, ProvenanceError> {
    let req = p.request;
    check_not_before_build(p.started_on)?;
    if p.finished_on < p.started_on {
        return Err(ClockError::WentBackwards {
            started: p.started_on,
            finished: p.finished_on,
        }
        .into());
    }
    let deps = resolved_dependencies(p)?;
    let host_tools = matches!(p.tools, Tools::Host { .. });
    let mut external = JsonObject::new();
    external.insert("repository".into(), Value::String(req.repository.clone()));
    let recorded_ref = recorded_ref(p).to_string();
    external.insert("ref".into(), Value::String(recorded_ref.clone()));
    let mut internal = JsonObject::new();
    internal.insert(
        vocab::TEE_PLATFORM.into(),
        Value::String(p.mode.tee_platform().into()),
    );
    internal.insert(
        vocab::REF_RESOLVED_BY.into(),
        Value::String(p.ref_resolved_by.as_str().into()),
    );
    if recorded_ref != req.git_ref {
        internal.insert(
            vocab::REQUESTED_REF.into(),
            Value::String(req.git_ref.clone()),
        );
    }
    internal.insert(vocab::CLOCK.into(), Value::String(CLOCK_PROVENANCE.into()));
    internal.insert(vocab::VERSION.into(), Value::String(KETTLE_VERSION.into()));
    internal.insert(
        vocab::INPUT_MERKLE_ROOT.into(),
        Value::String(input_merkle_root_hex(&deps)?),
    );
    internal.insert(vocab::HERMETIC.into(), Value::Bool(!host_tools));
    if host_tools {
        internal.insert(vocab::HOST_TOOLS.into(), Value::Bool(true));
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
                    id: p.mode.builder_id().into(),
                    version: BTreeMap::from([(
                        "kettle-init".to_string(),
                        KETTLE_VERSION.to_string(),
                    )]),
                    builder_dependencies: image_dependency(req),
                },
                metadata: Some(BuildMetadata {
                    invocation_id: Some(req.invocation_id.clone()),
                    started_on: Some(format_rfc3339_utc(p.started_on)),
                    finished_on: Some(format_rfc3339_utc(p.finished_on)),
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::clock::BUILD_EPOCH;
    use kettle_provenance::Provenance;
    use kettle_testkit::fixtures::test_request;

    fn statement_for(mode: BuilderMode) -> Statement<Provenance> {
        statement_with(mode, &BundleManifests::default())
    }

    fn statement_with(mode: BuilderMode, manifests: &BundleManifests) -> Statement<Provenance> {
        let req = test_request(&"a".repeat(40));
        statement_of(&req, mode, manifests, RefResolvedBy::Host)
    }

    /// The Statement of a build of `req`, whose ref `ref_resolved_by` resolved.
    fn statement_of(
        req: &BuildRequest,
        mode: BuilderMode,
        manifests: &BundleManifests,
        ref_resolved_by: RefResolvedBy,
    ) -> Statement<Provenance> {
        let rootfs = Pin {
            url: "https://example.invalid/rootfs.tar".into(),
            sha256: Sha256Digest::of_bytes(b"rootfs"),
        };
        let toolchain = Pin {
            url: "https://example.invalid/toolchain.tar".into(),
            sha256: Sha256Digest::of_bytes(b"toolchain"),
        };
        let subjects = [Subject {
            name: "out/x".into(),
            sha256: Sha256Digest::of_bytes(b"x"),
            path: "/nonexistent".into(),
        }];
        let bytes = build(&ProvenanceInputs {
            request: req,
            build_type: BuildType::Script,
            tree: &"b".repeat(40),
            dependencies: &[],
            toolchain: Some(&toolchain),
            rootfs: &rootfs,
            tools: &Tools::Pinned,
            manifests,
            subjects: &subjects,
            mode,
            ref_resolved_by,
            started_on: BUILD_EPOCH,
            finished_on: BUILD_EPOCH + 1,
        })
        .unwrap();
        Statement::from_json(&bytes).unwrap()
    }

    /// Issue 25: upstream mode recorded the short ref the request named (`release-2019`),
    /// which a verifier read as a branch though the guest had resolved a tag. The provenance
    /// records the full ref the guest resolved, and the request's own name beside it.
    #[test]
    fn upstream_mode_records_the_full_ref_the_guest_resolved() {
        let mut req = test_request(&"a".repeat(40));
        req.git_ref = "release-2019".into();
        let st = statement_of(
            &req,
            BuilderMode::SevSnp,
            &BundleManifests::default(),
            RefResolvedBy::Guest {
                full_ref: "refs/tags/release-2019".into(),
            },
        );
        let bd = &st.predicate.build_definition;
        assert_eq!(bd.external_parameters["ref"], "refs/tags/release-2019");
        assert_eq!(bd.internal_parameters[vocab::REF_RESOLVED_BY], "guest");
        assert_eq!(bd.internal_parameters[vocab::REQUESTED_REF], "release-2019");
        // Cached mode keeps the request's ref (the host's claim) and adds nothing.
        let st = statement_of(
            &req,
            BuilderMode::SevSnp,
            &BundleManifests::default(),
            RefResolvedBy::Host,
        );
        let bd = &st.predicate.build_definition;
        assert_eq!(bd.external_parameters["ref"], "release-2019");
        assert!(!bd.internal_parameters.contains_key(vocab::REQUESTED_REF));
    }

    #[test]
    fn the_guest_names_its_tee_in_builder_id_and_tee_platform() {
        for (tee, mode, id, platform) in [
            (
                Tee::SevSnp,
                BuilderMode::SevSnp,
                ids::BUILDER_ID_SEV_SNP,
                "sev-snp",
            ),
            (
                Tee::Simulated,
                BuilderMode::Simulated,
                ids::BUILDER_ID_SIMULATED,
                "simulated",
            ),
        ] {
            assert_eq!(BuilderMode::of(&Attestor::Guest, tee), mode);
            let st = statement_for(mode);
            assert_eq!(st.predicate.run_details.builder.id, id);
            let internal = &st.predicate.build_definition.internal_parameters;
            assert_eq!(internal[vocab::TEE_PLATFORM], platform);
            assert_eq!(internal[vocab::CLOCK], CLOCK_PROVENANCE);
            assert_eq!(internal[vocab::REF_RESOLVED_BY], "host");
        }
        // No provider is local mode, whatever tee the request names.
        for tee in [Tee::SevSnp, Tee::Simulated] {
            assert_eq!(BuilderMode::of(&Attestor::None, tee), BuilderMode::Local);
        }
        let st = statement_for(BuilderMode::Local);
        assert_eq!(st.predicate.run_details.builder.id, ids::BUILDER_ID_LOCAL);
        assert_eq!(
            st.predicate.build_definition.internal_parameters[vocab::TEE_PLATFORM],
            NO_TEE
        );
    }

    #[test]
    fn the_bundles_manifests_add_their_packages_and_rustc_version() {
        use kettle_wire::bundle_manifest::{BundleManifest, Package, RustcInfo, MANIFEST_SCHEMA};
        let manifest = |kind: &str, packages, rustc| BundleManifest {
            schema: MANIFEST_SCHEMA.into(),
            kind: kind.into(),
            summary: String::new(),
            packages,
            rustc,
            components: Vec::new(),
        };
        let manifests = BundleManifests {
            rootfs: Some(manifest(
                "rootfs",
                vec![Package {
                    name: "gcc-12".into(),
                    version: "12.2.0-14".into(),
                    arch: "amd64".into(),
                    purl: "pkg:deb/debian/gcc-12@12.2.0-14?arch=amd64".into(),
                }],
                None,
            )),
            toolchain: Some(manifest(
                "toolchain",
                Vec::new(),
                Some(RustcInfo {
                    version: "rustc 1.85.0 (4d91de4e4 2025-02-17)".into(),
                    release: "1.85.0".into(),
                    commit_hash: "4d91de4e48198da2e33413efdcd9cd2cc0c46688".into(),
                    host: "x86_64-unknown-linux-gnu".into(),
                    llvm_version: "19.1.7".into(),
                    cargo: "cargo 1.85.0 (d73d2caf9 2024-12-31)".into(),
                }),
            )),
        };
        let with = statement_with(BuilderMode::SevSnp, &manifests);
        let without = statement_for(BuilderMode::SevSnp);
        let deps = &with.predicate.build_definition.resolved_dependencies;
        assert_eq!(
            deps.len(),
            without
                .predicate
                .build_definition
                .resolved_dependencies
                .len()
                + 1
        );
        let gcc = deps.last().unwrap();
        assert_eq!(
            gcc.uri.as_deref(),
            Some("pkg:deb/debian/gcc-12@12.2.0-14?arch=amd64")
        );
        assert_eq!(gcc.annotations[vocab::LISTED_BY_BUNDLE], "rootfs");
        let toolchain = deps
            .iter()
            .find(|d| d.name.as_deref() == Some("toolchain"))
            .unwrap();
        assert_eq!(
            toolchain.annotations[vocab::RUSTC_VERSION],
            "rustc 1.85.0 (4d91de4e4 2025-02-17)"
        );
        // The packages are inputs: the input Merkle root moves with them.
        let root = |st: &Statement<Provenance>| {
            st.predicate.build_definition.internal_parameters[vocab::INPUT_MERKLE_ROOT].clone()
        };
        assert_ne!(root(&with), root(&without));
    }
}
