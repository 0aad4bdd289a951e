//! Safe tar/tar.gz extraction for everything the guest unpacks (source
//! archive, crates, root filesystem, toolchain, cache disk).
//!
//! Refused: absolute paths, `..`, writing through any symlink, symlinks whose
//! target is absolute or leaves the destination, hard links to anything but a
//! regular file already extracted, device nodes, fifos, sparse files, duplicate
//! entries, and archives over the entry/byte/path limits. Modes are reduced to
//! 0644/0755 (no setuid/setgid/sticky); owners are not restored.

use std::collections::HashSet;
use std::fs::{self, File, OpenOptions};
use std::io::{self, BufRead, BufReader, Read};
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::path::{Component, Path, PathBuf};

use thiserror::Error;

/// Size and count limits for one archive.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct UnpackLimits {
    /// Most entries (of any type) in the archive.
    pub max_entries: u64,
    /// Most bytes of file content in total.
    pub max_total_bytes: u64,
    /// Longest path in bytes.
    pub max_path_bytes: usize,
}

impl UnpackLimits {
    /// A source archive (a git tree).
    pub const SOURCE: UnpackLimits = UnpackLimits {
        max_entries: 200_000,
        max_total_bytes: 2 << 30,
        max_path_bytes: 4096,
    };
    /// One .crate file.
    pub const CRATE: UnpackLimits = UnpackLimits {
        max_entries: 50_000,
        max_total_bytes: 512 << 20,
        max_path_bytes: 4096,
    };
    /// A root filesystem or toolchain bundle.
    pub const TREE: UnpackLimits = UnpackLimits {
        max_entries: 1_000_000,
        max_total_bytes: 32 << 30,
        max_path_bytes: 4096,
    };
    /// The cache disk (flat content-addressed files).
    pub const CACHE_DISK: UnpackLimits = UnpackLimits {
        max_entries: 100_000,
        max_total_bytes: 64 << 30,
        max_path_bytes: 256,
    };
}

/// Why an archive was refused or could not be unpacked.
#[derive(Debug, Error)]
pub enum UnpackError {
    /// Reading the archive or writing the destination failed.
    #[error("I/O error at {path:?}: {source}")]
    Io {
        /// Entry path (or destination) involved.
        path: String,
        /// The cause.
        #[source]
        source: io::Error,
    },
    /// An entry path is absolute, contains `..`, or is otherwise not a plain relative path.
    #[error("entry {0:?} has an unsafe path (absolute, '..' or not UTF-8)")]
    UnsafePath(String),
    /// An entry would be written through a symlink.
    #[error("entry {0:?} would be written through a symlink")]
    ThroughSymlink(String),
    /// A symlink's target is absolute or leaves the destination.
    #[error("symlink {path:?} -> {target:?} escapes the destination")]
    SymlinkEscape {
        /// The link.
        path: String,
        /// Its target.
        target: String,
    },
    /// A hard link points outside, at a missing entry or at a non-regular file.
    #[error("hard link {path:?} -> {target:?} does not name a regular file extracted earlier")]
    BadHardLink {
        /// The link.
        path: String,
        /// Its target.
        target: String,
    },
    /// Device node, fifo, sparse file or other unsupported entry type.
    #[error("entry {path:?} has a forbidden type ({kind})")]
    ForbiddenType {
        /// The entry.
        path: String,
        /// What it is.
        kind: String,
    },
    /// The same path appears twice.
    #[error("entry {0:?} appears twice")]
    Duplicate(String),
    /// An entry path is longer than the limit.
    #[error("entry path of {0} bytes is over the limit")]
    PathTooLong(usize),
    /// Too many entries.
    #[error("archive has more than {0} entries")]
    TooManyEntries(u64),
    /// Too much content.
    #[error("archive content exceeds {0} bytes")]
    TooLarge(u64),
}

fn io_err(path: impl Into<String>) -> impl FnOnce(io::Error) -> UnpackError {
    let path = path.into();
    move |source| UnpackError::Io { path, source }
}

/// What was extracted.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct UnpackStats {
    /// Number of entries extracted.
    pub entries: u64,
    /// Bytes of file content written.
    pub bytes: u64,
}

/// Wraps `reader` in a gzip decoder when it starts with the gzip magic.
pub fn maybe_gunzip<'a>(reader: impl Read + 'a) -> io::Result<Box<dyn Read + 'a>> {
    let mut buf = BufReader::with_capacity(64 * 1024, reader);
    let head = buf.fill_buf()?;
    if head.len() >= 2 && head[0] == 0x1f && head[1] == 0x8b {
        Ok(Box::new(flate2::bufread::MultiGzDecoder::new(buf)))
    } else {
        Ok(Box::new(buf))
    }
}

