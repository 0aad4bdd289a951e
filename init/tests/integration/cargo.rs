//! cargo-build/v1 in local mode: examples/hello-cargo with its crates.io crates
//! vendored from the inputs, built by this host's toolchain (host tools: the
//! provenance says so) in the sandbox, and the binary runs.

use std::process::Command;
use std::time::Instant;

use kettle_provenance::{vocab, Provenance, Sha256Digest, Statement};
use kettle_testkit::{run, CountingProvider};

use crate::common::{build_scenario, hello_cargo_with_crates, host_tools};

#[test]
fn cargo_build_of_hello_cargo_with_vendored_crates() {
    let sc = hello_cargo_with_crates();
    let mut provider = CountingProvider::default();
    let options = host_tools();
    let start = Instant::now();
    let (outcome, out) = build_scenario(&sc, Some(&mut provider), &options);
    eprintln!(
        "hello-cargo local build took {:.1}s",
        start.elapsed().as_secs_f64()
    );
    let bin = out.join("artifacts/target/release/hello-cargo");
    let printed = String::from_utf8(run(&mut Command::new(&bin)).stdout).unwrap();
    assert!(
        printed.starts_with("hello from a kettle build (fnv1a64 "),
        "{printed}"
    );
    let st: Statement<Provenance> = Statement::from_json(&outcome.provenance).unwrap();
    st.validate().unwrap();
    assert_eq!(
        st.subject[0].digest["sha256"],
        Sha256Digest::of_file(&bin).unwrap().to_hex()
    );
    let def = &st.predicate.build_definition;
    assert_eq!(def.build_type, kettle_provenance::ids::BUILD_TYPE_CARGO);
    // Local host tools are declared, not hidden.
    assert_eq!(def.internal_parameters[vocab::HERMETIC], false);
    assert_eq!(def.internal_parameters[vocab::HOST_TOOLS], true);
    let purls: Vec<_> = def
        .resolved_dependencies
        .iter()
        .filter_map(|d| d.uri.clone())
        .filter(|u| u.starts_with("pkg:cargo/"))
        .collect();
    assert_eq!(
        purls,
        vec![
            "pkg:cargo/fnv@1.0.7",
            "pkg:cargo/hex@0.4.3",
            "pkg:cargo/itoa@1.0.19"
        ]
    );
    for d in def.resolved_dependencies.iter().filter(|d| {
        d.uri
            .as_deref()
            .is_some_and(|u| u.starts_with("pkg:cargo/"))
    }) {
        assert_eq!(d.digest["sha256"].len(), 64);
    }
    assert_eq!(provider.calls, 1);
}
