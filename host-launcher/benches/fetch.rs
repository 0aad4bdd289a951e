//! Host-side input resolution for a lockfile of 200 crates from a local mirror
//! (`make bench`): [`kettle::inputs::resolve_with`] into an empty store, one
//! download at a time (`jobs1`, what `kettle build` did before) and
//! [`DEFAULT_FETCH_JOBS`] at a time (`jobs8`), against a local HTTPS stand-in
//! that serves crates.io-style paths with keep-alive and answers each request
//! after an optional delay: `lat0ms` is the loopback mirror itself, `lat10ms` a
//! mirror one 10 ms round trip away.
//!
//! Env: `KETTLE_BENCH_CRATES` (default 200).
// criterion_group! defines a pub fn without a doc comment.
#![allow(missing_docs)]

use std::path::Path;
use std::time::Duration;

use criterion::{criterion_group, criterion_main, BatchSize, Criterion, Throughput};
use kettle::download::{Downloader, RetryPolicy};
use kettle::inputs::{resolve_with, Delivered, ResolveOptions, DEFAULT_FETCH_JOBS};
use kettle::source::resolve_checkout;
use kettle::store::Store;
use kettle_testkit::https::{HttpsServer, ServerOptions};
use kettle_testkit::stand_in::{cargo_project, ROOTFS, TOOLCHAIN};

/// A crates mirror on 127.0.0.1 serving `files`, with keep-alive, each answer after `latency`.
fn mirror(files: &[(String, Vec<u8>)], latency: Duration) -> HttpsServer {
    let server = HttpsServer::start_with(ServerOptions {
        keep_alive: true,
        latency,
    });
    for (path, bytes) in files {
        server.serve(path, bytes.clone());
    }
    server
}

/// A cargo-build/v1 commit locking `n` crates (4 to 64 KiB each, distinct bytes), the
/// mirror's files, and the toolchain and rootfs bytes (pre-seeded in each store).
fn project(n: usize) -> (kettle_testkit::GitRepo, Vec<(String, Vec<u8>)>, u64) {
    let mut seed = 0x2545_f491_4f6c_dd1du64;
    let crates: Vec<(String, Vec<u8>)> = (0..n)
        .map(|i| {
            let len = 4096 + (i * 7919) % (60 * 1024);
            let bytes = (0..len)
                .map(|_| {
                    seed ^= seed << 13;
                    seed ^= seed >> 7;
                    seed ^= seed << 17;
                    seed.to_le_bytes()[0]
                })
                .collect();
            (format!("bench-crate-{i:03}"), bytes)
        })
        .collect();
    let total = crates.iter().map(|(_, b)| b.len() as u64).sum();
    let (repo, files) = cargo_project(crates);
    (repo, files, total)
}

fn fresh_store(dir: &Path) -> Store {
    let _ = std::fs::remove_dir_all(dir);
    let store = Store::open(dir).unwrap();
    store.insert_bytes("toolchain", TOOLCHAIN, None).unwrap();
    store.insert_bytes("rootfs", ROOTFS, None).unwrap();
    store
}

fn fetch(c: &mut Criterion) {
    let n: usize = std::env::var("KETTLE_BENCH_CRATES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(200);
    let (repo, files, total) = project(n);
    let src = resolve_checkout(repo.path(), None, false).unwrap();
    let tmp = tempfile::tempdir().unwrap();
    let mut g = c.benchmark_group("fetch");
    g.sample_size(10);
    g.measurement_time(Duration::from_secs(10));
    g.warm_up_time(Duration::from_secs(1));
    g.throughput(Throughput::Elements(n as u64));
    eprintln!("fetch: {n} crates, {total} bytes");
    for latency_ms in [0u64, 10] {
        let mirror = mirror(&files, Duration::from_millis(latency_ms));
        let ca = tmp.path().join("ca.pem");
        mirror.write_ca(&ca);
        for jobs in [1, DEFAULT_FETCH_JOBS] {
            let options = ResolveOptions {
                crates_url: format!("{}/crates", mirror.base_url()),
                jobs,
            };
            // One downloader per case, as one `kettle build` has: its pool warms up once.
            let dl = Downloader::with_ca_bundle(RetryPolicy::default(), &ca);
            let store_dir = tmp.path().join("store");
            let work = tmp.path().join("work");
            std::fs::create_dir_all(&work).unwrap();
            g.bench_function(format!("lat{latency_ms}ms/jobs{jobs}"), |b| {
                b.iter_batched(
                    || fresh_store(&store_dir),
                    |store| {
                        let r =
                            resolve_with(&src, &store, &dl, &work, &options, &Delivered::default())
                                .unwrap();
                        assert_eq!(r.blobs.len(), n + 2);
                    },
                    BatchSize::PerIteration,
                )
            });
        }
    }
    g.finish();
}

criterion_group!(benches, fetch);
criterion_main!(benches);