/// Opens a tar or tar.gz file for [`unpack`].
pub fn open_archive(path: &Path) -> Result<Box<dyn Read>, UnpackError> {
    let f = File::open(path).map_err(io_err(path.display().to_string()))?;
    maybe_gunzip(f).map_err(io_err(path.display().to_string()))
}

/// Normalizes an entry path to plain components; None when unsafe.
fn clean_relative(raw: &Path) -> Option<PathBuf> {
    let mut out = PathBuf::new();
    for c in raw.components() {
        match c {
            Component::Normal(n) => out.push(n),
            Component::CurDir => {}
            Component::ParentDir | Component::RootDir | Component::Prefix(_) => return None,
        }
    }
    Some(out)
}

/// Refuses when any existing ancestor of `rel` under `dest` is a symlink.
fn check_no_symlink_parents(dest: &Path, rel: &Path, shown: &str) -> Result<(), UnpackError> {
    let mut cur = dest.to_path_buf();
    let comps: Vec<_> = rel.components().collect();
    for c in &comps[..comps.len().saturating_sub(1)] {
        cur.push(c);
        match fs::symlink_metadata(&cur) {
            Ok(m) if m.file_type().is_symlink() => {
                return Err(UnpackError::ThroughSymlink(shown.to_string()))
            }
            Ok(m) if !m.is_dir() => {
                return Err(UnpackError::Io {
                    path: shown.to_string(),
                    source: io::Error::other("a parent is not a directory"),
                })
            }
            Ok(_) => {}
            Err(e) if e.kind() == io::ErrorKind::NotFound => break,
            Err(e) => return Err(io_err(shown)(e)),
        }
    }
    Ok(())
}

/// True when `target`, taken relative to the directory holding `link`, stays inside the root.
fn symlink_target_inside(link: &Path, target: &Path) -> bool {
    if target.is_absolute() {
        return false;
    }
    let mut depth: Vec<&std::ffi::OsStr> = link
        .parent()
        .map(|p| p.iter().collect())
        .unwrap_or_default();
    for c in target.components() {
        match c {
            Component::Normal(n) => depth.push(n),
            Component::CurDir => {}
            Component::ParentDir => {
                if depth.pop().is_none() {
                    return false;
                }
            }
            _ => return false,
        }
    }
    true
}

