//! In-toto Statement v1 and the SLSA build provenance v1 predicate (SLSA 1.2),
//! as plain serde types with the specs' camelCase wire names.
//!
//! Output omits unset and empty optional fields. Parsing follows the specs'
//! rules: unknown fields are ignored, so any valid Statement parses (use
//! `Statement<serde_json::Value>` to read a Statement with another predicate).

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};
use sha2::{Digest, Sha256};

use crate::ids;

/// A JSON object (the type of externalParameters, internalParameters, annotations).
pub type JsonObject = Map<String, Value>;

/// in-toto digest-set algorithm name for SHA-256.
pub const DIGEST_SHA256: &str = "sha256";
/// in-toto digest-set algorithm name for SHA-384.
pub const DIGEST_SHA384: &str = "sha384";
/// in-toto digest-set algorithm name for SHA-512.
pub const DIGEST_SHA512: &str = "sha512";
/// in-toto digest-set algorithm name for SHA-1.
pub const DIGEST_SHA1: &str = "sha1";
/// in-toto digest-set algorithm name for a git commit id (SHA-1 or SHA-256 object format).
pub const DIGEST_GIT_COMMIT: &str = "gitCommit";
/// in-toto digest-set algorithm name for a git tree id (SHA-1 or SHA-256 object format).
pub const DIGEST_GIT_TREE: &str = "gitTree";

/// An in-toto Statement v1: what was produced (`subject`) and a typed claim about it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Statement<P = Provenance> {
    /// Always [`ids::STATEMENT_TYPE`] for a v1 Statement.
    #[serde(rename = "_type")]
    pub type_: String,
    /// The artifacts the predicate is about, each with a digest.
    pub subject: Vec<ResourceDescriptor>,
    /// URI naming the predicate's schema, e.g. [`ids::PREDICATE_TYPE_SLSA`].
    #[serde(rename = "predicateType")]
    pub predicate_type: String,
    /// The claim itself.
    pub predicate: P,
}

impl Statement<Provenance> {
    /// A v1 Statement carrying SLSA build provenance about `subject`.
    pub fn new(subject: Vec<ResourceDescriptor>, predicate: Provenance) -> Self {
        Statement {
            type_: ids::STATEMENT_TYPE.to_string(),
            subject,
            predicate_type: ids::PREDICATE_TYPE_SLSA.to_string(),
            predicate,
        }
    }
}

impl Statement<Provenance> {
    /// Parses a SLSA provenance Statement from JSON bytes (no validation; see `validate`).
    pub fn from_json(bytes: &[u8]) -> Result<Self, serde_json::Error> {
        serde_json::from_slice(bytes)
    }

    /// The subject named `name`, if any.
    pub fn subject_named(&self, name: &str) -> Option<&ResourceDescriptor> {
        self.subject
            .iter()
            .find(|s| s.name.as_deref() == Some(name))
    }
}

impl<P: serde::de::DeserializeOwned> Statement<P> {
    /// Parses a Statement with any predicate type `P` (e.g. `serde_json::Value`).
    pub fn from_json_generic(bytes: &[u8]) -> Result<Self, serde_json::Error> {
        serde_json::from_slice(bytes)
    }
}

impl<P: Serialize> Statement<P> {
    /// The RFC 8785 bytes to write to provenance.json and to hash (see [`crate::jcs`]).
    pub fn to_canonical_bytes(&self) -> Result<Vec<u8>, crate::jcs::JcsError> {
        crate::jcs::to_canonical_bytes(self)
    }
}

/// SLSA build provenance v1 predicate.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Provenance {
    /// What the build was asked to do and what it consumed.
    pub build_definition: BuildDefinition,
    /// Who ran the build and what happened.
    pub run_details: RunDetails,
}

/// SLSA `buildDefinition`: the inputs that determine the build.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct BuildDefinition {
    /// URI of the build recipe, e.g. [`ids::BUILD_TYPE_CARGO`].
    pub build_type: String,
    /// Parameters under the tenant's control (repository, ref, ...); always emitted.
    #[serde(default)]
    pub external_parameters: JsonObject,
    /// Parameters set by the builder (platform, versions, input Merkle root).
    #[serde(default, skip_serializing_if = "Map::is_empty")]
    pub internal_parameters: JsonObject,
    /// Every input artifact the build consumed, pinned by digest.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub resolved_dependencies: Vec<ResourceDescriptor>,
}

/// SLSA `runDetails`: the builder and this particular run.
#[serde_with_macros::skip_serializing_none]
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct RunDetails {
    /// The trusted build platform.
    pub builder: Builder,
    /// Invocation id and timestamps of this run.
    pub metadata: Option<BuildMetadata>,
    /// Extra outputs that are not subjects (logs, SBOMs...).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub byproducts: Vec<ResourceDescriptor>,
}

