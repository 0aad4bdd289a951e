use super::*;
use kettle_provenance::statement::{Provenance, ResourceDescriptor};
use std::fs;

fn ctx(tee: Tee) -> ResultContext {
    ResultContext {
        tee,
        source: SourceRef {
            repository: "https://github.com/o/r".into(),
            git_ref: "refs/heads/main".into(),
            commit: "a".repeat(40),
        },
        image: ImageRef {
            launch_digest: "b".repeat(96),
            manifest_sha256: "c".repeat(64),
        },
        verify_command: vec!["kettle".into(), "verify".into(), "out".into()],
    }
}

/// An output directory with one artifact, its provenance and a report.
fn out_dir() -> tempfile::TempDir {
    let d = tempfile::tempdir().unwrap();
    fs::create_dir(d.path().join(ARTIFACTS_DIR)).unwrap();
    fs::write(d.path().join("artifacts/hello"), b"hi\n").unwrap();
    let statement = Statement::new(
        vec![ResourceDescriptor::for_bytes("hello", b"hi\n")],
        serde_json::from_value::<Provenance>(serde_json::json!({
            "buildDefinition": {"buildType": "t", "externalParameters": {}},
            "runDetails": {"builder": {"id": "b"}}
        }))
        .unwrap(),
    );
    fs::write(
        d.path().join(PROVENANCE_FILE),
        statement.to_canonical_bytes().unwrap(),
    )
    .unwrap();
    fs::write(d.path().join(EVIDENCE_FILE), [7u8; 1184]).unwrap();
    d
}

#[test]
fn a_verified_build_lists_its_artifacts_and_how_to_check_them_again() {
    let d = out_dir();
    let r = BuildResult::for_output_dir(d.path(), Outcome::Verified, None, &ctx(Tee::Simulated));
    assert_eq!(r.exit_code, 0);
    assert_eq!(r.tee, "simulated");
    assert_eq!(
        r.artifacts,
        [Artifact {
            name: "hello".into(),
            path: "artifacts/hello".into(),
            sha256: Sha256Digest::of_bytes(b"hi\n").to_hex(),
        }]
    );
    assert_eq!(
        r.provenance.as_ref().unwrap().sha256,
        Sha256Digest::of_file(&d.path().join(PROVENANCE_FILE))
            .unwrap()
            .to_hex()
    );
    assert_eq!(
        r.evidence.as_ref().unwrap().sha256,
        Sha256Digest::of_bytes(&[7u8; 1184]).to_hex()
    );
    assert_eq!(r.verify_command, ["kettle", "verify", "out"]);
    // Written once, read back as the same object; the schema is the stable name.
    r.write(d.path()).unwrap();
    let text = fs::read_to_string(d.path().join(RESULT_FILE)).unwrap();
    let back: BuildResult = serde_json::from_str(&text).unwrap();
    assert_eq!(back, r);
    assert!(text.contains("\"schema\": \"https://kettle.confidential.ai/build-result/v1\""));
    assert!(text.contains("\"outcome\": \"verified\""), "{text}");
    assert!(text.contains("\"verifyCommand\""), "{text}");
    assert!(r.write(d.path()).is_err(), "never replaced");
}

#[test]
fn an_unverified_or_failed_build_claims_no_artifact() {
    let d = out_dir();
    for outcome in [Outcome::NotVerified, Outcome::BuildFailed] {
        let failure = Failure {
            step: "build".into(),
            message: "cargo failed".into(),
        };
        let r = BuildResult::for_output_dir(d.path(), outcome, Some(failure), &ctx(Tee::SevSnp));
        assert!(r.artifacts.is_empty(), "{outcome:?}");
        assert_eq!(r.exit_code, 1);
        assert_eq!(r.tee, "sev-snp");
    }
    // A provenance.json that is a link is not hashed (the guest's disk chose it).
    fs::remove_file(d.path().join(PROVENANCE_FILE)).unwrap();
    std::os::unix::fs::symlink("/etc/passwd", d.path().join(PROVENANCE_FILE)).unwrap();
    let r = BuildResult::for_output_dir(d.path(), Outcome::Verified, None, &ctx(Tee::SevSnp));
    assert_eq!(r.provenance, None);
    assert!(r.artifacts.is_empty());
}
