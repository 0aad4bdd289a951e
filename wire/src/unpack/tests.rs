use super::*;
use std::os::unix::fs::PermissionsExt;

/// Builds a tar from (path, type, data-or-link) triples, bypassing the tar crate's path checks.
pub(crate) fn hostile_tar(entries: &[(&str, tar::EntryType, &[u8])]) -> Vec<u8> {
    let mut out = Vec::new();
    for (path, kind, data) in entries {
        let mut h = tar::Header::new_gnu();
        {
            let gnu = h.as_gnu_mut().unwrap();
            gnu.name[..path.len()].copy_from_slice(path.as_bytes());
        }
        h.set_entry_type(*kind);
        h.set_mode(0o644);
        if matches!(kind, tar::EntryType::Symlink | tar::EntryType::Link) {
            h.as_gnu_mut().unwrap().linkname[..data.len()].copy_from_slice(data);
            h.set_size(0);
        } else {
            h.set_size(data.len() as u64);
        }
        h.set_cksum();
        out.extend_from_slice(h.as_bytes());
        if !matches!(kind, tar::EntryType::Symlink | tar::EntryType::Link) {
            out.extend_from_slice(data);
            out.resize(out.len().div_ceil(512) * 512, 0);
        }
    }
    out.resize(out.len() + 1024, 0);
    out
}

/// Unpacks `entries` into `<tmp>/<dest>`; returns the temp dir and the result.
fn try_unpack_into(
    dest: &str,
    entries: &[(&str, tar::EntryType, &[u8])],
) -> (tempfile::TempDir, Result<UnpackStats, UnpackError>) {
    let dir = tempfile::tempdir().unwrap();
    let r = unpack(
        hostile_tar(entries).as_slice(),
        &dir.path().join(dest),
        &UnpackLimits::SOURCE,
    );
    (dir, r)
}

/// Unpacks `entries` into `<tmp>/dest`.
fn try_unpack(
    entries: &[(&str, tar::EntryType, &[u8])],
) -> (tempfile::TempDir, Result<UnpackStats, UnpackError>) {
    try_unpack_into("dest", entries)
}

use tar::EntryType as T;

#[test]
fn extracts_a_normal_tree_with_modes_and_inner_links() {
    let (dir, r) = try_unpack(&[
        ("./", T::Directory, b""),
        ("a/", T::Directory, b""),
        ("a/file.txt", T::Regular, b"hello"),
        ("a/link", T::Symlink, b"file.txt"),
        ("b/up", T::Symlink, b"../a/file.txt"),
        ("a/hard", T::Link, b"a/file.txt"),
    ]);
    let stats = r.unwrap();
    assert_eq!(stats.bytes, 5);
    let dest = dir.path().join("dest");
    assert_eq!(fs::read(dest.join("b/up")).unwrap(), b"hello");
    assert_eq!(fs::read(dest.join("a/hard")).unwrap(), b"hello");
    assert_eq!(
        fs::metadata(dest.join("a/file.txt"))
            .unwrap()
            .permissions()
            .mode()
            & 0o7777,
        0o644
    );
}

#[test]
fn refuses_absolute_and_parent_paths() {
    assert!(matches!(
        try_unpack(&[("/etc/evil", T::Regular, b"x")]).1,
        Err(UnpackError::UnsafePath(_))
    ));
    assert!(matches!(
        try_unpack(&[("a/../../evil", T::Regular, b"x")]).1,
        Err(UnpackError::UnsafePath(_))
    ));
    assert!(matches!(
        try_unpack(&[("../evil", T::Directory, b"")]).1,
        Err(UnpackError::UnsafePath(_))
    ));
}

#[test]
fn refuses_escaping_symlinks_and_writes_through_links() {
    let (dir, r) = try_unpack(&[("l", T::Symlink, b"/etc")]);
    assert!(matches!(r, Err(UnpackError::SymlinkEscape { .. })), "{r:?}");
    drop(dir);
    let (_d, r) = try_unpack(&[("a/l", T::Symlink, b"../../outside")]);
    assert!(matches!(r, Err(UnpackError::SymlinkEscape { .. })), "{r:?}");
    // An inside link followed by a write through it.
    let (_d, r) = try_unpack(&[
        ("d/", T::Directory, b""),
        ("l", T::Symlink, b"d"),
        ("l/f", T::Regular, b"x"),
    ]);
    assert!(matches!(r, Err(UnpackError::ThroughSymlink(_))), "{r:?}");
    // The chained-link escape that a purely lexical check lets through.
    let (dir, r) = try_unpack(&[
        ("p/q/y", T::Symlink, b"../../z"),
        ("p/q/x", T::Symlink, b"y/../.."),
        ("p/q/x/evil", T::Regular, b"x"),
    ]);
    assert!(r.is_err(), "{r:?}");
    assert!(!dir.path().join("evil").exists());
}

