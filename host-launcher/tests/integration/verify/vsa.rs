//! `kettle verify --vsa FILE`: a SLSA Verification Summary Attestation v1 for a
//! pass and for a rejection, each accepted by an independent parser (the
//! in-toto-attestation package, through verify/tests/vsa_check.py), and never
//! claiming a build level for simulated evidence.

use std::path::{Path, PathBuf};
use std::process::Command;

use kettle_testkit::evidence::{image_dir, simulated_output_dir, StatementSpec};
use kettle_verify::vsa::{LEVEL_FAILED, LEVEL_NONE, PREDICATE_TYPE_VSA};
use serde_json::Value;

const MEASUREMENT: [u8; 48] = [0x5a; 48];

/// The peer venv's python (`make setup` makes it; KETTLE_VENV moves it).
fn peer_python() -> PathBuf {
    let venv = std::env::var("KETTLE_VENV").unwrap_or_else(|_| "/opt/kettle-venv".into());
    let python = Path::new(&venv).join("bin/python3");
    assert!(
        python.exists(),
        "peer venv missing: {} not found (run `make setup`, or set KETTLE_VENV)",
        python.display()
    );
    python
}

/// vsa_check.py's verdict on `file`: (exit code, what it printed).
fn peer_check(file: &Path) -> (i32, String) {
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("../verify/tests/vsa_check.py");
    let out = Command::new(peer_python())
        .arg(script)
        .arg(file)
        .output()
        .expect("run vsa_check.py");
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    (out.status.code().unwrap_or(-1), text)
}

/// `kettle verify` of a simulated output directory, pinning `commit`, writing the VSA to
/// `vsa`; returns the exit code and the VSA.
fn verify_with_vsa(commit: &str, vsa: &Path) -> (i32, Value, Vec<u8>) {
    let dir = tempfile::tempdir().unwrap();
    simulated_output_dir(dir.path(), &StatementSpec::default(), MEASUREMENT);
    let image = tempfile::tempdir().unwrap();
    let manifest = image_dir(image.path(), MEASUREMENT);
    let out = Command::new(env!("CARGO_BIN_EXE_kettle"))
        .args(["verify", dir.path().to_str().unwrap(), "--allow-simulated"])
        .args(["--manifest", manifest.to_str().unwrap(), "--commit", commit])
        .arg("--vsa")
        .arg(vsa)
        .output()
        .expect("run kettle");
    let bytes = std::fs::read(vsa).unwrap_or_else(|e| {
        panic!(
            "no VSA at {}: {e}\n{}",
            vsa.display(),
            String::from_utf8_lossy(&out.stderr)
        )
    });
    let v = serde_json::from_slice(&bytes).unwrap();
    (out.status.code().unwrap_or(-1), v, bytes)
}

#[test]
fn a_pass_and_a_rejection_each_write_a_vsa_the_in_toto_parser_accepts() {
    let files = tempfile::tempdir().unwrap();
    let spec = StatementSpec::default();

    let passed = files.path().join("passed.vsa.json");
    let (code, v, _) = verify_with_vsa(spec.commit.unwrap(), &passed);
    assert_eq!(code, 0);
    assert_eq!(v["predicateType"], PREDICATE_TYPE_VSA);
    assert_eq!(v["predicate"]["verificationResult"], "PASSED");
    // Simulated evidence: verified, but no build-track level.
    assert_eq!(
        v["predicate"]["verifiedLevels"],
        serde_json::json!([LEVEL_NONE])
    );
    assert_eq!(v["predicate"]["resourceUri"], spec.repository);
    assert_eq!(v["subject"][0]["name"], spec.subjects[0].0);
    let (peer, text) = peer_check(&passed);
    assert_eq!(peer, 0, "{text}");

    let failed = files.path().join("failed.vsa.json");
    let (code, v, _) = verify_with_vsa("ffffffffffffffffffffffffffffffffffffffff", &failed);
    assert_eq!(code, 1);
    assert_eq!(v["predicate"]["verificationResult"], "FAILED");
    assert_eq!(
        v["predicate"]["verifiedLevels"],
        serde_json::json!([LEVEL_FAILED])
    );
    let (peer, text) = peer_check(&failed);
    assert_eq!(peer, 0, "{text}");
}

/// Writes `vsa` to `path` as canonical JSON and runs the peer check over it.
fn peer_check_of(path: &Path, vsa: &serde_json::Value) -> (i32, String) {
    let bytes = kettle_provenance::jcs::to_canonical_bytes(vsa).unwrap();
    std::fs::write(path, bytes).unwrap();
    peer_check(path)
}

#[test]
fn the_peer_check_rejects_a_vsa_that_claims_a_level_it_failed() {
    let files = tempfile::tempdir().unwrap();
    let vsa = files.path().join("vsa.json");
    let (_, mut v, _) = verify_with_vsa("ffffffffffffffffffffffffffffffffffffffff", &vsa);
    v["predicate"]["verifiedLevels"] = serde_json::json!(["SLSA_BUILD_LEVEL_3"]);
    let lying = files.path().join("lying.json");
    let (peer, text) = peer_check_of(&lying, &v);
    assert_eq!(peer, 1, "{text}");
    assert!(text.contains("disagree"), "{text}");
    // And one with a field the schema does not have.
    v["predicate"]["verifiedLevels"] = serde_json::json!([LEVEL_FAILED]);
    v["predicate"]["trustMe"] = serde_json::json!(true);
    let (peer, text) = peer_check_of(&lying, &v);
    assert_eq!(peer, 1, "{text}");
}
