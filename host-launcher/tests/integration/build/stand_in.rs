//! `kettle build --tee simulated` end to end on the host side, with a stand-in
//! for QEMU (the testkit's kettle-fake-qemu) that plays the guest: it reads the request
//! and cache disks, asks the host's simulated PSP for a report over the real
//! socket protocol and writes an output disk. No VM boots here; the booting
//! versions live in tests/tests/e2e/.

use std::fs;
use std::process::{Command, Output};

use kettle_provenance::Sha256Digest;
use kettle_testkit::cli::text;
use kettle_testkit::stand_in::{
    build_command, fake_qemu, leftovers, StandInProject, HOSTILE_VAR, MODE_VAR, ROOTFS,
};

const KETTLE: &str = env!("CARGO_BIN_EXE_kettle");

fn build(f: &StandInProject, mode: &str, extra: &[&str]) -> Output {
    f.build(KETTLE, extra).env(MODE_VAR, mode).output().unwrap()
}

/// A build with the stand-in guest in `mode` that must fail (exit 1) saying each of `says`.
fn failed_build(f: &StandInProject, mode: &str, extra: &[&str], says: &[&str]) {
    let out = build(f, mode, extra);
    let t = text(&out);
    assert_eq!(out.status.code(), Some(1), "{mode} {extra:?}: {t}");
    for needle in says {
        assert!(t.contains(needle), "{mode}: no {needle:?} in: {t}");
    }
}

#[test]
fn a_successful_build_is_collected_and_verified() {
    let f = StandInProject::create();
    let out = build(&f, "ok", &[]);
    let t = text(&out);
    assert_eq!(out.status.code(), Some(0), "{t}");
    for name in [
        "provenance.json",
        "evidence",
        "chain.pem",
        "build.log",
        "manifest.json",
        "status.json",
        "artifacts/out/hello.txt",
    ] {
        assert!(f.out.join(name).is_file(), "{name} missing: {t}");
    }
    assert!(t.contains("[PASS] binding.report_data"), "{t}");
    assert!(t.contains("[PASS] provenance.repository"), "{t}");
    assert!(t.contains("SIMULATED"), "{t}");
    let log = fs::read_to_string(f.out.join("build.log")).unwrap();
    assert!(log.contains("[attest] ok"), "{log}");
    assert!(leftovers(&f.out).is_empty(), "{:?}", leftovers(&f.out));
    // The input cache is content-addressed and kept for the next build.
    let rootfs_entry = f
        .cache
        .join("sha256")
        .join(Sha256Digest::of_bytes(ROOTFS).to_hex());
    assert!(rootfs_entry.is_file());

    // The same directory verifies with `kettle verify` (the auditor's command), but only
    // against a measurement the auditor names and a source the auditor pins.
    let verify = |extra: &[&str]| {
        Command::new(KETTLE)
            .args(["verify", f.out.to_str().unwrap(), "--allow-simulated"])
            .args(extra)
            .output()
            .unwrap()
    };
    let v = verify(&[]);
    assert_eq!(
        v.status.code(),
        Some(2),
        "the out/ manifest.json copy is never used: {}",
        text(&v)
    );
    assert!(text(&v).contains("PUBLISHED manifest"), "{}", text(&v));
    let manifest = f.image.join("manifest.json");
    let v = verify(&["--manifest", manifest.to_str().unwrap()]);
    assert_eq!(v.status.code(), Some(1), "{}", text(&v));
    assert!(
        text(&v).contains("[FAIL] provenance.source"),
        "{}",
        text(&v)
    );
    let head = &f.commit;
    let v = verify(&[
        "--manifest",
        manifest.to_str().unwrap(),
        "--commit",
        head.trim(),
    ]);
    assert_eq!(v.status.code(), Some(0), "{}", text(&v));
    assert!(
        text(&v).contains(&format!("built commit: {}", head.trim())),
        "{}",
        text(&v)
    );
    assert!(
        text(&v)
            .trim_end()
            .ends_with("VERIFIED (SIMULATED: signed with test keys; nothing is hardware-attested); not checked: report.revocation, report.cert_validity, provenance.repository, provenance.ref, provenance.image"),
        "{}",
        text(&v)
    );

    // A second build into the same --out needs --force.
    let again = build(&f, "ok", &[]);
    assert_eq!(again.status.code(), Some(2), "{}", text(&again));
    assert!(text(&again).contains("--force"));
    assert_eq!(build(&f, "ok", &["--force"]).status.code(), Some(0));
}

#[test]
fn a_guest_failure_prints_its_error_and_exits_1() {
    let f = StandInProject::create();
    failed_build(
        &f,
        "fail",
        &[],
        &["the guest reported a failure", "rootfs: sha256 mismatch"],
    );
    assert!(f.out.join("error.json").is_file());
    assert!(f.out.join("build.log").is_file());
    assert!(!f.out.join("provenance.json").exists());
    assert!(leftovers(&f.out).is_empty(), "{:?}", leftovers(&f.out));
}

