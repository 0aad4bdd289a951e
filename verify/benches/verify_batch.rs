//! Verifying many bundles in one process (`make bench`): N output directories as
//! `kettle build --tee simulated` leaves them, each with its own artifact,
//! provenance.json and signed report, verified one after the other with
//! [`kettle_verify::verify_output_dir`] (read + every check), and again with the
//! bundles already loaded ([`kettle_verify::verify`]: the checks alone).
//! Reports ms per bundle, the median of `KETTLE_BENCH_ROUNDS` rounds (default 3).
//!
//! Env: `KETTLE_BENCH_BUNDLES` (default 1000), `KETTLE_BENCH_ROUNDS` (default 3),
//! `KETTLE_BENCH_OUT` (directory for verify_batch.json; default: print only).
//! Runs under `cargo bench` (harness = false); `--bench` and other arguments are ignored.
// criterion_group! defines a pub fn without a doc comment.
#![allow(missing_docs)]

use std::fs;
use std::path::{Path, PathBuf};
use std::time::Instant;

use kettle_attest::simulated::SimulatedPsp;
use kettle_testkit::evidence::StatementSpec;
use kettle_verify::{Bundle, BundleFiles, Expectations};

const MEASUREMENT: [u8; 48] = [0x4b; 48];

fn env_or(name: &str, default: usize) -> usize {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

/// Writes bundle `i` into `dir` (like `kettle_testkit::evidence::simulated_output_dir`, with
/// the test chain made once instead of per bundle).
fn write_bundle(dir: &Path, i: usize, psp: &SimulatedPsp, chain_pem: &[u8]) {
    let artifact = format!("hello from kettle build number {i}\n");
    let spec = StatementSpec {
        subjects: vec![("out/hello.txt", artifact.as_bytes())],
        builder_id: kettle_provenance::ids::BUILDER_ID_SIMULATED,
        ..Default::default()
    };
    let provenance = spec.bytes();
    let report = psp
        .report(&kettle_attest::report_data_for(&provenance), 0)
        .expect("the simulated PSP signs");
    fs::create_dir_all(dir.join("artifacts/out")).unwrap();
    fs::write(dir.join("artifacts/out/hello.txt"), artifact.as_bytes()).unwrap();
    fs::write(dir.join("provenance.json"), &provenance).unwrap();
    fs::write(dir.join("evidence"), report).unwrap();
    fs::write(dir.join("chain.pem"), chain_pem).unwrap();
    fs::write(dir.join("build.log"), b"console\n").unwrap();
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(|a, b| a.partial_cmp(b).unwrap());
    v[v.len() / 2]
}

fn main() {
    let n = env_or("KETTLE_BENCH_BUNDLES", 1000).max(1);
    let rounds = env_or("KETTLE_BENCH_ROUNDS", 3).max(1);
    let tmp = tempfile::tempdir().unwrap();
    let psp = SimulatedPsp::new(MEASUREMENT);
    let chain_pem = psp.cert_chain_pem().expect("the test chain");
    let t = Instant::now();
    let dirs: Vec<PathBuf> = (0..n)
        .map(|i| {
            let d = tmp.path().join(format!("b{i:05}"));
            write_bundle(&d, i, &psp, &chain_pem);
            d
        })
        .collect();
    eprintln!(
        "verify_batch: wrote {n} bundles in {:.1}s",
        t.elapsed().as_secs_f64()
    );
    let spec = StatementSpec::default();
    let mut expect = Expectations::new(MEASUREMENT, "bench").accepting_simulated();
    expect.provenance.repository = Some(spec.repository.into());
    expect.provenance.git_ref = Some(spec.git_ref.into());
    expect.provenance.source = kettle_verify::SourcePin::Commit(spec.commit.unwrap().into());

    let mut with_load = Vec::new();
    let mut checks_only = Vec::new();
    for round in 0..rounds {
        let t = Instant::now();
        for d in &dirs {
            let v = kettle_verify::verify_output_dir(d, &expect).expect("loads");
            assert!(v.verified(), "{}: {v}", d.display());
        }
        let ms = t.elapsed().as_secs_f64() * 1e3 / n as f64;
        let bundles: Vec<Bundle> = dirs
            .iter()
            .map(|d| Bundle::load(&BundleFiles::output_dir(d).unwrap()).unwrap())
            .collect();
        let t = Instant::now();
        for b in &bundles {
            assert!(kettle_verify::verify(b, &expect).verified());
        }
        let ms_checks = t.elapsed().as_secs_f64() * 1e3 / n as f64;
        eprintln!("verify_batch: round {round}: {ms:.3} ms/bundle read+verify, {ms_checks:.3} ms/bundle checks only");
        with_load.push(ms);
        checks_only.push(ms_checks);
    }
    let json = format!(
        "{{\n  \"bundles\": {n},\n  \"rounds\": {rounds},\n  \"ms_per_bundle_read_and_verify\": {:.4},\n  \"ms_per_bundle_checks_only\": {:.4},\n  \"rounds_read_and_verify_ms\": {:?},\n  \"rounds_checks_only_ms\": {:?}\n}}\n",
        median(with_load.clone()),
        median(checks_only.clone()),
        with_load,
        checks_only
    );
    print!("{json}");
    if let Some(out) = std::env::var_os("KETTLE_BENCH_OUT").filter(|v| !v.is_empty()) {
        let out = PathBuf::from(out);
        fs::create_dir_all(&out).unwrap();
        fs::write(out.join("verify_batch.json"), json).unwrap();
    }
}
