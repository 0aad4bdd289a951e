//! The verification policy a platform team publishes next to its image, and
//! an auditor enforces: `kettle verify DIR --policy FILE`. A versioned JSON
//! document (schema `kettle.policy/v1`); unknown fields are refused, absent
//! fields take the verifier's strict defaults. Field by field:
//!
//! | field | meaning | default |
//! | --- | --- | --- |
//! | `schema` | `"kettle.policy/v1"` | required |
//! | `name` | shown in the verdict line | required |
//! | `measurements` | accepted launch digests, each `{launch_digest, vcpus?, vcpu_type?, image_manifest_sha256?}` | required, non-empty |
//! | `guest_policy` | what the SNP guest policy may allow (`allow_debug`, `allow_migration_agent`, `allow_smt`, `require_single_socket`, `allow_cxl`, `min_abi` "major.minor") | nothing that weakens isolation; SMT allowed |
//! | `vmpl` | the VMPL the report must come from | 0 |
//! | `min_tcb` | TCB floor per generation: `{milan?, genoa?, turin?}`, each `{fmc?, bootloader, tee, snp, microcode}` | Kettle's built-in floor |
//! | `signers` | accepted report signers: `"vcek"`, `"vlek"` | `["vcek"]` |
//! | `builder_ids` | accepted `runDetails.builder.id`s | Kettle's SEV-SNP builder |
//! | `build_types` | accepted `buildType`s | every Kettle recipe (`kettle_wire::BuildType::ALL`) |
//! | `source.repository` | `externalParameters.repository` | not compared |
//! | `source.refs` | accepted refs, exact or with `*` wildcards (`refs/tags/v*`) | not compared |
//! | `source.any_commit` | accept any built commit (else the auditor pins it: `--commit`/`--source`) | false |
//! | `source.accept_host_resolved` | with the commit not pinned, accept a repository and ref that only the build host resolved (cached mode: `kettle_refResolvedBy` `host`); the verdict line names the opt-in | false: provenance.repository and provenance.ref fail |
//! | `processor_generations` | accepted processor generations (AMD roots): `"milan"`, `"genoa"`, `"turin"`; Milan is an explicit opt-in, named in the verdict line (its VCEK root seed can be extracted, arXiv 2605.12990) | `["genoa", "turin"]` |
//! | `chip_ids` | accepted chip ids (hex: 64 bytes, or a Turin 8-byte hwID), for platform teams that own their hosts | any chip |
//! | `allow_simulated` | accept the simulated PSP's test-key evidence | false |
//! | `require_revocation_check` | reject unless the chain was checked against AMD's CRL (`--crl`, `--fetch-crl`) | false: skipped, and the verdict line says so |
//! | `require_trusted_time` | reject unless the certificates' validity was checked at a time the auditor gives (`--at`) | false: skipped, and the verdict line says so |

use std::path::Path;

use kettle_attest::chain::Product;
use kettle_image::{ImageManifest, LaunchDigest};
use kettle_provenance::{ids, Sha256Digest};
use serde::{Deserialize, Serialize};

use crate::expect::{
    default_processor_generations, ChipId, Expectations, GuestPolicyRules, MinTcb,
    ProvenanceExpectations, SourcePin, TcbFloor,
};

pub mod overrides;

pub use overrides::{FlagsError, NamedMeasurement, Overrides, VerifierFlags, LOOSENABLE_FIELDS};

/// The only schema this verifier reads.
pub const POLICY_SCHEMA: &str = "kettle.policy/v1";
/// Largest policy file read.
pub const MAX_POLICY_BYTES: u64 = 1 << 20;

/// A verification policy as published, parsed once into checked types: a launch digest, a
/// chip id or a firmware ABI that is malformed does not parse (the file is refused), and
/// [`Policy::check`] holds the rules between fields.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Policy {
    /// Must be [`POLICY_SCHEMA`].
    pub schema: String,
    /// The policy's name, shown in the verdict.
    pub name: String,
    /// Accepted launch digests.
    pub measurements: Vec<AcceptedMeasurement>,
    /// What the guest policy may allow.
    #[serde(default)]
    pub guest_policy: GuestPolicyRules,
    /// The VMPL the report must come from.
    #[serde(default)]
    pub vmpl: u32,
    /// TCB floors per processor generation.
    #[serde(default, skip_serializing_if = "TcbFloors::is_empty")]
    pub min_tcb: TcbFloors,
    /// Accepted signers.
    #[serde(default = "default_signers")]
    pub signers: Vec<Signer>,
    /// Accepted builder ids.
    #[serde(default = "default_builder_ids")]
    pub builder_ids: Vec<String>,
    /// Accepted build types.
    #[serde(default = "default_build_types")]
    pub build_types: Vec<String>,
    /// What the source must be.
    #[serde(default)]
    pub source: SourcePolicy,
    /// Accept simulated evidence.
    #[serde(default)]
    pub allow_simulated: bool,
    /// Accepted processor generations (Milan only by listing it).
    #[serde(default = "default_processor_generations")]
    pub processor_generations: Vec<Product>,
    /// Accepted chip ids, hex (empty: any chip).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub chip_ids: Vec<ChipId>,
    /// Reject evidence whose chain was not checked against a CRL.
    #[serde(default)]
    pub require_revocation_check: bool,
    /// Reject evidence whose certificates' validity was not checked at a trusted time.
    #[serde(default)]
    pub require_trusted_time: bool,
}

