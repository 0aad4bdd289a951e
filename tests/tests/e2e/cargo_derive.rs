//! A cargo-build/v1 build in the CVM of a crate with a proc-macro and a build
//! script: examples/hello-derive (serde's derive, so serde_derive, syn, quote
//! and proc-macro2 are compiled and run as host code inside the sandbox, plus
//! the sample's own build.rs). Like cargo.rs: build/image under QEMU (TCG +
//! the simulated PSP), the toolchain and Debian root filesystem of `make
//! bundles`. The output verifies, its provenance lists the proc-macro crates
//! as PURLs, and the binary says the derive and the build script ran. Skips
//! off CI when the image or the bundles have not been built; fails on CI.

use kettle_testkit::cli::{provenance_with_crates, run_release_binary};
use kettle_testkit::{cargo_sample_verified_in_cvm, require_cargo_cvm, Requirement};

#[test]
fn a_proc_macro_and_a_build_script_build_in_the_cvm() {
    let Some(cvm) = require_cargo_cvm(Requirement::from_env()) else {
        return;
    };
    let _vm = crate::big_vm();
    let url_base = "https://kettle-bundle.invalid";
    let (_scratch, out) = cargo_sample_verified_in_cvm(&cvm, "hello-derive", url_base, "3000");

    let proc_macro_crates = ["serde", "serde_derive", "syn", "quote", "proc-macro2"];
    provenance_with_crates(&out, &proc_macro_crates);

    let said = run_release_binary(&out, "hello-derive");
    assert_eq!(
        said.trim(),
        "hello from a kettle build (serde derive: fields text, target; build script: target x86_64-unknown-linux-gnu)"
    );
}
