//! A SLSA Verification Summary Attestation (VSA) v1 over a verdict: an in-toto
//! Statement whose predicate says who verified which artifacts, under which
//! policy, from which attestations, and with what result, for pipelines that
//! consume a verification instead of redoing it. It never claims more than the
//! verdict showed: a build level only for hardware-attested evidence bound to
//! its provenance, `FAILED` for a rejection (a VSA is written for failures too).

use std::collections::BTreeMap;

use kettle_provenance::statement::ResourceDescriptor;
use kettle_provenance::{ids, Sha256Digest, Statement};
use serde::Serialize;

use crate::bundle::Bundle;
use crate::verdict::Verdict;

/// The VSA v1 predicate type.
pub const PREDICATE_TYPE_VSA: &str = "https://slsa.dev/verification_summary/v1";
/// The SLSA version the levels refer to.
pub const SLSA_VERSION: &str = "1.0";
/// The level of a verified, hardware-attested build: the SNP guest is the build
/// platform's isolated control plane, the report signs the provenance, and the
/// build sandbox cannot reach the attestation device.
pub const LEVEL_ATTESTED: &str = "SLSA_BUILD_LEVEL_3";
/// The level of anything verified that is not hardware-attested and bound
/// (simulated evidence, a report with no provenance): no build-track guarantee.
pub const LEVEL_NONE: &str = "SLSA_BUILD_LEVEL_0";
/// What `verifiedLevels` holds when the verification failed.
pub const LEVEL_FAILED: &str = "FAILED";

/// The verifier's id in a VSA.
pub fn verifier_id() -> String {
    format!("{}/verifier/v1", ids::BASE)
}

/// What the caller knows that the verdict does not: who verified, when, under
/// which policy, and where the inputs came from.
#[derive(Debug, Clone)]
pub struct VsaContext {
    /// The verifier's version (`kettle` and its version).
    pub verifier_version: BTreeMap<String, String>,
    /// When the verification ran (RFC 3339 UTC).
    pub time_verified: String,
    /// The policy verified against when there was no policy file: a URI naming
    /// the command line's expectations.
    pub flags_policy_uri: String,
    /// The resource the artifacts belong to (the repository the provenance
    /// names, else the output directory's URI).
    pub resource_uri: String,
    /// How the evidence and provenance are named in `inputAttestations`.
    pub evidence_uri: String,
    /// The provenance's name in `inputAttestations`.
    pub provenance_uri: String,
}

/// The VSA v1 predicate (field names as the SLSA spec spells them).
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct VerificationSummary {
    /// Who verified.
    pub verifier: Verifier,
    /// When.
    pub time_verified: String,
    /// The resource the artifacts belong to.
    pub resource_uri: String,
    /// The policy verified against.
    pub policy: ResourceDescriptor,
    /// The attestations the verification read.
    pub input_attestations: Vec<ResourceDescriptor>,
    /// `PASSED` or `FAILED`.
    pub verification_result: String,
    /// The build level shown, or `FAILED`.
    pub verified_levels: Vec<String>,
    /// The SLSA version of the levels.
    pub slsa_version: String,
}

/// The verifier's identity.
#[derive(Debug, Clone, Serialize)]
pub struct Verifier {
    /// Its URI.
    pub id: String,
    /// Component -> version.
    pub version: BTreeMap<String, String>,
}

/// The build level `verdict` shows, as `verifiedLevels` says it.
pub fn verified_levels(verdict: &Verdict) -> Vec<String> {
    let level = if !verdict.verified {
        LEVEL_FAILED
    } else if verdict.simulated || !verdict.binding_checked {
        LEVEL_NONE
    } else {
        LEVEL_ATTESTED
    };
    vec![level.to_owned()]
}

/// The VSA over `verdict` and the `bundle` it judged, as RFC 8785 bytes. Its
/// subjects are the artifacts the provenance names that the verifier hashed;
/// with none, the provenance itself (else the evidence), so the Statement is
/// never without a subject.
pub fn summary(verdict: &Verdict, bundle: &Bundle, ctx: &VsaContext) -> Vec<u8> {
    let provenance_digest = bundle.provenance.as_deref().map(Sha256Digest::of_bytes);
    let evidence_digest = Sha256Digest::of_bytes(&bundle.report);
    let mut subject: Vec<ResourceDescriptor> = bundle
        .artifacts
        .iter()
        .filter_map(|a| {
            let name = a.subject_name.as_ref()?;
            let digest = a.sha256.as_ref().ok()?;
            Some(
                ResourceDescriptor::default()
                    .with_name(name)
                    .with_digest("sha256", digest.to_hex()),
            )
        })
        .collect();
    if subject.is_empty() {
        subject.push(match &provenance_digest {
            Some(d) => ResourceDescriptor::default()
                .with_name(ctx.provenance_uri.clone())
                .with_digest("sha256", d.to_hex()),
            None => ResourceDescriptor::default()
                .with_name(ctx.evidence_uri.clone())
                .with_digest("sha256", evidence_digest.to_hex()),
        });
    }
    let policy = match &verdict.policy {
        Some(p) => {
            // A loosened policy is not the published one: the URI says which fields were replaced.
            let mut uri = format!("policy:{}", p.name);
            if !p.overrides.is_empty() {
                let fields: Vec<&str> = p.overrides.keys().copied().collect();
                uri.push_str(&format!("#loosened={}", fields.join(",")));
            }
            ResourceDescriptor::from_uri(uri).with_digest("sha256", p.sha256.to_hex())
        }
        None => ResourceDescriptor::from_uri(ctx.flags_policy_uri.clone()),
    };
    let mut input_attestations = Vec::new();
    if let Some(d) = &provenance_digest {
        input_attestations.push(
            ResourceDescriptor::from_uri(ctx.provenance_uri.clone())
                .with_digest("sha256", d.to_hex()),
        );
    }
    input_attestations.push(
        ResourceDescriptor::from_uri(ctx.evidence_uri.clone())
            .with_digest("sha256", evidence_digest.to_hex()),
    );
    let predicate = VerificationSummary {
        verifier: Verifier {
            id: verifier_id(),
            version: ctx.verifier_version.clone(),
        },
        time_verified: ctx.time_verified.clone(),
        resource_uri: ctx.resource_uri.clone(),
        policy,
        input_attestations,
        verification_result: if verdict.verified { "PASSED" } else { "FAILED" }.to_owned(),
        verified_levels: verified_levels(verdict),
        slsa_version: SLSA_VERSION.to_owned(),
    };
    let statement = Statement {
        type_: ids::STATEMENT_TYPE.to_owned(),
        subject,
        predicate_type: PREDICATE_TYPE_VSA.to_owned(),
        predicate,
    };
    statement
        .to_canonical_bytes()
        .expect("a VSA is plain strings and maps: it always canonicalizes")
}

/// The repository a provenance names (`externalParameters.repository`), if any.
pub fn repository_of(provenance: Option<&[u8]>) -> Option<String> {
    let statement: Statement<serde_json::Value> = Statement::from_json_generic(provenance?).ok()?;
    statement.predicate["buildDefinition"]["externalParameters"]["repository"]
        .as_str()
        .map(str::to_owned)
}

#[cfg(test)]
mod tests;
