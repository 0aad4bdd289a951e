//! The whole pipeline with a real boot: `kettle build` boots build/image under
//! QEMU (TCG + the simulated PSP), kettle-init builds the hello-script sample,
//! and `kettle verify` accepts the output directory against the published
//! manifest only with --allow-simulated. It rejects, each with its own check
//! named: a replaced artifact, a provenance.json edited by one whitespace byte,
//! the report of another build, another image's manifest, and the simulated
//! report without --allow-simulated. Skips off CI when the image has not been
//! built (`make image`); fails on CI.

use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;

use kettle_testkit::{
    build_dir, build_simulated, commit_sample, kettle_binary, require_artifact, run, sha256_hex,
    text, Requirement,
};

/// The sample's root filesystem: this host's sh, mkdir and cat with their libraries.
fn host_rootfs(dir: &Path) -> PathBuf {
    let tarball = dir.join("rootfs.tar");
    fs::write(
        &tarball,
        kettle_testkit::hostroot::host_binaries_tar(&["mkdir", "cat"]).unwrap(),
    )
    .unwrap();
    tarball
}

/// Builds the hello-script sample (optionally with another greeting) in the CVM; returns its output dir.
fn build_in_cvm(kettle: &Path, image: &Path, dir: &Path, greeting: Option<&str>) -> PathBuf {
    fs::create_dir_all(dir).unwrap();
    let rootfs = host_rootfs(dir);
    let sha = sha256_hex(&rootfs);
    let pins = [
        ("@ROOTFS_URL@", "https://kettle.invalid/test/rootfs.tar.gz"),
        ("@ROOTFS_SHA256@", sha.as_str()),
    ];
    let overrides: Vec<(&str, &str)> = greeting.map(|g| ("greeting.txt", g)).into_iter().collect();
    let repo = commit_sample("hello-script", dir, &pins, &overrides);
    let out = dir.join("out");
    let cache = dir.join("cache");
    build_simulated(
        kettle,
        &repo,
        image,
        &out,
        &[&rootfs],
        &[
            "--memory",
            "1024",
            "--timeout",
            "900",
            "--cache-dir",
            cache.to_str().unwrap(),
        ],
    );
    out
}

/// A fresh copy of an output directory, to tamper with.
fn copy_of(out: &Path, name: &str) -> PathBuf {
    let copy = out.parent().unwrap().join(name);
    run(Command::new("cp").arg("-a").arg(out).arg(&copy));
    copy
}

#[test]
fn build_in_the_cvm_then_verify_and_reject_tampering() {
    let Some(manifest) = require_artifact("image/manifest.json", "image", Requirement::from_env())
    else {
        return;
    };
    let Some(init) = require_artifact("kettle-init", "init", Requirement::from_env()) else {
        return;
    };
    let _vm = crate::small_vm();
    let image = manifest.parent().unwrap().to_path_buf();
    let kettle = kettle_binary();
    let tmp = tempfile::tempdir_in(build_dir()).unwrap();
    let out = build_in_cvm(&kettle, &image, &tmp.path().join("a"), None);

    let hello = fs::read_to_string(out.join("artifacts/out/hello.txt")).unwrap();
    assert!(hello.starts_with("hello from a kettle build"), "{hello}");
    for f in [
        "provenance.json",
        "evidence",
        "chain.pem",
        "manifest.json",
        "build.log",
    ] {
        assert!(out.join(f).is_file(), "{f} missing");
    }

    // The auditor pins the published manifest, never the copy the build host wrote.
    let verify = |dir: &Path, manifest: &Path, extra: &[&str]| {
        Command::new(&kettle)
            .arg("verify")
            .arg(dir)
            .arg("--manifest")
            .arg(manifest)
            .args(extra)
            .output()
            .unwrap()
    };
    let rejected_by = |dir: &Path, manifest: &Path, extra: &[&str], check: &str| {
        let got = verify(dir, manifest, extra);
        assert_eq!(got.status.code(), Some(1), "{}", text(&got));
        assert!(
            text(&got).contains(&format!("[FAIL] {check}")),
            "expected [FAIL] {check}:\n{}",
            text(&got)
        );
    };
    // The auditor pins the source too: the sample repository is their own clone.
    let clone_a = tmp.path().join("a/hello-script");
    let pinned_to = |clone: &Path| -> Vec<String> {
        ["--allow-simulated", "--ref", "refs/heads/main", "--source"]
            .iter()
            .map(|s| s.to_string())
            .chain([clone.to_str().unwrap().to_string()])
            .collect()
    };
    let simulated_owned = pinned_to(&clone_a);
    let simulated: Vec<&str> = simulated_owned.iter().map(String::as_str).collect();

    let ok = verify(&out, &manifest, &simulated);
    assert_eq!(ok.status.code(), Some(0), "{}", text(&ok));
    // The provenance names the image it ran in, and it is the one the report measured.
    assert!(
        text(&ok).contains("[PASS] provenance.image"),
        "{}",
        text(&ok)
    );

    // The simulated PSP is refused unless the caller allows it.
    rejected_by(
        &out,
        &manifest,
        &["--ref", "refs/heads/main"],
        "report.simulated",
    );

    // A replaced artifact.
    let swapped = copy_of(&out, "swapped");
    fs::write(swapped.join("artifacts/out/hello.txt"), "tampered\n").unwrap();
    rejected_by(&swapped, &manifest, &simulated, "artifact:out/hello.txt");

    // provenance.json edited by one whitespace byte: the report no longer binds it.
    let edited = copy_of(&out, "edited");
    let mut bytes = fs::read(edited.join("provenance.json")).unwrap();
    bytes.push(b' ');
    fs::write(edited.join("provenance.json"), bytes).unwrap();
    rejected_by(&edited, &manifest, &simulated, "binding.report_data");

    // The report of another build (same image, another commit) beside this provenance.
    let other = build_in_cvm(&kettle, &image, &tmp.path().join("b"), Some("another\n"));
    let mixed = copy_of(&out, "mixed");
    fs::copy(other.join("evidence"), mixed.join("evidence")).unwrap();
    fs::copy(other.join("chain.pem"), mixed.join("chain.pem")).unwrap();
    rejected_by(&mixed, &manifest, &simulated, "binding.report_data");
    let clone_b_args = pinned_to(&tmp.path().join("b/hello-script"));
    let clone_b: Vec<&str> = clone_b_args.iter().map(String::as_str).collect();
    let theirs = verify(&other, &manifest, &clone_b);
    assert_eq!(theirs.status.code(), Some(0), "{}", text(&theirs));
    // Build b verified against a's source: another commit was built than the one pinned.
    rejected_by(&other, &manifest, &simulated, "provenance.source");

    // Another image's manifest (same kernel, init and firmware, another command line).
    let other_image = tmp.path().join("other-image");
    run(Command::new(&kettle)
        .arg("image")
        .arg("--init")
        .arg(&init)
        .arg("--kernel")
        .arg(image.join("bzImage"))
        .arg("--ovmf")
        .arg(image.join("OVMF.fd"))
        .args(["--cmdline", "console=ttyS0 panic=-1"])
        .arg("--out")
        .arg(&other_image));
    rejected_by(
        &out,
        &other_image.join("manifest.json"),
        &simulated,
        "report.measurement",
    );
}
