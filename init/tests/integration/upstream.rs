//! Upstream mode: the inputs come over HTTPS (here from a test server on
//! 127.0.0.1 with its own CA), trusting only the CA roots given, and are
//! verified exactly like cached inputs.

use std::fs;
use std::path::{Path, PathBuf};

use kettle_init::{run_local, ErrorReport, LocalOptions, Step, HOST_CA_BUNDLE};
use kettle_provenance::{vocab, Provenance, Statement};
use kettle_testkit::fixtures::hello_cargo_lock;
use kettle_testkit::scenario::{REPO_PATH, ROOTFS_PATH};
use kettle_testkit::{CountingProvider, HttpsServer, Scenario};
use kettle_wire::recipe::cargo::crate_url;
use kettle_wire::BuildRequest;

use crate::common::{expect_failure, hello_cargo_crates, host_tools};

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

/// Builds `req` in upstream mode (no inputs dir) into a fresh output dir of `sc`, with a
/// counting report provider; returns the output dir and how many reports were requested.
fn build_upstream(sc: &Scenario, req: &BuildRequest, options: &LocalOptions) -> (PathBuf, usize) {
    let out = sc.out();
    let mut provider = CountingProvider::default();
    let no_inputs = Path::new(NO_INPUTS);
    run_local(req, no_inputs, Some(&mut provider), &out, options)
        .unwrap_or_else(|e| panic!("{}", e.message()));
    (out, provider.calls)
}

/// [`expect_failure`] of `req` in upstream mode (no inputs dir), naming `input`.
fn expect_upstream_failure(
    req: &BuildRequest,
    options: &LocalOptions,
    step: Step,
    input: &str,
    message_has: &[&str],
) -> ErrorReport {
    expect_failure(
        req,
        Path::new(NO_INPUTS),
        options,
        step,
        Some(input),
        message_has,
    )
}

#[test]
fn upstream_mode_fetches_over_https_with_the_given_roots_only() {
    let server = HttpsServer::start();
    let sc = served_script(&server);
    let req = sc.upstream_request(&server);
    let (out, reports) = build_upstream(&sc, &req, &trusting(&server, &sc));
    assert_eq!(
        fs::read_to_string(out.join("artifacts/out/up.txt")).unwrap(),
        "fetched upstream\n"
    );
    assert_eq!(reports, 1);

    // A different CA (here: the host's public roots) must not be trusted for the test server.
    let options = LocalOptions {
        ca_roots: HOST_CA_BUNDLE.into(),
        ..LocalOptions::default()
    };
    // The first thing fetched is the ref advertisement.
    let report = expect_upstream_failure(&req, &options, Step::Fetch, "ref", &[]);
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
    // The request names a commit the server's commit object does not hash to (and the
    // repository advertises that commit for the ref, so the ref check passes).
    let mut req = sc.upstream_request(&server);
    req.commit = "1".repeat(40);
    sc.serve_refs(&server, &[(&req.commit, &req.git_ref)]);
    let options = trusting(&server, &sc);
    expect_upstream_failure(&req, &options, Step::Verify, "commit object", &[]);
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
    let req = sc.upstream_request(&server);
    let itoa = "crate itoa 1.0.19";
    expect_upstream_failure(&req, &options, Step::Verify, itoa, &["Cargo.lock pins"]);
}

/// internalParameters of the provenance in `out`.
fn internal_parameters(out: &Path) -> serde_json::Map<String, serde_json::Value> {
    let bytes = fs::read(out.join("provenance.json")).unwrap();
    let st: Statement<Provenance> = Statement::from_json(&bytes).unwrap();
    st.predicate.build_definition.internal_parameters
}

#[test]
fn upstream_mode_resolves_the_ref_itself_and_requires_the_requested_commit() {
    let server = HttpsServer::start();
    let sc = served_script(&server);
    let options = trusting(&server, &sc);
    let req = sc.upstream_request(&server);
    assert_eq!(req.repository, format!("{}{REPO_PATH}", server.base_url()));
    let other = "9".repeat(40);
    let tag_object = "7".repeat(40);

    // The repository advertises the requested commit for the ref: built, and the
    // provenance says the guest resolved the ref.
    sc.serve_refs(
        &server,
        &[
            (&sc.commit, "HEAD"),
            (&sc.commit, "refs/heads/main"),
            (&other, "refs/heads/dev"),
        ],
    );
    let (out, _) = build_upstream(&sc, &req, &options);
    assert_eq!(internal_parameters(&out)[vocab::REF_RESOLVED_BY], "guest");

    // An annotated tag resolves to its peeled commit, not to the tag object.
    sc.serve_refs(
        &server,
        &[
            (&tag_object, "refs/tags/v1"),
            (&sc.commit, "refs/tags/v1^{}"),
        ],
    );
    for git_ref in ["refs/tags/v1", "v1"] {
        let tagged = kettle_wire::BuildRequest {
            git_ref: git_ref.into(),
            ..req.clone()
        };
        run_local(&tagged, Path::new(NO_INPUTS), None, &sc.out(), &options)
            .unwrap_or_else(|e| panic!("{git_ref}: {}", e.message()));
    }

    // Each refusal below names the ref as its input.
    let refused_at_ref = |step, message_has: &[&str]| {
        expect_upstream_failure(&req, &options, step, "ref", message_has);
    };
    // The ref names another commit: the verify step names both, nothing is built or attested.
    sc.serve_refs(&server, &[(&other, "refs/heads/main")]);
    refused_at_ref(Step::Verify, &[&other, &sc.commit, "refs/heads/main"]);

    // The repository does not have the ref at all.
    sc.serve_refs(&server, &[(&sc.commit, "refs/heads/elsewhere")]);
    refused_at_ref(Step::Fetch, &["does not advertise ref \"refs/heads/main\""]);

    // What is served is not a smart-HTTP advertisement (a dumb server's info/refs).
    server.serve(
        kettle_testkit::scenario::INFO_REFS_PATH,
        format!("{}\trefs/heads/main\n", sc.commit),
    );
    refused_at_ref(Step::Fetch, &["not a git smart-HTTP ref advertisement"]);
}

#[test]
fn upstream_mode_needs_an_https_repository() {
    let server = HttpsServer::start();
    let sc = served_script(&server);
    let options = trusting(&server, &sc);
    for repository in [
        "http://127.0.0.1/repo.git",
        "git://example.org/repo.git",
        "ssh://git@example.org/repo.git",
    ] {
        let req = kettle_wire::BuildRequest {
            repository: repository.into(),
            ..sc.upstream_request(&server)
        };
        let not_https = ["is not an https:// URL", repository];
        expect_upstream_failure(&req, &options, Step::Request, "request.json", &not_https);
    }
}

#[test]
fn cached_mode_says_the_host_resolved_the_ref() {
    let sc = Scenario::script("mkdir -p out && echo x > out/x", &["out/x"]).commit();
    let (_, out) = crate::common::build_unattested(&sc);
    let internal = internal_parameters(&out);
    assert_eq!(internal[vocab::REF_RESOLVED_BY], "host");
    assert_eq!(internal[vocab::CLOCK], "host-provided, unverified");
}
