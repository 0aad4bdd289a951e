//! Tampered inputs stop the build at the verify step, naming the input and
//! the pin it breaks, before anything is unpacked and with no report requested.

mod common;

use std::fs;
use std::io::Read;
use std::path::Path;

use kettle_init::{LocalOptions, Step};
use kettle_provenance::Sha256Digest;
use kettle_testkit::fixtures::{hello_cargo_lock, rootfs};
use kettle_testkit::Scenario;
use kettle_wire::cache;

use common::{expect_failure, hello_cargo_crates, host_tools};

/// `archive` with data.txt's content replaced (same paths, same header otherwise).
fn with_data_txt_tampered(archive: &[u8]) -> Vec<u8> {
    let mut evil = Vec::new();
    let mut a = tar::Archive::new(archive);
    let mut b = tar::Builder::new(&mut evil);
    for e in a.entries().unwrap() {
        let mut e = e.unwrap();
        let mut data = Vec::new();
        e.read_to_end(&mut data).unwrap();
        let mut h = e.header().clone();
        if e.path().unwrap().as_ref() == Path::new("data.txt") {
            data = b"tampered\n".to_vec();
            h.set_size(data.len() as u64);
            h.set_cksum();
        }
        b.append(&h, data.as_slice()).unwrap();
    }
    b.finish().unwrap();
    drop(b);
    evil
}

#[test]
fn tampered_source_archive_commit_object_and_toolchain_stop_at_verify() {
    let toolchain = b"pretend toolchain bundle".to_vec();
    let toolchain_sha = Sha256Digest::of_bytes(&toolchain);
    let sc = Scenario::script("mkdir -p out && echo x > out/x", &["out/x"])
        .file("data.txt", "original\n")
        .toolchain(&toolchain)
        .commit();
    let pinned = LocalOptions::default();
    let expect_verify_failure = |inputs: &Path, input: &str, message_has: &str| {
        expect_failure(
            &sc.request,
            inputs,
            &pinned,
            Step::Verify,
            Some(input),
            &[message_has],
        );
    };

    // Source archive: same paths, one file's content changed.
    let inputs = sc.inputs();
    fs::write(
        cache::source_path(&inputs, &sc.commit),
        with_data_txt_tampered(&sc.archive),
    )
    .unwrap();
    expect_verify_failure(&inputs, "source archive", "does not hold that commit");

    // Commit object: one byte of the message changed.
    let inputs = sc.inputs();
    let mut raw = sc.commit_raw.clone();
    *raw.last_mut().unwrap() = b'!';
    fs::write(cache::commit_path(&inputs, &sc.commit), &raw).unwrap();
    expect_verify_failure(&inputs, "commit object", "not the pinned commit");

    // Toolchain: different bytes stored under the pinned name.
    let inputs = sc.inputs();
    fs::write(
        cache::blob_path(&inputs, &toolchain_sha),
        b"a trojaned toolchain",
    )
    .unwrap();
    expect_verify_failure(&inputs, "toolchain", "kettle.toml [toolchain] pins");

    // Rootfs likewise.
    let inputs = sc.inputs();
    fs::write(
        cache::blob_path(&inputs, &Sha256Digest::of_bytes(rootfs())),
        b"another rootfs",
    )
    .unwrap();
    expect_verify_failure(&inputs, "rootfs", "kettle.toml [rootfs] pins");
}

#[test]
fn tampered_crate_stops_at_verify() {
    let sc = Scenario::hello_cargo()
        .inputs(hello_cargo_crates())
        .commit();
    let inputs = sc.inputs();
    let locked = hello_cargo_lock();
    let hex = locked.iter().find(|k| k.name == "hex").unwrap();
    let blob = cache::blob_path(&inputs, &hex.checksum);
    let mut evil = fs::read(&blob).unwrap();
    let n = evil.len();
    evil[n / 2] ^= 0xff;
    fs::write(&blob, evil).unwrap();
    let options = host_tools();
    expect_failure(
        &sc.request,
        &inputs,
        &options,
        Step::Verify,
        Some("crate hex 0.4.3"),
        &["Cargo.lock pins"],
    );
}