#[test]
fn outputs_that_do_not_verify_fail_the_build() {
    let f = StandInProject::create();
    failed_build(
        &f,
        "tamper",
        &[],
        &["[FAIL] artifact:out/hello.txt", "do NOT verify"],
    );
}

#[test]
fn a_hung_guest_is_killed_at_the_timeout() {
    let f = StandInProject::create();
    failed_build(
        &f,
        "hang",
        &["--timeout", "1", "--vm-allowance", "0"],
        &["did not finish within 1s"],
    );
    assert!(leftovers(&f.out).is_empty(), "{:?}", leftovers(&f.out));
}

#[test]
fn a_missing_image_says_how_to_make_one() {
    let f = StandInProject::create();
    fs::remove_file(f.image.join("manifest.json")).unwrap();
    let out = build(&f, "ok", &[]);
    assert_eq!(out.status.code(), Some(2));
    assert!(text(&out).contains("make image"), "{}", text(&out));
    assert!(!f.out.exists());
}

#[test]
fn snp_on_a_host_without_snp_says_to_use_simulated() {
    let f = StandInProject::create();
    let out = Command::new(KETTLE)
        .arg("build")
        .arg(&f.repo)
        .args(["--tee", "snp", "--image"])
        .arg(&f.image)
        .arg("--out")
        .arg(&f.out)
        .arg("--qemu")
        .arg(fake_qemu())
        .output()
        .unwrap();
    // The stand-in has no sev-snp-guest object (and this host no SNP): refused before anything runs.
    assert_eq!(out.status.code(), Some(2), "{}", text(&out));
    assert!(text(&out).contains("--tee simulated"), "{}", text(&out));
    assert!(!f.out.exists());
}

#[test]
fn upstream_mode_gives_the_guest_a_nic_and_no_cache_disk() {
    let f = StandInProject::create();
    let out = build(&f, "ok", &["--mode", "upstream"]);
    assert_eq!(out.status.code(), Some(2), "{}", text(&out));
    assert!(
        text(&out).contains("--source-archive-url"),
        "{}",
        text(&out)
    );
    assert!(!f.out.exists());

    let out = build(
        &f,
        "ok",
        &[
            "--mode",
            "upstream",
            "--source-archive-url",
            "https://example.com/hello/archive.tar.gz",
            "--commit-object-url",
            "https://example.com/hello/commit",
        ],
    );
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    let log = fs::read_to_string(f.out.join("build.log")).unwrap();
    assert!(
        log.contains("upstream from https://example.com/hello/archive.tar.gz"),
        "{log}"
    );
}

/// QEMU splits an option value at commas: kettle::qemu doubles those in the disk and PSP
/// socket paths, and the stand-in reads them back as QEMU does, so the guest still finds
/// every disk by its serial and the PSP by its port name.
#[test]
fn disk_and_socket_paths_with_commas_reach_the_guest_intact() {
    let f = StandInProject::create();
    let (outputs, tmp) = (f.root.path().join("out,puts"), f.root.path().join("t,mp"));
    fs::create_dir(&outputs).unwrap();
    fs::create_dir(&tmp).unwrap();
    let out = outputs.join("out");
    let build = build_command(KETTLE, &f.repo, &f.image, &out, &f.cache)
        .arg("--input")
        .arg(&f.rootfs)
        .args(["--timeout", "120"])
        // The PSP socket's directory is a temporary one.
        .env("TMPDIR", &tmp)
        .output()
        .unwrap();
    assert_eq!(build.status.code(), Some(0), "{}", text(&build));
    assert!(out.join("artifacts/out/hello.txt").is_file());
    assert!(leftovers(&out).is_empty(), "{:?}", leftovers(&out));
}

/// What the hostile stand-in guest (FAKE_QEMU_HOSTILE=1) writes, as the host must print it.
const OSC52_ESCAPED: &str = "\\u{1b}]52;c;ZXZpbA==\\u{7}";

/// The bytes that would act on a terminal: C0 controls but the line breaks, DEL, and C1 (as UTF-8).
fn terminal_controls(out: &Output) -> Vec<String> {
    let t = text(out);
    t.chars()
        .filter(|c| c.is_control() && *c != '\n')
        .map(|c| format!("{c:?}"))
        .collect()
}

