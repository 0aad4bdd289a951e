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
//!
//! Missing inputs are downloaded [`DEFAULT_FETCH_JOBS`] at a time ([`fetch_all`]):
//! a lockfile of hundreds of small crates is bound by round trips and the store's
//! fsync per blob, not by bandwidth. The result (store contents, [`ResolvedInputs`],
//! the first error in pin order) is the same as fetching one after another.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Mutex;

use kettle_wire::cache::CacheWriter;
use kettle_wire::inputs::{required_inputs, BuildTools, InputKind};
use kettle_wire::recipe::{BuildType, Recipe, SourceCheckError, RECIPE_FILE};
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
    /// A commit without its recipe's lockfile (Cargo.lock), or an unusable one.
    #[error("{file} of commit {commit}: {message}")]
    BadLockfile {
        /// The lockfile.
        file: &'static str,
        /// The commit.
        commit: String,
        /// What is wrong.
        message: String,
    },
    /// A cargo-build/v1 output the build cannot produce (caught before any VM boots).
    #[error("{RECIPE_FILE} of commit {commit}: output {output:?}: {reason}; fix [build] outputs and commit kettle.toml")]
    BadOutput {
        /// The commit.
        commit: String,
        /// The output as written.
        output: String,
        /// Why it cannot be produced.
        reason: String,
    },
    /// A cargo path dependency the guest cannot see (outside the repository, or not committed).
    #[error("commit {commit}: {message}")]
    BadDependency {
        /// The commit.
        commit: String,
        /// Which dependency and what to do.
        message: String,
    },
    /// A pin that no given file matches, while a file that looks like the pinned one was given.
    #[error("{RECIPE_FILE} pins {what} sha256 {pinned}, but {}: if that is the {what} to build with, update the pin in {RECIPE_FILE} (`kettle init --force` rewrites the pins from the image's bundles.json) and commit it", describe_candidates(candidates))]
    WrongPin {
        /// Which input.
        what: String,
        /// The pinned digest.
        pinned: Sha256Digest,
        /// Files that were given or found, and their digests.
        candidates: Vec<(PathBuf, Sha256Digest)>,
    },
    /// A pinned bundle whose URL is a marker and that no given or found file matches.
    #[error("{what} sha256 {pinned}: its URL {url} is a marker that is never downloaded (.invalid never resolves), and neither --input nor the image's directory has a file with that digest: pass the bundle with --input FILE")]
    NotDelivered {
        /// Which input.
        what: String,
        /// Its URL.
        url: String,
        /// The pinned digest.
        pinned: Sha256Digest,
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

fn describe_candidates(c: &[(PathBuf, Sha256Digest)]) -> String {
    c.iter()
        .map(|(p, d)| format!("{} has sha256 {d}", p.display()))
        .collect::<Vec<_>>()
        .join(", and ")
}

/// Files the host can use for pinned inputs besides its store: what `--input` gave and
/// the directories a bundle may sit in (beside the image: [`crate::bundles::search_dirs`]).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Delivered {
    /// `--input` files and their digests (already in the store).
    pub given: Vec<(PathBuf, Sha256Digest)>,
    /// Directories to look for a bundle in, by its URL's file name.
    pub bundle_dirs: Vec<PathBuf>,
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

/// Downloads at once by default: enough to hide a mirror's round trips and the
/// store's fsync per blob, few enough to be polite to a registry.
pub const DEFAULT_FETCH_JOBS: usize = 8;

/// How [`resolve_with`] gets what the store lacks.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ResolveOptions {
    /// Base URL of the crates.io-style download mirror
    /// (`<base>/<name>/<name>-<version>.crate`).
    pub crates_url: String,
    /// Downloads at once (1: one after another).
    pub jobs: usize,
}

impl Default for ResolveOptions {
    fn default() -> Self {
        ResolveOptions {
            crates_url: DEFAULT_CRATES_URL.to_string(),
            jobs: DEFAULT_FETCH_JOBS,
        }
    }
}

