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
    build_dir, cargo_sample_verified_in_cvm, kettle_binary, require_cargo_cvm, run, Requirement,
};

#[test]
fn cargo_build_in_the_cvm_verifies_and_runs() {
    let req = Requirement::from_env();
    let Some(cvm) = require_cargo_cvm(req) else {
        return;
    };
    let kettle = kettle_binary();
    let tmp = tempfile::tempdir_in(build_dir()).unwrap();
    let out = cargo_sample_verified_in_cvm(
        &kettle,
        &cvm,
        "hello-cargo",
        tmp.path(),
        "https://kettle.invalid/test",
        "2400",
    );

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
    let has_manifest = rootfs_has(&cvm.rootfs, "usr/share/kettle/bundle.json");
    assert!(
        has_manifest || req == Requirement::Skip,
        "{} carries no usr/share/kettle/bundle.json (make bundles writes one)",
        cvm.rootfs.display()
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
