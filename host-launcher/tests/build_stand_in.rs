//! `kettle build --tee simulated` end to end on the host side, with a stand-in
//! for QEMU (tests/fake-qemu.py) that plays the guest: it reads the request
//! and cache disks, asks the host's simulated PSP for a report over the real
//! socket protocol and writes an output disk. No VM boots here; the booting
//! versions live in tests/tests/e2e_*.rs.

use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use kettle_provenance::Sha256Digest;
use kettle_testkit::evidence::image_dir;
use kettle_testkit::GitRepo;

const ROOTFS: &[u8] = b"stand-in rootfs bundle";

struct Fixture {
    _root: tempfile::TempDir,
    repo: PathBuf,
    /// The commit the project's HEAD is.
    commit: String,
    image: PathBuf,
    cache: PathBuf,
    rootfs: PathBuf,
    out: PathBuf,
}

fn fixture() -> Fixture {
    let root = tempfile::tempdir().unwrap();
    let r = root.path();
    // The project: a script recipe pinning the rootfs bundle.
    let repo = r.join("hello");
    let recipe = format!(
        "[build]\ntype = \"script/v1\"\noutputs = [\"out/hello.txt\"]\ncommand = [\"sh\", \"-c\", \"true\"]\n\n\
         [rootfs]\nurl = \"https://example.invalid/rootfs.tar.gz\"\nsha256 = \"{}\"\n",
        Sha256Digest::of_bytes(ROOTFS)
    );
    let commit = GitRepo::init(&repo)
        .write("kettle.toml", recipe)
        .commit_all("hello");
    let rootfs = r.join("rootfs.tar.gz");
    fs::write(&rootfs, ROOTFS).unwrap();
    // An image directory: the stand-in never reads the files, the launcher checks they exist.
    let image = r.join("image");
    image_dir(&image, [0x42; 48]);
    Fixture {
        repo,
        commit,
        image,
        cache: r.join("cache"),
        rootfs,
        out: r.join("out"),
        _root: root,
    }
}

fn fake_qemu() -> String {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fake-qemu.py")
        .display()
        .to_string()
}

fn build(f: &Fixture, mode: &str, extra: &[&str]) -> Output {
    let s = |p: &Path| p.display().to_string();
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_kettle"));
    cmd.args(["build", &s(&f.repo), "--tee", "simulated", "--accel", "tcg"])
        .args([
            "--image",
            &s(&f.image),
            "--out",
            &s(&f.out),
            "--cache-dir",
            &s(&f.cache),
        ])
        .args([
            "--input",
            &s(&f.rootfs),
            "--qemu",
            &fake_qemu(),
            "--output-size",
            "1",
        ])
        .args(extra)
        .env("FAKE_QEMU_MODE", mode);
    if !extra.contains(&"--timeout") {
        cmd.args(["--timeout", "120"]);
    }
    cmd.output().unwrap()
}

fn text(out: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

fn leftovers(f: &Fixture) -> Vec<String> {
    fs::read_dir(f.out.parent().unwrap())
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| n.starts_with('.'))
        .collect()
}

#[test]
fn a_successful_build_is_collected_and_verified() {
    let f = fixture();
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
    assert!(leftovers(&f).is_empty(), "{:?}", leftovers(&f));
    // The input cache is content-addressed and kept for the next build.
    let rootfs_entry = f
        .cache
        .join("sha256")
        .join(Sha256Digest::of_bytes(ROOTFS).to_hex());
    assert!(rootfs_entry.is_file());

    // The same directory verifies with `kettle verify` (the auditor's command), but only
    // against a measurement the auditor names and a source the auditor pins.
    let verify = |extra: &[&str]| {
        Command::new(env!("CARGO_BIN_EXE_kettle"))
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
            .ends_with("VERIFIED (SIMULATED: signed with test keys; nothing is hardware-attested)"),
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
    let f = fixture();
    let out = build(&f, "fail", &[]);
    let t = text(&out);
    assert_eq!(out.status.code(), Some(1), "{t}");
    assert!(t.contains("the guest reported a failure"), "{t}");
    assert!(t.contains("rootfs: sha256 mismatch"), "{t}");
    assert!(f.out.join("error.json").is_file());
    assert!(f.out.join("build.log").is_file());
    assert!(!f.out.join("provenance.json").exists());
    assert!(leftovers(&f).is_empty(), "{:?}", leftovers(&f));
}

#[test]
fn outputs_that_do_not_verify_fail_the_build() {
    let f = fixture();
    let out = build(&f, "tamper", &[]);
    let t = text(&out);
    assert_eq!(out.status.code(), Some(1), "{t}");
    assert!(t.contains("[FAIL] artifact:out/hello.txt"), "{t}");
    assert!(t.contains("do NOT verify"), "{t}");
}

#[test]
fn a_hung_guest_is_killed_at_the_timeout() {
    let f = fixture();
    let out = build(&f, "hang", &["--timeout", "0"]);
    let t = text(&out);
    assert_eq!(out.status.code(), Some(1), "{t}");
    assert!(t.contains("did not finish within 0s"), "{t}");
    assert!(leftovers(&f).is_empty(), "{:?}", leftovers(&f));
}

#[test]
fn a_missing_image_says_how_to_make_one() {
    let f = fixture();
    fs::remove_file(f.image.join("manifest.json")).unwrap();
    let out = build(&f, "ok", &[]);
    assert_eq!(out.status.code(), Some(2));
    assert!(text(&out).contains("make image"), "{}", text(&out));
    assert!(!f.out.exists());
}

#[test]
fn snp_on_a_host_without_snp_says_to_use_simulated() {
    let f = fixture();
    let s = |p: &Path| p.display().to_string();
    let out = Command::new(env!("CARGO_BIN_EXE_kettle"))
        .args([
            "build",
            &s(&f.repo),
            "--tee",
            "snp",
            "--image",
            &s(&f.image),
            "--out",
            &s(&f.out),
        ])
        .args(["--qemu", &fake_qemu()])
        .output()
        .unwrap();
    // The stand-in has no sev-snp-guest object (and this host no SNP): refused before anything runs.
    assert_eq!(out.status.code(), Some(2), "{}", text(&out));
    assert!(text(&out).contains("--tee simulated"), "{}", text(&out));
    assert!(!f.out.exists());
}

#[test]
fn upstream_mode_gives_the_guest_a_nic_and_no_cache_disk() {
    let f = fixture();
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
