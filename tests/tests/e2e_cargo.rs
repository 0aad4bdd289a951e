//! A cargo-build/v1 build in the CVM: `kettle build` resolves examples/hello-cargo's
//! crates from its Cargo.lock on the host, boots build/image under QEMU (TCG +
//! the simulated PSP), and kettle-init verifies every crate, vendors them and
//! runs `cargo build --locked --offline --release` inside the pinned toolchain
//! and Debian root filesystem (`make bundles`). The output verifies, its
//! provenance lists every crate as a PURL, and the binary runs. Skips off CI
//! when the image or the bundles have not been built; fails on CI.

use std::fs;
use std::process::Command;

use kettle_testkit::{
    build_dir, build_simulated, commit_sample, kettle_binary, require_artifact, run, sha256_hex,
    text, Requirement,
};

#[test]
fn cargo_build_in_the_cvm_verifies_and_runs() {
    let req = Requirement::from_env();
    let Some(manifest) = require_artifact("image/manifest.json", "image", req) else {
        return;
    };
    let Some(rootfs) = require_artifact("rootfs.tar.gz", "bundles", req) else {
        return;
    };
    let Some(toolchain) = require_artifact("toolchain.tar.gz", "bundles", req) else {
        return;
    };
    let image = manifest.parent().unwrap().to_path_buf();
    let kettle = kettle_binary();
    let tmp = tempfile::tempdir_in(build_dir()).unwrap();
    let (rootfs_sha, toolchain_sha) = (sha256_hex(&rootfs), sha256_hex(&toolchain));
    let repo = commit_sample(
        "hello-cargo",
        tmp.path(),
        &[
            (
                "@TOOLCHAIN_URL@",
                "https://kettle.invalid/test/toolchain.tar.gz",
            ),
            ("@TOOLCHAIN_SHA256@", &toolchain_sha),
            ("@ROOTFS_URL@", "https://kettle.invalid/test/rootfs.tar.gz"),
            ("@ROOTFS_SHA256@", &rootfs_sha),
        ],
        &[],
    );
    let out = tmp.path().join("out");
    build_simulated(
        &kettle,
        &repo,
        &image,
        &out,
        &[&rootfs, &toolchain],
        &["--memory", "6144", "--timeout", "2400"],
    );

    let verify = Command::new(&kettle)
        .arg("verify")
        .arg(&out)
        .arg("--manifest")
        .arg(&manifest)
        .args(["--allow-simulated", "--ref", "refs/heads/main", "--source"])
        .arg(&repo)
        .output()
        .unwrap();
    assert_eq!(verify.status.code(), Some(0), "{}", text(&verify));

    let provenance = fs::read_to_string(out.join("provenance.json")).unwrap();
    assert!(provenance.contains("https://kettle.confidential.ai/cargo-build/v1"));
    for krate in ["pkg:cargo/fnv@", "pkg:cargo/hex@", "pkg:cargo/itoa@"] {
        assert!(
            provenance.contains(krate),
            "{krate} missing from {provenance}"
        );
    }
    // The bundles made by `make bundles` carry their manifests: the guest lists the
    // rootfs's packages and the toolchain's rustc version. Bundles from before manifests
    // (a developer's old build/) add none; on CI the bundles are made fresh and must.
    let has_manifest = rootfs_has(&rootfs, "usr/share/kettle/bundle.json");
    assert!(
        has_manifest || req == Requirement::Skip,
        "{} carries no usr/share/kettle/bundle.json (make bundles writes one)",
        rootfs.display()
    );
    if has_manifest {
        assert!(
            provenance.contains("\"uri\":\"pkg:deb/debian/gcc-12@"),
            "the rootfs's packages are missing from {provenance}"
        );
        assert!(
            provenance.contains("\"kettle_rustcVersion\":\"rustc "),
            "{provenance}"
        );
    }

    let hello = out.join("artifacts/target/release/hello-cargo");
    let ran = run(&mut Command::new(&hello));
    let said = String::from_utf8_lossy(&ran.stdout);
    assert!(
        said.starts_with("hello from a kettle build (fnv1a64 "),
        "{said}"
    );
}

/// Whether the gzipped tar at `bundle` holds `path` (with or without a leading `./`).
fn rootfs_has(bundle: &std::path::Path, path: &str) -> bool {
    let listing = run(Command::new("tar").arg("-tzf").arg(bundle));
    String::from_utf8_lossy(&listing.stdout)
        .lines()
        .any(|l| l.trim_start_matches("./") == path)
}
