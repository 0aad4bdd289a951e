//! Trust-chain steps 3 to 6 of DESIGN.md: the report binds the exact
//! provenance.json bytes, the provenance is a canonical, valid SLSA Statement,
//! every artifact is a subject, and the build's parameters and builder are
//! the expected ones.

use std::collections::BTreeMap;

use kettle_provenance::statement::DIGEST_SHA256;
use kettle_provenance::{ids, jcs, Statement};
use sha2::{Digest, Sha256};

use super::checks::Check;

/// An artifact handed to the verifier: where it came from and its SHA-256.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Artifact {
    /// How to name it in the output (the path given, or its path under artifacts/).
    pub label: String,
    /// The subject name it must carry, when known (its path under an output dir's artifacts/).
    pub subject_name: Option<String>,
    /// SHA-256 of its bytes.
    pub sha256: [u8; 32],
}

impl Artifact {
    /// Hashes `bytes` into an artifact labelled `label`.
    pub fn from_bytes(
        label: impl Into<String>,
        subject_name: Option<String>,
        bytes: &[u8],
    ) -> Artifact {
        Artifact {
            label: label.into(),
            subject_name,
            sha256: Sha256::digest(bytes).into(),
        }
    }
}

/// What the verifier expects of the provenance.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProvenanceExpectations {
    /// `externalParameters.repository` must equal this, when given.
    pub repository: Option<String>,
    /// `externalParameters.ref` must equal this, when given.
    pub git_ref: Option<String>,
    /// `runDetails.builder.id` must equal this.
    pub builder_id: String,
    /// `buildDefinition.buildType` must be one of these.
    pub build_types: Vec<String>,
    /// Also require every subject to have an artifact (an output dir is complete).
    pub require_all_subjects: bool,
}

impl Default for ProvenanceExpectations {
    /// Kettle's own builder and either of its recipes; no repository or ref pinned.
    fn default() -> Self {
        ProvenanceExpectations {
            repository: None,
            git_ref: None,
            builder_id: ids::BUILDER_ID.to_string(),
            build_types: vec![
                ids::BUILD_TYPE_CARGO.to_string(),
                ids::BUILD_TYPE_SCRIPT.to_string(),
            ],
            require_all_subjects: false,
        }
    }
}

