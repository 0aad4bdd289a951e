//! The content-addressed input layout shared by the cache disk (a tar stream
//! on the virtio disk with serial `kettle-cache`) and local mode's inputs dir.
//!
//! ```text
//! git/<commit-id>      the raw commit object: its body as `git cat-file commit <id>` prints it
//! source/<commit-id>   tar or tar.gz of the commit's tree (as `git archive <id>` writes it;
//!                      one top directory around it, as forge downloads have, is accepted)
//! sha256/<hex>         any other input, named by the SHA-256 of its bytes:
//!                      .crate files (Cargo.lock `checksum`), toolchain and rootfs bundles
//! ```
//! Names are hints only: the guest hashes everything it reads. The commit
//! object must hash to the requested id, the source tree to the commit's tree,
//! and each blob to the pin that asked for it (Cargo.lock or kettle.toml).

use std::fs::{self, File};
use std::io::{self, Write};
use std::path::{Path, PathBuf};

use kettle_provenance::Sha256Digest;

/// Directory of raw commit objects.
pub const COMMIT_DIR: &str = "git";
/// Directory of source archives.
pub const SOURCE_DIR: &str = "source";
/// Directory of SHA-256-addressed blobs.
pub const BLOB_DIR: &str = "sha256";

/// Path of the raw commit object for `commit` under `root`.
pub fn commit_path(root: &Path, commit: &str) -> PathBuf {
    root.join(COMMIT_DIR).join(commit)
}

/// Path of the source archive for `commit` under `root`.
pub fn source_path(root: &Path, commit: &str) -> PathBuf {
    root.join(SOURCE_DIR).join(commit)
}

/// Path of the blob with SHA-256 `sha256` under `root`.
pub fn blob_path(root: &Path, sha256: &Sha256Digest) -> PathBuf {
    root.join(BLOB_DIR).join(sha256.to_hex())
}

enum Sink {
    Dir(PathBuf),
    Disk(tar::Builder<File>),
}

/// Fills a cache disk image or an inputs directory (host side).
pub struct CacheWriter {
    sink: Sink,
}

impl CacheWriter {
    /// Writes into the directory `root` (local mode's inputs dir).
    pub fn create_dir(root: &Path) -> io::Result<CacheWriter> {
        for d in [COMMIT_DIR, SOURCE_DIR, BLOB_DIR] {
            fs::create_dir_all(root.join(d))?;
        }
        Ok(CacheWriter {
            sink: Sink::Dir(root.to_path_buf()),
        })
    }

    /// Writes a cache disk image (tar stream) at `path`.
    pub fn create_disk(path: &Path) -> io::Result<CacheWriter> {
        let mut b = tar::Builder::new(File::create(path)?);
        b.mode(tar::HeaderMode::Deterministic);
        Ok(CacheWriter {
            sink: Sink::Disk(b),
        })
    }

    fn put_bytes(&mut self, name: &str, bytes: &[u8]) -> io::Result<()> {
        match &mut self.sink {
            Sink::Dir(root) => fs::write(root.join(name), bytes),
            Sink::Disk(b) => {
                let mut h = tar::Header::new_ustar();
                h.set_size(bytes.len() as u64);
                h.set_mode(0o644);
                h.set_mtime(0);
                b.append_data(&mut h, name, bytes)
            }
        }
    }

    fn put_file(&mut self, name: &str, path: &Path) -> io::Result<()> {
        match &mut self.sink {
            Sink::Dir(root) => fs::copy(path, root.join(name)).map(|_| ()),
            Sink::Disk(b) => {
                let mut f = File::open(path)?;
                let mut h = tar::Header::new_ustar();
                h.set_size(f.metadata()?.len());
                h.set_mode(0o644);
                h.set_mtime(0);
                b.append_data(&mut h, name, &mut f)
            }
        }
    }

    /// Adds the raw commit object (body as `git cat-file commit <id>` prints it).
    pub fn add_commit_object(&mut self, commit: &str, raw: &[u8]) -> io::Result<()> {
        self.put_bytes(&format!("{COMMIT_DIR}/{commit}"), raw)
    }

    /// Adds the source archive (tar or tar.gz of the commit's tree).
    pub fn add_source_archive(&mut self, commit: &str, archive: &Path) -> io::Result<()> {
        self.put_file(&format!("{SOURCE_DIR}/{commit}"), archive)
    }

    /// Adds a blob from a file; returns its SHA-256.
    pub fn add_blob_file(&mut self, path: &Path) -> io::Result<Sha256Digest> {
        let sha = Sha256Digest::of_file(path)?;
        self.put_file(&format!("{BLOB_DIR}/{sha}"), path)?;
        Ok(sha)
    }

    /// Adds a blob from memory; returns its SHA-256.
    pub fn add_blob_bytes(&mut self, bytes: &[u8]) -> io::Result<Sha256Digest> {
        let sha = Sha256Digest::of_bytes(bytes);
        self.put_bytes(&format!("{BLOB_DIR}/{sha}"), bytes)?;
        Ok(sha)
    }

    /// Finishes the disk image (end-of-archive blocks, fsync); a no-op for a directory.
    pub fn finish(self) -> io::Result<()> {
        if let Sink::Disk(b) = self.sink {
            let mut f = b.into_inner()?;
            f.flush()?;
            f.sync_all()?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::unpack::{unpack, UnpackLimits};

    /// What the caches below hold: one commit, its source archive, one blob.
    const COMMIT: &str = "abababababababababababababababababababab";
    const COMMIT_OBJECT: &[u8] = b"tree x\n";
    const SOURCE_ARCHIVE: &[u8] = b"not really a tar";
    const BLOB: &[u8] = b"crate bytes";

    #[test]
    fn disk_and_dir_have_the_same_layout() {
        let tmp = tempfile::tempdir().unwrap();
        let at = |name: &str| tmp.path().join(name);
        let src = at("src.tar");
        fs::write(&src, SOURCE_ARCHIVE).unwrap();
        let disk = at("cache.img");
        let dir = at("dir");
        let mut shas = Vec::new();
        for mut w in [
            CacheWriter::create_disk(&disk).unwrap(),
            CacheWriter::create_dir(&dir).unwrap(),
        ] {
            w.add_commit_object(COMMIT, COMMIT_OBJECT).unwrap();
            w.add_source_archive(COMMIT, &src).unwrap();
            shas.push(w.add_blob_bytes(BLOB).unwrap());
            w.finish().unwrap();
        }
        assert_eq!(shas[0], shas[1]);
        let out = at("from-disk");
        unpack(File::open(&disk).unwrap(), &out, &UnpackLimits::CACHE_DISK).unwrap();
        for root in [&out, &dir] {
            assert_eq!(fs::read(commit_path(root, COMMIT)).unwrap(), COMMIT_OBJECT);
            assert_eq!(fs::read(source_path(root, COMMIT)).unwrap(), SOURCE_ARCHIVE);
            assert_eq!(fs::read(blob_path(root, &shas[0])).unwrap(), BLOB);
        }
    }
}