/// One accepted launch digest and where it comes from.
#[serde_with_macros::skip_serializing_none]
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AcceptedMeasurement {
    /// 96 hex digits.
    #[serde(deserialize_with = "launch_digest_field")]
    pub launch_digest: LaunchDigest,
    /// The vCPU count it is for (informative).
    pub vcpus: Option<u32>,
    /// The vCPU type it is for (informative).
    pub vcpu_type: Option<String>,
    /// SHA-256 of the image manifest it comes from (informative).
    pub image_manifest_sha256: Option<String>,
}

/// A launch digest of `measurements`, its field named when it is malformed.
fn launch_digest_field<'de, D: serde::Deserializer<'de>>(d: D) -> Result<LaunchDigest, D::Error> {
    let text = String::deserialize(d)?;
    text.parse()
        .map_err(|e| serde::de::Error::custom(format!("measurements: {e}")))
}

/// TCB floors per generation (absent: Kettle's built-in floor for it).
#[serde_with_macros::skip_serializing_none]
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TcbFloors {
    /// AMD EPYC 7003.
    pub milan: Option<MinTcb>,
    /// AMD EPYC 9004.
    pub genoa: Option<MinTcb>,
    /// AMD EPYC 9005.
    pub turin: Option<MinTcb>,
}

impl TcbFloors {
    fn is_empty(&self) -> bool {
        self.milan.is_none() && self.genoa.is_none() && self.turin.is_none()
    }

    /// The floor for `product`, if the policy sets one.
    pub fn for_product(&self, product: Product) -> Option<MinTcb> {
        match product {
            Product::Milan => self.milan,
            Product::Genoa => self.genoa,
            Product::Turin => self.turin,
            Product::Simulated => None,
        }
    }
}

/// A report signer.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
#[non_exhaustive]
pub enum Signer {
    /// The chip's Versioned Chip Endorsement Key.
    Vcek,
    /// A Versioned Loaded Endorsement Key (a cloud provider's, e.g. AWS EC2).
    Vlek,
}

fn default_signers() -> Vec<Signer> {
    vec![Signer::Vcek]
}

fn default_builder_ids() -> Vec<String> {
    ProvenanceExpectations::default().builder_ids
}

fn default_build_types() -> Vec<String> {
    ProvenanceExpectations::default().build_types
}

/// `source`.
#[serde_with_macros::skip_serializing_none]
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct SourcePolicy {
    /// `externalParameters.repository` must equal this.
    pub repository: Option<String>,
    /// `externalParameters.ref` must match one of these (exact, or `*` wildcards).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub refs: Vec<String>,
    /// Accept any built commit (otherwise the auditor pins the commit).
    pub any_commit: bool,
    /// With the commit not pinned, accept a repository and ref only the build host resolved.
    pub accept_host_resolved: bool,
}

/// Why a policy file was refused.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum PolicyError {
    /// The file could not be read.
    #[error("cannot read policy {path}: {source}")]
    Read {
        /// The file.
        path: String,
        /// Why.
        #[source]
        source: crate::bundle::LoadError,
    },
    /// Not JSON of the policy's shape.
    #[error("policy {path} is not a valid Kettle verification policy: {source}")]
    Json {
        /// The file.
        path: String,
        /// The parser's message (unknown fields included).
        #[source]
        source: serde_json::Error,
    },
    /// A field has a bad value.
    #[error("policy field {field}: {reason}")]
    Field {
        /// The field.
        field: &'static str,
        /// What is wrong.
        reason: String,
    },
}

fn bad(field: &'static str, reason: impl Into<String>) -> PolicyError {
    PolicyError::Field {
        field,
        reason: reason.into(),
    }
}

