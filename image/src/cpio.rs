//! A deterministic writer for the "newc" cpio format (magic `070701`), the
//! format the Linux kernel unpacks an initramfs from, and a reader that finds
//! one regular file in such an archive (the host takes `/init` from the
//! published initramfs to run local mode with the measured binary).
//!
//! Determinism: entries are sorted by path (bytewise), every parent directory
//! is emitted before its children, mtime is 0, uid/gid are 0, inode numbers
//! are 1..n in output order. The same set of entries therefore gives the same
//! bytes whatever order they were added in.

use std::collections::BTreeMap;

/// The newc magic (no CRC).
const MAGIC: &[u8; 6] = b"070701";
/// Size of a newc header: magic + 13 eight-digit hex fields.
const HEADER_LEN: usize = 6 + 13 * 8;
/// Name of the end-of-archive entry.
const TRAILER: &str = "TRAILER!!!";

/// File type bits of `st_mode`.
const S_IFDIR: u32 = 0o040000;
const S_IFREG: u32 = 0o100000;
const S_IFCHR: u32 = 0o020000;
/// Permission bits accepted from callers (incl. setuid/setgid/sticky).
const PERM_MASK: u32 = 0o7777;
/// Mode of directories created implicitly as parents.
const DEFAULT_DIR_MODE: u32 = 0o755;

/// Why an entry cannot be added to an [`Initramfs`].
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum CpioError {
    /// The path is empty, absolute-with-nothing, has `.`/`..`/empty components or a NUL byte.
    #[error("invalid initramfs path {0:?}: use a relative path like \"etc/kettle/x\" with no '.', '..' or empty components")]
    InvalidPath(String),
    /// Mode bits outside 0o7777 were given.
    #[error("invalid mode {mode:#o} for {path:?}: pass permission bits only (at most 0o7777)")]
    InvalidMode {
        /// Path of the entry.
        path: String,
        /// The rejected mode.
        mode: u32,
    },
    /// Two different entries claim the same path.
    #[error("initramfs path {0:?} added twice with different contents or types")]
    Duplicate(String),
    /// A path goes through an entry that is not a directory.
    #[error(
        "initramfs path {path:?} needs {parent:?} to be a directory, but it is a file or device"
    )]
    ParentNotDirectory {
        /// The entry being added.
        path: String,
        /// Its non-directory ancestor.
        parent: String,
    },
    /// A file is larger than newc's 32-bit size field.
    #[error("initramfs file {0:?} is larger than 4 GiB, which newc cannot record")]
    TooLarge(String),
    /// The archive being read is not well-formed newc.
    #[error("not a newc initramfs: {0}")]
    Malformed(String),
}

/// The contents of the regular file `path` (e.g. "init") in a newc archive; None if absent.
pub fn read_file(archive: &[u8], path: &str) -> Result<Option<Vec<u8>>, CpioError> {
    let want = normalize(path)?;
    let mut found = None;
    walk(archive, |name, mode, data| {
        if found.is_none() && name == want.as_bytes() && mode & 0o170000 == S_IFREG {
            found = Some(data.to_vec());
        }
    })?;
    Ok(found)
}

/// One entry read back from a newc archive.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ArchiveEntry {
    /// Path inside the archive, as stored (no leading slash in Kettle's archives).
    pub path: String,
    /// Full `st_mode` (type and permission bits).
    pub mode: u32,
    /// The entry's data (a regular file's contents; empty for directories and devices).
    pub data: Vec<u8>,
}

impl ArchiveEntry {
    /// Whether this is a regular file.
    pub fn is_file(&self) -> bool {
        self.mode & 0o170000 == S_IFREG
    }
}

/// Every entry of a newc archive in archive order (the trailer excluded), to
/// compare an initramfs with the listing in its manifest.
pub fn list(archive: &[u8]) -> Result<Vec<ArchiveEntry>, CpioError> {
    let mut out = Vec::new();
    walk(archive, |name, mode, data| {
        out.push(ArchiveEntry {
            path: String::from_utf8_lossy(name).into_owned(),
            mode,
            data: data.to_vec(),
        })
    })?;
    Ok(out)
}