/// Extracts the tar stream `reader` into `dest` (created if missing) under `limits`.
pub fn unpack(
    reader: impl Read,
    dest: &Path,
    limits: &UnpackLimits,
) -> Result<UnpackStats, UnpackError> {
    fs::create_dir_all(dest).map_err(io_err(dest.display().to_string()))?;
    let mut archive = tar::Archive::new(reader);
    let mut seen: HashSet<PathBuf> = HashSet::new();
    let mut stats = UnpackStats::default();
    let mut count = 0u64;
    for entry in archive.entries().map_err(io_err("<archive>"))? {
        let mut entry = entry.map_err(io_err("<archive>"))?;
        count += 1;
        if count > limits.max_entries {
            return Err(UnpackError::TooManyEntries(limits.max_entries));
        }
        let kind = entry.header().entry_type();
        // PAX global headers (git archive writes the commit id in one) carry no file.
        if matches!(
            kind,
            tar::EntryType::XGlobalHeader | tar::EntryType::XHeader
        ) {
            continue;
        }
        let raw_path = entry.path().map_err(io_err("<entry path>"))?.into_owned();
        let shown = raw_path.to_string_lossy().into_owned();
        if raw_path.as_os_str().len() > limits.max_path_bytes {
            return Err(UnpackError::PathTooLong(raw_path.as_os_str().len()));
        }
        let rel =
            clean_relative(&raw_path).ok_or_else(|| UnpackError::UnsafePath(shown.clone()))?;
        if rel.as_os_str().is_empty() {
            if kind.is_dir() {
                continue; // "./" itself
            }
            return Err(UnpackError::UnsafePath(shown));
        }
        check_no_symlink_parents(dest, &rel, &shown)?;
        let target = dest.join(&rel);
        if let Some(parent) = target.parent() {
            fs::create_dir_all(parent).map_err(io_err(shown.clone()))?;
        }
        let existing = fs::symlink_metadata(&target).ok();
        if kind.is_dir() {
            match existing {
                Some(m) if m.is_dir() => {}
                Some(_) => return Err(UnpackError::Duplicate(shown)),
                None => fs::create_dir(&target).map_err(io_err(shown.clone()))?,
            }
            fs::set_permissions(&target, fs::Permissions::from_mode(0o755))
                .map_err(io_err(shown.clone()))?;
            seen.insert(rel);
            stats.entries += 1;
            continue;
        }
        if existing.is_some() || !seen.insert(rel.clone()) {
            return Err(UnpackError::Duplicate(shown));
        }
        match kind {
            tar::EntryType::Regular | tar::EntryType::Continuous => {
                let size = entry.header().size().map_err(io_err(shown.clone()))?;
                if stats.bytes.saturating_add(size) > limits.max_total_bytes {
                    return Err(UnpackError::TooLarge(limits.max_total_bytes));
                }
                let exec = entry
                    .header()
                    .mode()
                    .map(|m| m & 0o111 != 0)
                    .unwrap_or(false);
                let mut out = OpenOptions::new()
                    .write(true)
                    .create_new(true)
                    .mode(if exec { 0o755 } else { 0o644 })
                    .custom_flags(rustix::fs::OFlags::NOFOLLOW.bits() as i32)
                    .open(&target)
                    .map_err(io_err(shown.clone()))?;
                // Copy at most the declared size; the tar reader enforces the exact length.
                let written = io::copy(&mut (&mut entry).take(size), &mut out)
                    .map_err(io_err(shown.clone()))?;
                stats.bytes += written;
            }
            tar::EntryType::Symlink => {
                let link = entry
                    .link_name()
                    .map_err(io_err(shown.clone()))?
                    .ok_or_else(|| UnpackError::UnsafePath(shown.clone()))?
                    .into_owned();
                if !symlink_target_inside(&rel, &link) {
                    return Err(UnpackError::SymlinkEscape {
                        path: shown,
                        target: link.to_string_lossy().into_owned(),
                    });
                }
                std::os::unix::fs::symlink(&link, &target).map_err(io_err(shown.clone()))?;
            }
            tar::EntryType::Link => {
                let link = entry
                    .link_name()
                    .map_err(io_err(shown.clone()))?
                    .ok_or_else(|| UnpackError::UnsafePath(shown.clone()))?
                    .into_owned();
                let bad = || UnpackError::BadHardLink {
                    path: shown.clone(),
                    target: link.to_string_lossy().into_owned(),
                };
                let link_rel = clean_relative(&link).ok_or_else(bad)?;
                if !seen.contains(&link_rel) {
                    return Err(bad());
                }
                check_no_symlink_parents(dest, &link_rel, &shown)?;
                let src = dest.join(&link_rel);
                match fs::symlink_metadata(&src) {
                    Ok(m) if m.is_file() => {}
                    _ => return Err(bad()),
                }
                fs::hard_link(&src, &target).map_err(io_err(shown.clone()))?;
            }
            other => {
                return Err(UnpackError::ForbiddenType {
                    path: shown,
                    kind: format!("{other:?}"),
                });
            }
        }
        stats.entries += 1;
    }
    Ok(stats)
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

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

    fn try_unpack(
        entries: &[(&str, tar::EntryType, &[u8])],
    ) -> (tempfile::TempDir, Result<UnpackStats, UnpackError>) {
        let dir = tempfile::tempdir().unwrap();
        let dest = dir.path().join("dest");
        let r = unpack(
            hostile_tar(entries).as_slice(),
            &dest,
            &UnpackLimits::SOURCE,
        );
        (dir, r)
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
        let dir = tempfile::tempdir().unwrap();
        let small = UnpackLimits {
            max_entries: 10,
            max_total_bytes: 8,
            max_path_bytes: 100,
        };
        assert!(matches!(
            unpack(tar.as_slice(), dir.path(), &small),
            Err(UnpackError::TooLarge(8))
        ));
        let few = UnpackLimits {
            max_entries: 1,
            max_total_bytes: 100,
            max_path_bytes: 100,
        };
        let dir = tempfile::tempdir().unwrap();
        assert!(matches!(
            unpack(tar.as_slice(), dir.path(), &few),
            Err(UnpackError::TooManyEntries(1))
        ));
        let short = UnpackLimits {
            max_entries: 10,
            max_total_bytes: 100,
            max_path_bytes: 0,
        };
        let dir = tempfile::tempdir().unwrap();
        assert!(matches!(
            unpack(tar.as_slice(), dir.path(), &short),
            Err(UnpackError::PathTooLong(1))
        ));
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
}