/// A policy as loaded: its exact bytes' digest, and the expectations it sets.
#[derive(Debug, Clone)]
pub struct LoadedPolicy {
    /// The policy.
    pub policy: Policy,
    /// SHA-256 of the file's bytes (what `--json` and the verdict name).
    pub sha256: Sha256Digest,
}

impl Policy {
    /// Reads and checks a policy file.
    pub fn load(path: &Path) -> Result<LoadedPolicy, PolicyError> {
        let bytes =
            crate::bundle::read_regular("policy", path, MAX_POLICY_BYTES).map_err(|source| {
                PolicyError::Read {
                    path: path.display().to_string(),
                    source,
                }
            })?;
        let policy: Policy =
            serde_json::from_slice(&bytes).map_err(|source| PolicyError::Json {
                path: path.display().to_string(),
                source,
            })?;
        policy.check()?;
        Ok(LoadedPolicy {
            policy,
            sha256: Sha256Digest::of_bytes(&bytes),
        })
    }

    /// Checks every field's value.
    pub fn check(&self) -> Result<(), PolicyError> {
        if self.schema != POLICY_SCHEMA {
            return Err(bad(
                "schema",
                format!(
                    "is {:?}; this verifier reads {POLICY_SCHEMA:?}",
                    self.schema
                ),
            ));
        }
        if self.name.is_empty() || self.name.len() > 128 || self.name.chars().any(char::is_control)
        {
            return Err(bad("name", "must be 1-128 printable characters"));
        }
        if self.measurements.is_empty() {
            return Err(bad(
                "measurements",
                "must list at least one accepted launch digest",
            ));
        }
        if self.signers.is_empty() {
            return Err(bad(
                "signers",
                "must accept at least one signer (\"vcek\", \"vlek\")",
            ));
        }
        if self.processor_generations.is_empty() {
            return Err(bad(
                "processor_generations",
                "must list at least one of \"milan\", \"genoa\", \"turin\"",
            ));
        }
        if self.processor_generations.contains(&Product::Simulated) {
            return Err(bad(
                "processor_generations",
                "\"simulated\" is not a processor generation; accept simulated evidence with allow_simulated",
            ));
        }
        if self.builder_ids.is_empty() || self.build_types.is_empty() {
            return Err(bad(
                "builder_ids",
                "builder_ids and build_types must not be empty",
            ));
        }
        Ok(())
    }

    /// The policy's one ref, when `source.refs` is exactly one without `*` (the ref whose tip
    /// an auditor's clone must have built, when the auditor names none).
    pub fn single_exact_ref(&self) -> Option<&str> {
        match self.source.refs.as_slice() {
            [one] if !one.contains('*') => Some(one),
            _ => None,
        }
    }

    /// A starting policy for the image whose manifest is `manifest` (file bytes `bytes`).
    pub fn for_image(name: &str, manifest: &ImageManifest, bytes: &[u8]) -> Policy {
        Policy {
            schema: POLICY_SCHEMA.into(),
            name: name.into(),
            measurements: vec![AcceptedMeasurement {
                launch_digest: manifest.launch_digest,
                vcpus: Some(manifest.vcpus),
                vcpu_type: Some(manifest.vcpu_type.to_string()),
                image_manifest_sha256: Some(Sha256Digest::of_bytes(bytes).to_hex()),
            }],
            guest_policy: GuestPolicyRules::default(),
            vmpl: 0,
            min_tcb: TcbFloors::default(),
            signers: default_signers(),
            builder_ids: vec![ids::BUILDER_ID_SEV_SNP.into()],
            build_types: default_build_types(),
            source: SourcePolicy::default(),
            allow_simulated: false,
            processor_generations: default_processor_generations(),
            chip_ids: Vec::new(),
            require_revocation_check: false,
            require_trusted_time: false,
        }
    }

