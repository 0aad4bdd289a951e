//! Writing the cache disk (`make bench`): [`kettle::inputs::write_cache`] of a
//! cargo-build's two big inputs (the rootfs and toolchain bundles, or 2 x 128 MiB
//! test files) from the store into a disk image, against
//!
//! * `write_cache_before`: the same loop as it was (every blob re-verified with
//!   `Store::get`, then hashed again and copied by `CacheWriter::add_blob_file`),
//! * `copy`: the bytes copied with `std::fs::copy` (in-kernel `copy_file_range`), the
//!   floor for any design that copies them into one image, and
//! * `copy_fsync`: that plus `fsync`, as `CacheWriter::finish` does.
//!
//! Env: `KETTLE_BENCH_BLOBS` (colon-separated files to use as the blobs; default two
//! 128 MiB files written to the temp dir).
// criterion_group! defines a pub fn without a doc comment.
#![allow(missing_docs)]

use std::fs::File;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::time::Duration;

use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use kettle::inputs::{write_cache, ResolvedInputs};
use kettle::store::Store;
use kettle_wire::cache::CacheWriter;
use kettle_wire::inputs::{InputKind, InputPin};
use kettle_wire::recipe::BuildType;

fn test_file(path: &Path, len: usize, mut seed: u64) {
    let mut f = File::create(path).unwrap();
    let mut buf = vec![0u8; 1 << 20];
    let mut left = len;
    while left > 0 {
        for chunk in buf.chunks_mut(8) {
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            chunk.copy_from_slice(&seed.to_le_bytes()[..chunk.len()]);
        }
        let n = left.min(buf.len());
        f.write_all(&buf[..n]).unwrap();
        left -= n;
    }
}

fn cache_disk(c: &mut Criterion) {
    let tmp = tempfile::tempdir_in(std::env::temp_dir()).unwrap();
    let blobs: Vec<PathBuf> = match std::env::var("KETTLE_BENCH_BLOBS") {
        Ok(v) if !v.is_empty() => v.split(':').map(PathBuf::from).collect(),
        _ => (0..2)
            .map(|i| {
                let p = tmp.path().join(format!("blob{i}"));
                test_file(&p, 128 << 20, 0x1234_5678 + i);
                p
            })
            .collect(),
    };
    let store = Store::open(tmp.path().join("store")).unwrap();
    let mut pins = Vec::new();
    let mut total = 0;
    for (i, b) in blobs.iter().enumerate() {
        let sha = store.insert_file(b, None).unwrap();
        total += std::fs::metadata(b).unwrap().len();
        pins.push(InputPin {
            kind: if i == 0 {
                InputKind::Rootfs
            } else {
                InputKind::Toolchain
            },
            sha256: sha,
            url: "https://example.invalid/x".into(),
        });
    }
    let archive = store
        .insert_bytes("source", b"pretend source archive", None)
        .unwrap();
    let commit = "ab".repeat(20);
    let inputs = ResolvedInputs {
        commit_object: b"tree 0000\n".to_vec(),
        archive,
        blobs: pins,
        build_type: BuildType::CargoBuild,
    };
    let disk = tmp.path().join("cache.img");
    let mut g = c.benchmark_group("cache_disk");
    g.sample_size(10);
    g.measurement_time(Duration::from_secs(15));
    g.warm_up_time(Duration::from_secs(1));
    g.throughput(Throughput::Bytes(total));
    g.bench_function("write_cache", |b| {
        b.iter(|| {
            let w = CacheWriter::create_disk(&disk).unwrap();
            write_cache(&inputs, &commit, &store, w, &disk).unwrap();
        })
    });
    g.bench_function("write_cache_before", |b| {
        b.iter(|| {
            let mut w = CacheWriter::create_disk(&disk).unwrap();
            w.add_commit_object(&commit, &inputs.commit_object).unwrap();
            let a = store.get(&inputs.archive).unwrap().unwrap();
            w.add_source_archive(&commit, &a).unwrap();
            for blob in &inputs.blobs {
                let p = store.get(&blob.sha256).unwrap().unwrap();
                w.add_blob_file(&p).unwrap();
            }
            w.finish().unwrap();
        })
    });
    let copy_to = tmp.path().join("copy.img");
    let stored: Vec<PathBuf> = inputs
        .blobs
        .iter()
        .map(|b| store.path_of(&b.sha256))
        .collect();
    let copy = |sync: bool| {
        let mut out = File::create(&copy_to).unwrap();
        for p in &stored {
            std::io::copy(&mut File::open(p).unwrap(), &mut out).unwrap();
        }
        if sync {
            out.sync_all().unwrap();
        }
    };
    g.bench_function("copy", |b| b.iter(|| copy(false)));
    g.bench_function("copy_fsync", |b| b.iter(|| copy(true)));
    g.finish();
}

criterion_group!(benches, cache_disk);
criterion_main!(benches);