/// SLSA `builder`: identifies the build platform and its components.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Builder {
    /// URI of the builder, e.g. [`ids::BUILDER_ID_SEV_SNP`].
    pub id: String,
    /// Component name -> version of the builder.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub version: BTreeMap<String, String>,
    /// Artifacts making up the builder itself (kernel, initrd, firmware...).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub builder_dependencies: Vec<ResourceDescriptor>,
}

/// SLSA `metadata` of one run.
#[serde_with_macros::skip_serializing_none]
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct BuildMetadata {
    /// Identifier of this invocation, unique per builder.
    pub invocation_id: Option<String>,
    /// RFC 3339 UTC timestamp (`...Z`) at which the build started.
    pub started_on: Option<String>,
    /// RFC 3339 UTC timestamp (`...Z`) at which the build finished.
    pub finished_on: Option<String>,
}

/// in-toto ResourceDescriptor: a reference to an artifact by URI, digest and/or content.
#[serde_with_macros::skip_serializing_none]
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ResourceDescriptor {
    /// URI locating or identifying the resource (e.g. a Package URL).
    pub uri: Option<String>,
    /// Algorithm name -> lowercase hex digest.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub digest: BTreeMap<String, String>,
    /// Machine-readable name (for subjects: the artifact's path in the output).
    pub name: Option<String>,
    /// Where the resource can be downloaded from.
    pub download_location: Option<String>,
    /// MIME type of the resource.
    pub media_type: Option<String>,
    /// The resource's bytes inline (base64 on the wire, as protobuf JSON `bytes`).
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        with = "base64_bytes"
    )]
    pub content: Option<Vec<u8>>,
    /// Free-form extra information.
    #[serde(default, skip_serializing_if = "Map::is_empty")]
    pub annotations: JsonObject,
}

impl ResourceDescriptor {
    /// A descriptor named `name` with the SHA-256 of `bytes` (what a subject is).
    pub fn for_bytes(name: impl Into<String>, bytes: &[u8]) -> Self {
        ResourceDescriptor::default()
            .with_name(name)
            .with_digest(DIGEST_SHA256, hex::encode(Sha256::digest(bytes)))
    }

    /// A descriptor named `name` with the SHA-256 of the file at `path`, read in chunks.
    pub fn for_file(name: impl Into<String>, path: &std::path::Path) -> std::io::Result<Self> {
        let mut file = std::fs::File::open(path)?;
        let mut hasher = Sha256::new();
        std::io::copy(&mut file, &mut hasher)?;
        Ok(ResourceDescriptor::default()
            .with_name(name)
            .with_digest(DIGEST_SHA256, hex::encode(hasher.finalize())))
    }

    /// A descriptor identified by `uri` (e.g. a Package URL or git URL).
    pub fn from_uri(uri: impl Into<String>) -> Self {
        ResourceDescriptor {
            uri: Some(uri.into()),
            ..Default::default()
        }
    }

    /// Adds (or replaces) the digest for `algorithm` (e.g. [`DIGEST_SHA256`]).
    pub fn with_digest(mut self, algorithm: impl Into<String>, hex: impl Into<String>) -> Self {
        self.digest.insert(algorithm.into(), hex.into());
        self
    }

    /// Sets `name`.
    pub fn with_name(mut self, name: impl Into<String>) -> Self {
        self.name = Some(name.into());
        self
    }

    /// Sets `downloadLocation`.
    pub fn with_download_location(mut self, location: impl Into<String>) -> Self {
        self.download_location = Some(location.into());
        self
    }

    /// Sets `mediaType`.
    pub fn with_media_type(mut self, media_type: impl Into<String>) -> Self {
        self.media_type = Some(media_type.into());
        self
    }

    /// Sets inline `content`.
    pub fn with_content(mut self, content: impl Into<Vec<u8>>) -> Self {
        self.content = Some(content.into());
        self
    }

    /// The SHA-256 digest (lowercase hex), if this descriptor has one.
    pub fn sha256(&self) -> Option<&str> {
        self.digest.get(DIGEST_SHA256).map(String::as_str)
    }

    /// Adds (or replaces) one annotation.
    pub fn with_annotation(mut self, key: impl Into<String>, value: impl Into<Value>) -> Self {
        self.annotations.insert(key.into(), value.into());
        self
    }
}

/// serde adapter: `Option<Vec<u8>>` <-> base64 string. Writes standard padded
/// base64; reads standard or URL-safe, padded or not, as protobuf JSON does.
mod base64_bytes {
    use base64::alphabet;
    use base64::engine::general_purpose::{GeneralPurpose, GeneralPurposeConfig, STANDARD};
    use base64::engine::DecodePaddingMode;
    use base64::Engine;
    use serde::{Deserialize, Deserializer, Serializer};