    /// The expectations this policy sets (the source commit pin stays the caller's).
    pub fn expectations(&self) -> Expectations {
        let accepted: Vec<([u8; 48], String)> = self
            .measurements
            .iter()
            .map(|m| {
                let mut label = format!("policy {:?}", self.name);
                if let (Some(n), Some(t)) = (m.vcpus, &m.vcpu_type) {
                    label.push_str(&format!(", {n} x {t}"));
                }
                (m.launch_digest.0, label)
            })
            .collect();
        let mut e = Expectations {
            guest_policy: self.guest_policy,
            vmpl: self.vmpl,
            min_tcb: TcbFloor::PerProduct(self.min_tcb.clone()),
            accept_vlek: self.signers.contains(&Signer::Vlek),
            accept_vcek: self.signers.contains(&Signer::Vcek),
            require_revocation_check: self.require_revocation_check,
            require_trusted_time: self.require_trusted_time,
            processor_generations: self.processor_generations.clone(),
            chip_ids: self
                .chip_ids
                .iter()
                .map(|c| c.as_bytes().to_vec())
                .collect(),
            provenance: ProvenanceExpectations {
                repository: self.source.repository.clone(),
                also_repository: None,
                accept_host_resolved: self.source.accept_host_resolved,
                git_ref: None,
                refs: self.source.refs.clone(),
                source: if self.source.any_commit {
                    SourcePin::Any
                } else {
                    SourcePin::Unpinned
                },
                builder_ids: self.builder_ids.clone(),
                build_types: self.build_types.clone(),
                source_trees: Default::default(),
            },
            // Replaced below: an empty list accepts no measurement (check() refuses one).
            ..Expectations::new([0; 48], String::new())
        };
        e.measurements = accepted;
        if self.allow_simulated {
            e = e.accepting_simulated();
        }
        e
    }
}

/// `pattern` matches `text`, `*` standing for any run of characters.
pub fn ref_matches(pattern: &str, text: &str) -> bool {
    let parts: Vec<&str> = pattern.split('*').collect();
    if parts.len() == 1 {
        return pattern == text;
    }
    let (first, last) = (parts[0], parts[parts.len() - 1]);
    if !text.starts_with(first)
        || !text[first.len()..].ends_with(last)
        || text.len() < first.len() + last.len()
    {
        return false;
    }
    let mut rest = &text[first.len()..text.len() - last.len()];
    for middle in &parts[1..parts.len() - 1] {
        match rest.find(middle) {
            Some(i) => rest = &rest[i + middle.len()..],
            None => return false,
        }
    }
    true
}

#[cfg(test)]
mod tests {
    use super::*;

    fn minimal() -> String {
        format!(
            r#"{{"schema":"kettle.policy/v1","name":"demo","measurements":[{{"launch_digest":"{}"}}]}}"#,
            "ab".repeat(48)
        )
    }

    #[test]
    fn a_minimal_policy_takes_the_strict_defaults() {
        let p: Policy = serde_json::from_str(&minimal()).unwrap();
        p.check().unwrap();
        let e = p.expectations();
        assert_eq!(e.measurements.len(), 1);
        assert!(!e.allow_simulated && !e.accept_vlek && e.accept_vcek);
        assert_eq!(e.guest_policy, GuestPolicyRules::default());
        assert_eq!(e.provenance.builder_ids, [ids::BUILDER_ID_SEV_SNP]);
        assert_eq!(e.provenance.source, SourcePin::Unpinned);
    }

    #[test]
    fn bad_policies_name_the_field() {
        let cases = [
            (minimal().replace("v1", "v9"), "schema"),
            (minimal().replace("\"demo\"", "\"\""), "name"),
            (minimal().replace("}]}", "}],\"signers\":[]}"), "signers"),
        ];
        for (text, field) in cases {
            let p: Policy = serde_json::from_str(&text).unwrap();
            match p.check() {
                Err(PolicyError::Field { field: f, .. }) => assert_eq!(f, field, "{text}"),
                other => panic!("{text}: {other:?}"),
            }
        }
        let unknown = minimal().replace("}]}", "}],\"allow_everything\":true}");
        assert!(serde_json::from_str::<Policy>(&unknown).is_err());
        // A malformed value does not parse at all, and the message names its field.
        let unparsed = [
            (minimal().replace(&"ab".repeat(48), "abcd"), "measurements"),
            (
                minimal().replace("}]}", "}],\"guest_policy\":{\"min_abi\":\"x\"}}"),
                "guest_policy.min_abi",
            ),
            (
                minimal().replace("}]}", "}],\"chip_ids\":[\"abcd\"]}"),
                "chip_ids",
            ),
        ];
        for (text, field) in unparsed {
            let e = serde_json::from_str::<Policy>(&text)
                .unwrap_err()
                .to_string();
            assert!(e.starts_with(&format!("{field}: ")), "{text}: {e}");
        }
    }

    #[test]
    fn ref_patterns() {
        assert!(ref_matches("refs/heads/main", "refs/heads/main"));
        assert!(!ref_matches("refs/heads/main", "refs/heads/main2"));
        assert!(ref_matches("refs/tags/v*", "refs/tags/v1.2.0"));
        assert!(!ref_matches("refs/tags/v*", "refs/heads/v1"));
        assert!(ref_matches("refs/*/release-*", "refs/heads/release-7"));
        assert!(!ref_matches("refs/*/release-*", "refs/heads/main"));
        assert!(ref_matches("*", "anything"));
    }
}
