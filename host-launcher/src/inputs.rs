//! Cached mode on the host: resolve every input the guest will need (the
//! source archive and raw commit object, every crate in Cargo.lock, the
//! toolchain and rootfs bundles pinned in kettle.toml) into the content-
//! addressed store, then write the cache disk in the wire crate's layout.
//! Which inputs those are is decided by [`kettle_wire::inputs::required_inputs`],
//! the same function the guest uses.
//!
//! The host checks every pin it can (crate checksums, bundle SHA-256s) so a
//! bad input fails here rather than after a VM boot; the guest checks them
//! all again, because nothing the host does is trusted.

use std::path::{Path, PathBuf};

use kettle_wire::cache::CacheWriter;
use kettle_wire::inputs::{required_inputs, BuildTools};
use kettle_wire::lockfile;
use kettle_wire::recipe::{BuildType, Recipe, RECIPE_FILE};
use kettle_wire::request::DEFAULT_CRATES_URL;
use kettle_wire::InputPin;

use crate::download::{DownloadError, Downloader};
use crate::source::{ResolvedSource, SourceError};
use crate::store::{Sha256Digest, Store, StoreError};

/// Why the inputs could not be resolved.
#[derive(Debug, thiserror::Error)]
pub enum InputError {
    /// Reading the source failed.
    #[error(transparent)]
    Source(#[from] SourceError),
    /// The commit has no kettle.toml.
    #[error("commit {commit} has no {RECIPE_FILE} at its root: add the build recipe (see examples/) and commit it")]
    NoRecipe {
        /// The commit.
        commit: String,
    },
    /// kettle.toml is invalid.
    #[error("{RECIPE_FILE} of commit {commit}: {message}")]
    BadRecipe {
        /// The commit.
        commit: String,
        /// What is wrong.
        message: String,
    },
    /// A cargo-build/v1 commit without Cargo.lock, or an unusable one.
    #[error("Cargo.lock of commit {commit}: {message}")]
    BadLockfile {
        /// The commit.
        commit: String,
        /// What is wrong.
        message: String,
    },
    /// A pinned input could not be had.
    #[error("{what}: {source}")]
    Fetch {
        /// Which input.
        what: String,
        /// Why.
        #[source]
        source: DownloadError,
    },
    /// The store failed.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// Writing the cache disk failed.
    #[error("writing the cache disk {path}: {source}")]
    CacheDisk {
        /// The disk image.
        path: PathBuf,
        /// Why.
        #[source]
        source: std::io::Error,
    },
}

/// Everything cached mode hands the guest.
#[derive(Debug, Clone)]
pub struct ResolvedInputs {
    /// The raw commit object.
    pub commit_object: Vec<u8>,
    /// The source archive's digest in the store.
    pub archive: Sha256Digest,
    /// Crates, toolchain and rootfs, as the guest will ask for them.
    pub blobs: Vec<InputPin>,
    /// The recipe read from kettle.toml.
    pub build_type: BuildType,
}

/// Resolves every input of `source` into `store`, downloading what is missing.
pub fn resolve(
    source: &ResolvedSource,
    store: &Store,
    downloader: &Downloader,
    work: &Path,
) -> Result<ResolvedInputs, InputError> {
    let commit = source.commit.as_str();
    let commit_object = source.commit_object()?;
    let archive_path = work.join("source.tar");
    source.write_archive(&archive_path)?;
    let archive = store.insert_file(&archive_path, None)?;
    let _ = std::fs::remove_file(&archive_path);
    log::info!(
        "source: {} {} @ {commit}",
        source.repository,
        source.git_ref
    );

    let text = source
        .read_file(RECIPE_FILE)?
        .ok_or_else(|| InputError::NoRecipe {
            commit: commit.into(),
        })?;
    let recipe = Recipe::parse_bytes(&text).map_err(|e| InputError::BadRecipe {
        commit: commit.into(),
        message: e.to_string(),
    })?;
    let crates = if recipe.build_type.uses_lockfile() {
        let lock = source.read_file("Cargo.lock")?.ok_or_else(|| InputError::BadLockfile {
            commit: commit.into(),
            message: "missing: cargo-build/v1 needs a committed Cargo.lock (run `cargo generate-lockfile` and commit it)".into(),
        })?;
        let lock = String::from_utf8(lock).map_err(|_| InputError::BadLockfile {
            commit: commit.into(),
            message: "not UTF-8".into(),
        })?;
        let crates = lockfile::parse(&lock).map_err(|e| InputError::BadLockfile {
            commit: commit.into(),
            message: e.to_string(),
        })?;
        log::info!("{} crates from Cargo.lock", crates.len());
        crates
    } else {
        Vec::new()
    };
    let blobs = required_inputs(&recipe, &crates, DEFAULT_CRATES_URL, BuildTools::Pinned);
    for pin in &blobs {
        fetch(store, downloader, &pin.label(), &pin.url, &pin.sha256)?;
    }
    Ok(ResolvedInputs {
        commit_object,
        archive,
        blobs,
        build_type: recipe.build_type,
    })
}

/// Makes sure `digest` is in the store: already there (re-verified), or downloaded from `url`.
fn fetch(
    store: &Store,
    downloader: &Downloader,
    what: &str,
    url: &str,
    digest: &Sha256Digest,
) -> Result<(), InputError> {
    if store.get(digest)?.is_some() {
        log::debug!("{what}: cached ({digest})");
        return Ok(());
    }
    downloader.fetch_into(store, url, Some(digest)).map_err(|source| InputError::Fetch {
        what: format!("{what} ({url}); if it is not downloadable from here, add the file with --input FILE"),
        source,
    })?;
    Ok(())
}

/// Writes the cache disk (or, for local mode, an inputs directory) from the store.
pub fn write_cache(
    inputs: &ResolvedInputs,
    commit: &str,
    store: &Store,
    mut writer: CacheWriter,
    path: &Path,
) -> Result<(), InputError> {
    let io = |source| InputError::CacheDisk {
        path: path.into(),
        source,
    };
    writer
        .add_commit_object(commit, &inputs.commit_object)
        .map_err(io)?;
    let archive = store.get(&inputs.archive)?.ok_or_else(|| {
        InputError::Store(StoreError::DigestMismatch {
            what: "source archive".into(),
            expected: inputs.archive.to_hex(),
            actual: "(missing from the store)".into(),
        })
    })?;
    writer.add_source_archive(commit, &archive).map_err(io)?;
    let mut seen = std::collections::BTreeSet::new();
    for blob in &inputs.blobs {
        if !seen.insert(blob.sha256) {
            continue;
        }
        let p = store.get(&blob.sha256)?.ok_or_else(|| {
            InputError::Store(StoreError::DigestMismatch {
                what: blob.label(),
                expected: blob.sha256.to_hex(),
                actual: "(missing from the store)".into(),
            })
        })?;
        writer.add_blob_file(&p).map_err(io)?;
    }
    writer.finish().map_err(io)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::download::RetryPolicy;
    use crate::source::{resolve_checkout, tests::repo_with};
    use kettle_wire::inputs::InputKind;

    fn recipe(rootfs_sha: &str) -> String {
        format!(
            "[build]\ntype = \"script/v1\"\noutputs = [\"out/x\"]\ncommand = [\"sh\", \"-c\", \"true\"]\n\n[rootfs]\nurl = \"https://example.invalid/rootfs.tar.gz\"\nsha256 = \"{rootfs_sha}\"\n"
        )
    }

    #[test]
    fn resolves_a_script_recipe_from_the_store_and_writes_the_cache_layout() {
        let rootfs = b"pretend rootfs tarball";
        let sha = Sha256Digest::of_bytes(rootfs).to_hex();
        let repo = repo_with(&[
            ("kettle.toml", recipe(&sha).as_bytes()),
            ("greeting.txt", b"hi\n"),
        ]);
        let src = resolve_checkout(repo.path(), None, false).unwrap();
        let cache_root = tempfile::tempdir().unwrap();
        let store = Store::open(cache_root.path()).unwrap();
        // Pre-seeded, as `kettle build --input rootfs.tar.gz` does: no download happens.
        store.insert_bytes("rootfs", rootfs, None).unwrap();
        let work = tempfile::tempdir().unwrap();
        let dl = Downloader::new(RetryPolicy {
            attempts: 1,
            first_backoff: std::time::Duration::ZERO,
        });
        let inputs = resolve(&src, &store, &dl, work.path()).unwrap();
        assert_eq!(inputs.build_type, BuildType::Script);
        assert_eq!(inputs.blobs.len(), 1);
        assert_eq!(inputs.blobs[0].kind, InputKind::Rootfs);
        assert_eq!(inputs.blobs[0].sha256, Sha256Digest::of_bytes(rootfs));

        let out = tempfile::tempdir().unwrap();
        let dir = out.path().join("inputs");
        write_cache(
            &inputs,
            &src.commit,
            &store,
            CacheWriter::create_dir(&dir).unwrap(),
            &dir,
        )
        .unwrap();
        assert_eq!(
            std::fs::read(dir.join("git").join(&src.commit)).unwrap(),
            src.commit_object().unwrap()
        );
        assert_eq!(
            std::fs::read(dir.join("sha256").join(&sha)).unwrap(),
            rootfs
        );
        assert!(dir.join("source").join(&src.commit).is_file());

        // And as a disk image: a tar stream, 512-byte aligned for virtio-blk.
        let disk = out.path().join("cache.img");
        write_cache(
            &inputs,
            &src.commit,
            &store,
            CacheWriter::create_disk(&disk).unwrap(),
            &disk,
        )
        .unwrap();
        assert_eq!(std::fs::metadata(&disk).unwrap().len() % 512, 0);
    }

    #[test]
    fn a_missing_pinned_input_says_how_to_supply_it() {
        let repo = repo_with(&[("kettle.toml", recipe(&"ab".repeat(32)).as_bytes())]);
        let src = resolve_checkout(repo.path(), None, false).unwrap();
        let cache_root = tempfile::tempdir().unwrap();
        let store = Store::open(cache_root.path()).unwrap();
        let work = tempfile::tempdir().unwrap();
        let dl = Downloader::new(RetryPolicy {
            attempts: 1,
            first_backoff: std::time::Duration::ZERO,
        });
        let err = resolve(&src, &store, &dl, work.path()).unwrap_err();
        assert!(err.to_string().contains("--input FILE"), "{err}");
    }

    #[test]
    fn recipe_errors_name_the_commit() {
        let repo = repo_with(&[("README", b"no recipe")]);
        let src = resolve_checkout(repo.path(), None, false).unwrap();
        let store_dir = tempfile::tempdir().unwrap();
        let store = Store::open(store_dir.path()).unwrap();
        let work = tempfile::tempdir().unwrap();
        let dl = Downloader::new(RetryPolicy::default());
        let err = resolve(&src, &store, &dl, work.path()).unwrap_err();
        assert!(matches!(err, InputError::NoRecipe { .. }), "{err}");

        let repo = repo_with(&[("kettle.toml", b"[build]\ntype = \"make/v1\"\n")]);
        let src = resolve_checkout(repo.path(), None, false).unwrap();
        let err = resolve(&src, &store, &dl, work.path()).unwrap_err();
        assert!(matches!(err, InputError::BadRecipe { .. }), "{err}");
    }
}
