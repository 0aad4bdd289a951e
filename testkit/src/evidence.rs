//! Build evidence for verifier tests: Kettle-shaped provenance Statements,
//! image manifests and image directories, and output directories signed by
//! the simulated PSP, so each test states only what it changes.

use std::fs;
use std::path::{Path, PathBuf};

use kettle_attest::simulated::SimulatedPsp;
use kettle_image::manifest::FileRef;
use kettle_image::{GuestFeatures, ImageManifest, LaunchDigest, VcpuConfig, VcpuType, VmmType};
use kettle_provenance::statement::{DIGEST_GIT_COMMIT, DIGEST_GIT_TREE};
use kettle_provenance::{
    ids, jcs, BuildDefinition, Builder, JsonObject, Provenance, ResourceDescriptor, RunDetails,
    Sha256Digest, Statement,
};

/// What a test Statement says.
#[derive(Debug, Clone)]
pub struct StatementSpec<'a> {
    /// Subjects: (name, bytes).
    pub subjects: Vec<(&'a str, &'a [u8])>,
    /// externalParameters.repository.
    pub repository: &'a str,
    /// externalParameters.ref.
    pub git_ref: &'a str,
    /// The `source` dependency's gitCommit (None: no source dependency).
    pub commit: Option<&'a str>,
    /// The `source` dependency's gitTree, as the guest records it (None: not recorded).
    pub tree: Option<&'a str>,
    /// buildDefinition.buildType.
    pub build_type: &'a str,
    /// runDetails.builder.id.
    pub builder_id: &'a str,
}

impl Default for StatementSpec<'_> {
    fn default() -> Self {
        StatementSpec {
            subjects: vec![("out/hello.txt", b"hello from a kettle build\n")],
            repository: "https://example.com/hello.git",
            git_ref: "refs/heads/main",
            commit: Some("0123456789abcdef0123456789abcdef01234567"),
            tree: None,
            build_type: ids::BUILD_TYPE_SCRIPT,
            builder_id: ids::BUILDER_ID_SEV_SNP,
        }
    }
}

impl StatementSpec<'_> {
    /// The Statement.
    pub fn statement(&self) -> Statement {
        let mut ext = JsonObject::new();
        ext.insert("repository".into(), self.repository.into());
        ext.insert("ref".into(), self.git_ref.into());
        let deps = self
            .commit
            .map(|c| {
                ResourceDescriptor::from_uri(format!("git+{}@{}", self.repository, self.git_ref))
                    .with_name(ids::SOURCE_DEPENDENCY)
                    .with_digest(DIGEST_GIT_COMMIT, c)
            })
            .map(|d| match self.tree {
                Some(t) => d.with_digest(DIGEST_GIT_TREE, t),
                None => d,
            })
            .into_iter()
            .collect();
        Statement::new(
            self.subjects
                .iter()
                .map(|(name, bytes)| ResourceDescriptor::for_bytes(*name, bytes))
                .collect(),
            Provenance {
                build_definition: BuildDefinition {
                    build_type: self.build_type.into(),
                    external_parameters: ext,
                    resolved_dependencies: deps,
                    ..Default::default()
                },
                run_details: RunDetails {
                    builder: Builder {
                        id: self.builder_id.into(),
                        ..Default::default()
                    },
                    ..Default::default()
                },
            },
        )
    }

    /// The Statement as provenance.json bytes (RFC 8785).
    pub fn bytes(&self) -> Vec<u8> {
        jcs::to_canonical_bytes(&self.statement()).expect("a test Statement canonicalizes")
    }
}

/// An image manifest with launch digest `digest` naming `bzImage`, `initramfs.cpio` and
/// `OVMF.fd` whose contents are their own names (as [`image_dir`] writes them).
pub fn image_manifest(digest: [u8; 48]) -> ImageManifest {
    let file = |name: &str| FileRef::new(name, Sha256Digest::of_bytes(name.as_bytes()).to_hex());
    let vm = VcpuConfig {
        vcpus: 1,
        vcpu_type: "EPYC-v4".parse::<VcpuType>().expect("a known vCPU type"),
        vmm_type: VmmType::Qemu,
        guest_features: GuestFeatures::default(),
    };
    ImageManifest::new(
        file("bzImage"),
        file("initramfs.cpio"),
        file("OVMF.fd"),
        "console=ttyS0",
        &vm,
        LaunchDigest(digest),
    )
}

/// An image directory at `dir`: placeholder files and [`image_manifest`]`(digest)` as manifest.json.
pub fn image_dir(dir: &Path, digest: [u8; 48]) -> PathBuf {
    fs::create_dir_all(dir).expect("create the image dir");
    for f in ["bzImage", "initramfs.cpio", "OVMF.fd"] {
        fs::write(dir.join(f), f).expect("write an image file");
    }
    let manifest = dir.join("manifest.json");
    fs::write(&manifest, image_manifest(digest).to_json_pretty()).expect("write manifest.json");
    manifest
}

/// An output directory as `kettle build --tee simulated` leaves it, at `dir`: the spec's
/// artifacts, provenance.json, a report of `measurement` binding it, the test chain.
pub fn simulated_output_dir(dir: &Path, spec: &StatementSpec<'_>, measurement: [u8; 48]) {
    let provenance = spec.bytes();
    let psp = SimulatedPsp::new(measurement);
    let report = psp
        .report(&kettle_attest::report_data_for(&provenance), 0)
        .expect("the simulated PSP signs");
    for (name, bytes) in &spec.subjects {
        let p = dir.join("artifacts").join(name);
        fs::create_dir_all(p.parent().expect("an artifact has a parent")).expect("mkdir");
        fs::write(p, bytes).expect("write an artifact");
    }
    fs::write(dir.join("provenance.json"), &provenance).expect("write provenance.json");
    fs::write(dir.join("evidence"), report).expect("write evidence");
    fs::write(
        dir.join("chain.pem"),
        psp.cert_chain_pem().expect("the test chain"),
    )
    .expect("write chain.pem");
    fs::write(dir.join("build.log"), b"console\n").expect("write build.log");
}

/// When the CRLs of [`clean_simulated_crl`] (and the revocation tests' own) were issued:
/// 2026-01-01T00:00:00Z, Unix seconds.
pub const CRL_THIS_UPDATE: u64 = 1_767_225_600;
/// Their nextUpdate: 2026-12-01T00:00:00Z, Unix seconds.
pub const CRL_NEXT_UPDATE: u64 = 1_796_083_200;

/// The simulated ARK's CRL revoking nothing, valid from [`CRL_THIS_UPDATE`] to
/// [`CRL_NEXT_UPDATE`] (DER).
pub fn clean_simulated_crl() -> Vec<u8> {
    kettle_attest::simulated::certs::test_crl(&[], CRL_THIS_UPDATE, CRL_NEXT_UPDATE)
        .expect("the simulated ARK signs a CRL")
}
