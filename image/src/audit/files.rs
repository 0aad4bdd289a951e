//! Reading an image directory that someone else published (or a path an
//! operator named in it): only regular files are opened, never through a
//! final symlink and never blocking on a FIFO or a device, and every read is
//! bounded. Error messages carry paths and names as found: whoever prints
//! them escapes them.

use std::fs::{self, File};
use std::io::{self, Read};
use std::os::unix::fs::{FileTypeExt, OpenOptionsExt};
use std::path::{Path, PathBuf};

/// Largest kernel, initrd or firmware read: a Kettle bzImage is a few MiB, its
/// initramfs (kettle-init and the CA roots) a few MiB, an AmdSev OVMF.fd 4 MiB.
pub const MAX_IMAGE_FILE_BYTES: u64 = 256 << 20;
/// Largest manifest.json or launch-digests.json read (real ones are a few KiB).
pub const MAX_JSON_BYTES: u64 = 4 << 20;

/// Why a file of an image could not be read.
#[derive(Debug, thiserror::Error)]
pub enum ReadError {
    /// Opening, inspecting or reading it failed.
    #[error("cannot read {what} {path}: {source}")]
    Io {
        /// What the file is for (kernel, initrd, firmware, manifest, ...).
        what: &'static str,
        /// Its path.
        path: PathBuf,
        /// The I/O error.
        source: io::Error,
    },
    /// It is a symlink, FIFO, device, socket or directory.
    #[error(
        "{what} {path} is {kind}, not a regular file: refusing to read it (name the file itself)"
    )]
    NotRegular {
        /// What the file is for.
        what: &'static str,
        /// Its path.
        path: PathBuf,
        /// What it is instead.
        kind: &'static str,
    },
    /// It is larger than any such file of an image.
    #[error("{what} {path} is larger than {limit} bytes ({size} bytes): refusing to read it")]
    TooLarge {
        /// What the file is for.
        what: &'static str,
        /// Its path.
        path: PathBuf,
        /// Its size (at least: a file that grows while read is cut at `limit` + 1).
        size: u64,
        /// The limit.
        limit: u64,
    },
}

fn kind_of(ft: &fs::FileType) -> &'static str {
    if ft.is_symlink() {
        "a symlink"
    } else if ft.is_dir() {
        "a directory"
    } else if ft.is_fifo() {
        "a FIFO"
    } else if ft.is_socket() {
        "a socket"
    } else if ft.is_block_device() || ft.is_char_device() {
        "a device"
    } else {
        "not a regular file"
    }
}

/// Opens `path` only if it is a regular file of at most `limit` bytes: O_NOFOLLOW
/// (a final symlink fails, so `/dev/zero` behind a link is never opened) and
/// O_NONBLOCK (a FIFO cannot block the open), then fstat on the open file.
pub fn open_regular(what: &'static str, path: &Path, limit: u64) -> Result<File, ReadError> {
    let io_err = |source| ReadError::Io {
        what,
        path: path.into(),
        source,
    };
    let not_regular = |ft: &fs::FileType| ReadError::NotRegular {
        what,
        path: path.into(),
        kind: kind_of(ft),
    };
    let flags = rustix::fs::OFlags::NOFOLLOW | rustix::fs::OFlags::NONBLOCK;
    let opened = fs::OpenOptions::new()
        .read(true)
        .custom_flags(flags.bits() as i32)
        .open(path);
    let f = match opened {
        Ok(f) => f,
        // ELOOP: the final component is a symlink; say so rather than "too many links".
        Err(e) if e.raw_os_error() == Some(rustix::io::Errno::LOOP.raw_os_error()) => {
            return Err(match fs::symlink_metadata(path) {
                Ok(m) => not_regular(&m.file_type()),
                Err(_) => io_err(e),
            })
        }
        Err(e) => return Err(io_err(e)),
    };
    let meta = f.metadata().map_err(io_err)?;
    if !meta.file_type().is_file() {
        return Err(not_regular(&meta.file_type()));
    }
    if meta.len() > limit {
        return Err(ReadError::TooLarge {
            what,
            path: path.into(),
            size: meta.len(),
            limit,
        });
    }
    Ok(f)
}

/// The bytes of the regular file at `path`, at most `limit` of them.
pub fn read_regular(what: &'static str, path: &Path, limit: u64) -> Result<Vec<u8>, ReadError> {
    let f = open_regular(what, path, limit)?;
    let mut bytes = Vec::new();
    // Bounded even if the file grows after the fstat.
    f.take(limit + 1)
        .read_to_end(&mut bytes)
        .map_err(|source| ReadError::Io {
            what,
            path: path.into(),
            source,
        })?;
    if bytes.len() as u64 > limit {
        return Err(ReadError::TooLarge {
            what,
            path: path.into(),
            size: bytes.len() as u64,
            limit,
        });
    }
    Ok(bytes)
}

/// SHA-256 of the regular file at `path` (at most `limit` bytes), read as a stream.
pub fn sha256_regular(what: &'static str, path: &Path, limit: u64) -> Result<[u8; 32], ReadError> {
    use sha2::Digest;
    let f = open_regular(what, path, limit)?;
    let mut hasher = sha2::Sha256::new();
    let mut reader = f.take(limit + 1);
    let mut buf = vec![0u8; 1 << 20];
    let mut total = 0u64;
    loop {
        let n = match reader.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(source) => {
                return Err(ReadError::Io {
                    what,
                    path: path.into(),
                    source,
                })
            }
        };
        total += n as u64;
        hasher.update(&buf[..n]);
    }
    if total > limit {
        return Err(ReadError::TooLarge {
            what,
            path: path.into(),
            size: total,
            limit,
        });
    }
    Ok(hasher.finalize().into())
}
