//! The safe unpacker (public API only: `maybe_gunzip` + `unpack`) on hostile tar/tar.gz.
//!
//! Beyond "no panic", it checks the unpacker's contract after every run: nothing
//! appears outside the destination, no special files or setuid bits, the byte
//! limit holds, and (on success) no extracted symlink resolves outside the
//! destination, by a resolver written here independently of the unpacker's.
#![no_main]

use std::collections::VecDeque;
use std::ffi::OsString;
use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::sync::OnceLock;

use kettle_wire::unpack::{maybe_gunzip, unpack, UnpackLimits};
use libfuzzer_sys::fuzz_target;

/// Small limits, so a run stays fast and the scratch disk stays small.
const LIMITS: UnpackLimits = UnpackLimits {
    max_entries: 256,
    max_total_bytes: 1 << 20,
    ..UnpackLimits::CRATE
};

/// Where each run's scratch directory goes: tmpfs when there is one.
fn scratch_base() -> &'static Path {
    static BASE: OnceLock<PathBuf> = OnceLock::new();
    BASE.get_or_init(|| {
        let shm = Path::new("/dev/shm");
        if shm.is_dir() {
            shm.to_path_buf()
        } else {
            std::env::temp_dir()
        }
    })
}

/// Follows `rel` (relative to `root`) the way the kernel would, symlinks included;
/// returns false if it ever climbs above `root`. A missing component or a loop
/// ends the walk: the path reaches nothing.
fn stays_inside(root: &Path, rel: &Path) -> bool {
    let mut stack: Vec<OsString> = Vec::new();
    let mut queue: VecDeque<OsString> =
        rel.components().map(|c| c.as_os_str().to_owned()).collect();
    let mut follows = 0;
    while let Some(c) = queue.pop_front() {
        match c.to_str() {
            Some(".") => continue,
            Some("..") => {
                if stack.pop().is_none() {
                    return false;
                }
                continue;
            }
            _ => {}
        }
        if c == "/" {
            return false;
        }
        let mut here = root.to_path_buf();
        here.extend(&stack);
        here.push(&c);
        match fs::symlink_metadata(&here) {
            Err(_) => return true, // missing: reaches nothing
            Ok(m) if m.file_type().is_symlink() => {
                follows += 1;
                if follows > 40 {
                    return true; // a loop: ELOOP
                }
                let target = fs::read_link(&here).expect("read_link of a symlink");
                if target.is_absolute() {
                    return false;
                }
                let mut parts: VecDeque<OsString> = target
                    .components()
                    .map(|c| c.as_os_str().to_owned())
                    .collect();
                parts.extend(queue.drain(..));
                queue = parts;
            }
            Ok(_) => stack.push(c),
        }
    }
    true
}

fn check_tree(root: &Path, dir: &Path, links: &mut Vec<PathBuf>) {
    for entry in fs::read_dir(dir).expect("read_dir") {
        let entry = entry.expect("dir entry");
        let path = entry.path();
        let meta = fs::symlink_metadata(&path).expect("lstat");
        let ft = meta.file_type();
        if ft.is_symlink() {
            links.push(path.strip_prefix(root).unwrap().to_path_buf());
            continue;
        }
        assert!(
            ft.is_file() || ft.is_dir(),
            "special file {path:?} was extracted"
        );
        assert_eq!(
            meta.permissions().mode() & 0o7000,
            0,
            "{path:?} kept setuid/setgid/sticky bits"
        );
        if ft.is_dir() {
            check_tree(root, &path, links);
        }
    }
}

fuzz_target!(|data: &[u8]| {
    let base = tempfile::Builder::new()
        .prefix("kettle-fuzz-unpack")
        .tempdir_in(scratch_base())
        .expect("scratch dir");
    let dest = base.path().join("dest");
    let result = maybe_gunzip(data)
        .map_err(|e| e.to_string())
        .and_then(|r| unpack(r, &dest, &LIMITS).map_err(|e| e.to_string()));

    // Nothing but the destination itself appears next to it.
    let siblings: Vec<_> = fs::read_dir(base.path())
        .expect("read scratch dir")
        .map(|e| e.expect("entry").file_name())
        .collect();
    assert!(
        siblings.iter().all(|n| n == "dest"),
        "the archive wrote outside the destination: {siblings:?}"
    );
    if !dest.exists() {
        return;
    }
    let mut links = Vec::new();
    check_tree(&dest, &dest, &mut links);
    if let Ok(stats) = result {
        assert!(stats.bytes <= LIMITS.max_total_bytes);
        assert!(stats.entries <= LIMITS.max_entries);
        for link in links {
            assert!(
                stays_inside(&dest, &link),
                "unpack succeeded but symlink {link:?} -> {:?} resolves outside the destination",
                fs::read_link(dest.join(&link)).ok()
            );
        }
    }
});
