//! Safe tar/tar.gz extraction for everything the guest unpacks (source
//! archive, crates, root filesystem, toolchain, cache disk).
//!
//! Every path is resolved by the kernel beneath the destination, never by
//! string checks: the destination is opened once as a directory fd
//! ([`Beneath`]) and each entry is created relative to it with `openat2`
//! (`RESOLVE_BENEATH | RESOLVE_NO_MAGICLINKS`, plus `RESOLVE_NO_SYMLINKS`
//! for the directories an entry is created in), `mkdirat`, `symlinkat` and
//! `linkat`. A path that would pass through a symlink or climb out of the
//! destination is refused by the kernel, whatever chain of links set it up.
//!
//! Refused: absolute paths, `..`, writing through any symlink, symlinks whose
//! target is absolute or (lexically, or as the kernel resolves them once the
//! archive is complete) leaves the destination, hard links to anything but a
//! regular file already extracted, device nodes, fifos, sparse files,
//! duplicate entries, and archives over the entry/byte/path limits. Modes are
//! reduced to 0644/0755 (no setuid/setgid/sticky); owners are not restored.
//! Needs Linux 5.6 or later (openat2).

use std::collections::HashSet;
use std::ffi::OsStr;
use std::fs::{self, File};
use std::io::{self, BufRead, BufReader, Read};
use std::os::fd::{AsFd, OwnedFd};
use std::path::{Component, Path, PathBuf};

use rustix::fs::{AtFlags, FileType, Mode, OFlags, ResolveFlags};
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

/// True when `target`, taken relative to the directory holding `link`, stays inside the
/// root as text. Only a first filter: links can chain, so [`unpack`] also asks the kernel
/// to resolve every link once the archive is complete.
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

/// Resolution for everything [`Beneath`] opens: never above the root, never through
/// /proc magic links, and never through any symlink at all (the last component
/// included: without O_NOFOLLOW a final symlink is ELOOP too).
const STRICT: ResolveFlags = ResolveFlags::BENEATH
    .union(ResolveFlags::NO_MAGICLINKS)
    .union(ResolveFlags::NO_SYMLINKS);

/// Why the kernel refused to resolve a path beneath a [`Beneath`] root.
#[derive(Debug, Error)]
pub enum BeneathError {
    /// A component of the path is a symlink (`ELOOP` under `RESOLVE_NO_SYMLINKS`).
    #[error("{0} passes through a symlink")]
    Symlink(String),
    /// The path would leave the root (`EXDEV` under `RESOLVE_BENEATH`), or is not a plain relative path.
    #[error("{0} leaves the directory it must stay in")]
    Escapes(String),
    /// The kernel has no openat2 (Linux 5.6 or later is needed) or a seccomp policy hides it.
    #[error("openat2 is not available (Linux 5.6 or later is required to resolve {0} safely)")]
    NoOpenat2(String),
    /// Any other failure (missing file, not a directory, permissions, disk full).
    #[error("{path}: {source}")]
    Io {
        /// The path, relative to the root.
        path: String,
        /// The cause.
        #[source]
        source: io::Error,
    },
}

impl BeneathError {
    fn from_errno(path: &Path, e: rustix::io::Errno) -> BeneathError {
        let shown = path.display().to_string();
        match e {
            rustix::io::Errno::LOOP => BeneathError::Symlink(shown),
            rustix::io::Errno::XDEV => BeneathError::Escapes(shown),
            rustix::io::Errno::NOSYS => BeneathError::NoOpenat2(shown),
            e => BeneathError::Io {
                path: shown,
                source: e.into(),
            },
        }
    }

    /// The same failure as an [`io::Error`] (for callers that only report it).
    pub fn into_io(self) -> io::Error {
        match self {
            BeneathError::Io { source, .. } => source,
            other => io::Error::new(io::ErrorKind::PermissionDenied, other.to_string()),
        }
    }
}

/// A directory whose contents are created and opened only through the kernel's
/// `RESOLVE_BENEATH` resolution: no path given to it can reach outside the directory,
/// whatever symlinks (or chains of them) the tree holds. Paths are relative to it.
#[derive(Debug)]
pub struct Beneath {
    root: OwnedFd,
}

