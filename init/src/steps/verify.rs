//! The verify step: every input against its pin. The commit object must hash
//! to the requested id and the source archive's tree to the commit's tree;
//! the recipe (kettle.toml) and its lockfile (Cargo.lock) are then read from
//! that verified tree, and every other input must hash to the pin they give it.

use std::fs;
use std::path::{Path, PathBuf};

use kettle_provenance::git;
use kettle_provenance::Sha256Digest;
use kettle_wire::recipe::{Dependency, DependencyError, RecipeError, RECIPE_FILE};
use kettle_wire::unpack::{open_archive, unpack, UnpackError, UnpackLimits};
use kettle_wire::{BuildRequest, PinSource, Recipe};
use thiserror::Error;

use super::fetch::{FetchedInput, FetchedSource};
use super::{Tools, WorkDir};
use crate::error::{InStep, Step, StepError};
use crate::refs::ResolvedRef;

/// Errors of the verify step.
#[derive(Debug, Error)]
pub enum VerifyError {
    /// The commit object does not hash to the requested id or is malformed.
    #[error(transparent)]
    Commit(git::GitError),
    /// The source archive could not be unpacked safely.
    #[error("the source archive was refused: {0}")]
    Unpack(#[from] UnpackError),
    /// The extracted tree could not be hashed.
    #[error("hashing the source tree: {0}")]
    TreeHash(git::GitError),
    /// The repository says the ref names another commit than the request.
    #[error("the repository says {git_ref} ({name}) is commit {advertised}, but the request asks for commit {requested}: the request's ref and commit disagree; ask for the commit the ref names, or name the ref that names it")]
    RefMismatch {
        /// The requested ref.
        git_ref: String,
        /// The full name it matched.
        name: String,
        /// What the repository advertises.
        advertised: String,
        /// What the request names.
        requested: String,
    },
    /// The source tree is not the commit's tree.
    #[error("the source archive's tree hashes to {computed}, but commit {commit} names tree {expected}: the archive does not hold that commit")]
    TreeMismatch {
        /// The commit.
        commit: String,
        /// The commit's tree.
        expected: String,
        /// The archive's tree.
        computed: String,
    },
    /// The archive holds entries the commit's tree does not (which git's tree hash skips).
    #[error("the source archive holds {} the commit's tree does not have: {}{}; /src must hold exactly the verified tree (a .git there would let the host configure every git command the build runs), so the archive is refused: serve `git archive <commit>` output", describe_extra(.entries), .entries.join(", "), if *.more { ", ..." } else { "" })]
    ExtraEntries {
        /// The extra entries (relative paths; directories end in '/'), at most [`MAX_EXTRA_SHOWN`].
        entries: Vec<String>,
        /// Whether there were more than those named.
        more: bool,
    },
    /// kettle.toml is missing or invalid.
    #[error(transparent)]
    Recipe(#[from] RecipeError),
    /// The recipe's lockfile (Cargo.lock) is missing or invalid.
    #[error(transparent)]
    Lockfile(#[from] DependencyError),
    /// An input's SHA-256 differs from its pin.
    #[error("{input}: sha256 is {computed} but {} pins {expected}", pinned_by.describe())]
    Digest {
        /// Which input.
        input: String,
        /// The pin.
        expected: Sha256Digest,
        /// What the bytes hash to.
        computed: Sha256Digest,
        /// Where the pin is written (Cargo.lock, kettle.toml).
        pinned_by: PinSource,
    },
    /// Reading an input failed.
    #[error("reading {path}: {source}")]
    Io {
        /// Path.
        path: String,
        /// Cause.
        #[source]
        source: std::io::Error,
    },
}

/// How many extra entries [`VerifyError::ExtraEntries`] names at most.
pub const MAX_EXTRA_SHOWN: usize = 10;

fn describe_extra(entries: &[String]) -> &'static str {
    if entries.len() == 1 {
        "an entry"
    } else {
        "entries"
    }
}

/// What the verified source asks for: its recipe and the dependencies its lockfile pins.
#[derive(Debug, Clone)]
pub struct Plan {
    /// kettle.toml.
    pub recipe: Recipe,
    /// The lockfile's pinned packages (empty for recipes without one).
    pub dependencies: Vec<Dependency>,
}

/// Checks the commit object against the requested id and the archive against the
/// commit's tree, then moves the verified tree to [`WorkDir::src`]; returns the tree id.
pub fn source(
    req: &BuildRequest,
    fetched: &FetchedSource,
    work: &WorkDir,
) -> Result<(String, String), StepError> {
    let fmt = req.object_format;
    let tree = git::verify_commit(&fetched.commit_raw, &req.commit, fmt)
        .map_err(VerifyError::Commit)
        .in_step_for(Step::Verify, "commit object")?;
    let extracted = work.src_archive();
    let reader = open_archive(&fetched.archive)
        .map_err(VerifyError::from)
        .in_step_for(Step::Verify, "source archive")?;
    unpack(reader, &extracted, &UnpackLimits::SOURCE)
        .map_err(VerifyError::from)
        .in_step_for(Step::Verify, "source archive")?;
    work.consumed(&fetched.archive);
    let tree_of = |dir: &Path| {
        git::tree_id(dir, fmt)
            .map_err(VerifyError::TreeHash)
            .in_step_for(Step::Verify, "source archive")
    };
    let computed = tree_of(&extracted)?;
    // Forge archive downloads wrap the tree in one top directory ("repo-<sha>/"):
    // accept that directory too, since matching the commit's tree is all that counts.
    let matched = if computed.as_str() == tree.as_str() {
        Some(extracted.clone())
    } else {
        match single_top_dir(&extracted) {
            Some(inner) if tree_of(&inner)?.as_str() == tree.as_str() => Some(inner),
            _ => None,
        }
    };
    let Some(matched) = matched else {
        return Err(StepError::new(
            Step::Verify,
            VerifyError::TreeMismatch {
                commit: req.commit.clone(),
                expected: tree.to_string(),
                computed: computed.to_string(),
            },
        )
        .with_input("source archive"));
    };
    // The tree hash does not see a top-level .git or empty directories, but the build
    // would: refuse them, so the build's /src is exactly the tree the commit names.
    let mut extra = Vec::new();
    let more = extra_entries(&matched, Path::new(""), &mut extra)
        .map_err(|source| VerifyError::Io {
            path: matched.display().to_string(),
            source,
        })
        .in_step_for(Step::Verify, "source archive")?;
    if !extra.is_empty() {
        return Err(StepError::new(
            Step::Verify,
            VerifyError::ExtraEntries {
                entries: extra,
                more,
            },
        )
        .with_input("source archive"));
    }
    fs::rename(&matched, work.src())
        .map_err(|source| VerifyError::Io {
            path: matched.display().to_string(),
            source,
        })
        .in_step_for(Step::Verify, "source archive")?;
    let summary = format!("commit {} -> tree {tree}", req.commit);
    Ok((tree.into_string(), summary))
}

/// Upstream mode: the commit the repository advertises for the ref must be the requested one.
pub fn resolved_ref(req: &BuildRequest, resolved: &ResolvedRef) -> Result<((), String), StepError> {
    if resolved.commit != req.commit {
        return Err(StepError::new(
            Step::Verify,
            VerifyError::RefMismatch {
                git_ref: req.git_ref.clone(),
                name: resolved.name.clone(),
                advertised: resolved.commit.clone(),
                requested: req.commit.clone(),
            },
        )
        .with_input("ref"));
    }
    Ok((
        (),
        format!("{} -> {} as requested", resolved.name, resolved.commit),
    ))
}

/// Reads the recipe (and its lockfile, when it has one) from the verified tree.
pub fn recipe(work: &WorkDir) -> Result<(Plan, String), StepError> {
    let src = work.src();
    let recipe = Recipe::load(&src)
        .map_err(VerifyError::from)
        .in_step_for(Step::Verify, RECIPE_FILE)?;
    let ecosystem = recipe.build_type.recipe().ecosystem();
    let dependencies = recipe
        .load_dependencies(&src)
        .map_err(VerifyError::from)
        .in_step_for(
            Step::Verify,
            ecosystem.map_or(RECIPE_FILE, |e| e.lockfile().file),
        )?;
    let packages = match ecosystem {
        Some(e) => format!("{} {}s", dependencies.len(), e.package_noun()),
        None => "no lockfile".to_string(),
    };
    let summary = format!(
        "{} with {packages}, outputs {:?}",
        recipe.build_type.name(),
        recipe.outputs
    );
    Ok((
        Plan {
            recipe,
            dependencies,
        },
        summary,
    ))
}

/// Hashes every fetched input and compares it with its pin.
pub fn inputs(fetched: &[FetchedInput], tools: &Tools) -> Result<((), String), StepError> {
    for input in fetched {
        check_digest(
            &input.pin.label(),
            &input.path,
            &input.pin.sha256,
            input.pin.source(),
        )?;
    }
    if let Tools::Host { .. } = tools {
        log::warn!("local mode with host tools: the toolchain and root filesystem are the host's and are NOT verified against kettle.toml");
    }
    Ok((
        (),
        "every dependency, toolchain and rootfs matches its pin".to_string(),
    ))
}

fn check_digest(
    label: &str,
    path: &Path,
    expected: &Sha256Digest,
    pinned_by: PinSource,
) -> Result<(), StepError> {
    let computed = Sha256Digest::of_file(path)
        .map_err(|source| VerifyError::Io {
            path: path.display().to_string(),
            source,
        })
        .in_step_for(Step::Verify, label)?;
    if computed != *expected {
        return Err(StepError::new(
            Step::Verify,
            VerifyError::Digest {
                input: label.to_string(),
                expected: *expected,
                computed,
                pinned_by,
            },
        )
        .with_input(label));
    }
    Ok(())
}

/// Collects (up to [`MAX_EXTRA_SHOWN`]) the entries under `dir` that a git tree cannot hold
/// or that [`git::tree_id`] leaves out: anything named `.git`, at any depth and of any type,
/// and directories with no file or symlink at any depth. Returns whether more were found
/// than collected. Symlinks are never followed.
fn extra_entries(dir: &Path, rel: &Path, found: &mut Vec<String>) -> std::io::Result<bool> {
    let mut more = false;
    // Returns true when the entry did not fit in `found`.
    let note = |found: &mut Vec<String>, p: String| {
        if found.len() < MAX_EXTRA_SHOWN {
            found.push(p);
            false
        } else {
            true
        }
    };
    let mut entries: Vec<_> = fs::read_dir(dir)?.collect::<Result<_, _>>()?;
    entries.sort_by_key(|e| e.file_name());
    for e in entries {
        let name = e.file_name();
        let path = rel.join(&name);
        let ft = e.file_type()?;
        if name == ".git" {
            let slash = if ft.is_dir() { "/" } else { "" };
            more |= note(found, format!("{}{slash}", path.display()));
        } else if ft.is_dir() {
            if !holds_a_file(&e.path())? {
                more |= note(found, format!("{}/ (empty directory)", path.display()));
            } else if extra_entries(&e.path(), &path, found)? {
                more = true;
            }
        }
    }
    Ok(more)
}

/// Whether any file or symlink (anything but a directory) is under `dir`.
fn holds_a_file(dir: &Path) -> std::io::Result<bool> {
    for e in fs::read_dir(dir)? {
        let e = e?;
        if !e.file_type()?.is_dir() || holds_a_file(&e.path())? {
            return Ok(true);
        }
    }
    Ok(false)
}

/// The only entry of `dir`, when it is a directory (not a symlink).
fn single_top_dir(dir: &Path) -> Option<PathBuf> {
    let entries: Vec<_> = fs::read_dir(dir).ok()?.filter_map(Result::ok).collect();
    match entries.as_slice() {
        [one] if one.file_type().ok()?.is_dir() => Some(one.path()),
        _ => None,
    }
}