/// Calls `visit(name, mode, data)` for each entry up to the trailer.
fn walk(archive: &[u8], mut visit: impl FnMut(&[u8], u32, &[u8])) -> Result<(), CpioError> {
    let bad = |what: &str| CpioError::Malformed(what.to_string());
    let mut at = 0usize;
    loop {
        let header = archive
            .get(at..at + HEADER_LEN)
            .ok_or_else(|| bad("truncated header"))?;
        if &header[..6] != MAGIC {
            return Err(bad("bad magic"));
        }
        let field = |i: usize| -> Result<usize, CpioError> {
            let hex = std::str::from_utf8(&header[6 + 8 * i..14 + 8 * i])
                .map_err(|_| bad("header field is not ASCII"))?;
            usize::from_str_radix(hex, 16).map_err(|_| bad("header field is not hex"))
        };
        let (mode, filesize, namesize) = (field(1)?, field(6)?, field(11)?);
        let name_at = at + HEADER_LEN;
        let name = archive
            .get(name_at..name_at + namesize.saturating_sub(1))
            .ok_or_else(|| bad("truncated name"))?;
        let data_at = (name_at + namesize).next_multiple_of(4);
        let data = archive
            .get(data_at..data_at + filesize)
            .ok_or_else(|| bad("truncated data"))?;
        if name == TRAILER.as_bytes() {
            return Ok(());
        }
        // Eight hex digits: always a u32.
        let mode = u32::try_from(mode).map_err(|_| bad("mode field over 32 bits"))?;
        visit(name, mode, data);
        at = (data_at + filesize).next_multiple_of(4);
    }
}

/// What an archive entry is.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Node {
    Dir { mode: u32 },
    File { mode: u32, data: Vec<u8> },
    CharDevice { mode: u32, major: u32, minor: u32 },
}

impl Node {
    fn is_dir(&self) -> bool {
        matches!(self, Node::Dir { .. })
    }
}

/// Builder of a reproducible newc initramfs.
#[derive(Debug, Clone, Default)]
pub struct Initramfs {
    entries: BTreeMap<String, Node>,
}

/// One entry of a built archive, for manifests and listings.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EntryInfo {
    /// Path inside the archive (no leading slash).
    pub path: String,
    /// Full `st_mode` (type and permission bits).
    pub mode: u32,
    /// File contents (empty for directories and devices).
    pub data_len: usize,
}

impl Initramfs {
    /// An empty archive.
    pub fn new() -> Self {
        Self::default()
    }

    /// Adds a regular file with permission bits `mode`; parent directories are added as needed.
    pub fn file(
        &mut self,
        path: &str,
        mode: u32,
        data: impl Into<Vec<u8>>,
    ) -> Result<&mut Self, CpioError> {
        let path = normalize(path)?;
        check_mode(&path, mode)?;
        let data = data.into();
        if u32::try_from(data.len()).is_err() {
            return Err(CpioError::TooLarge(path));
        }
        self.insert(path, Node::File { mode, data })
    }

    /// Adds a directory (mode 0755) and its parents.
    pub fn dir(&mut self, path: &str) -> Result<&mut Self, CpioError> {
        self.dir_with_mode(path, DEFAULT_DIR_MODE)
    }

    /// Adds a directory with permission bits `mode` (e.g. 0o1777 for tmp).
    pub fn dir_with_mode(&mut self, path: &str, mode: u32) -> Result<&mut Self, CpioError> {
        let path = normalize(path)?;
        check_mode(&path, mode)?;
        self.insert(path, Node::Dir { mode })
    }

    /// Adds a character device node (e.g. `dev/console`, 5:1), so the kernel can
    /// open the console for PID 1 before anything is mounted.
    pub fn char_device(
        &mut self,
        path: &str,
        mode: u32,
        major: u32,
        minor: u32,
    ) -> Result<&mut Self, CpioError> {
        let path = normalize(path)?;
        check_mode(&path, mode)?;
        self.insert(path, Node::CharDevice { mode, major, minor })
    }

    /// The entries in archive order (parents first, sorted).
    pub fn entries(&self) -> Vec<EntryInfo> {
        self.entries
            .iter()
            .map(|(path, node)| EntryInfo {
                path: path.clone(),
                mode: st_mode(node),
                data_len: match node {
                    Node::File { data, .. } => data.len(),
                    _ => 0,
                },
            })
            .collect()
    }

    /// Contents of the regular file at `path`, if there is one.
    pub fn file_data(&self, path: &str) -> Option<&[u8]> {
        match self.entries.get(path.trim_start_matches('/')) {
            Some(Node::File { data, .. }) => Some(data),
            _ => None,
        }
    }

