//! The host's content-addressed input cache: `<root>/sha256/<hex>`, reused
//! across builds. Every entry is hashed when it is inserted and again when it
//! is reused, so a corrupted or tampered entry is never handed to a build
//! (the guest re-verifies everything anyway; this keeps the host honest and
//! saves a wasted VM boot).

use std::fs::{self, File};
use std::io::{self, Read, Write};
use std::path::{Path, PathBuf};

use kettle_provenance::digest::HashingReader;
pub use kettle_provenance::Sha256Digest;

/// Why the store could not do what was asked.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// A filesystem operation on a named path failed.
    #[error("cache {path}: {source} (check the permissions of the cache dir, or point KETTLE_CACHE_DIR elsewhere)")]
    Io {
        /// The path involved.
        path: PathBuf,
        /// The underlying error.
        #[source]
        source: io::Error,
    },
    /// Content did not hash to what it was supposed to be.
    #[error("{what}: expected sha256 {expected}, got {actual}")]
    DigestMismatch {
        /// What was being inserted (a URL or file name).
        what: String,
        /// The digest it should have had.
        expected: String,
        /// The digest it had.
        actual: String,
    },
    /// No home or cache directory to put the store in.
    #[error("no cache directory: set KETTLE_CACHE_DIR, XDG_CACHE_HOME or HOME")]
    NoCacheDir,
}

fn io_err(path: &Path) -> impl FnOnce(io::Error) -> StoreError + '_ {
    move |source| StoreError::Io {
        path: path.to_path_buf(),
        source,
    }
}

/// A content-addressed directory of blobs named by their SHA-256.
#[derive(Debug, Clone)]
pub struct Store {
    root: PathBuf,
}

impl Store {
    /// `$KETTLE_CACHE_DIR`, else `$XDG_CACHE_HOME/kettle`, else `~/.cache/kettle`.
    pub fn default_root() -> Result<PathBuf, StoreError> {
        if let Some(dir) = std::env::var_os("KETTLE_CACHE_DIR").filter(|d| !d.is_empty()) {
            return Ok(PathBuf::from(dir));
        }
        if let Some(dir) = std::env::var_os("XDG_CACHE_HOME").filter(|d| !d.is_empty()) {
            return Ok(PathBuf::from(dir).join("kettle"));
        }
        std::env::var_os("HOME")
            .filter(|d| !d.is_empty())
            .map(|h| PathBuf::from(h).join(".cache").join("kettle"))
            .ok_or(StoreError::NoCacheDir)
    }

    /// Opens (creating) the store rooted at `root`.
    pub fn open(root: impl Into<PathBuf>) -> Result<Store, StoreError> {
        let root = root.into();
        let dir = root.join("sha256");
        fs::create_dir_all(&dir).map_err(io_err(&dir))?;
        Ok(Store { root })
    }

    /// Where the blob with this digest lives (whether or not it is there).
    pub fn path_of(&self, digest: &Sha256Digest) -> PathBuf {
        self.root.join("sha256").join(digest.to_hex())
    }

    /// The path of a present, intact blob; a blob whose content no longer
    /// matches its name is removed (and None returned) so it gets fetched again.
    pub fn get(&self, digest: &Sha256Digest) -> Result<Option<PathBuf>, StoreError> {
        let path = self.path_of(digest);
        let file = match File::open(&path) {
            Ok(f) => f,
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
            Err(e) => return Err(io_err(&path)(e)),
        };
        let (actual, _) = Sha256Digest::of_reader(file).map_err(io_err(&path))?;
        if &actual == digest {
            Ok(Some(path))
        } else {
            log::warn!(
                "cache entry {} is corrupt (its content hashes to {}); removing it",
                path.display(),
                actual
            );
            fs::remove_file(&path).map_err(io_err(&path))?;
            Ok(None)
        }
    }

    /// Copies `reader` into the store, hashing on the way; fails (keeping
    /// nothing) when `expected` is given and differs. Returns the digest.
    pub fn insert_reader(
        &self,
        what: &str,
        reader: impl Read,
        expected: Option<&Sha256Digest>,
    ) -> Result<Sha256Digest, StoreError> {
        let dir = self.root.join("sha256");
        let mut tmp = tempfile::Builder::new()
            .prefix(".incoming-")
            .tempfile_in(&dir)
            .map_err(io_err(&dir))?;
        let mut hashing = HashingReader::new(reader);
        // A read error names the source, a write error the temp file.
        let tmp_path = tmp.path().to_path_buf();
        copy_naming_errors(&mut hashing, tmp.as_file_mut(), Path::new(what), &tmp_path)?;
        let (actual, _) = hashing.finish();
        if let Some(expected) = expected {
            if expected != &actual {
                return Err(StoreError::DigestMismatch {
                    what: what.to_string(),
                    expected: expected.to_hex(),
                    actual: actual.to_hex(),
                });
            }
        }
        tmp.as_file().sync_all().map_err(io_err(tmp.path()))?;
        let dest = self.path_of(&actual);
        tmp.persist(&dest).map_err(|e| StoreError::Io {
            path: dest.clone(),
            source: e.error,
        })?;
        Ok(actual)
    }