/// In the tests below `<tmp>/outer` stands for "everything outside the destination".
const NESTED: &str = "outer/dest";

#[test]
fn a_link_to_the_parent_then_a_write_through_it_is_refused() {
    let (dir, r) = try_unpack_into(
        NESTED,
        &[("a", T::Symlink, b".."), ("a/b", T::Regular, b"x")],
    );
    assert!(r.is_err(), "{r:?}");
    assert!(!dir.path().join("outer/b").exists(), "written outside");
    // The same one level down, where the link itself stays inside: the write is refused by the kernel.
    let (dir, r) = try_unpack_into(
        NESTED,
        &[
            ("d/a", T::Symlink, b".."),
            ("d/a/b", T::Symlink, b"../x"),
            ("d/a/c", T::Regular, b"x"),
        ],
    );
    assert!(matches!(r, Err(UnpackError::ThroughSymlink(_))), "{r:?}");
    assert!(!dir.path().join("outer/x").exists());
    assert!(!dir.path().join("outer/dest/c").exists());
}

#[test]
fn a_two_hop_link_chain_out_of_the_destination_is_refused() {
    for entries in [
        &[
            ("x", T::Symlink, &b"y"[..]),
            ("y", T::Symlink, b"../../etc"),
            ("x/kettle-owned", T::Regular, b"x"),
        ][..],
        &[
            ("d/x", T::Symlink, &b"y"[..]),
            ("d/y", T::Symlink, b"../../etc"),
            ("d/x/kettle-owned", T::Regular, b"x"),
        ][..],
    ] {
        let (dir, r) = try_unpack_into(NESTED, entries);
        assert!(r.is_err(), "{r:?}");
        assert!(!dir.path().join("etc").exists());
        assert!(!dir.path().join("outer/etc").exists());
    }
    assert!(!Path::new("/etc/kettle-owned").exists());
}

#[test]
fn a_link_chain_that_only_the_kernel_sees_leaving_is_refused() {
    // As text, p/q/x -> y/.. stays in p/q; resolved, y is the root and y/.. is outside.
    // No entry is written through it, yet leaving it in the tree would hand any later
    // reader (or writer) of p/q/x the directory above the destination.
    let (dir, r) = try_unpack_into(
        NESTED,
        &[
            ("p/q/y", T::Symlink, b"../.."),
            ("p/q/x", T::Symlink, b"y/.."),
        ],
    );
    assert!(
        matches!(&r, Err(UnpackError::SymlinkEscape { path, .. }) if path == "p/q/x"),
        "{r:?}"
    );
    drop(dir);
    // Links that resolve inside, dangle or loop are fine.
    let (_d, r) = try_unpack_into(
        NESTED,
        &[
            ("p/q/y", T::Symlink, b"../.."),
            ("p/q/dangling", T::Symlink, b"nowhere"),
            ("p/q/loop", T::Symlink, b"loop"),
        ],
    );
    r.unwrap();
}