    const LENIENT: GeneralPurposeConfig =
        GeneralPurposeConfig::new().with_decode_padding_mode(DecodePaddingMode::Indifferent);
    const STANDARD_LENIENT: GeneralPurpose = GeneralPurpose::new(&alphabet::STANDARD, LENIENT);
    const URL_SAFE_LENIENT: GeneralPurpose = GeneralPurpose::new(&alphabet::URL_SAFE, LENIENT);

    pub fn serialize<S: Serializer>(value: &Option<Vec<u8>>, s: S) -> Result<S::Ok, S::Error> {
        match value {
            Some(bytes) => s.serialize_str(&STANDARD.encode(bytes)),
            None => s.serialize_none(),
        }
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Option<Vec<u8>>, D::Error> {
        let text: Option<String> = Option::deserialize(d)?;
        text.map(|t| {
            STANDARD_LENIENT
                .decode(t.as_bytes())
                .or_else(|_| URL_SAFE_LENIENT.decode(t.as_bytes()))
                .map_err(|e| serde::de::Error::custom(format!("content is not base64: {e}")))
        })
        .transpose()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn sample() -> Statement {
        let mut ext = JsonObject::new();
        ext.insert("repository".into(), json!("https://github.com/o/r"));
        Statement::new(
            vec![ResourceDescriptor::for_bytes("bin/app", b"hello")],
            Provenance {
                build_definition: BuildDefinition {
                    build_type: ids::BUILD_TYPE_CARGO.into(),
                    external_parameters: ext,
                    ..Default::default()
                },
                run_details: RunDetails {
                    builder: Builder {
                        id: ids::BUILDER_ID_SEV_SNP.into(),
                        ..Default::default()
                    },
                    ..Default::default()
                },
            },
        )
    }

    #[test]
    fn wire_names_and_omitted_empties() {
        let v = serde_json::to_value(sample()).unwrap();
        assert_eq!(
            v,
            json!({
                "_type": "https://in-toto.io/Statement/v1",
                "subject": [{"name": "bin/app", "digest": {"sha256":
                    "2cf24dba5fb0a30e26e83b2ac5b9e29e1b161e5c1fa7425e73043362938b9824"}}],
                "predicateType": "https://slsa.dev/provenance/v1",
                "predicate": {
                    "buildDefinition": {
                        "buildType": "https://kettle.confidential.ai/cargo-build/v1",
                        "externalParameters": {"repository": "https://github.com/o/r"}
                    },
                    "runDetails": {"builder": {"id": "https://kettle.confidential.ai/tee-builder/v1"}}
                }
            })
        );
    }

    #[test]
    fn all_descriptor_fields_round_trip() {
        let rd = ResourceDescriptor::from_uri("pkg:generic/x@1")
            .with_digest(DIGEST_SHA256, "00".repeat(32))
            .with_name("x")
            .with_download_location("https://example.com/x")
            .with_media_type("application/octet-stream")
            .with_content(vec![0u8, 1, 2, 255])
            .with_annotation("k", 3);
        let v = serde_json::to_value(&rd).unwrap();
        assert_eq!(v["downloadLocation"], "https://example.com/x");
        assert_eq!(v["mediaType"], "application/octet-stream");
        assert_eq!(v["content"], "AAEC/w==");
        let back: ResourceDescriptor = serde_json::from_value(v).unwrap();
        assert_eq!(back, rd);
    }

    #[test]
    fn parses_statement_with_unknown_fields_and_foreign_predicates() {
        let text = br#"{"_type":"https://in-toto.io/Statement/v1","subject":[{"digest":{"sha256":"ab"}}],
            "predicateType":"https://slsa.dev/provenance/v1",
            "predicate":{"buildDefinition":{"buildType":"x","externalParameters":{},"futureField":1},
            "runDetails":{"builder":{"id":"y"},"metadata":{"startedOn":"2024-01-01T00:00:00Z"}},"extra":[1]}}"#;
        let st: Statement = Statement::from_json(text).unwrap();
        assert_eq!(st.predicate.build_definition.build_type, "x");
        assert_eq!(
            st.predicate
                .run_details
                .metadata
                .unwrap()
                .started_on
                .as_deref(),
            Some("2024-01-01T00:00:00Z")
        );

        let other = br#"{"_type":"https://in-toto.io/Statement/v1","subject":[],"predicateType":"https://example.com/p","predicate":{"any":"thing"}}"#;
        let st: Statement<Value> = Statement::from_json_generic(other).unwrap();
        assert_eq!(st.predicate["any"], "thing");
    }

    #[test]
    fn for_file_hashes_like_for_bytes() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("artifact");
        let data: Vec<u8> = (0..300_000u32).map(|i| (i % 253) as u8).collect();
        std::fs::write(&path, &data).unwrap();
        assert_eq!(
            ResourceDescriptor::for_file("a", &path).unwrap(),
            ResourceDescriptor::for_bytes("a", &data)
        );
        assert!(ResourceDescriptor::for_file("a", &dir.path().join("missing")).is_err());
    }

