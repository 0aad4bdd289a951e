//! Cached mode on the host: resolve every input the guest will need (the
//! source archive and raw commit object, every crate in Cargo.lock, the
//! toolchain and rootfs bundles pinned in kettle.toml) into the content-
//! addressed store, then write the cache disk in kettle-init's layout.
//!
//! The host checks every pin it can (crate checksums, bundle SHA-256s) so a
//! bad input fails here rather than after a VM boot; the guest checks them
//! all again, because nothing the host does is trusted.

use std::path::{Path, PathBuf};

use kettle_init::cache::CacheWriter;
use kettle_init::lockfile::{self, LockedCrate};
use kettle_init::manifest::{Manifest, Pinned, Recipe, MANIFEST_FILE};
use kettle_init::request::DEFAULT_CRATES_URL;

use crate::download::{DownloadError, Downloader};
use crate::source::{ResolvedSource, SourceError};
use crate::store::{parse_sha256, Sha256Digest, Store, StoreError};

/// Why the inputs could not be resolved.
#[derive(Debug, thiserror::Error)]
pub enum InputError {
    /// Reading the source failed.
    #[error(transparent)]
    Source(#[from] SourceError),
    /// The commit has no kettle.toml.
    #[error("commit {commit} has no {MANIFEST_FILE} at its root: add the build recipe (see examples/) and commit it")]
    NoRecipe {
        /// The commit.
        commit: String,
    },
    /// kettle.toml is invalid.
    #[error("{MANIFEST_FILE} of commit {commit}: {message}")]
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

/// One pinned blob the guest will look up by SHA-256.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Blob {
    /// What it is, e.g. `crate hex 0.4.3`, `toolchain`.
    pub label: String,
    /// Its SHA-256 (the pin).
    pub sha256: Sha256Digest,
}

/// Everything cached mode hands the guest.
#[derive(Debug, Clone)]
pub struct ResolvedInputs {
    /// The raw commit object.
    pub commit_object: Vec<u8>,
    /// The source archive's digest in the store.
    pub archive: Sha256Digest,
    /// Crates, toolchain and rootfs.
    pub blobs: Vec<Blob>,
    /// The recipe read from kettle.toml.
    pub recipe: Recipe,
}

/// The crates.io download URL of a locked crate.
pub fn crate_url(base: &str, krate: &LockedCrate) -> String {
    format!(
        "{}/{}/{}-{}.crate",
        base.trim_end_matches('/'),
        krate.name,
        krate.name,
        krate.version
    )
}

fn pin_digest(what: &str, hex: &str, commit: &str) -> Result<Sha256Digest, InputError> {
    parse_sha256(hex).ok_or_else(|| InputError::BadRecipe {
        commit: commit.into(),
        message: format!("{what} sha256 {hex:?} is not 64 hex digits"),
    })
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
        .read_file(MANIFEST_FILE)?
        .ok_or_else(|| InputError::NoRecipe {
            commit: commit.into(),
        })?;
    let text = String::from_utf8(text).map_err(|_| InputError::BadRecipe {
        commit: commit.into(),
        message: "not UTF-8".into(),
    })?;
    let manifest = Manifest::parse(&text).map_err(|e| InputError::BadRecipe {
        commit: commit.into(),
        message: e.to_string(),
    })?;
    let recipe = manifest.recipe().map_err(|e| InputError::BadRecipe {
        commit: commit.into(),
        message: e.to_string(),
    })?;

    let mut blobs = Vec::new();
    let mut pinned: Vec<(&str, &Pinned)> = vec![("rootfs", &manifest.rootfs)];
    if let Some(t) = &manifest.toolchain {
        pinned.push(("toolchain", t));
    }
    for (what, pin) in pinned {
        let digest = pin_digest(what, &pin.sha256, commit)?;
        fetch(
            store,
            downloader,
            &format!("{what} bundle"),
            &pin.url,
            &digest,
        )?;
        blobs.push(Blob {
            label: what.to_string(),
            sha256: digest,
        });
    }

    if recipe == Recipe::CargoBuild {
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
        for krate in &crates {
            let digest = pin_digest(&krate.label(), &krate.checksum, commit)?;
            fetch(
                store,
                downloader,
                &krate.label(),
                &crate_url(DEFAULT_CRATES_URL, krate),
                &digest,
            )?;
            blobs.push(Blob {
                label: krate.label(),
                sha256: digest,
            });
        }
    }
    Ok(ResolvedInputs {
        commit_object,
        archive,
        blobs,
        recipe,
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
        log::debug!("{what}: cached ({})", hex::encode(digest));
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
            expected: hex::encode(inputs.archive),
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
                what: blob.label.clone(),
                expected: hex::encode(blob.sha256),
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
    use sha2::{Digest, Sha256};

    fn recipe(rootfs_sha: &str) -> String {
        format!(
            "[build]\ntype = \"script/v1\"\noutputs = [\"out/x\"]\ncommand = [\"sh\", \"-c\", \"true\"]\n\n[rootfs]\nurl = \"https://example.invalid/rootfs.tar.gz\"\nsha256 = \"{rootfs_sha}\"\n"
        )
    }

    #[test]
    fn resolves_a_script_recipe_from_the_store_and_writes_the_cache_layout() {
        let rootfs = b"pretend rootfs tarball";
        let sha = hex::encode(Sha256::digest(rootfs));
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
        assert_eq!(inputs.recipe, Recipe::Script);
        assert_eq!(
            inputs.blobs,
            [Blob {
                label: "rootfs".into(),
                sha256: Sha256::digest(rootfs).into()
            }]
        );

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

    #[test]
    fn crate_urls_follow_crates_io() {
        let k = LockedCrate {
            name: "hex".into(),
            version: "0.4.3".into(),
            checksum: "00".repeat(32),
        };
        assert_eq!(
            crate_url(DEFAULT_CRATES_URL, &k),
            "https://static.crates.io/crates/hex/hex-0.4.3.crate"
        );
    }
}