/// Resolves every input of `source` into `store`: from the store, a file `delivered`
/// (an --input, a bundle beside the image), or a download (crates from crates.io,
/// [`DEFAULT_FETCH_JOBS`] at a time).
pub fn resolve(
    source: &ResolvedSource,
    store: &Store,
    downloader: &Downloader,
    work: &Path,
    delivered: &Delivered,
) -> Result<ResolvedInputs, InputError> {
    resolve_with(
        source,
        store,
        downloader,
        work,
        &ResolveOptions::default(),
        delivered,
    )
}

/// [`resolve`] with the crates mirror and download concurrency of `options`.
pub fn resolve_with(
    source: &ResolvedSource,
    store: &Store,
    downloader: &Downloader,
    work: &Path,
    options: &ResolveOptions,
    delivered: &Delivered,
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
    // Caught here, not minutes later in the VM: the guest sees only this commit's tree.
    recipe
        .build_type
        .recipe()
        .check_source(&recipe, source)
        .map_err(|e| match e {
            SourceCheckError::Output { output, reason } => InputError::BadOutput {
                commit: commit.into(),
                output,
                reason,
            },
            other => InputError::BadDependency {
                commit: commit.into(),
                message: other.to_string(),
            },
        })?;
    let dependencies = match recipe.build_type.recipe().ecosystem() {
        Some(ecosystem) => {
            let lock = ecosystem.lockfile();
            let bad = |message: String| InputError::BadLockfile {
                file: lock.file,
                commit: commit.into(),
                message,
            };
            let text = source.read_file(lock.file)?.ok_or_else(|| {
                bad(format!(
                    "missing: {} needs a committed {} (run `{}` and commit it)",
                    recipe.build_type.name(),
                    lock.file,
                    lock.create_with
                ))
            })?;
            let text = String::from_utf8(text).map_err(|_| bad("not UTF-8".into()))?;
            let dependencies = ecosystem
                .parse_dependencies(&text)
                .map_err(|e| bad(e.to_string()))?;
            log::info!(
                "{} {}s from {}",
                dependencies.len(),
                ecosystem.package_noun(),
                lock.file
            );
            dependencies
        }
        None => Vec::new(),
    };
    let blobs = required_inputs(
        &recipe,
        &dependencies,
        &options.crates_url,
        BuildTools::Pinned,
    );
    fetch_all_delivered(store, downloader, &blobs, options.jobs, delivered)?;
    Ok(ResolvedInputs {
        commit_object,
        archive,
        blobs,
        build_type: recipe.build_type,
    })
}

/// Makes sure every pin's bytes are in the store, `jobs` downloads at a time (at
/// least 1; pins naming the same digest are fetched once). On failure the error is
/// the one fetching the pins in order would have stopped at: workers take pins in
/// order and stop taking new ones past a failed pin, so every pin before the first
/// failure is tried, and that failure is reported. (Pins after it may have been
/// stored meanwhile: the store only ever holds verified blobs.)
pub fn fetch_all(
    store: &Store,
    downloader: &Downloader,
    pins: &[InputPin],
    jobs: usize,
) -> Result<(), InputError> {
    fetch_all_delivered(store, downloader, pins, jobs, &Delivered::default())
}

/// [`fetch_all`], with the files in `delivered` used before any download.
pub fn fetch_all_delivered(
    store: &Store,
    downloader: &Downloader,
    pins: &[InputPin],
    jobs: usize,
    delivered: &Delivered,
) -> Result<(), InputError> {
    let mut seen = BTreeSet::new();
    let todo: Vec<&InputPin> = pins.iter().filter(|p| seen.insert(p.sha256)).collect();
    let jobs = jobs.clamp(1, todo.len().max(1));
    let get = |pin: &InputPin| fetch(store, downloader, pin, delivered);
    if jobs == 1 {
        return todo.into_iter().try_for_each(get);
    }
    let next = AtomicUsize::new(0);
    let first_failed = AtomicUsize::new(usize::MAX);
    let errors = Mutex::new(Vec::new());
    std::thread::scope(|scope| {
        for _ in 0..jobs {
            scope.spawn(|| loop {
                let i = next.fetch_add(1, Ordering::SeqCst);
                if i >= todo.len() || i > first_failed.load(Ordering::SeqCst) {
                    return;
                }
                if let Err(e) = get(todo[i]) {
                    first_failed.fetch_min(i, Ordering::SeqCst);
                    errors.lock().expect("no panic holds the lock").push((i, e));
                }
            });
        }
    });
    let errors = errors.into_inner().expect("no panic holds the lock");
    match errors.into_iter().min_by_key(|(i, _)| *i) {
        Some((_, e)) => Err(e),
        None => Ok(()),
    }
}