    /// Inserts `bytes`; see [`Store::insert_reader`].
    pub fn insert_bytes(
        &self,
        what: &str,
        bytes: &[u8],
        expected: Option<&Sha256Digest>,
    ) -> Result<Sha256Digest, StoreError> {
        self.insert_reader(what, bytes, expected)
    }

    /// Inserts the file at `path`; see [`Store::insert_reader`]. A file whose
    /// content is already stored (and intact) is not copied again.
    pub fn insert_file(
        &self,
        path: &Path,
        expected: Option<&Sha256Digest>,
    ) -> Result<Sha256Digest, StoreError> {
        let digest = Sha256Digest::of_file(path).map_err(io_err(path))?;
        if let Some(expected) = expected {
            if expected != &digest {
                return Err(StoreError::DigestMismatch {
                    what: path.display().to_string(),
                    expected: expected.to_hex(),
                    actual: digest.to_hex(),
                });
            }
        }
        if self.get(&digest)?.is_some() {
            return Ok(digest);
        }
        let file = File::open(path).map_err(io_err(path))?;
        // Hashed again while copying: the file may have changed in between.
        self.insert_reader(&path.display().to_string(), file, Some(&digest))
    }
}

/// Copies `from` into `to`, naming `source` on read errors and `dest` on write errors.
fn copy_naming_errors(
    from: &mut impl Read,
    to: &mut impl Write,
    source: &Path,
    dest: &Path,
) -> Result<(), StoreError> {
    let mut buf = vec![0u8; 1 << 16];
    loop {
        let n = match from.read(&mut buf) {
            Ok(0) => return Ok(()),
            Ok(n) => n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(io_err(source)(e)),
        };
        to.write_all(&buf[..n]).map_err(io_err(dest))?;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn digest(bytes: &[u8]) -> Sha256Digest {
        Sha256Digest::of_bytes(bytes)
    }

    #[test]
    fn inserts_and_reuses_by_content() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path()).unwrap();
        let d = store.insert_bytes("x", b"hello", None).unwrap();
        assert_eq!(d, digest(b"hello"));
        let path = store.get(&d).unwrap().expect("present");
        assert_eq!(fs::read(&path).unwrap(), b"hello");
        assert!(path.ends_with(format!("sha256/{d}")));
        // Reinserting the same content is idempotent.
        assert_eq!(store.insert_bytes("x", b"hello", Some(&d)).unwrap(), d);
        assert_eq!(store.get(&digest(b"absent")).unwrap(), None);
    }

    #[test]
    fn refuses_content_that_does_not_match_its_pin() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path()).unwrap();
        let want = digest(b"good");
        let err = store
            .insert_bytes("https://example/x.crate", b"evil", Some(&want))
            .unwrap_err();
        assert!(matches!(err, StoreError::DigestMismatch { .. }), "{err}");
        assert!(err.to_string().contains("https://example/x.crate"));
        assert_eq!(store.get(&want).unwrap(), None);
        assert_eq!(store.get(&digest(b"evil")).unwrap(), None);
        // Nothing half-written is left behind.
        let left: Vec<_> = fs::read_dir(dir.path().join("sha256")).unwrap().collect();
        assert!(left.is_empty(), "{left:?}");
    }

    #[test]
    fn drops_entries_corrupted_on_disk() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path()).unwrap();
        let d = store.insert_bytes("x", b"hello", None).unwrap();
        fs::write(store.path_of(&d), b"tampered").unwrap();
        assert_eq!(store.get(&d).unwrap(), None);
        assert!(!store.path_of(&d).exists());
    }

    #[test]
    fn inserting_a_stored_file_again_keeps_the_entry() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path().join("store")).unwrap();
        let file = dir.path().join("bundle.tar.gz");
        fs::write(&file, b"bundle").unwrap();
        let d = store.insert_file(&file, None).unwrap();
        let before = fs::metadata(store.path_of(&d)).unwrap().modified().unwrap();
        assert_eq!(store.insert_file(&file, Some(&d)).unwrap(), d);
        assert_eq!(
            fs::metadata(store.path_of(&d)).unwrap().modified().unwrap(),
            before
        );
        let wrong = digest(b"other");
        assert!(matches!(
            store.insert_file(&file, Some(&wrong)),
            Err(StoreError::DigestMismatch { .. })
        ));
    }
}