impl Beneath {
    /// Opens the existing directory `dir` (itself trusted: the caller chose it).
    pub fn open(dir: &Path) -> io::Result<Beneath> {
        let root = rustix::fs::open(
            dir,
            OFlags::DIRECTORY | OFlags::RDONLY | OFlags::CLOEXEC,
            Mode::empty(),
        )?;
        Ok(Beneath { root })
    }

    /// Creates `dir` (and its parents) if missing, then opens it.
    pub fn create(dir: &Path) -> io::Result<Beneath> {
        fs::create_dir_all(dir)?;
        Beneath::open(dir)
    }

    fn relative(rel: &Path) -> Result<PathBuf, BeneathError> {
        clean_relative(rel).ok_or_else(|| BeneathError::Escapes(rel.display().to_string()))
    }

    /// Opens the directory at `rel` (empty: the root), every component a real directory.
    pub fn open_dir(&self, rel: &Path) -> Result<OwnedFd, BeneathError> {
        let rel = Beneath::relative(rel)?;
        let path: &Path = if rel.as_os_str().is_empty() {
            Path::new(".")
        } else {
            &rel
        };
        rustix::fs::openat2(
            &self.root,
            path,
            OFlags::DIRECTORY | OFlags::RDONLY | OFlags::CLOEXEC,
            Mode::empty(),
            STRICT,
        )
        .map_err(|e| BeneathError::from_errno(path, e))
    }

    /// `mkdir -p rel` beneath the root (each component a real directory, never a link); opens it.
    pub fn create_dirs(&self, rel: &Path) -> Result<OwnedFd, BeneathError> {
        match self.open_dir(rel) {
            Err(BeneathError::Io { source, .. }) if source.kind() == io::ErrorKind::NotFound => {}
            other => return other,
        }
        let rel = Beneath::relative(rel)?;
        let mut cur = self.open_dir(Path::new(""))?;
        let mut walked = PathBuf::new();
        for c in rel.iter() {
            walked.push(c);
            match rustix::fs::mkdirat(&cur, c, Mode::from_raw_mode(0o755)) {
                Ok(()) | Err(rustix::io::Errno::EXIST) => {}
                Err(e) => return Err(BeneathError::from_errno(&walked, e)),
            }
            cur = open_child_dir(&cur, c).map_err(|e| BeneathError::from_errno(&walked, e))?;
        }
        Ok(cur)
    }

    /// Creates the new regular file `rel` with `mode` (its directories created as real
    /// directories); fails if anything, a symlink included, already exists there.
    pub fn create_file(&self, rel: &Path, mode: u32) -> Result<File, BeneathError> {
        let (dir, name) = self.parent_of(rel)?;
        create_new_file(&dir, name, mode).map_err(|e| BeneathError::from_errno(rel, e))
    }

    /// Opens the existing `rel` for reading, no component of it a symlink (the last included).
    pub fn open_file(&self, rel: &Path) -> Result<File, BeneathError> {
        let rel = Beneath::relative(rel)?;
        let fd = rustix::fs::openat2(
            &self.root,
            &rel,
            OFlags::RDONLY | OFlags::CLOEXEC,
            Mode::empty(),
            STRICT,
        )
        .map_err(|e| BeneathError::from_errno(&rel, e))?;
        Ok(File::from(fd))
    }

    /// Removes `rel` if it exists (a symlink is removed itself, never followed; not a directory).
    pub fn remove_file(&self, rel: &Path) -> Result<(), BeneathError> {
        let (dir, name) = self.parent_of(rel)?;
        match rustix::fs::unlinkat(&dir, name, AtFlags::empty()) {
            Ok(()) | Err(rustix::io::Errno::NOENT) => Ok(()),
            Err(e) => Err(BeneathError::from_errno(rel, e)),
        }
    }

    /// The directory holding `rel` (created as real directories) and `rel`'s last component.
    fn parent_of<'a>(&self, rel: &'a Path) -> Result<(OwnedFd, &'a OsStr), BeneathError> {
        let name = match rel.components().next_back() {
            Some(Component::Normal(n)) => n,
            _ => return Err(BeneathError::Escapes(rel.display().to_string())),
        };
        let dir = self.create_dirs(rel.parent().unwrap_or(Path::new("")))?;
        Ok((dir, name))
    }
}