#[test]
fn a_hostile_guest_s_escape_sequences_reach_the_terminal_escaped() {
    // ok -v: the debug console lines and the success summary's artifact names;
    // fail: error.json's message; hang: the console tail printed when the time limit
    // fires; crash: the same tail, when the guest ends leaving no result.
    let cases: [(&str, &[&str], &[&str]); 4] = [
        ("ok", &["-v"], &["guest: ", "  artifact: "]),
        ("fail", &[], &["the guest reported a failure"]),
        (
            "hang",
            &["--timeout", "1", "--vm-allowance", "0"],
            &["did not finish within 1s", "--- last console lines"],
        ),
        (
            "crash",
            &[],
            &["QEMU exited with", "--- last console lines"],
        ),
    ];
    for (mode, extra, says) in cases {
        let f = StandInProject::create();
        let out = f
            .build(KETTLE, extra)
            .env(MODE_VAR, mode)
            .env(HOSTILE_VAR, "1")
            .output()
            .unwrap();
        let t = text(&out);
        let want = if mode == "ok" { 0 } else { 1 };
        assert_eq!(out.status.code(), Some(want), "{mode}: {t}");
        assert_eq!(
            terminal_controls(&out),
            Vec::<String>::new(),
            "{mode}: control characters reached the terminal: {t}"
        );
        for needle in says {
            assert!(t.contains(needle), "{mode}: no {needle:?} in: {t}");
        }
        // Shown, escaped, where the host prints the guest's words: the forged green
        // VERIFIED stays inside the line that carries it.
        assert!(t.contains(OSC52_ESCAPED), "{mode}: {t}");
        if mode == "fail" {
            // error.json's further lines: plain text, indented, escaped.
            assert!(t.contains("\n  | \\u{1b}[32mVERIFIED"), "{mode}: {t}");
        }
        assert!(
            !t.lines().any(|l| l.starts_with("\\u{1b}[32mVERIFIED")),
            "{mode}: a line begins with what the guest wrote: {t}"
        );
    }
}

#[test]
fn result_json_tells_a_pipeline_what_happened() {
    use kettle::build_pipeline::result::{BuildResult, Outcome, RESULT_FILE};
    let read = |f: &StandInProject| -> BuildResult {
        serde_json::from_slice(&fs::read(f.out.join(RESULT_FILE)).unwrap()).unwrap()
    };
    // Verified, with --json: stdout is result.json alone, the verdict went to stderr.
    let f = StandInProject::create();
    let out = build(&f, "ok", &["--json"]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    let printed: BuildResult = serde_json::from_slice(&out.stdout).unwrap();
    let r = read(&f);
    assert_eq!(printed, r);
    assert!(String::from_utf8_lossy(&out.stderr).contains("[PASS] binding.report_data"));
    assert_eq!((r.outcome, r.exit_code), (Outcome::Verified, 0));
    assert_eq!(r.tee, "simulated");
    assert_eq!(r.source.commit, f.commit.trim());
    let hello = f.out.join("artifacts/out/hello.txt");
    assert_eq!(r.artifacts.len(), 1, "{r:?}");
    assert_eq!(r.artifacts[0].name, "out/hello.txt");
    assert_eq!(r.artifacts[0].path, "artifacts/out/hello.txt");
    assert_eq!(
        r.artifacts[0].sha256,
        Sha256Digest::of_file(&hello).unwrap().to_hex()
    );
    assert_eq!(
        r.provenance.as_ref().unwrap().sha256,
        Sha256Digest::of_file(&f.out.join("provenance.json"))
            .unwrap()
            .to_hex()
    );
    assert_eq!(r.failure, None);
    // Its verify command is the auditor's, and it passes.
    assert_eq!(r.verify_command[..2], ["kettle", "verify"]);
    let v = Command::new(KETTLE)
        .args(&r.verify_command[1..])
        .output()
        .unwrap();
    assert_eq!(
        v.status.code(),
        Some(0),
        "{:?}: {}",
        r.verify_command,
        text(&v)
    );

    // A guest step failed: the step and its message, no artifact claimed.
    let f = StandInProject::create();
    assert_eq!(build(&f, "fail", &[]).status.code(), Some(1));
    let r = read(&f);
    assert_eq!((r.outcome, r.exit_code), (Outcome::BuildFailed, 1));
    let failure = r.failure.unwrap();
    assert!(
        failure.message.contains("rootfs: sha256 mismatch"),
        "{failure:?}"
    );
    assert!(r.artifacts.is_empty() && r.provenance.is_none());

    // Built, but the outputs do not verify: nothing the verifier rejected is listed.
    let f = StandInProject::create();
    assert_eq!(build(&f, "tamper", &[]).status.code(), Some(1));
    let r = read(&f);
    assert_eq!((r.outcome, r.exit_code), (Outcome::NotVerified, 1));
    assert!(r.artifacts.is_empty());
    assert!(
        r.failure
            .unwrap()
            .message
            .contains("artifact:out/hello.txt"),
        "the failed check is named"
    );
}
