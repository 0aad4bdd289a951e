//! `result.json`: what one `kettle build` did, for the pipelines that run it. The host
//! writes it into every output directory it publishes, and `kettle build --json` prints
//! the same object on stdout. It is the builder's summary, never evidence: an auditor
//! runs `verifyCommand` (or `kettle verify` under a policy) on the directory instead.
//!
//! Stable: `schema` names version 1; later versions only add fields. Artifacts are
//! listed only when the outputs verified, so a digest here is one the verifier checked.

use std::path::Path;

use serde::{Deserialize, Serialize};

use kettle_provenance::{Sha256Digest, Statement};
use kettle_wire::output::{ARTIFACTS_DIR, EVIDENCE_FILE, PROVENANCE_FILE};
use kettle_wire::Tee;

/// The file's name in the output directory.
pub const RESULT_FILE: &str = "result.json";
/// `schema` of this format's version 1.
pub const RESULT_SCHEMA: &str = "https://kettle.confidential.ai/build-result/v1";
/// Largest provenance.json read (as the verifier bounds it).
const MAX_PROVENANCE_BYTES: u64 = kettle_verify::bundle::MAX_PROVENANCE_BYTES;

/// How a build ended, as a pipeline branches on it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub enum Outcome {
    /// Built, and the outputs verified as an auditor would check them (exit 0).
    Verified,
    /// Built, but the outputs do not verify, or could not be checked (exit 1).
    NotVerified,
    /// A guest step failed; `failure` says which (exit 1).
    BuildFailed,
}

/// The commit that was built.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct SourceRef {
    /// The normalized repository URL.
    pub repository: String,
    /// The full ref.
    #[serde(rename = "ref")]
    pub git_ref: String,
    /// The commit id.
    pub commit: String,
}

/// The image the build ran in.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ImageRef {
    /// Its SNP launch digest (hex SHA-384), as the manifest computes it.
    pub launch_digest: String,
    /// SHA-256 of its manifest.json.
    pub manifest_sha256: String,
}

/// A file of the output directory and its SHA-256.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct OutputFile {
    /// Its path relative to the output directory (`artifacts/hello`, `provenance.json`).
    pub path: String,
    /// Hex SHA-256 of its bytes.
    pub sha256: String,
}

/// A verified artifact: its provenance subject name, where it is, and its digest.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Artifact {
    /// The subject name in the provenance.
    pub name: String,
    /// Its path relative to the output directory.
    pub path: String,
    /// Hex SHA-256, checked by the verifier.
    pub sha256: String,
}

/// The guest step that failed and what it said.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Failure {
    /// The step (`build`, `verify`, ...), or `host` when the outputs could not be checked.
    pub step: String,
    /// Its message, as plain text (the guest or the build chose it: escape it to print it).
    pub message: String,
}

/// `result.json` (see the module docs).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct BuildResult {
    /// [`RESULT_SCHEMA`].
    pub schema: String,
    /// How the build ended.
    pub outcome: Outcome,
    /// `kettle build`'s exit status for this outcome.
    pub exit_code: u8,
    /// `sev-snp` or `simulated` (test keys: nothing hardware-attested), as status.json says.
    pub tee: String,
    /// The commit built.
    pub source: SourceRef,
    /// The image it ran in.
    pub image: ImageRef,
    /// The verified artifacts (empty unless `outcome` is `verified`).
    pub artifacts: Vec<Artifact>,
    /// provenance.json, when the guest wrote one.
    pub provenance: Option<OutputFile>,
    /// The attestation report, when the guest wrote one.
    pub evidence: Option<OutputFile>,
    /// What failed, unless `outcome` is `verified`.
    pub failure: Option<Failure>,
    /// The command that re-checks this directory as the build did (argv).
    pub verify_command: Vec<String>,
}

/// What every result of one build shares, known before the outcome.
#[derive(Debug, Clone)]
pub struct ResultContext {
    /// The TEE the build ran under.
    pub tee: Tee,
    /// The commit built.
    pub source: SourceRef,
    /// The image it ran in.
    pub image: ImageRef,
    /// The `kettle verify` argv that re-checks the published directory.
    pub verify_command: Vec<String>,
}

impl BuildResult {
    /// The result for the output directory `dir` (hashed as it is now); artifacts are
    /// read from the provenance only when `outcome` is verified.
    pub fn for_output_dir(
        dir: &Path,
        outcome: Outcome,
        failure: Option<Failure>,
        ctx: &ResultContext,
    ) -> BuildResult {
        let artifacts = match outcome {
            Outcome::Verified => verified_artifacts(dir),
            Outcome::NotVerified | Outcome::BuildFailed => Vec::new(),
        };
        BuildResult {
            schema: RESULT_SCHEMA.into(),
            exit_code: match outcome {
                Outcome::Verified => 0,
                Outcome::NotVerified | Outcome::BuildFailed => super::EXIT_FAILED,
            },
            outcome,
            tee: ctx.tee.platform_name().into(),
            source: ctx.source.clone(),
            image: ctx.image.clone(),
            artifacts,
            provenance: digest_of(dir, PROVENANCE_FILE, MAX_PROVENANCE_BYTES),
            evidence: digest_of(
                dir,
                EVIDENCE_FILE,
                kettle_verify::bundle::MAX_EVIDENCE_BYTES,
            ),
            failure,
            verify_command: ctx.verify_command.clone(),
        }
    }

    /// Pretty JSON with a final newline.
    pub fn to_json(&self) -> String {
        let mut s = serde_json::to_string_pretty(self).expect("a result serializes");
        s.push('\n');
        s
    }

    /// Writes `out/result.json` (replacing nothing: the host writes it once, last).
    pub fn write(&self, out: &Path) -> std::io::Result<()> {
        let mut f = std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .open(out.join(RESULT_FILE))?;
        std::io::Write::write_all(&mut f, self.to_json().as_bytes())
    }
}

/// `name` in `out` with its SHA-256, when it is a regular file within `limit` bytes (the
/// verifier's bounded reader: the guest wrote the directory).
fn digest_of(out: &Path, name: &'static str, limit: u64) -> Option<OutputFile> {
    let bytes = kettle_verify::bundle::read_regular(name, &out.join(name), limit).ok()?;
    Some(OutputFile {
        path: name.into(),
        sha256: Sha256Digest::of_bytes(&bytes).to_hex(),
    })
}

/// The provenance's subjects, which the verifier has just matched with the files.
fn verified_artifacts(out: &Path) -> Vec<Artifact> {
    let Ok(bytes) = kettle_verify::bundle::read_regular(
        PROVENANCE_FILE,
        &out.join(PROVENANCE_FILE),
        MAX_PROVENANCE_BYTES,
    ) else {
        return Vec::new();
    };
    let Ok(statement) = Statement::from_json(&bytes) else {
        return Vec::new();
    };
    statement
        .subject
        .iter()
        .filter_map(|s| {
            Some(Artifact {
                name: s.name.clone()?,
                path: format!("{ARTIFACTS_DIR}/{}", s.name.as_deref()?),
                sha256: s.digest.get("sha256")?.clone(),
            })
        })
        .collect()
}

#[cfg(test)]
mod tests;