    #[test]
    fn content_accepts_protobuf_base64_variants() {
        for text in ["AAEC/w==", "AAEC/w", "AAEC_w==", "AAEC_w"] {
            let rd: ResourceDescriptor =
                serde_json::from_str(&format!(r#"{{"content":"{text}"}}"#)).unwrap();
            assert_eq!(rd.content.as_deref(), Some(&[0u8, 1, 2, 255][..]), "{text}");
        }
    }

    #[test]
    fn canonical_bytes_round_trip_through_parsing() {
        let st = sample();
        let bytes = st.to_canonical_bytes().unwrap();
        let back = Statement::from_json(&bytes).unwrap();
        assert_eq!(back, st);
        assert_eq!(back.to_canonical_bytes().unwrap(), bytes);
        assert_eq!(
            back.subject_named("bin/app").and_then(|s| s.sha256()),
            st.subject[0].sha256()
        );
        assert!(back.subject_named("nope").is_none());
    }

    #[test]
    fn rejects_bad_base64_content() {
        let err = serde_json::from_str::<ResourceDescriptor>(r#"{"content":"!!"}"#).unwrap_err();
        assert!(err.to_string().contains("base64"), "{err}");
    }

    #[test]
    fn golden_canonical_bytes() {
        // Fixes the exact wire form: key order, omitted empties, base64 content.
        let mut ext = JsonObject::new();
        ext.insert("repository".into(), json!("https://github.com/o/r"));
        ext.insert("ref".into(), json!("refs/tags/v1"));
        let mut int = JsonObject::new();
        int.insert(crate::vocab::HERMETIC.into(), json!(true));
        let st = Statement::new(
            vec![ResourceDescriptor::for_bytes("app", b"hello")],
            Provenance {
                build_definition: BuildDefinition {
                    build_type: ids::BUILD_TYPE_SCRIPT.into(),
                    external_parameters: ext,
                    internal_parameters: int,
                    resolved_dependencies: vec![ResourceDescriptor::from_uri("pkg:cargo/a@1")
                        .with_digest("sha256", "00".repeat(32))],
                },
                run_details: RunDetails {
                    builder: Builder {
                        id: ids::BUILDER_ID_SEV_SNP.into(),
                        version: [("kettle".to_string(), "0.1.0".to_string())].into(),
                        builder_dependencies: vec![],
                    },
                    metadata: Some(BuildMetadata {
                        invocation_id: Some("i-1".into()),
                        started_on: Some("2025-01-01T00:00:00Z".into()),
                        finished_on: Some("2025-01-01T00:01:00Z".into()),
                    }),
                    byproducts: vec![ResourceDescriptor::default()
                        .with_name("log")
                        .with_content(b"ok\n".to_vec())
                        .with_media_type("text/plain")],
                },
            },
        );
        let expected = concat!(
            r#"{"_type":"https://in-toto.io/Statement/v1","predicate":{"buildDefinition":{"buildType":"https://kettle.confidential.ai/script/v1","#,
            r#""externalParameters":{"ref":"refs/tags/v1","repository":"https://github.com/o/r"},"internalParameters":{"kettle_hermetic":true},"#,
            r#""resolvedDependencies":[{"digest":{"sha256":"0000000000000000000000000000000000000000000000000000000000000000"},"uri":"pkg:cargo/a@1"}]},"#,
            r#""runDetails":{"builder":{"id":"https://kettle.confidential.ai/tee-builder/v1","version":{"kettle":"0.1.0"}},"#,
            r#""byproducts":[{"content":"b2sK","mediaType":"text/plain","name":"log"}],"#,
            r#""metadata":{"finishedOn":"2025-01-01T00:01:00Z","invocationId":"i-1","startedOn":"2025-01-01T00:00:00Z"}}},"#,
            r#""predicateType":"https://slsa.dev/provenance/v1","#,
            r#""subject":[{"digest":{"sha256":"2cf24dba5fb0a30e26e83b2ac5b9e29e1b161e5c1fa7425e73043362938b9824"},"name":"app"}]}"#
        );
        assert_eq!(
            String::from_utf8(st.to_canonical_bytes().unwrap()).unwrap(),
            expected
        );
        st.validate().unwrap();
    }
}
