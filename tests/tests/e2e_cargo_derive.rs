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
    build_dir, cargo_sample_verified_in_cvm, kettle_binary, require_cargo_cvm, run, Requirement,
};

#[test]
fn a_proc_macro_and_a_build_script_build_in_the_cvm() {
    let Some(cvm) = require_cargo_cvm(Requirement::from_env()) else {
        return;
    };
    let kettle = kettle_binary();
    let tmp = tempfile::tempdir_in(build_dir()).unwrap();
    let out = cargo_sample_verified_in_cvm(
        &kettle,
        &cvm,
        "hello-derive",
        tmp.path(),
        "https://kettle-bundle.invalid",
        "3000",
    );

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
