//! A cargo-build/v1 build in the CVM of a crate with a proc-macro and a build
//! script: examples/hello-derive (serde's derive, so serde_derive, syn, quote
//! and proc-macro2 are compiled and run as host code inside the sandbox, plus
//! the sample's own build.rs). Like e2e_cargo.rs: build/image under QEMU (TCG +
//! the simulated PSP), the toolchain and Debian root filesystem of `make
//! bundles`. The output verifies, its provenance lists the proc-macro crates
//! as PURLs, and the binary says the derive and the build script ran. Skips
//! off CI when the image or the bundles have not been built; fails on CI.

use std::fs;
use std::process::Command;

use kettle_testkit::{
    build_dir, build_simulated, commit_sample, kettle_binary, require_artifact, run, sha256_hex,
    text, Requirement,
};

#[test]
fn a_proc_macro_and_a_build_script_build_in_the_cvm() {
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
        "hello-derive",
        tmp.path(),
        &[
            (
                "@TOOLCHAIN_URL@",
                "https://kettle-bundle.invalid/toolchain.tar.gz",
            ),
            ("@TOOLCHAIN_SHA256@", &toolchain_sha),
            (
                "@ROOTFS_URL@",
                "https://kettle-bundle.invalid/rootfs.tar.gz",
            ),
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
        &["--memory", "6144", "--timeout", "3000"],
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
    for krate in [
        "pkg:cargo/serde@",
        "pkg:cargo/serde_derive@",
        "pkg:cargo/syn@",
        "pkg:cargo/quote@",
        "pkg:cargo/proc-macro2@",
    ] {
        assert!(
            provenance.contains(krate),
            "{krate} missing from {provenance}"
        );
    }

    let hello = out.join("artifacts/target/release/hello-derive");
    let ran = run(&mut Command::new(&hello));
    let said = String::from_utf8_lossy(&ran.stdout);
    assert_eq!(
        said.trim(),
        "hello from a kettle build (serde derive: fields text, target; build script: target x86_64-unknown-linux-gnu)"
    );
}