/// Runs every provenance check over the exact bytes of provenance.json.
///
/// `report_data` is the report's field when a report was read (None: the
/// binding check is skipped, saying why).
pub fn check_provenance(
    bytes: &[u8],
    report_data: Option<&[u8; 64]>,
    expect: &ProvenanceExpectations,
    artifacts: &[Artifact],
) -> Vec<Check> {
    let mut out = Vec::new();

    // Step 3: the binding is over the bytes as read, never a re-serialization.
    let expected_rd = kettle_attest::report_data_for(bytes);
    out.push(match report_data {
        Some(rd) if rd == &expected_rd => Check::pass(
            "binding.report_data",
            format!(
                "report_data = SHA-256(provenance.json) {} || 32 zero bytes",
                hex::encode(&expected_rd[..32])
            ),
        ),
        Some(rd) => Check::fail(
            "binding.report_data",
            describe_binding_mismatch(rd, &expected_rd),
        ),
        None => Check::skip(
            "binding.report_data",
            "no readable report, so nothing to bind the provenance to",
        ),
    });

    // Step 4: canonical JSON, a valid Statement of the right types.
    out.push(Check::from_bool(
        "provenance.canonical",
        jcs::is_canonical(bytes),
        if jcs::is_canonical(bytes) {
            "provenance.json is RFC 8785 (JCS) canonical JSON".to_string()
        } else {
            "provenance.json is not byte-for-byte RFC 8785 (JCS) canonical JSON (whitespace, key order, escapes or number form differ)".to_string()
        },
    ));

    let statement = match Statement::from_json(bytes) {
        Ok(st) => {
            out.push(Check::pass(
                "provenance.parse",
                "provenance.json parses as an in-toto Statement with SLSA provenance",
            ));
            st
        }
        Err(e) => {
            out.push(Check::fail(
                "provenance.parse",
                format!("provenance.json is not an in-toto SLSA Statement: {e}"),
            ));
            let why = "provenance.json does not parse";
            for name in [
                "provenance.statement_type",
                "provenance.predicate_type",
                "provenance.valid",
                "artifacts",
                "provenance.repository",
                "provenance.ref",
                "provenance.builder_id",
                "provenance.build_type",
            ] {
                out.push(Check::skip(name, why));
            }
            return out;
        }
    };

    out.push(equal_check(
        "provenance.statement_type",
        "_type",
        &statement.type_,
        ids::STATEMENT_TYPE,
    ));
    out.push(equal_check(
        "provenance.predicate_type",
        "predicateType",
        &statement.predicate_type,
        ids::PREDICATE_TYPE_SLSA,
    ));
    out.push(match statement.validate() {
        Ok(()) => Check::pass(
            "provenance.valid",
            "in-toto Statement v1 and SLSA provenance v1 rules hold",
        ),
        Err(e) => Check::fail("provenance.valid", e.to_string()),
    });

    // Step 5: artifacts against subjects.
    out.extend(check_artifacts(&statement, expect, artifacts));

    // Step 6: the build's parameters and builder.
    let ext = &statement.predicate.build_definition.external_parameters;
    out.push(parameter_check(
        "provenance.repository",
        "repository",
        ext.get("repository"),
        expect.repository.as_deref(),
        "--repo",
    ));
    out.push(parameter_check(
        "provenance.ref",
        "ref",
        ext.get("ref"),
        expect.git_ref.as_deref(),
        "--ref",
    ));
    out.push(equal_check(
        "provenance.builder_id",
        "runDetails.builder.id",
        &statement.predicate.run_details.builder.id,
        &expect.builder_id,
    ));
    let build_type = &statement.predicate.build_definition.build_type;
    out.push(Check::from_bool(
        "provenance.build_type",
        expect.build_types.iter().any(|t| t == build_type),
        if expect.build_types.len() == 1 {
            format!(
                "buildDefinition.buildType {build_type:?}, expected {:?}",
                expect.build_types[0]
            )
        } else {
            format!(
                "buildDefinition.buildType {build_type:?}, expected one of {:?}",
                expect.build_types
            )
        },
    ));
    out
}

/// Says which half of report_data differs.
fn describe_binding_mismatch(found: &[u8; 64], expected: &[u8; 64]) -> String {
    let mut parts = Vec::new();
    if found[..32] != expected[..32] {
        parts.push(format!(
            "report_data[0..32] is {} but SHA-256(provenance.json as read) is {}: the provenance is not the one this report attests",
            hex::encode(&found[..32]),
            hex::encode(&expected[..32])
        ));
    }
    if found[32..] != expected[32..] {
        parts.push(format!(
            "report_data[32..64] is {} but must be 32 zero bytes",
            hex::encode(&found[32..])
        ));
    }
    parts.join("; ")
}

fn equal_check(name: &str, field: &str, found: &str, expected: &str) -> Check {
    Check::from_bool(
        name,
        found == expected,
        format!("{field} {found:?}, expected {expected:?}"),
    )
}

/// Compares one externalParameters entry, skipping (saying why) when nothing was expected.
fn parameter_check(
    name: &str,
    key: &str,
    found: Option<&serde_json::Value>,
    expected: Option<&str>,
    flag: &str,
) -> Check {
    let found_text = match found {
        Some(serde_json::Value::String(s)) => Some(s.as_str()),
        _ => None,
    };
    match (expected, found_text) {
        (None, Some(f)) => Check::skip(
            name,
            format!("externalParameters.{key} is {f:?}; not compared because {flag} was not given"),
        ),
        (None, None) => Check::skip(name, format!("not compared because {flag} was not given")),
        (Some(e), Some(f)) => Check::from_bool(
            name,
            e == f,
            format!("externalParameters.{key} {f:?}, expected {e:?}"),
        ),
        (Some(e), None) => Check::fail(
            name,
            format!(
                "externalParameters.{key} is {}, expected {e:?}",
                found.map_or("missing".to_string(), |v| format!("not a string ({v})"))
            ),
        ),
    }
}

