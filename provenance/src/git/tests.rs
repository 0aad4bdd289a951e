//! Tree and commit ids against git itself, and SHA-1 collision detection.

use super::object::finish;
use super::*;
use sha2::Digest;
use std::ffi::OsStr;
use std::fs;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::symlink;
use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::process::Command;

/// Runs git in `dir` with no user/system config, so results depend only on the files.
fn git(dir: &Path, args: &[&str]) -> Vec<u8> {
    let out = Command::new("git")
        .args(args)
        .current_dir(dir)
        .env("GIT_CONFIG_NOSYSTEM", "1")
        .env("GIT_CONFIG_GLOBAL", "/dev/null")
        .env("HOME", dir)
        .env("GIT_AUTHOR_NAME", "Kettle Test")
        .env("GIT_AUTHOR_EMAIL", "test@kettle.invalid")
        .env("GIT_AUTHOR_DATE", "1700000000 +0000")
        .env("GIT_COMMITTER_NAME", "Kettle Test")
        .env("GIT_COMMITTER_EMAIL", "test@kettle.invalid")
        .env("GIT_COMMITTER_DATE", "1700000000 +0000")
        .output()
        .expect("git must be installed to run these tests");
    assert!(
        out.status.success(),
        "git {args:?} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    out.stdout
}

fn git_line(dir: &Path, args: &[&str]) -> String {
    String::from_utf8(git(dir, args))
        .unwrap()
        .trim()
        .to_string()
}

fn write(path: &Path, data: &[u8], mode: u32) {
    fs::create_dir_all(path.parent().unwrap()).unwrap();
    fs::write(path, data).unwrap();
    fs::set_permissions(path, fs::Permissions::from_mode(mode)).unwrap();
}

/// A tree exercising git's modes, sort order and skipping rules.
fn populate(root: &Path) {
    write(&root.join("a/inside"), b"dir named a\n", 0o644);
    write(&root.join("a.b"), b"dot\n", 0o644);
    write(&root.join("a-b"), b"dash\n", 0o644);
    write(&root.join("a0"), b"zero\n", 0o644);
    write(&root.join("sub/a"), b"file named a\n", 0o644);
    write(&root.join("sub/a.b"), b"", 0o644);
    write(&root.join("sub/a-b"), b"x", 0o644);
    write(&root.join("run.sh"), b"#!/bin/sh\necho hi\n", 0o755);
    write(&root.join("owner-exec-only"), b"u+x\n", 0o744);
    write(&root.join("group-exec-only"), b"g+x\n", 0o654);
    write(
        &root.join("h\u{e9}llo.txt"),
        "non-ASCII \u{1f600}\n".as_bytes(),
        0o644,
    );
    write(&root.join("\u{65e5}\u{672c}/\u{8a9e}"), b"nihongo\n", 0o644);
    write(
        &root.join(OsStr::from_bytes(b"raw-\xff\xfe")),
        b"not UTF-8 name\n",
        0o644,
    );
    write(&root.join("d1/d2/d3/deep"), b"deep\n", 0o600);
    write(
        &root.join("big.bin"),
        &(0..200_000u32)
            .map(|i| (i * 7 % 251) as u8)
            .collect::<Vec<_>>(),
        0o644,
    );
    fs::create_dir_all(root.join("empty")).unwrap();
    fs::create_dir_all(root.join("e1/e2/e3")).unwrap();
    symlink("run.sh", root.join("link-to-file")).unwrap();
    symlink("does/not/exist", root.join("dangling")).unwrap();
    symlink("../a", root.join("sub/link-to-dir")).unwrap();
}

fn check_against_git(format: ObjectFormat, flag: &str) {
    let tmp = tempfile::tempdir().unwrap();
    let root = tmp.path();
    git(root, &["init", "-q", flag]);
    populate(root);
    git(root, &["add", "-A"]);
    let expected = git_line(root, &["write-tree"]);
    assert_eq!(expected.len(), format.hex_len());
    assert_eq!(
        tree_id(root, format).unwrap(),
        expected.as_str(),
        "tree id differs from git write-tree"
    );

    // Commit and verify the commit object against rev-parse.
    git(root, &["commit", "-q", "-m", "test commit\n\nwith a body"]);
    let head = git_line(root, &["rev-parse", "HEAD"]);
    let raw = git(root, &["cat-file", "commit", "HEAD"]);
    assert_eq!(
        verify_commit(&raw, &head, format).unwrap(),
        expected.as_str()
    );

    // Tampering with any byte breaks it.
    let mut tampered = raw.clone();
    let last = tampered.len() - 2;
    tampered[last] ^= 0x20;
    assert!(matches!(
        verify_commit(&tampered, &head, format),
        Err(GitError::CommitIdMismatch { .. })
    ));

    // A blob id agrees with git hash-object.
    let blob = git_line(root, &["hash-object", "big.bin"]);
    assert_eq!(
        blob_id(format, &fs::read(root.join("big.bin")).unwrap()).unwrap(),
        blob
    );

    // Changing a mode bit or content changes the id the way git sees it.
    fs::set_permissions(root.join("a.b"), fs::Permissions::from_mode(0o755)).unwrap();
    git(root, &["add", "-A"]);
    let changed = git_line(root, &["write-tree"]);
    assert_ne!(changed, expected);
    assert_eq!(tree_id(root, format).unwrap(), changed.as_str());
}

#[test]
fn tree_and_commit_match_git_sha1() {
    check_against_git(ObjectFormat::Sha1, "--object-format=sha1");
}

#[test]
fn tree_and_commit_match_git_sha256() {
    check_against_git(ObjectFormat::Sha256, "--object-format=sha256");
}

#[test]
fn well_known_ids() {
    // `git hash-object -t tree /dev/null` and `git hash-object /dev/null` in each format.
    let tmp = tempfile::tempdir().unwrap();
    assert_eq!(
        tree_id(tmp.path(), ObjectFormat::Sha1).unwrap(),
        "4b825dc642cb6eb9a060e54bf8d69288fbee4904"
    );
    assert_eq!(
        tree_id(tmp.path(), ObjectFormat::Sha256).unwrap(),
        "6ef19b41225c5369f1c104d45d8d85efa9b057b53b14b4b9b939dd74decc5321"
    );
    assert_eq!(
        blob_id(ObjectFormat::Sha1, b"").unwrap(),
        "e69de29bb2d1d6434b8b29ae775ad8c2e48c5391"
    );
    assert_eq!(
        blob_id(ObjectFormat::Sha256, b"").unwrap(),
        "473a0f4c3be8a93681a267e3b1e9a7dcda1185436fe141f7749120a303721813"
    );
}

#[test]
fn nested_dot_git_and_special_files_are_refused() {
    let tmp = tempfile::tempdir().unwrap();
    write(&tmp.path().join("x/.git/config"), b"", 0o644);
    assert!(matches!(
        tree_id(tmp.path(), ObjectFormat::Sha1),
        Err(GitError::NestedGitDir(_))
    ));

    let tmp = tempfile::tempdir().unwrap();
    let fifo = tmp.path().join("fifo");
    let ok = Command::new("mkfifo")
        .arg(&fifo)
        .status()
        .map(|s| s.success())
        .unwrap_or(false);
    if ok {
        assert!(matches!(
            tree_id(tmp.path(), ObjectFormat::Sha1),
            Err(GitError::UnsupportedFileType(_))
        ));
    }
}

#[test]
fn commit_verification_rejects_bad_input() {
    let raw = b"tree 4b825dc642cb6eb9a060e54bf8d69288fbee4904\nauthor A <a@b> 0 +0000\ncommitter A <a@b> 0 +0000\n\nm\n";
    let id = commit_id(raw, ObjectFormat::Sha1).unwrap();
    assert_eq!(
        verify_commit(raw, &id, ObjectFormat::Sha1).unwrap(),
        "4b825dc642cb6eb9a060e54bf8d69288fbee4904"
    );
    // Wrong length for the format, uppercase, wrong id.
    assert!(matches!(
        verify_commit(raw, &id, ObjectFormat::Sha256),
        Err(GitError::BadCommitId { .. })
    ));
    assert!(matches!(
        verify_commit(raw, &id.to_uppercase(), ObjectFormat::Sha1),
        Err(GitError::BadCommitId { .. })
    ));
    assert!(matches!(
        verify_commit(raw, &"0".repeat(40), ObjectFormat::Sha1),
        Err(GitError::CommitIdMismatch { .. })
    ));
    // Bytes that hash correctly but are not a commit with a tree header.
    for body in [
        &b"parent 4b825dc642cb6eb9a060e54bf8d69288fbee4904\n"[..],
        b"tree xyz\n",
        b"no newline",
    ] {
        let id = commit_id(body, ObjectFormat::Sha1).unwrap();
        assert!(
            matches!(
                verify_commit(body, &id, ObjectFormat::Sha1),
                Err(GitError::MalformedCommit(_))
            ),
            "{body:?}"
        );
    }
}

/// The SHAttered collision (Stevens et al., 2017): the first 320 bytes of its two PDFs,
/// different bytes with one SHA-1 (taken from the sha1-checked crate's test data).
const SHATTERED: [&[u8]; 2] = [
    include_bytes!("../../tests/data/shattered-1-prefix.bin"),
    include_bytes!("../../tests/data/shattered-2-prefix.bin"),
];

#[test]
fn a_real_sha1_collision_is_refused_with_a_named_error() {
    // Plain SHA-1 cannot tell the two apart.
    assert_ne!(SHATTERED[0], SHATTERED[1]);
    let plain = |data: &[u8]| {
        let mut h = sha1_checked::Sha1::builder()
            .detect_collision(false)
            .build();
        Digest::update(&mut h, data);
        hex::encode(h.finalize())
    };
    assert_eq!(
        plain(SHATTERED[0]),
        "f92d74e3874587aaf443d1db961d4e26dde13e9c"
    );
    assert_eq!(plain(SHATTERED[0]), plain(SHATTERED[1]));
    // The object hasher refuses each half, naming the object. (The collision is of the raw
    // SHA-1 stream; behind a git object header its blocks no longer line up, as in git's
    // own SHA-1DC test, so it is fed to the object hasher without one.)
    for half in SHATTERED {
        let mut h = ObjectFormat::Sha1.hasher();
        h.update(half);
        match finish(h, "blob", || "of the file shattered.pdf".into()) {
            Err(GitError::Sha1Collision { kind, object }) => {
                assert_eq!(
                    (kind.as_str(), object.as_str()),
                    ("blob", "of the file shattered.pdf")
                )
            }
            other => panic!("the collision was not detected: {other:?}"),
        }
    }
    // SHA-256 objects have no such check to make, and the same bytes are fine there.
    let mut h = ObjectFormat::Sha256.hasher();
    h.update(SHATTERED[0]);
    assert!(finish(h, "blob", String::new).is_ok());
    // An ordinary object passes detection and keeps git's id.
    let mut h = ObjectFormat::Sha1.hasher();
    h.update(b"blob 0\0");
    assert_eq!(
        hex::encode(finish(h, "blob", String::new).unwrap()),
        "e69de29bb2d1d6434b8b29ae775ad8c2e48c5391"
    );
}