#[test]
fn beneath_never_writes_through_a_symlink() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("root");
    fs::create_dir_all(root.join("real")).unwrap();
    std::os::unix::fs::symlink("..", root.join("up")).unwrap();
    std::os::unix::fs::symlink("../outside.json", root.join("real/link.json")).unwrap();
    let b = Beneath::open(&root).unwrap();
    assert!(matches!(
        b.create_file(Path::new("up/outside.json"), 0o644),
        Err(BeneathError::Symlink(_))
    ));
    assert!(b.create_file(Path::new("real/link.json"), 0o644).is_err());
    assert!(matches!(
        b.create_file(Path::new("../outside.json"), 0o644),
        Err(BeneathError::Escapes(_))
    ));
    assert!(!dir.path().join("outside.json").exists());
    // Removing a link removes the link, not its target; then the name can be created.
    b.remove_file(Path::new("real/link.json")).unwrap();
    let mut f = b.create_file(Path::new("real/link.json"), 0o600).unwrap();
    io::Write::write_all(&mut f, b"{}").unwrap();
    assert_eq!(fs::read(root.join("real/link.json")).unwrap(), b"{}");
    assert_eq!(
        fs::metadata(root.join("real/link.json"))
            .unwrap()
            .permissions()
            .mode()
            & 0o777,
        0o600
    );
    assert!(b.create_dirs(Path::new("new/deeper")).is_ok());
    assert!(root.join("new/deeper").is_dir());
    assert!(matches!(
        b.create_dirs(Path::new("up/x")),
        Err(BeneathError::Symlink(_))
    ));
}

#[test]
fn refuses_bad_hard_links() {
    let (_d, r) = try_unpack(&[("h", T::Link, b"/etc/passwd")]);
    assert!(matches!(r, Err(UnpackError::BadHardLink { .. })), "{r:?}");
    let (_d, r) = try_unpack(&[("h", T::Link, b"../x")]);
    assert!(matches!(r, Err(UnpackError::BadHardLink { .. })), "{r:?}");
    let (_d, r) = try_unpack(&[("h", T::Link, b"never-extracted")]);
    assert!(matches!(r, Err(UnpackError::BadHardLink { .. })), "{r:?}");
    let (_d, r) = try_unpack(&[("s", T::Symlink, b"."), ("h", T::Link, b"s")]);
    assert!(matches!(r, Err(UnpackError::BadHardLink { .. })), "{r:?}");
}

#[test]
fn refuses_devices_fifos_and_duplicates() {
    for kind in [T::Char, T::Block, T::Fifo] {
        let (_d, r) = try_unpack(&[("dev", kind, b"")]);
        assert!(
            matches!(r, Err(UnpackError::ForbiddenType { .. })),
            "{kind:?}: {r:?}"
        );
    }
    // Sparse entries are refused (by the tar parser or by type).
    assert!(try_unpack(&[("sparse", T::GNUSparse, b"")]).1.is_err());
    let (_d, r) = try_unpack(&[("f", T::Regular, b"a"), ("f", T::Regular, b"b")]);
    assert!(matches!(r, Err(UnpackError::Duplicate(_))), "{r:?}");
}

#[test]
fn enforces_limits() {
    let tar = hostile_tar(&[("a", T::Regular, b"12345"), ("b", T::Regular, b"12345")]);
    let roomy = UnpackLimits {
        max_entries: 10,
        max_total_bytes: 100,
        max_path_bytes: 100,
    };
    type Expected = fn(&UnpackError) -> bool;
    let cases: [(&str, UnpackLimits, Expected); 3] = [
        (
            "8 bytes",
            UnpackLimits {
                max_total_bytes: 8,
                ..roomy
            },
            |e| matches!(e, UnpackError::TooLarge(8)),
        ),
        (
            "1 entry",
            UnpackLimits {
                max_entries: 1,
                ..roomy
            },
            |e| matches!(e, UnpackError::TooManyEntries(1)),
        ),
        (
            "0-byte paths",
            UnpackLimits {
                max_path_bytes: 0,
                ..roomy
            },
            |e| matches!(e, UnpackError::PathTooLong(1)),
        ),
    ];
    for (what, limits, expected) in cases {
        let dir = tempfile::tempdir().unwrap();
        let r = unpack(tar.as_slice(), dir.path(), &limits);
        assert!(r.as_ref().is_err_and(expected), "{what}: {r:?}");
    }
}

#[test]
fn reads_gzip_transparently() {
    let tar = hostile_tar(&[("a", T::Regular, b"gz")]);
    let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    io::Write::write_all(&mut gz, &tar).unwrap();
    let gz = gz.finish().unwrap();
    let dir = tempfile::tempdir().unwrap();
    unpack(
        maybe_gunzip(gz.as_slice()).unwrap(),
        dir.path(),
        &UnpackLimits::SOURCE,
    )
    .unwrap();
    assert_eq!(fs::read(dir.path().join("a")).unwrap(), b"gz");
}
