//! `kettle verify` on simulated evidence: a report from attest's SimulatedPsp
//! binding a provenance made with the provenance crate, laid out as `kettle
//! build` leaves an output directory. The good case passes only with
//! --allow-simulated; every tampering is rejected (exit 1) naming the check.

use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use kettle_attest::simulated::SimulatedPsp;
use kettle_provenance::ids;
use kettle_testkit::evidence::{image_dir, simulated_output_dir, StatementSpec};

const MEASUREMENT: [u8; 48] = [0x5a; 48];

fn spec() -> StatementSpec<'static> {
    StatementSpec::default()
}
const REPO: &str = "https://example.com/hello.git";
const REF: &str = "refs/heads/main";
const COMMIT: &str = "0123456789abcdef0123456789abcdef01234567";

/// provenance.json of a build of `artifact` from `repo`.
fn provenance_bytes(artifact: &'static [u8], repo: &'static str) -> Vec<u8> {
    StatementSpec {
        subjects: vec![("out/hello.txt", artifact)],
        repository: repo,
        ..spec()
    }
    .bytes()
}

/// An output directory as `kettle build --tee simulated` leaves it.
fn output_dir() -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    simulated_output_dir(dir.path(), &spec(), MEASUREMENT);
    // The build host's copy of the manifest: present, and never used.
    fs::copy(published_manifest(), dir.path().join("manifest.json")).unwrap();
    dir
}

fn kettle(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_kettle"))
        .args(args)
        .output()
        .expect("run kettle")
}

fn s(p: &Path) -> &str {
    p.to_str().unwrap()
}

/// The image manifest as its platform team published it (outside any output directory).
fn published_manifest() -> &'static Path {
    static MANIFEST: std::sync::OnceLock<(tempfile::TempDir, PathBuf)> = std::sync::OnceLock::new();
    let (_, path) = MANIFEST.get_or_init(|| {
        let d = tempfile::tempdir().unwrap();
        let m = image_dir(d.path(), MEASUREMENT);
        (d, m)
    });
    path
}

/// Another image's manifest.
fn other_manifest(dir: &Path, digest: [u8; 48]) -> PathBuf {
    image_dir(&dir.join("other-image"), digest)
}

/// Runs `kettle verify` and returns (exit code, stdout). Unless the arguments say
/// otherwise, the auditor names the published manifest and pins the built commit.
fn verify<A: AsRef<str>>(args: &[A]) -> (i32, String) {
    let args: Vec<&str> = args.iter().map(AsRef::as_ref).collect();
    let mut all = vec!["verify"];
    all.extend_from_slice(&args);
    if !args
        .iter()
        .any(|a| *a == "--manifest" || *a == "--measurement")
    {
        all.extend(["--manifest", s(published_manifest())]);
    }
    let report_only = args.contains(&"--evidence") && !args.contains(&"--provenance");
    if !report_only
        && !args
            .iter()
            .any(|a| *a == "--commit" || *a == "--any-source" || *a == "--source")
    {
        all.extend(["--commit", COMMIT]);
    }
    let out = kettle(&all);
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    let stderr = String::from_utf8_lossy(&out.stderr);
    (out.status.code().unwrap_or(-1), format!("{stdout}{stderr}"))
}

fn failed_checks(text: &str) -> Vec<String> {
    text.lines()
        .filter_map(|l| l.strip_prefix("[FAIL] "))
        .map(|l| l.split_whitespace().next().unwrap().to_string())
        .collect()
}

/// Verifies `dir` with --allow-simulated and `extra`; asserts it is rejected (exit 1) by
/// exactly the checks `failed`, in order, and returns what it printed.
fn assert_rejected(dir: &Path, extra: &[&str], failed: &[&str]) -> String {
    let mut args = vec![s(dir), "--allow-simulated"];
    args.extend_from_slice(extra);
    let (code, text) = verify(&args);
    assert_eq!(code, 1, "{extra:?}: {text}");
    assert_eq!(failed_checks(&text), failed, "{extra:?}: {text}");
    text
}

/// The files of a report in an output directory, as `kettle verify` flags name them.
const REPORT_FILES: [(&str, &str); 3] = [
    ("--evidence", "evidence"),
    ("--chain", "chain.pem"),
    ("--manifest", "manifest.json"),
];

/// `flag path` for each `(flag, file)`, the file in output directory `dir`.
fn file_flags(dir: &Path, files: &[(&str, &str)]) -> Vec<String> {
    files
        .iter()
        .flat_map(|(flag, file)| [flag.to_string(), s(&dir.join(file)).to_string()])
        .collect()
}

/// Replaces the report in `dir` with one of a guest measured as `measurement` that built `provenance`.
fn replace_report(dir: &Path, measurement: [u8; 48], provenance: &[u8]) {
    let report = SimulatedPsp::new(measurement)
        .report(&kettle_attest::report_data_for(provenance), 0)
        .unwrap();
    fs::write(dir.join("evidence"), report).unwrap();
}

