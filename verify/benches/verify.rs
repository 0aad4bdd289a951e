//! What `kettle verify` costs in process (`make bench`), per bundle and per check.
//!
//! * `verify/simulated_bundle`: [`kettle_verify::verify`] over an output directory
//!   as `kettle build --tee simulated` leaves it (made with `kettle_testkit::evidence`,
//!   loaded once): every check of the trust chain, provenance included.
//! * `verify/milan_report`: the same over AMD's real Milan report and VCEK (the `sev`
//!   crate's test data), report only (the trust chain's steps 1 to 3).
//! * `load/simulated_output_dir`: [`kettle_verify::verify_output_dir`], i.e. reading
//!   the directory as well (what `kettle verify DIR` and `kettle build` run).
//! * `check/*`: the primitives behind the expensive checks, so the per-bundle figure
//!   can be read as a sum: `report.chain` (ARK -> ASK -> VCEK, RSA-4096 signatures),
//!   `report.signature` (ECDSA P-384), `report.vcek_matches_report` (X.509 extension
//!   parsing), the PEM chain parse of `Bundle::load`, `binding.report_data` (SHA-256 of
//!   provenance.json) and `provenance.canonical` (RFC 8785 re-serialization).
// criterion_group! defines a pub fn without a doc comment.
#![allow(missing_docs)]

use std::path::Path;

use criterion::{criterion_group, criterion_main, Criterion};
use kettle_attest::chain::{check_chain, vcek_extensions, CertChain};
use kettle_attest::report::Report;
use kettle_attest::signature::verify_report_signature;
use kettle_attest::testdata;
use kettle_testkit::evidence::{simulated_output_dir, StatementSpec};
use kettle_verify::{Bundle, BundleFiles, Expectations};
use sha2::{Digest, Sha256};
use x509_cert::der::Decode;

const MEASUREMENT: [u8; 48] = [0x4b; 48];

fn simulated(dir: &Path) -> (Bundle, Expectations) {
    let spec = StatementSpec {
        builder_id: kettle_provenance::ids::BUILDER_ID_SIMULATED,
        ..Default::default()
    };
    simulated_output_dir(dir, &spec, MEASUREMENT);
    let bundle = Bundle::load(&BundleFiles::output_dir(dir).unwrap()).unwrap();
    let mut expect = Expectations::new(MEASUREMENT, "bench").accepting_simulated();
    expect.provenance.repository = Some(spec.repository.into());
    expect.provenance.git_ref = Some(spec.git_ref.into());
    expect.provenance.source = kettle_verify::SourcePin::Commit(spec.commit.unwrap().to_string());
    (bundle, expect)
}

fn milan() -> (Bundle, Expectations) {
    let report = testdata::milan_report();
    let parsed = Report::parse(&report).unwrap();
    let mut pem = kettle_attest::chain::der_to_pem(&testdata::milan_vcek_der()).into_bytes();
    pem.extend_from_slice(&testdata::milan_ca_bundle());
    let bundle = Bundle {
        report,
        chain: CertChain::from_pem_bundle(&pem).map_err(|e| e.to_string()),
        provenance: None,
        artifacts: Vec::new(),
        complete_output: false,
    };
    let mut expect = Expectations::new(parsed.measurement(), "bench");
    expect.report_data = Some(parsed.report_data());
    // Milan is refused by default (report.processor_generation); the bench opts in so the
    // whole check list runs to VERIFIED.
    expect
        .processor_generations
        .push(kettle_attest::chain::Product::Milan);
    (bundle, expect)
}

fn verify(c: &mut Criterion) {
    let tmp = tempfile::tempdir().unwrap();
    let (sim, sim_expect) = simulated(tmp.path());
    let v = kettle_verify::verify(&sim, &sim_expect);
    assert!(v.verified(), "the simulated bundle must verify:\n{v}");
    let (milan, milan_expect) = milan();
    let v = kettle_verify::verify(&milan, &milan_expect);
    assert!(v.verified(), "the Milan report must verify:\n{v}");

    let mut g = c.benchmark_group("verify");
    g.bench_function("simulated_bundle", |b| {
        b.iter(|| kettle_verify::verify(&sim, &sim_expect))
    });
    g.bench_function("milan_report", |b| {
        b.iter(|| kettle_verify::verify(&milan, &milan_expect))
    });
    g.finish();

    let mut g = c.benchmark_group("load");
    g.bench_function("simulated_output_dir", |b| {
        b.iter(|| kettle_verify::verify_output_dir(tmp.path(), &sim_expect).unwrap())
    });
    g.finish();

    // The expensive checks' primitives, on the real Milan evidence.
    let chain = milan.chain.as_ref().unwrap().clone();
    let vcek = x509_cert::Certificate::from_der(&chain.vcek).unwrap();
    let mut pem = kettle_attest::chain::der_to_pem(&testdata::milan_vcek_der()).into_bytes();
    pem.extend_from_slice(&testdata::milan_ca_bundle());
    let provenance = sim.provenance.clone().unwrap();
    let mut g = c.benchmark_group("check");
    g.bench_function("chain_ark_ask_vcek", |b| {
        b.iter(|| check_chain(&chain, false))
    });
    g.bench_function("report_signature_p384", |b| {
        b.iter(|| verify_report_signature(&milan.report, &vcek).unwrap())
    });
    g.bench_function("vcek_extensions", |b| {
        b.iter(|| vcek_extensions(&vcek).unwrap())
    });
    g.bench_function("chain_pem_parse", |b| {
        b.iter(|| CertChain::from_pem_bundle(&pem).unwrap())
    });
    g.bench_function("report_parse", |b| {
        b.iter(|| Report::parse(&milan.report).unwrap())
    });
    g.bench_function("binding_sha256", |b| b.iter(|| Sha256::digest(&provenance)));
    g.bench_function("provenance_canonical", |b| {
        b.iter(|| kettle_provenance::jcs::is_canonical(&provenance))
    });
    g.finish();
}

criterion_group!(benches, verify);
criterion_main!(benches);
