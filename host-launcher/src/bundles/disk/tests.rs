use super::*;
use std::os::unix::fs::PermissionsExt;

/// Whether `tool` runs here; the comparison against it is skipped (and said) if not.
fn have(tool: &str) -> bool {
    let ok = Command::new(tool).arg("--help").output().is_ok();
    if !ok {
        eprintln!("SKIPPED: {tool} not installed (make setup installs it)");
    }
    ok
}

/// Runs `cmd`; fails the test with its stderr unless it exits 0.
fn succeeds(cmd: &mut Command) {
    let out = cmd.output().unwrap();
    assert!(
        out.status.success(),
        "{cmd:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// A bundle tarball: a directory, an executable, a file, a relative symlink.
fn bundle(dir: &Path) -> PathBuf {
    let mut b = tar::Builder::new(Vec::new());
    let mut add = |path: &str, kind: tar::EntryType, mode: u32, data: &[u8]| {
        let mut h = tar::Header::new_gnu();
        h.set_entry_type(kind);
        h.set_mode(mode);
        h.set_mtime(1_700_000_000);
        if kind == tar::EntryType::Symlink {
            h.set_size(0);
            b.append_link(&mut h, path, std::str::from_utf8(data).unwrap())
                .unwrap();
        } else {
            h.set_size(data.len() as u64);
            b.append_data(&mut h, path, data).unwrap();
        }
    };
    add("bin/", tar::EntryType::Directory, 0o755, b"");
    add(
        "bin/cargo",
        tar::EntryType::Regular,
        0o755,
        b"#!/bin/sh\necho cargo\n",
    );
    add(
        "lib/libstd.so",
        tar::EntryType::Regular,
        0o644,
        &vec![7u8; 20_000],
    );
    add("lib/link.so", tar::EntryType::Symlink, 0o777, b"libstd.so");
    let path = dir.join("toolchain.tar");
    fs::write(&path, b.into_inner().unwrap()).unwrap();
    path
}

/// A scratch directory holding [`bundle`]'s tarball, when mkfs.erofs is here to make disks.
fn with_bundle() -> Option<(tempfile::TempDir, PathBuf)> {
    if !have("mkfs.erofs") {
        return None;
    }
    let tmp = tempfile::tempdir().unwrap();
    let tarball = bundle(tmp.path());
    Some((tmp, tarball))
}

#[test]
fn a_bundle_disk_is_the_same_bytes_twice_and_its_tree_checks_out() {
    let Some((tmp, tarball)) = with_bundle() else {
        return;
    };
    let (one, two) = (tmp.path().join("a.erofs"), tmp.path().join("b.erofs"));
    let p1 = make_disk(&tarball, &one, "mkfs.erofs").unwrap();
    let p2 = make_disk(&tarball, &two, "mkfs.erofs").unwrap();
    assert_eq!(
        fs::read(&one).unwrap(),
        fs::read(&two).unwrap(),
        "same bundle, same disk"
    );
    assert_eq!((&p1.verity_root, &p1.sha256), (&p2.verity_root, &p2.sha256));
    assert_eq!(p1.data_bytes % 4096, 0);
    assert_eq!(fs::metadata(&one).unwrap().len(), p1.size);
    assert_eq!(Sha256Digest::of_file(&one).unwrap().to_hex(), p1.sha256);
    assert!(
        fs::read_dir(tmp.path()).unwrap().all(|e| !e
            .unwrap()
            .file_name()
            .to_string_lossy()
            .contains("staging")),
        "the scratch directory is gone"
    );
    // The independent peers: veritysetup checks the tree, fsck.erofs reads the files back.
    if have("veritysetup") {
        succeeds(
            Command::new("veritysetup")
                .arg("verify")
                .arg(format!("--hash-offset={}", p1.data_bytes))
                .arg(format!("--salt={}", p1.verity_salt))
                .args([&one, &one])
                .arg(&p1.verity_root),
        );
    }
    if have("fsck.erofs") {
        let back = tmp.path().join("back");
        succeeds(
            Command::new("fsck.erofs")
                .arg(format!("--extract={}", back.display()))
                .arg(&one),
        );
        assert_eq!(
            fs::read(back.join("bin/cargo")).unwrap(),
            b"#!/bin/sh\necho cargo\n"
        );
        let mode = fs::metadata(back.join("bin/cargo"))
            .unwrap()
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o755, "modes kept");
        assert_eq!(
            fs::read(back.join("lib/libstd.so")).unwrap(),
            vec![7u8; 20_000]
        );
        assert_eq!(
            fs::read_link(back.join("lib/link.so")).unwrap(),
            Path::new("libstd.so")
        );
    }
}

#[test]
fn a_different_bundle_gives_a_different_root_and_a_bad_one_no_disk() {
    let Some((tmp, tarball)) = with_bundle() else {
        return;
    };
    let first = make_disk(&tarball, &tmp.path().join("a.erofs"), "mkfs.erofs").unwrap();
    let mut bytes = fs::read(&tarball).unwrap();
    let at = bytes.windows(4).position(|w| w == b"echo").unwrap();
    bytes[at] = b'E';
    fs::write(&tarball, &bytes).unwrap();
    let second = make_disk(&tarball, &tmp.path().join("b.erofs"), "mkfs.erofs").unwrap();
    assert_ne!(first.verity_root, second.verity_root);
    // A tarball with an escaping path is refused by the unpacker the guest uses: no disk.
    let mut evil = tar::Builder::new(Vec::new());
    let mut h = tar::Header::new_gnu();
    h.set_entry_type(tar::EntryType::Symlink);
    h.set_size(0);
    h.set_mode(0o777);
    evil.append_link(&mut h, "up", "../../etc").unwrap();
    let evil_path = tmp.path().join("evil.tar");
    fs::write(&evil_path, evil.into_inner().unwrap()).unwrap();
    let out = tmp.path().join("evil.erofs");
    let err = make_disk(&evil_path, &out, "mkfs.erofs").unwrap_err();
    assert!(err.to_string().contains("evil.tar"), "{err}");
    assert!(!out.exists(), "nothing half-written");
}

#[test]
fn disk_names_follow_their_bundles() {
    assert_eq!(disk_file_name("toolchain.tar.gz"), "toolchain.erofs");
    assert_eq!(disk_file_name("rootfs.tar"), "rootfs.erofs");
    assert_eq!(
        uuid_text(&[0xab; 16]),
        "abababab-abab-abab-abab-abababababab"
    );
}

#[test]
fn a_disk_pin_of_another_bundle_or_edited_is_refused() {
    let Some((tmp, tarball)) = with_bundle() else {
        return;
    };
    let disk = tmp.path().join(disk_file_name("toolchain.tar"));
    let pin = make_disk(&tarball, &disk, "mkfs.erofs").unwrap();
    fs::write(pin_path(&disk), pin.to_bytes()).unwrap();
    let sha = Sha256Digest::of_file(&tarball).unwrap();
    assert_eq!(
        pin_beside(&tarball, "toolchain.tar", &sha).unwrap(),
        Some(pin.clone())
    );
    // The bundle changed since (a stale disk beside it): refused, with the fix.
    let other = Sha256Digest::of_bytes(b"another bundle");
    let err = pin_beside(&tarball, "toolchain.tar", &other).unwrap_err();
    assert!(
        err.to_string()
            .contains("remake it with `kettle bundle disk`"),
        "{err}"
    );
    // An edited salt, or a disk that is not the pin's: refused.
    let mut edited = pin.clone();
    edited.verity_salt = "00".repeat(32);
    fs::write(pin_path(&disk), edited.to_bytes()).unwrap();
    assert!(pin_beside(&tarball, "toolchain.tar", &sha).is_err());
    fs::write(pin_path(&disk), pin.to_bytes()).unwrap();
    let mut bytes = fs::read(&disk).unwrap();
    bytes[0] ^= 1;
    fs::write(&disk, bytes).unwrap();
    let err = pin_beside(&tarball, "toolchain.tar", &sha).unwrap_err();
    assert!(err.to_string().contains("bytes with sha256"), "{err}");
}
