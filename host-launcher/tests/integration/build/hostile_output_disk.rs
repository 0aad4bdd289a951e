//! The host reading a hostile guest's output disk: `kettle build` extracts it
//! with kettle-wire's unpacker before anything is verified. Whatever a guest
//! (or whoever wrote the disk) puts there must stay inside the staging
//! directory: each case must be refused, and nothing written outside.

use std::path::Path;

use kettle_testkit::tarball::{entry, with_entries};
use kettle_wire::output::read_output_disk;

#[test]
fn a_hostile_output_disk_writes_nothing_outside_its_directory() {
    let root = tempfile::tempdir().unwrap();
    let outside = root.path().join("outside");
    std::fs::create_dir_all(&outside).unwrap();
    let o = outside.to_str().unwrap().to_string();
    let cases: Vec<(&str, Vec<Vec<u8>>)> = vec![
        (
            "an entry with ..",
            vec![entry("../outside/dotdot", b'0', "", b"x")],
        ),
        (
            "an absolute entry",
            vec![entry(&format!("{o}/absolute"), b'0', "", b"x")],
        ),
        (
            "a symlink out, then a write through it",
            vec![
                entry("artifacts", b'2', &o, b""),
                entry("artifacts/through", b'0', "", b"x"),
            ],
        ),
        (
            "manifest.json as a symlink to a host file",
            vec![entry("manifest.json", b'2', &format!("{o}/manifest"), b"")],
        ),
        (
            "a relative link chain climbing out",
            vec![
                entry("a", b'2', "b/..", b""),
                entry("b", b'2', "..", b""),
                entry("a/outside/chain", b'0', "", b"x"),
            ],
        ),
        (
            "a hard link to a host file",
            vec![entry("h", b'1', "/etc/passwd", b"")],
        ),
        ("a device node", vec![entry("evidence", b'3', "", b"")]),
        (
            "a duplicate status.json",
            vec![
                entry("status.json", b'0', "", b"{}"),
                entry("status.json", b'0', "", b"{\"ok\":true}"),
            ],
        ),
    ];
    assert!(cases.len() >= 8);
    for (i, (what, entries)) in cases.into_iter().enumerate() {
        let disk = root.path().join(format!("disk{i}.img"));
        std::fs::write(&disk, with_entries(&[], &entries)).unwrap();
        let dest = root.path().join(format!("staging{i}"));
        let result = read_output_disk(&disk, &dest);
        assert!(result.is_err(), "{what}: the disk was extracted");
        let written: Vec<_> = std::fs::read_dir(&outside).unwrap().collect();
        assert!(written.is_empty(), "{what}: wrote outside: {written:?}");
        assert!(!Path::new("/etc/passwd")
            .symlink_metadata()
            .unwrap()
            .file_type()
            .is_symlink());
    }
}
