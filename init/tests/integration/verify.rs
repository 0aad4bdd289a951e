//! Tampered inputs stop the build at the verify step, naming the input and
//! the pin it breaks, before anything is unpacked and with no report requested.

use std::fs;
use std::io::Read;
use std::path::Path;

use kettle_init::{LocalOptions, Step};
use kettle_provenance::Sha256Digest;
use kettle_testkit::fixtures::{hello_cargo_lock, rootfs};
use kettle_testkit::Scenario;
use kettle_wire::cache;

use crate::common::{expect_failure, hello_cargo_with_crates, host_tools};

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
    let sc = hello_cargo_with_crates();
    let inputs = sc.inputs();
    let locked = hello_cargo_lock();
    let hex = locked.iter().find(|k| k.name == "hex").unwrap();
    let blob = cache::blob_path(&inputs, &hex.sha256);
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

/// `archive` (a tar) with `extra` entries appended: (path, contents; None = a directory).
fn with_extra_entries(archive: &[u8], extra: &[(&str, Option<&[u8]>)]) -> Vec<u8> {
    let mut out = Vec::new();
    let mut b = tar::Builder::new(&mut out);
    let mut a = tar::Archive::new(archive);
    for e in a.entries().unwrap() {
        let mut e = e.unwrap();
        let mut data = Vec::new();
        e.read_to_end(&mut data).unwrap();
        let h = e.header().clone();
        b.append(&h, data.as_slice()).unwrap();
    }
    for (path, contents) in extra {
        let mut h = tar::Header::new_gnu();
        match contents {
            Some(data) => {
                h.set_entry_type(tar::EntryType::Regular);
                h.set_mode(0o644);
                h.set_size(data.len() as u64);
                b.append_data(&mut h, path, *data).unwrap();
            }
            None => {
                h.set_entry_type(tar::EntryType::Directory);
                h.set_mode(0o755);
                h.set_size(0);
                b.append_data(&mut h, path, std::io::empty()).unwrap();
            }
        }
    }
    b.finish().unwrap();
    drop(b);
    out
}

/// Every path under `dir` whose file name is `name`.
fn find_named(dir: &Path, name: &str) -> Vec<std::path::PathBuf> {
    let mut found = Vec::new();
    let Ok(entries) = fs::read_dir(dir) else {
        return found;
    };
    for e in entries.flatten() {
        if e.file_name() == name {
            found.push(e.path());
        }
        if e.file_type().unwrap().is_dir() {
            found.extend(find_named(&e.path(), name));
        }
    }
    found
}

#[test]
fn a_source_archive_with_a_git_dir_or_empty_dirs_stops_at_verify_and_never_builds() {
    // The tree hash skips a top-level .git and empty directories, so an archive holding
    // the right tree plus a .git/config hashes right; but git in the build would obey
    // that config (core.fsmonitor runs a host-chosen command) while the provenance names
    // the victim's commit. The build would leave a marker if it ever ran.
    const MARKER: &str = "kettle-build-ran";
    let sc = Scenario::script(
        &format!("touch {MARKER}; mkdir -p out && echo x > out/x"),
        &["out/x"],
    )
    .file("data.txt", "original\n")
    .commit();
    let fsmonitor: &[u8] = b"[core]\n\tfsmonitor = \"touch /src/pwned; false\"\n";
    for (extra, named) in [
        (vec![(".git/config", Some(fsmonitor))], ".git/"),
        (vec![(".git", Some(&b"gitdir: /elsewhere\n"[..]))], ".git"),
        (vec![("empty/", None)], "empty/ (empty directory)"),
        (vec![("a/b/", None), ("a/c/", None)], "a/ (empty directory)"),
    ] {
        let inputs = sc.inputs();
        fs::write(
            cache::source_path(&inputs, &sc.commit),
            with_extra_entries(&sc.archive, &extra),
        )
        .unwrap();
        let work = tempfile::tempdir().unwrap();
        let options = LocalOptions {
            work_dir: Some(work.path().join("work")),
            ..LocalOptions::default()
        };
        let report = expect_failure(
            &sc.request,
            &inputs,
            &options,
            Step::Verify,
            Some("source archive"),
            &["the commit's tree does not have", named],
        );
        assert!(report.message.contains("git archive"), "{}", report.message);
        assert!(
            find_named(work.path(), MARKER).is_empty(),
            "the build ran on a refused source"
        );
        assert!(!work.path().join("work/src").exists(), "/src was populated");
    }
}