/// Opens the real directory `name` in `dir` (not a symlink, never above `dir`).
fn open_child_dir(dir: &impl AsFd, name: &OsStr) -> rustix::io::Result<OwnedFd> {
    rustix::fs::openat2(
        dir,
        name,
        OFlags::DIRECTORY | OFlags::RDONLY | OFlags::CLOEXEC,
        Mode::empty(),
        STRICT,
    )
}

/// Creates the new regular file `name` in `dir` with exactly `mode` (not subject to the umask).
fn create_new_file(dir: &impl AsFd, name: &OsStr, mode: u32) -> rustix::io::Result<File> {
    let fd = rustix::fs::openat2(
        dir,
        name,
        OFlags::CREATE | OFlags::EXCL | OFlags::WRONLY | OFlags::CLOEXEC,
        Mode::from_raw_mode(mode),
        STRICT,
    )?;
    rustix::fs::fchmod(&fd, Mode::from_raw_mode(mode))?;
    Ok(File::from(fd))
}

/// The last directory entries were created in, kept open: tar streams list a
/// directory's entries together, so most entries need no path walk at all. Safe to
/// reuse because a directory, once made, is never replaced (that is a duplicate).
struct ParentCache {
    rel: PathBuf,
    fd: OwnedFd,
}

/// Maps a refused resolution to the unpacker's error for entry `shown`.
fn refused(shown: &str) -> impl FnOnce(BeneathError) -> UnpackError + '_ {
    move |e| match e {
        BeneathError::Symlink(_) => UnpackError::ThroughSymlink(shown.to_string()),
        BeneathError::Escapes(_) => UnpackError::UnsafePath(shown.to_string()),
        BeneathError::Io { source, .. } => UnpackError::Io {
            path: shown.to_string(),
            source,
        },
        no @ BeneathError::NoOpenat2(_) => UnpackError::Io {
            path: shown.to_string(),
            source: io::Error::other(no.to_string()),
        },
    }
}

fn errno_refused(shown: &str, e: rustix::io::Errno) -> UnpackError {
    refused(shown)(BeneathError::from_errno(Path::new(shown), e))
}

/// The target a symlink or hard-link entry names (an entry without one is refused).
fn link_target(entry: &tar::Entry<impl Read>, shown: &str) -> Result<PathBuf, UnpackError> {
    Ok(entry
        .link_name()
        .map_err(io_err(shown.to_string()))?
        .ok_or_else(|| UnpackError::UnsafePath(shown.to_string()))?
        .into_owned())
}

