use std::collections::BTreeMap;

use kettle_testkit::evidence::{simulated_output_dir, StatementSpec};
use serde_json::Value;

use super::*;
use crate::{BundleFiles, Expectations, ProvenanceExpectations, SourcePin};

const MEASUREMENT: [u8; 48] = [0x5a; 48];

fn context() -> VsaContext {
    VsaContext {
        verifier_version: BTreeMap::from([("kettle".to_owned(), "0.1.0".to_owned())]),
        time_verified: "2026-12-07T18:00:00Z".to_owned(),
        flags_policy_uri: "kettle-verify:command-line".to_owned(),
        resource_uri: "https://github.com/o/r".to_owned(),
        evidence_uri: "evidence".to_owned(),
        provenance_uri: "provenance.json".to_owned(),
    }
}

/// A simulated output dir verified (or, with `expected_commit` wrong, rejected).
fn judged(expected_commit: &str) -> (Verdict, Bundle) {
    let dir = tempfile::tempdir().unwrap();
    let spec = StatementSpec::default();
    simulated_output_dir(dir.path(), &spec, MEASUREMENT);
    let bundle = Bundle::load(&BundleFiles::output_dir(dir.path()).unwrap()).unwrap();
    let expect = Expectations {
        provenance: ProvenanceExpectations {
            repository: Some(spec.repository.into()),
            git_ref: Some(spec.git_ref.into()),
            source: SourcePin::Commit(expected_commit.into()),
            ..Default::default()
        },
        ..Expectations::new(MEASUREMENT, "the test measurement")
    }
    .accepting_simulated();
    (crate::verify(&bundle, &expect), bundle)
}

fn parsed(bytes: &[u8]) -> Value {
    serde_json::from_slice(bytes).unwrap()
}

#[test]
fn a_simulated_pass_is_passed_with_no_build_level_and_names_what_was_verified() {
    let (verdict, bundle) = judged(StatementSpec::default().commit.unwrap());
    assert!(verdict.verified, "{verdict}");
    let bytes = summary(&verdict, &bundle, &context());
    // RFC 8785: the bytes are their own canonical form.
    assert_eq!(
        kettle_provenance::jcs::canonicalize_json(&bytes).unwrap(),
        bytes
    );
    let v = parsed(&bytes);
    assert_eq!(v["_type"], ids::STATEMENT_TYPE);
    assert_eq!(v["predicateType"], PREDICATE_TYPE_VSA);
    let p = &v["predicate"];
    assert_eq!(p["verificationResult"], "PASSED");
    // Simulated evidence shows no build-track level, whatever it passed.
    assert_eq!(p["verifiedLevels"], serde_json::json!([LEVEL_NONE]));
    assert_eq!(p["verifier"]["id"], verifier_id());
    assert_eq!(p["verifier"]["version"]["kettle"], "0.1.0");
    assert_eq!(p["policy"]["uri"], "kettle-verify:command-line");
    // Every artifact the provenance names, with the digest the verifier computed.
    let names: Vec<&str> = v["subject"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["name"].as_str().unwrap())
        .collect();
    let expected: Vec<&str> = StatementSpec::default()
        .subjects
        .iter()
        .map(|(n, _)| *n)
        .collect();
    assert_eq!(names, expected);
    let inputs = p["inputAttestations"].as_array().unwrap();
    assert_eq!(inputs.len(), 2);
    assert_eq!(
        inputs[0]["digest"]["sha256"],
        Sha256Digest::of_bytes(bundle.provenance.as_deref().unwrap()).to_hex()
    );
    assert_eq!(
        inputs[1]["digest"]["sha256"],
        Sha256Digest::of_bytes(&bundle.report).to_hex()
    );
}

#[test]
fn a_rejection_is_failed_and_claims_no_level() {
    let (verdict, bundle) = judged("ffffffffffffffffffffffffffffffffffffffff");
    assert!(!verdict.verified);
    let v = parsed(&summary(&verdict, &bundle, &context()));
    assert_eq!(v["predicate"]["verificationResult"], "FAILED");
    assert_eq!(
        v["predicate"]["verifiedLevels"],
        serde_json::json!([LEVEL_FAILED])
    );
}

#[test]
fn only_hardware_attested_bound_evidence_shows_a_build_level() {
    let (mut verdict, _) = judged(StatementSpec::default().commit.unwrap());
    assert_eq!(verified_levels(&verdict), [LEVEL_NONE]);
    verdict.simulated = false;
    assert_eq!(verified_levels(&verdict), [LEVEL_ATTESTED]);
    // A report with no provenance bound to it says nothing about a build.
    verdict.binding_checked = false;
    assert_eq!(verified_levels(&verdict), [LEVEL_NONE]);
    verdict.verified = false;
    assert_eq!(verified_levels(&verdict), [LEVEL_FAILED]);
}

#[test]
fn the_repository_is_read_from_the_provenance() {
    let (_, bundle) = judged(StatementSpec::default().commit.unwrap());
    assert_eq!(
        repository_of(bundle.provenance.as_deref()).as_deref(),
        Some(StatementSpec::default().repository)
    );
    assert_eq!(repository_of(Some(b"not json")), None);
    assert_eq!(repository_of(None), None);
}
