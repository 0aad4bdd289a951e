//! Upstream mode: the inputs come over HTTPS (here from a test server on
//! 127.0.0.1 with its own CA), trusting only the CA roots given, and are
//! verified exactly like cached inputs.

mod common;

use std::fs;
use std::path::Path;

use kettle_init::{run_local, LocalOptions, Step, HOST_CA_BUNDLE};
use kettle_testkit::fixtures::hello_cargo_lock;
use kettle_testkit::scenario::ROOTFS_PATH;
use kettle_testkit::{CountingProvider, HttpsServer, Scenario};
use kettle_wire::inputs::crate_url;

use common::{expect_failure, hello_cargo_crates, host_tools};

/// Upstream mode has no inputs dir.
const NO_INPUTS: &str = "/nonexistent";

/// A script build whose rootfs is served by `server` (with the commit and the archive).
fn served_script(server: &HttpsServer) -> Scenario {
    let sc = Scenario::script(
        "mkdir -p out && echo fetched upstream > out/up.txt",
        &["out/up.txt"],
    )
    .rootfs_url(&format!("{}{ROOTFS_PATH}", server.base_url()))
    .commit();
    sc.serve(server);
    sc
}

/// Local options trusting only `server`'s test CA (written into `sc`'s dir).
fn trusting(server: &HttpsServer, sc: &Scenario) -> LocalOptions {
    let ca = sc.dir().join("ca.pem");
    server.write_ca(&ca);
    LocalOptions {
        ca_roots: ca,
        ..LocalOptions::default()
    }
}

#[test]
fn upstream_mode_fetches_over_https_with_the_given_roots_only() {
    let server = HttpsServer::start();
    let sc = served_script(&server);
    let req = sc.upstream_request(&server);
    let out = sc.out();
    let mut provider = CountingProvider::default();
    run_local(
        &req,
        Path::new(NO_INPUTS),
        Some(&mut provider),
        &out,
        &trusting(&server, &sc),
    )
    .unwrap();
    assert_eq!(
        fs::read_to_string(out.join("artifacts/out/up.txt")).unwrap(),
        "fetched upstream\n"
    );
    assert_eq!(provider.calls, 1);

    // A different CA (here: the host's public roots) must not be trusted for the test server.
    let options = LocalOptions {
        ca_roots: HOST_CA_BUNDLE.into(),
        ..LocalOptions::default()
    };
    let report = expect_failure(
        &req,
        Path::new(NO_INPUTS),
        &options,
        Step::Fetch,
        Some("commit object"),
        &[],
    );
    assert!(
        report.message.to_lowercase().contains("certificate"),
        "{}",
        report.message
    );
}

#[test]
fn upstream_content_is_verified_like_cached_content() {
    let server = HttpsServer::start();
    let sc = served_script(&server);
    // The request names a commit the server's commit object does not hash to.
    let mut req = sc.upstream_request(&server);
    req.commit = "1".repeat(40);
    expect_failure(
        &req,
        Path::new(NO_INPUTS),
        &trusting(&server, &sc),
        Step::Verify,
        Some("commit object"),
        &[],
    );
}

#[test]
fn upstream_mode_fetches_and_verifies_crates() {
    let server = HttpsServer::start();
    let sc = Scenario::hello_cargo().commit();
    sc.serve(&server);
    let crates_base = format!("{}/crates", server.base_url());
    for (k, bytes) in hello_cargo_lock().iter().zip(hello_cargo_crates()) {
        let mut served = bytes.clone();
        if k.name == "itoa" {
            // The mirror serves a tampered itoa: verification must catch it.
            let n = served.len();
            served[n - 100] ^= 1;
        }
        let url = crate_url(&crates_base, k);
        server.serve(url.strip_prefix(&server.base_url()).unwrap(), served);
    }
    let options = LocalOptions {
        tools: host_tools().tools,
        ..trusting(&server, &sc)
    };
    expect_failure(
        &sc.upstream_request(&server),
        Path::new(NO_INPUTS),
        &options,
        Step::Verify,
        Some("crate itoa 1.0.19"),
        &["Cargo.lock pins"],
    );
}