/// The last path segment of a URL (`rootfs.tar.gz`), if any.
fn url_file_name(url: &str) -> Option<&str> {
    let path = url.split_once("://").map_or(url, |(_, r)| r);
    let (_, path) = path.split_once('/')?;
    path.rsplit('/')
        .next()
        .filter(|n| !n.is_empty() && *n != "." && *n != "..")
}

/// Makes sure `pin` is in the store: already there (re-verified), a delivered file
/// with its digest (beside the image), or downloaded from its URL.
fn fetch(
    store: &Store,
    downloader: &Downloader,
    pin: &InputPin,
    delivered: &Delivered,
) -> Result<(), InputError> {
    let (what, digest) = (pin.label(), &pin.sha256);
    if store.get(digest)?.is_some() {
        log::debug!("{what}: cached ({digest})");
        return Ok(());
    }
    let name = url_file_name(&pin.url);
    let mut candidates: Vec<(PathBuf, Sha256Digest)> = Vec::new();
    if !matches!(pin.kind, InputKind::Dependency(_)) {
        if let Some(name) = name {
            for dir in &delivered.bundle_dirs {
                let path = dir.join(name);
                if !path.is_file() {
                    continue;
                }
                // Hashed first: only the matching file is copied into the store.
                let found = Sha256Digest::of_file(&path).map_err(|source| StoreError::Io {
                    path: path.clone(),
                    source,
                })?;
                if found == *digest {
                    store.insert_file(&path, Some(digest))?;
                    log::info!("{what}: {} (beside the image)", path.display());
                    return Ok(());
                }
                candidates.push((path, found));
            }
        }
        // An --input of the same file name is the one the user meant to pin.
        for (path, d) in &delivered.given {
            if name.is_some() && path.file_name().and_then(|n| n.to_str()) == name {
                candidates.push((path.clone(), *d));
            }
        }
        if !candidates.is_empty() {
            return Err(InputError::WrongPin {
                what,
                pinned: *digest,
                candidates,
            });
        }
        if crate::bundles::is_marker_url(&pin.url) {
            return Err(InputError::NotDelivered {
                what,
                url: pin.url.clone(),
                pinned: *digest,
            });
        }
    }
    let url = &pin.url;
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
    let mut seen = BTreeSet::new();
    for blob in &inputs.blobs {
        if !seen.insert(blob.sha256) {
            continue;
        }
        // Not `store.get` (a hash pass of its own): the writer hashes each blob to name
        // it, and a blob that changed since `resolve` verified it is refused here.
        let p = store.path_of(&blob.sha256);
        if !p.is_file() {
            return Err(InputError::Store(StoreError::DigestMismatch {
                what: blob.label(),
                expected: blob.sha256.to_hex(),
                actual: "(missing from the store)".into(),
            }));
        }
        let actual = writer.add_blob_file(&p).map_err(io)?;
        if actual != blob.sha256 {
            log::warn!(
                "cache entry {} changed after it was verified (it now hashes to {actual}); removing it",
                p.display()
            );
            let _ = std::fs::remove_file(&p);
            return Err(InputError::Store(StoreError::DigestMismatch {
                what: blob.label(),
                expected: blob.sha256.to_hex(),
                actual: actual.to_hex(),
            }));
        }
    }
    writer.finish().map_err(io)
}

#[cfg(test)]
mod tests;
