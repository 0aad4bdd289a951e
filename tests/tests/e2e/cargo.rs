//! A cargo-build/v1 build in the CVM: `kettle build` resolves examples/hello-cargo's
//! crates from its Cargo.lock on the host, boots build/image under QEMU (TCG +
//! the simulated PSP), and kettle-init verifies every crate, vendors them and
//! runs `cargo build --locked --offline --release` inside the pinned toolchain
//! and Debian root filesystem (`make bundles`). The output verifies, its
//! provenance lists every crate as a PURL, and the binary runs. Skips off CI
//! when the image or the bundles have not been built; fails on CI.

use std::process::Command;

use kettle_testkit::cli::{provenance_with_crates, run_release_binary};
use kettle_testkit::{cargo_sample_verified_in_cvm, require_cargo_cvm, run, Requirement};

#[test]
fn cargo_build_in_the_cvm_verifies_and_runs() {
    let req = Requirement::from_env();
    let Some(cvm) = require_cargo_cvm(req) else {
        return;
    };
    let _vm = crate::big_vm();
    let url_base = "https://kettle.invalid/test";
    let (_scratch, out) = cargo_sample_verified_in_cvm(&cvm, "hello-cargo", url_base, "2400");

    let provenance = provenance_with_crates(&out, &["fnv", "hex", "itoa"]);
    assert!(provenance.contains("https://kettle.confidential.ai/cargo-build/v1"));
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

    let said = run_release_binary(&out, "hello-cargo");
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
