//! The hashing limit and Kettle's file hashing, in one run (`make bench`).
//!
//! * `limit/sha256` and `limit/sha384`: the sha2 crate over 64 MiB in memory on one
//!   core: the single-core throughput every other hashing figure is read against
//!   (`kettle measure`'s SHA-256 of kernel and initrd and SHA-384 of firmware pages).
//! * `file/of_file`: [`Sha256Digest::of_file`] over a rootfs-sized file (1 GiB by
//!   default, page-cached): the guest's input verification (`init` verify step) and
//!   output hashing (`of_reader`, the same loop) path, and the host store's.
//! * `file/read_1mib_update`: the same bytes read with a 1 MiB buffer into one
//!   hasher: what a larger read buffer would give `of_file` (std's `io::copy` reads
//!   8 KiB at a time).
//! * `file/read_only_1mib`: those reads without hashing: the page-cache read floor
//!   that `of_file` pays on top of the hashing limit (it reads and hashes on one core).
//!
//! Env: `KETTLE_BENCH_HASH_FILE` (a file to hash; default: one written to the temp
//! dir and removed after), `KETTLE_BENCH_HASH_BYTES` (its size when written; default
//! 1 GiB).
// criterion_group! defines a pub fn without a doc comment.
#![allow(missing_docs)]

use std::fs::File;
use std::io::{Read, Write};
use std::path::PathBuf;
use std::time::Duration;

use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use kettle_provenance::Sha256Digest;
use sha2::{Digest, Sha256, Sha384};

const LIMIT_BYTES: usize = 64 << 20;

/// Deterministic, incompressible-looking bytes (xorshift), so nothing in the path can shortcut zeros.
fn fill(buf: &mut [u8], mut seed: u64) {
    for chunk in buf.chunks_mut(8) {
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        let b = seed.to_le_bytes();
        chunk.copy_from_slice(&b[..chunk.len()]);
    }
}

fn limit(c: &mut Criterion) {
    let mut data = vec![0u8; LIMIT_BYTES];
    fill(&mut data, 0x9e37_79b9_7f4a_7c15);
    let mut g = c.benchmark_group("limit");
    g.throughput(Throughput::Bytes(LIMIT_BYTES as u64));
    g.sample_size(20);
    g.measurement_time(Duration::from_secs(8));
    g.bench_function("sha256", |b| {
        b.iter(|| std::hint::black_box(Sha256::digest(&data)))
    });
    g.bench_function("sha384", |b| {
        b.iter(|| std::hint::black_box(Sha384::digest(&data)))
    });
    g.finish();
}

/// The file to hash: the caller's, or one written here (removed on drop).
struct HashFile {
    path: PathBuf,
    owned: bool,
}

impl Drop for HashFile {
    fn drop(&mut self) {
        if self.owned {
            let _ = std::fs::remove_file(&self.path);
        }
    }
}

fn hash_file() -> HashFile {
    if let Some(p) = std::env::var_os("KETTLE_BENCH_HASH_FILE").filter(|p| !p.is_empty()) {
        return HashFile {
            path: p.into(),
            owned: false,
        };
    }
    let bytes: u64 = std::env::var("KETTLE_BENCH_HASH_BYTES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(1 << 30);
    let path = std::env::temp_dir().join(format!("kettle-bench-hash-{}", std::process::id()));
    let mut f = File::create(&path).expect("create the hash input");
    let mut chunk = vec![0u8; 1 << 20];
    let mut left = bytes;
    let mut seed = 1u64;
    while left > 0 {
        fill(&mut chunk, seed);
        seed += 1;
        let n = usize::try_from(left).map_or(chunk.len(), |left| left.min(chunk.len()));
        f.write_all(&chunk[..n]).expect("write the hash input");
        left -= n as u64;
    }
    HashFile { path, owned: true }
}

fn read_1mib_update(path: &std::path::Path) -> [u8; 32] {
    let mut f = File::open(path).expect("open");
    let mut h = Sha256::new();
    let mut buf = vec![0u8; 1 << 20];
    loop {
        let n = f.read(&mut buf).expect("read");
        if n == 0 {
            break;
        }
        h.update(&buf[..n]);
    }
    h.finalize().into()
}

/// The read floor: the same reads, no hashing.
fn read_only(path: &std::path::Path) -> u64 {
    let mut f = File::open(path).expect("open");
    let mut buf = vec![0u8; 1 << 20];
    let mut total = 0;
    loop {
        let n = f.read(&mut buf).expect("read");
        if n == 0 {
            return total;
        }
        total += n as u64;
    }
}

fn file(c: &mut Criterion) {
    let input = hash_file();
    let len = std::fs::metadata(&input.path).expect("stat").len();
    // Both ways must agree (and this warms the page cache).
    let d = Sha256Digest::of_file(&input.path).expect("hash");
    assert_eq!(d.0, read_1mib_update(&input.path));
    let mut g = c.benchmark_group("file");
    g.throughput(Throughput::Bytes(len));
    g.sample_size(10);
    g.measurement_time(Duration::from_secs(10));
    g.warm_up_time(Duration::from_secs(1));
    g.bench_function("of_file", |b| {
        b.iter(|| Sha256Digest::of_file(&input.path).expect("hash"))
    });
    g.bench_function("read_1mib_update", |b| {
        b.iter(|| read_1mib_update(&input.path))
    });
    g.bench_function("read_only_1mib", |b| b.iter(|| read_only(&input.path)));
    g.finish();
}

criterion_group!(benches, limit, file);
criterion_main!(benches);