#[test]
fn good_output_dir_verifies_only_with_allow_simulated() {
    let dir = output_dir();
    let (code, text) = verify(&[
        s(dir.path()),
        "--allow-simulated",
        "--repo",
        REPO,
        "--ref",
        REF,
    ]);
    assert_eq!(code, 0, "{text}");
    assert!(text.contains("[PASS] binding.report_data"), "{text}");
    assert!(text.contains("[PASS] artifact:out/hello.txt"), "{text}");
    assert!(text.contains("[PASS] artifacts.complete"), "{text}");
    assert!(text.contains("[PASS] provenance.repository"), "{text}");
    assert!(text.contains("SIMULATED"), "{text}");
    // Only what needs the auditor's CRL and clock is skipped, saying so.
    let skipped: Vec<&str> = text.lines().filter(|l| l.starts_with("[SKIP]")).collect();
    assert_eq!(skipped.len(), 3, "{text}");
    assert!(
        skipped[0].contains("report.revocation") && skipped[1].contains("report.cert_validity"),
        "{text}"
    );
    // This hand-made provenance names no image; the guest's always does.
    assert!(skipped[2].contains("provenance.image"), "{text}");
    assert!(text.contains(&format!("built commit: {COMMIT}")), "{text}");

    // The manifest copied into the dir by the build host is never the expected measurement.
    let out = kettle(&[
        "verify",
        s(dir.path()),
        "--allow-simulated",
        "--commit",
        COMMIT,
    ]);
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("PUBLISHED manifest"));
    // Nothing pinned about the source: not VERIFIED.
    let out = kettle(&[
        "verify",
        s(dir.path()),
        "--allow-simulated",
        "--manifest",
        s(published_manifest()),
    ]);
    let text = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(1), "{text}");
    assert_eq!(failed_checks(&text), ["provenance.source"], "{text}");
    assert!(text.contains("not pinned"), "{text}");
    assert_rejected(
        dir.path(),
        &["--commit", &"ab".repeat(20)],
        &["provenance.source"],
    );
    let (code, text) = verify(&[s(dir.path()), "--allow-simulated", "--any-source"]);
    assert_eq!(code, 0, "{text}");

    let (code, text) = verify(&[s(dir.path())]);
    assert_eq!(code, 1, "{text}");
    assert!(
        failed_checks(&text).contains(&"report.simulated".to_string()),
        "{text}"
    );
}

#[test]
fn explicit_files_and_json_verdict() {
    let dir = output_dir();
    let files = [
        [("--provenance", "provenance.json")].as_slice(),
        &REPORT_FILES,
        &[("--artifact", "artifacts/out/hello.txt")],
    ]
    .concat();
    let mut args = file_flags(dir.path(), &files);
    args.extend(
        [
            "--allow-simulated",
            "--build-type",
            ids::BUILD_TYPE_SCRIPT,
            "--json",
        ]
        .map(String::from),
    );
    let (code, text) = verify(&args);
    assert_eq!(code, 0, "{text}");
    let v: serde_json::Value = serde_json::from_str(&text).unwrap();
    assert_eq!(v["verified"], true);
    assert_eq!(v["simulated"], true);
    assert_eq!(v["binding_checked"], true);
}

#[test]
fn replaced_artifact_is_rejected() {
    let dir = output_dir();
    fs::write(dir.path().join("artifacts/out/hello.txt"), b"evil\n").unwrap();
    assert_rejected(dir.path(), &[], &["artifact:out/hello.txt"]);
}

#[test]
fn an_artifact_that_is_no_subject_is_rejected() {
    let dir = output_dir();
    fs::write(dir.path().join("artifacts/extra.bin"), b"smuggled").unwrap();
    assert_rejected(dir.path(), &[], &["artifact:extra.bin"]);
}

#[test]
fn one_whitespace_byte_in_the_provenance_is_rejected() {
    let dir = output_dir();
    let path = dir.path().join("provenance.json");
    let mut bytes = fs::read(&path).unwrap();
    let at = bytes.iter().position(|b| *b == b',').unwrap() + 1;
    bytes.insert(at, b' ');
    fs::write(&path, bytes).unwrap();
    assert_rejected(
        dir.path(),
        &[],
        &["binding.report_data", "provenance.canonical"],
    );
}

#[test]
fn a_report_from_another_build_is_rejected() {
    let dir = output_dir();
    let other = provenance_bytes(b"another artifact\n", REPO);
    replace_report(dir.path(), MEASUREMENT, &other);
    assert_rejected(dir.path(), &[], &["binding.report_data"]);
}

#[test]
fn a_wrong_manifest_or_measurement_is_rejected() {
    let dir = output_dir();
    let wrong = other_manifest(dir.path(), [0x11; 48]);
    let text = assert_rejected(
        dir.path(),
        &["--manifest", s(&wrong)],
        &["report.measurement"],
    );
    assert!(text.contains("other-image/manifest.json"), "{text}");

    assert_rejected(
        dir.path(),
        &["--measurement", &"22".repeat(48)],
        &["report.measurement"],
    );
}