/// Extracts the tar stream `reader` into `dest` (created if missing) under `limits`.
pub fn unpack(
    reader: impl Read,
    dest: &Path,
    limits: &UnpackLimits,
) -> Result<UnpackStats, UnpackError> {
    let root = Beneath::create(dest).map_err(io_err(dest.display().to_string()))?;
    let mut archive = tar::Archive::new(reader);
    let mut seen: HashSet<PathBuf> = HashSet::new();
    let mut links: Vec<(PathBuf, PathBuf)> = Vec::new();
    let mut stats = UnpackStats::default();
    let mut count = 0u64;
    let mut cache: Option<ParentCache> = None;
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
        let Some(name) = rel.file_name().map(OsStr::to_os_string) else {
            if kind.is_dir() {
                continue; // "./" itself
            }
            return Err(UnpackError::UnsafePath(shown));
        };
        let parent_rel = rel.parent().unwrap_or(Path::new("")).to_path_buf();
        let parent = match cache.take() {
            Some(c) if c.rel == parent_rel => c,
            _ => ParentCache {
                fd: root.create_dirs(&parent_rel).map_err(refused(&shown))?,
                rel: parent_rel,
            },
        };
        let dir = &parent.fd;
        if kind.is_dir() {
            match rustix::fs::mkdirat(dir, &name, Mode::from_raw_mode(0o755)) {
                Ok(()) | Err(rustix::io::Errno::EXIST) => {}
                Err(e) => return Err(errno_refused(&shown, e)),
            }
            // An existing symlink or file there is a duplicate, not a directory to reuse.
            let fd = open_child_dir(dir, &name).map_err(|e| match e {
                rustix::io::Errno::LOOP | rustix::io::Errno::NOTDIR => {
                    UnpackError::Duplicate(shown.clone())
                }
                e => errno_refused(&shown, e),
            })?;
            rustix::fs::fchmod(&fd, Mode::from_raw_mode(0o755))
                .map_err(|e| errno_refused(&shown, e))?;
            seen.insert(rel);
            stats.entries += 1;
            cache = Some(parent);
            continue;
        }
        if !seen.insert(rel.clone()) {
            return Err(UnpackError::Duplicate(shown));
        }
        let exists = |e: rustix::io::Errno| {
            if e == rustix::io::Errno::EXIST {
                UnpackError::Duplicate(shown.clone())
            } else {
                errno_refused(&shown, e)
            }
        };
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
                let mut out = create_new_file(dir, &name, if exec { 0o755 } else { 0o644 })
                    .map_err(exists)?;
                // Copy at most the declared size; the tar reader enforces the exact length.
                let written = io::copy(&mut (&mut entry).take(size), &mut out)
                    .map_err(io_err(shown.clone()))?;
                stats.bytes += written;
            }
            tar::EntryType::Symlink => {
                let link = link_target(&entry, &shown)?;
                if !symlink_target_inside(&rel, &link) {
                    return Err(UnpackError::SymlinkEscape {
                        path: shown,
                        target: link.to_string_lossy().into_owned(),
                    });
                }
                rustix::fs::symlinkat(&link, dir, &name).map_err(exists)?;
                links.push((rel, link));
            }
            tar::EntryType::Link => {
                let link = link_target(&entry, &shown)?;
                let bad = || UnpackError::BadHardLink {
                    path: shown.clone(),
                    target: link.to_string_lossy().into_owned(),
                };
                let link_rel = clean_relative(&link).ok_or_else(bad)?;
                let Some(link_name) = link_rel.file_name() else {
                    return Err(bad());
                };
                if !seen.contains(&link_rel) {
                    return Err(bad());
                }
                let src_dir = root
                    .open_dir(link_rel.parent().unwrap_or(Path::new("")))
                    .map_err(refused(&shown))?;
                match rustix::fs::statat(&src_dir, link_name, AtFlags::SYMLINK_NOFOLLOW) {
                    Ok(st) if FileType::from_raw_mode(st.st_mode) == FileType::RegularFile => {}
                    _ => return Err(bad()),
                }
                // Without AT_SYMLINK_FOLLOW linkat links the entry itself, never a link's target.
                rustix::fs::linkat(&src_dir, link_name, dir, &name, AtFlags::empty())
                    .map_err(exists)?;
            }
            other => {
                return Err(UnpackError::ForbiddenType {
                    path: shown,
                    kind: format!("{other:?}"),
                });
            }
        }
        cache = Some(parent);
        stats.entries += 1;
    }
    check_links_stay_beneath(&root, &links)?;
    Ok(stats)
}

/// Asks the kernel to resolve every symlink extracted, now that the whole tree exists:
/// one that leads out of the destination (through any chain of links) refuses the archive.
/// A link that resolves to nothing (dangling, or a loop) is left alone: it reaches nothing.
fn check_links_stay_beneath(
    root: &Beneath,
    links: &[(PathBuf, PathBuf)],
) -> Result<(), UnpackError> {
    for (rel, target) in links {
        let r = rustix::fs::openat2(
            &root.root,
            rel,
            OFlags::PATH | OFlags::CLOEXEC,
            Mode::empty(),
            ResolveFlags::BENEATH | ResolveFlags::NO_MAGICLINKS,
        );
        match r {
            Ok(_) | Err(rustix::io::Errno::NOENT | rustix::io::Errno::LOOP) => {}
            Err(rustix::io::Errno::XDEV) => {
                return Err(UnpackError::SymlinkEscape {
                    path: rel.to_string_lossy().into_owned(),
                    target: target.to_string_lossy().into_owned(),
                })
            }
            Err(e) => return Err(errno_refused(&rel.to_string_lossy(), e)),
        }
    }
    Ok(())
}

#[cfg(test)]
pub(crate) mod tests;
