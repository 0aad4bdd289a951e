//! Resolving the source to build on the host: the commit id, the ref it was
//! reached by, the repository URL, its raw commit object and an archive of its
//! tree. The host is untrusted: the guest recomputes the tree hash from the
//! archive and checks it against the commit object, and the commit id against
//! the request. Everything here runs `git`.
//!
//! The archive is written from the commit's tree objects (`git ls-tree` and
//! `git cat-file --batch`), not with `git archive`: that applies
//! `.gitattributes` (`export-ignore` leaves files out, `export-subst` rewrites
//! them, and `$GIT_DIR/info/attributes` counts too), so the guest would receive
//! another tree than the commit's and refuse it.

pub(crate) mod git;
mod resolve;
mod tree;

use std::path::{Path, PathBuf};

use kettle_wire::source_url::{self, SourceUrlError};
use kettle_wire::ObjectFormat;

pub use resolve::{
    full_ref_in, pin_from_clone, resolve_checkout, resolve_checkout_as, resolve_url,
};

/// Where the repository URL recorded for a build came from (said in every error about it).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RepoOrigin {
    /// `kettle build --repo URL`.
    Flag,
    /// The checkout's `origin` remote.
    OriginRemote,
    /// The SOURCE argument, a repository URL.
    SourceArgument,
    /// No origin remote and no --repo: the checkout's own `file://` path.
    Default,
}

impl std::fmt::Display for RepoOrigin {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            RepoOrigin::Flag => "the --repo flag",
            RepoOrigin::OriginRemote => "the checkout's origin remote",
            RepoOrigin::SourceArgument => "the SOURCE argument",
            RepoOrigin::Default => "the default (no origin remote: the checkout's file:// path)",
        })
    }
}

/// Where the ref recorded for a build came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RefOrigin {
    /// `kettle build --ref REF`.
    Flag,
    /// The branch the checkout's HEAD is on.
    Head,
}

impl std::fmt::Display for RefOrigin {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            RefOrigin::Flag => "the --ref flag",
            RefOrigin::Head => "the checkout's HEAD",
        })
    }
}

/// Why the source could not be resolved.
#[derive(Debug, thiserror::Error)]
pub enum SourceError {
    /// git could not be started.
    #[error("cannot run git: {0} (install git)")]
    NoGit(#[source] std::io::Error),
    /// A git command failed.
    #[error("`git {args}` failed: {stderr}")]
    Git {
        /// The arguments.
        args: String,
        /// What git said.
        stderr: String,
    },
    /// A local SOURCE that is not there.
    #[error("{0} does not exist (pass a local git checkout, or a repository URL with --ref)")]
    Missing(String),
    /// The source is neither a checkout nor a URL.
    #[error("{0}: not a git checkout and not a repository URL (pass a local checkout, or a URL with --ref)")]
    NotASource(String),
    /// A URL without --ref.
    #[error(
        "{0} is a repository URL: pass --ref (a branch, tag or full ref) to say what to build"
    )]
    UrlNeedsRef(String),
    /// A detached HEAD without --ref.
    #[error("{0} has a detached HEAD: pass --ref to name the ref being built (recorded in the provenance)")]
    DetachedHead(String),
    /// The checkout has uncommitted changes (they would not be built).
    #[error("{0} has uncommitted changes; only committed content is built: commit or stash them first (or pass --allow-dirty)")]
    Dirty(String),
    /// A repository without a single commit (a fresh `git init` or `cargo new`).
    #[error("{0} has no commit yet, and only committed content is built: commit the project first (`git add -A && git commit`)")]
    NoCommit(String),
    /// kettle.toml itself has uncommitted changes: the build would use the committed one.
    #[error("{0}: kettle.toml has uncommitted changes, and the build reads the committed recipe: commit it (`git add kettle.toml && git commit`)")]
    RecipeUncommitted(String),
    /// The repository URL to record cannot be normalized.
    #[error(
        "repository URL {value:?} from {from}: {source} (state the repository with --repo URL)"
    )]
    Repository {
        /// The URL as given.
        value: String,
        /// Where it came from.
        from: RepoOrigin,
        /// What is wrong with it.
        #[source]
        source: SourceUrlError,
    },
    /// The ref to record cannot be normalized.
    #[error("ref {value:?} from {from}: {source}")]
    Ref {
        /// The ref as given or resolved.
        value: String,
        /// Where it came from.
        from: RefOrigin,
        /// What is wrong with it.
        #[source]
        source: SourceUrlError,
    },
    /// The commit's tree holds a submodule (a gitlink), which no archive of the tree can carry.
    #[error("commit {commit} has a submodule at {path:?}: the guest builds exactly the commit's tree and cannot fetch another repository's commit; vendor the submodule's files into the repository instead")]
    Submodule {
        /// The commit.
        commit: String,
        /// The submodule's path in the tree.
        path: String,
    },
    /// `git ls-tree` or `git cat-file --batch` said something this reader does not expect.
    #[error("reading commit {commit}'s tree from git: {message}")]
    TreeObjects {
        /// The commit.
        commit: String,
        /// What was wrong.
        message: String,
    },
    /// The file system failed.
    #[error("{path}: {source}")]
    Io {
        /// The path involved.
        path: PathBuf,
        /// The error.
        #[source]
        source: std::io::Error,
    },
}

/// A source resolved to one commit.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ResolvedSource {
    /// Repository URL recorded in the provenance, normalized by
    /// [`kettle_wire::source_url::normalize_repository`] (--repo, origin's URL, or file:// of the checkout).
    pub repository: String,
    /// Where [`ResolvedSource::repository`] came from.
    pub repository_from: RepoOrigin,
    /// The checkout's top directory (None for a repository URL).
    pub worktree: Option<PathBuf>,
    /// The ref that was resolved (e.g. `refs/heads/main`).
    pub git_ref: String,
    /// The commit id (lowercase hex).
    pub commit: String,
    /// The repository's object format.
    pub object_format: ObjectFormat,
    /// The git directory to read objects from.
    pub git_dir: PathBuf,
}

/// True when `source` looks like a URL rather than a path.
pub fn is_url(source: &str) -> bool {
    ["https://", "http://", "ssh://", "git://", "file://"]
        .iter()
        .any(|p| source.starts_with(p))
        || (source.contains('@') && source.contains(':') && !Path::new(source).exists())
}

/// The normalized repository URL `value` from `from`.
pub fn repository_url(value: &str, from: RepoOrigin) -> Result<String, SourceError> {
    source_url::normalize_repository(value).map_err(|source| SourceError::Repository {
        value: value.into(),
        from,
        source,
    })
}

#[cfg(test)]
pub(crate) mod tests;