#[test]
fn a_report_from_another_image_is_rejected() {
    let dir = output_dir();
    let prov = fs::read(dir.path().join("provenance.json")).unwrap();
    replace_report(dir.path(), [0x77; 48], &prov);
    assert_rejected(dir.path(), &[], &["report.measurement"]);
}

#[test]
fn unexpected_repository_ref_builder_and_build_type_are_rejected() {
    let dir = output_dir();
    assert_rejected(
        dir.path(),
        &[
            "--repo",
            "https://example.com/other.git",
            "--ref",
            "refs/tags/v9",
            "--builder-id",
            "https://example.com/builder/v1",
            "--build-type",
            ids::BUILD_TYPE_CARGO,
        ],
        &[
            "provenance.repository",
            "provenance.ref",
            "provenance.builder_id",
            "provenance.build_type",
        ],
    );
}

#[test]
fn report_alone_says_the_binding_was_not_checked() {
    let dir = output_dir();
    let mut args = file_flags(dir.path(), &REPORT_FILES);
    args.push("--allow-simulated".into());
    let (code, text) = verify(&args);
    assert_eq!(code, 0, "{text}");
    assert!(text.contains("[SKIP] binding.report_data"), "{text}");
    assert!(text.contains("NOT checked"), "{text}");
}

#[test]
fn a_local_build_or_missing_dir_cannot_be_verified() {
    let dir = output_dir();
    fs::remove_file(dir.path().join("evidence")).unwrap();
    let (code, text) = verify(&[s(dir.path()), "--allow-simulated"]);
    assert_eq!(code, 2, "{text}");
    assert!(text.contains("never hardware-attested"), "{text}");
    let missing: PathBuf = dir.path().join("nope");
    let (code, _) = verify(&[s(&missing)]);
    assert_eq!(code, 2);
}

/// Issue 25: with a stale `--crl` (and a stale copy in the cache), `--fetch-crl` still
/// decides: the newest CRL by thisUpdate, here AMD's (a stand-in's) revoking the VCEK, wins.
#[test]
fn fetch_crl_is_not_shadowed_by_an_older_crl() {
    use kettle_attest::simulated::certs::test_crl_revoking_vcek;
    use kettle_testkit::evidence::{clean_simulated_crl, CRL_NEXT_UPDATE, CRL_THIS_UPDATE};
    let dir = output_dir();
    let newer = test_crl_revoking_vcek(CRL_THIS_UPDATE + 86_400, CRL_NEXT_UPDATE + 86_400).unwrap();
    let files = tempfile::tempdir().unwrap();
    let old = files.path().join("old.crl");
    fs::write(&old, clean_simulated_crl()).unwrap();
    // A copy an earlier --fetch-crl left, still before its nextUpdate.
    let cache = files.path().join("cache");
    fs::create_dir_all(cache.join("crl")).unwrap();
    fs::write(cache.join("crl/vcek-Genoa.crl"), clean_simulated_crl()).unwrap();
    let (base, server) = super::serve_once(newer);
    let out = Command::new(env!("CARGO_BIN_EXE_kettle"))
        .env("KETTLE_CACHE_DIR", &cache)
        .args([
            "verify",
            s(dir.path()),
            "--allow-simulated",
            "--manifest",
            s(published_manifest()),
            "--commit",
            COMMIT,
            "--crl",
            s(&old),
            "--fetch-crl",
            "--kds-url",
            &base,
        ])
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert_eq!(
        out.status.code(),
        Some(1),
        "{text}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(failed_checks(&text), ["report.revocation"], "{text}");
    assert!(text.contains("the VCEK"), "{text}");
    assert!(server.join().unwrap().contains("/vcek/v1/Genoa/crl"));
}

/// Issue 25: a VERIFIED over a provenance with no artifact given checked no artifact, and
/// its verdict line says so.
#[test]
fn a_verified_line_says_when_no_artifact_was_checked() {
    let dir = output_dir();
    let mut args = file_flags(
        dir.path(),
        &[
            ("--provenance", "provenance.json"),
            REPORT_FILES[0],
            REPORT_FILES[1],
        ],
    );
    args.push("--allow-simulated".into());
    let (code, text) = verify(&args);
    assert_eq!(code, 0, "{text}");
    let line = verdict_line(&text);
    assert!(line.starts_with("VERIFIED"), "{line}");
    assert!(
        line.contains("not checked:") && line.contains("artifacts"),
        "{line}"
    );
}

/// The last line `kettle verify` printed (the verdict line).
fn verdict_line(text: &str) -> &str {
    text.lines()
        .rfind(|l| l.starts_with("VERIFIED") || l.starts_with("REJECTED"))
        .unwrap_or_else(|| panic!("no verdict line in {text}"))
}

mod policy;