/// One check per artifact (its digest must be a subject's), plus completeness when required.
fn check_artifacts(
    statement: &Statement,
    expect: &ProvenanceExpectations,
    artifacts: &[Artifact],
) -> Vec<Check> {
    let mut by_digest: BTreeMap<&str, Vec<&str>> = BTreeMap::new();
    let mut by_name: BTreeMap<&str, &str> = BTreeMap::new();
    for s in &statement.subject {
        if let Some(d) = s.digest.get(DIGEST_SHA256) {
            by_digest
                .entry(d.as_str())
                .or_default()
                .push(s.name.as_deref().unwrap_or("(unnamed)"));
            if let Some(n) = &s.name {
                by_name.insert(n.as_str(), d.as_str());
            }
        }
    }
    let mut out = Vec::new();
    if artifacts.is_empty() {
        out.push(Check::skip(
            "artifacts",
            "no artifact given (use --artifact FILE, or verify an output directory)",
        ));
    }
    for a in artifacts {
        let hex_digest = hex::encode(a.sha256);
        let name = format!("artifact:{}", a.label);
        let by_this_name = a
            .subject_name
            .as_deref()
            .and_then(|n| by_name.get(n).map(|d| (n, *d)));
        out.push(match (by_this_name, by_digest.get(hex_digest.as_str())) {
            // An output dir's file must match the subject of the same name, not merely any subject.
            (Some((n, d)), _) if a.subject_name.is_some() => Check::from_bool(
                name,
                d == hex_digest,
                if d == hex_digest {
                    format!("sha256 {hex_digest} = subject {n:?}")
                } else {
                    format!("sha256 {hex_digest} but subject {n:?} has sha256 {d}: the artifact was replaced or altered")
                },
            ),
            (_, Some(names)) if a.subject_name.is_none() => {
                Check::pass(name, format!("sha256 {hex_digest} = subject {}", names.join(", ")))
            }
            _ => Check::fail(name, format!("sha256 {hex_digest} matches no subject of the provenance")),
        });
    }
    if expect.require_all_subjects {
        let given: Vec<&str> = artifacts
            .iter()
            .filter_map(|a| a.subject_name.as_deref())
            .collect();
        let missing: Vec<String> = statement
            .subject
            .iter()
            .filter_map(|s| s.name.as_deref())
            .filter(|n| !given.contains(n))
            .map(|n| format!("{n:?}"))
            .collect();
        out.push(Check::from_bool(
            "artifacts.complete",
            missing.is_empty(),
            if missing.is_empty() {
                format!(
                    "all {} subject(s) present in artifacts/",
                    statement.subject.len()
                )
            } else {
                format!(
                    "subject(s) with no file in artifacts/: {}",
                    missing.join(", ")
                )
            },
        ));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::verifier::checks::Status;
    use kettle_provenance::{
        BuildDefinition, Builder, JsonObject, Provenance, ResourceDescriptor, RunDetails,
    };
    use serde_json::json;

    fn statement(artifact: &[u8]) -> Vec<u8> {
        let mut ext = JsonObject::new();
        ext.insert("repository".into(), json!("https://example.com/r.git"));
        ext.insert("ref".into(), json!("refs/heads/main"));
        let st = Statement::new(
            vec![ResourceDescriptor::for_bytes("bin/hello", artifact)],
            Provenance {
                build_definition: BuildDefinition {
                    build_type: ids::BUILD_TYPE_CARGO.into(),
                    external_parameters: ext,
                    ..Default::default()
                },
                run_details: RunDetails {
                    builder: Builder {
                        id: ids::BUILDER_ID.into(),
                        ..Default::default()
                    },
                    ..Default::default()
                },
            },
        );
        jcs::to_canonical_bytes(&st).unwrap()
    }

    fn status(checks: &[Check], name: &str) -> Status {
        checks
            .iter()
            .find(|c| c.name == name)
            .unwrap_or_else(|| panic!("no check {name}: {checks:?}"))
            .status
    }

    fn failed(checks: &[Check]) -> Vec<&str> {
        checks
            .iter()
            .filter(|c| c.status == Status::Fail)
            .map(|c| c.name.as_str())
            .collect()
    }

    #[test]
    fn good_provenance_passes_every_check() {
        let bytes = statement(b"hello");
        let rd = kettle_attest::report_data_for(&bytes);
        let exp = ProvenanceExpectations {
            repository: Some("https://example.com/r.git".into()),
            git_ref: Some("refs/heads/main".into()),
            require_all_subjects: true,
            ..Default::default()
        };
        let art = Artifact::from_bytes("bin/hello", Some("bin/hello".into()), b"hello");
        let checks = check_provenance(&bytes, Some(&rd), &exp, &[art]);
        assert!(failed(&checks).is_empty(), "{checks:#?}");
        assert!(
            checks.iter().all(|c| c.status == Status::Pass),
            "{checks:#?}"
        );
    }

    #[test]
    fn one_whitespace_byte_breaks_binding_and_canonical_form() {
        let bytes = statement(b"hello");
        let rd = kettle_attest::report_data_for(&bytes);
        let mut edited = bytes.clone();
        edited.push(b'\n');
        let checks = check_provenance(&edited, Some(&rd), &ProvenanceExpectations::default(), &[]);
        assert_eq!(
            failed(&checks),
            ["binding.report_data", "provenance.canonical"]
        );
        assert_eq!(status(&checks, "artifacts"), Status::Skip);
    }

    #[test]
    fn nonzero_second_half_of_report_data_fails() {
        let bytes = statement(b"hello");
        let mut rd = kettle_attest::report_data_for(&bytes);
        rd[63] = 1;
        let checks = check_provenance(&bytes, Some(&rd), &ProvenanceExpectations::default(), &[]);
        let c = checks
            .iter()
            .find(|c| c.name == "binding.report_data")
            .unwrap();
        assert_eq!(c.status, Status::Fail);
        assert!(c.detail.contains("32 zero bytes"), "{}", c.detail);
    }

    #[test]
    fn replaced_artifact_fails_by_name_and_by_digest() {
        let bytes = statement(b"hello");
        let rd = kettle_attest::report_data_for(&bytes);
        let exp = ProvenanceExpectations::default();
        let named = Artifact::from_bytes("bin/hello", Some("bin/hello".into()), b"evil");
        let loose = Artifact::from_bytes("./hello", None, b"evil");
        let checks = check_provenance(&bytes, Some(&rd), &exp, &[named, loose]);
        assert_eq!(failed(&checks), ["artifact:bin/hello", "artifact:./hello"]);
        assert!(checks
            .iter()
            .any(|c| c.detail.contains("replaced or altered")));
    }

    #[test]
    fn extra_and_missing_artifacts_in_a_directory_fail() {
        let bytes = statement(b"hello");
        let exp = ProvenanceExpectations {
            require_all_subjects: true,
            ..Default::default()
        };
        let extra = Artifact::from_bytes("bin/other", Some("bin/other".into()), b"other");
        let checks = check_provenance(&bytes, None, &exp, &[extra]);
        assert_eq!(
            failed(&checks),
            ["artifact:bin/other", "artifacts.complete"]
        );
        assert_eq!(status(&checks, "binding.report_data"), Status::Skip);
    }

    #[test]
    fn wrong_parameters_builder_and_build_type_are_named() {
        let bytes = statement(b"hello");
        let exp = ProvenanceExpectations {
            repository: Some("https://example.com/other.git".into()),
            git_ref: Some("refs/tags/v2".into()),
            builder_id: "https://example.com/builder".into(),
            build_types: vec![ids::BUILD_TYPE_SCRIPT.into()],
            require_all_subjects: false,
        };
        let checks = check_provenance(&bytes, None, &exp, &[]);
        assert_eq!(
            failed(&checks),
            [
                "provenance.repository",
                "provenance.ref",
                "provenance.builder_id",
                "provenance.build_type"
            ]
        );
    }

    #[test]
    fn unparsable_provenance_skips_dependent_checks_saying_why() {
        let checks = check_provenance(
            b"{\"_type\":",
            None,
            &ProvenanceExpectations::default(),
            &[],
        );
        assert_eq!(
            failed(&checks),
            ["provenance.canonical", "provenance.parse"]
        );
        let skipped: Vec<_> = checks.iter().filter(|c| c.status == Status::Skip).collect();
        assert!(skipped.len() >= 8);
        assert!(skipped
            .iter()
            .skip(1)
            .all(|c| c.detail == "provenance.json does not parse"));
    }
}
