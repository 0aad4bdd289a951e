//! The glue only tests that call kettle-init need (the kettle-testkit crate cannot
//! depend on it). Every other helper is kettle_testkit's.

use std::fs;
use std::path::{Path, PathBuf};
use std::sync::OnceLock;

use kettle_attest::ReportProvider;
use kettle_init::http::{load_roots, Https};
use kettle_init::{run_local, LocalOptions, Outcome, Step, StepError, Tools};
use kettle_provenance::Sha256Digest;
use kettle_testkit::fixtures::{assert_only_error, hello_cargo_lock, host_toolchain};
use kettle_testkit::{CountingProvider, Scenario};
use kettle_wire::recipe::cargo::crate_url;
use kettle_wire::request::DEFAULT_CRATES_URL;
use kettle_wire::{BuildRequest, ErrorReport};

/// The .crate files of hello-cargo's Cargo.lock (in its order), downloaded once from
/// crates.io with kettle-init's own HTTPS client, the host's CA bundle and its own DNS client.
pub fn hello_cargo_crates() -> &'static [Vec<u8>] {
    static C: OnceLock<Vec<Vec<u8>>> = OnceLock::new();
    C.get_or_init(|| {
        let locked = hello_cargo_lock();
        assert_eq!(locked.len(), 3);
        let resolver =
            kettle_init::dns::nameserver_from(&fs::read_to_string("/etc/resolv.conf").unwrap())
                .map(|ip| (ip, 53).into());
        let roots = load_roots(Path::new(kettle_init::HOST_CA_BUNDLE)).unwrap();
        let client = Https::new(roots, resolver).unwrap();
        locked
            .iter()
            .map(|k| {
                let url = crate_url(DEFAULT_CRATES_URL, k);
                let bytes = client
                    .get_bytes(&url, 16 << 20)
                    .unwrap_or_else(|e| panic!("{e}"));
                assert_eq!(Sha256Digest::of_bytes(&bytes), k.sha256, "{url}");
                bytes
            })
            .collect()
    })
}

/// Runs `request` locally and checks that it failed at `step`, naming `input`, with
/// every one of `message_has` in its message, no report requested, and only
/// error.json (saying the same) left in the output. Returns error.json.
pub fn expect_failure(
    request: &BuildRequest,
    inputs: &Path,
    options: &LocalOptions,
    step: Step,
    input: Option<&str>,
    message_has: &[&str],
) -> ErrorReport {
    let tmp = tempfile::tempdir().unwrap();
    let out = tmp.path().join("out");
    let mut provider = CountingProvider::default();
    let err = run_local(request, inputs, Some(&mut provider), &out, options).unwrap_err();
    let message = err.message();
    assert_eq!((err.step, err.input.as_deref()), (step, input), "{message}");
    for part in message_has {
        assert!(message.contains(part), "{part:?} not in: {message}");
    }
    assert_eq!(
        provider.calls, 0,
        "a report was requested for a failed build"
    );
    let report = assert_only_error(&out);
    assert!(!report.ok);
    assert_eq!((report.step, report.input.as_deref()), (step, input));
    assert_eq!(report.message, message);
    report
}

/// examples/hello-cargo committed, with its crates.io crates in the inputs.
pub fn hello_cargo_with_crates() -> Scenario {
    Scenario::hello_cargo()
        .inputs(hello_cargo_crates())
        .commit()
}

/// Runs `sc`'s request locally on fresh inputs into a fresh output dir with `options`,
/// asking `provider` (if any) for the report; returns the result and the output dir.
pub fn run_scenario(
    sc: &Scenario,
    provider: Option<&mut dyn ReportProvider>,
    options: &LocalOptions,
) -> (Result<Outcome, StepError>, PathBuf) {
    let out = sc.out();
    let result = run_local(&sc.request, &sc.inputs(), provider, &out, options);
    (result, out)
}

/// [`run_scenario`] that must succeed (else panics with the failing step's message);
/// returns the outcome and the output dir.
pub fn build_scenario(
    sc: &Scenario,
    provider: Option<&mut dyn ReportProvider>,
    options: &LocalOptions,
) -> (Outcome, PathBuf) {
    let (result, out) = run_scenario(sc, provider, options);
    (result.unwrap_or_else(|e| panic!("{}", e.message())), out)
}

/// Builds `sc` locally without a report provider (default options); returns the outcome and the output dir.
pub fn build_unattested(sc: &Scenario) -> (Outcome, PathBuf) {
    build_scenario(sc, None, &LocalOptions::default())
}

/// Local options building with this host's toolchain and root directories (not verified).
pub fn host_tools() -> LocalOptions {
    LocalOptions {
        tools: Tools::Host {
            toolchain_root: host_toolchain(),
        },
        ..LocalOptions::default()
    }
}