    /// Serializes the archive: sorted entries, then the trailer.
    pub fn to_bytes(&self) -> Vec<u8> {
        let mut out = Vec::new();
        for (index, (path, node)) in self.entries.iter().enumerate() {
            // Inode 0 is avoided: some extractors treat it as "no inode".
            let ino = u32::try_from(index + 1).expect("fewer than 2^32 entries");
            let (nlink, data, rdev): (u32, &[u8], (u32, u32)) = match node {
                Node::Dir { .. } => (2, &[], (0, 0)),
                Node::File { data, .. } => (1, data, (0, 0)),
                Node::CharDevice { major, minor, .. } => (1, &[], (*major, *minor)),
            };
            write_entry(&mut out, path, ino, st_mode(node), nlink, data, rdev);
        }
        write_entry(&mut out, TRAILER, 0, 0, 1, &[], (0, 0));
        out
    }

    /// Inserts `node` at `path`, creating parents, rejecting conflicts.
    fn insert(&mut self, path: String, node: Node) -> Result<&mut Self, CpioError> {
        // Create (or check) every ancestor first.
        let mut end = 0;
        while let Some(pos) = path[end..].find('/') {
            let parent = &path[..end + pos];
            match self.entries.get(parent) {
                Some(existing) if !existing.is_dir() => {
                    return Err(CpioError::ParentNotDirectory {
                        path: path.clone(),
                        parent: parent.to_string(),
                    })
                }
                Some(_) => {}
                None => {
                    self.entries.insert(
                        parent.to_string(),
                        Node::Dir {
                            mode: DEFAULT_DIR_MODE,
                        },
                    );
                }
            }
            end += pos + 1;
        }
        match self.entries.get(&path) {
            None => {
                self.entries.insert(path, node);
            }
            Some(existing) if existing == &node => {}
            // An explicit directory mode overrides an implicit parent's default.
            Some(existing) if existing.is_dir() && node.is_dir() => {
                self.entries.insert(path, node);
            }
            Some(_) => return Err(CpioError::Duplicate(path)),
        }
        Ok(self)
    }
}

/// Full `st_mode` of a node.
fn st_mode(node: &Node) -> u32 {
    match node {
        Node::Dir { mode } => S_IFDIR | mode,
        Node::File { mode, .. } => S_IFREG | mode,
        Node::CharDevice { mode, .. } => S_IFCHR | mode,
    }
}

/// Turns "/etc//x" style input into "etc/x" and rejects anything ambiguous.
fn normalize(path: &str) -> Result<String, CpioError> {
    let trimmed = path.strip_prefix('/').unwrap_or(path);
    let ok = !trimmed.is_empty()
        && !trimmed.contains('\0')
        && trimmed
            .split('/')
            .all(|c| !c.is_empty() && c != "." && c != "..");
    if ok && trimmed != TRAILER {
        Ok(trimmed.to_string())
    } else {
        Err(CpioError::InvalidPath(path.to_string()))
    }
}

fn check_mode(path: &str, mode: u32) -> Result<(), CpioError> {
    if mode & !PERM_MASK != 0 {
        return Err(CpioError::InvalidMode {
            path: path.to_string(),
            mode,
        });
    }
    Ok(())
}

/// Number of zero bytes that bring `len` to a multiple of 4.
fn pad4(len: usize) -> usize {
    (4 - len % 4) % 4
}

/// Appends one newc header + name + data, each padded to 4 bytes.
fn write_entry(
    out: &mut Vec<u8>,
    name: &str,
    ino: u32,
    mode: u32,
    nlink: u32,
    data: &[u8],
    rdev: (u32, u32),
) {
    let namesize = name.len() + 1; // with the terminating NUL
    let fields: [u32; 13] = [
        ino,
        mode,
        0, // uid
        0, // gid
        nlink,
        0, // mtime
        u32::try_from(data.len()).expect("checked when the file was added"),
        0, // devmajor
        0, // devminor
        rdev.0,
        rdev.1,
        u32::try_from(namesize).expect("path shorter than 4 GiB"),
        0, // check: always 0 for 070701
    ];
    out.extend_from_slice(MAGIC);
    for field in fields {
        out.extend_from_slice(format!("{field:08X}").as_bytes());
    }
    out.extend_from_slice(name.as_bytes());
    out.push(0);
    out.resize(out.len() + pad4(HEADER_LEN + namesize), 0);
    out.extend_from_slice(data);
    out.resize(out.len() + pad4(data.len()), 0);
}

#[cfg(test)]
mod tests;
