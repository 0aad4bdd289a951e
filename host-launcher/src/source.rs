//! Resolving the source to build on the host: the commit id, the ref it was
//! reached by, the repository URL, its raw commit object and an archive of its
//! tree. The host is untrusted: the guest recomputes the tree hash from the
//! archive and checks it against the commit object, and the commit id against
//! the request. Everything here runs `git`.

use std::ffi::OsStr;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use kettle_wire::source_url::{self, SourceUrlError};
use kettle_wire::ObjectFormat;

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

/// Runs git with `args` in `dir`, returning stdout.
fn git<I, S>(dir: Option<&Path>, args: I) -> Result<Vec<u8>, SourceError>
where
    I: IntoIterator<Item = S>,
    S: AsRef<OsStr>,
{
    let args: Vec<_> = args
        .into_iter()
        .map(|a| a.as_ref().to_os_string())
        .collect();
    let mut cmd = Command::new("git");
    if let Some(d) = dir {
        cmd.arg("-C").arg(d);
    }
    // Never prompt for credentials, never read the user's pager or editor.
    cmd.args(&args)
        .env("GIT_TERMINAL_PROMPT", "0")
        .stdin(Stdio::null());
    let out = cmd.output().map_err(SourceError::NoGit)?;
    if !out.status.success() {
        return Err(SourceError::Git {
            args: args
                .iter()
                .map(|a| a.to_string_lossy())
                .collect::<Vec<_>>()
                .join(" "),
            stderr: String::from_utf8_lossy(&out.stderr).trim().to_string(),
        });
    }
    Ok(out.stdout)
}

fn git_line<I, S>(dir: Option<&Path>, args: I) -> Result<String, SourceError>
where
    I: IntoIterator<Item = S>,
    S: AsRef<OsStr>,
{
    Ok(String::from_utf8_lossy(&git(dir, args)?).trim().to_string())
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

/// The normalized full ref `value` from `from`.
fn full_ref(value: &str, from: RefOrigin) -> Result<String, SourceError> {
    source_url::normalize_ref(value).map_err(|source| SourceError::Ref {
        value: value.into(),
        from,
        source,
    })
}

/// Resolves a local checkout: HEAD's commit, its symbolic ref (or `git_ref`); the
/// repository is origin's URL, else the checkout's path.
pub fn resolve_checkout(
    path: &Path,
    git_ref: Option<&str>,
    allow_dirty: bool,
) -> Result<ResolvedSource, SourceError> {
    resolve_checkout_as(path, git_ref, None, allow_dirty)
}

/// [`resolve_checkout`], recording `repository` (--repo) when given instead of origin's URL.
pub fn resolve_checkout_as(
    path: &Path,
    git_ref: Option<&str>,
    repository: Option<&str>,
    allow_dirty: bool,
) -> Result<ResolvedSource, SourceError> {
    let shown = path.display().to_string();
    let top = git_line(Some(path), ["rev-parse", "--show-toplevel"])
        .map_err(|_| SourceError::NotASource(shown.clone()))?;
    let top = PathBuf::from(top);
    let git_dir = PathBuf::from(git_line(Some(&top), ["rev-parse", "--absolute-git-dir"])?);
    let (git_ref, commit) = match git_ref {
        Some(r) => {
            // git knows whether a short name is a branch or a tag here; then the one rule.
            let full = full_ref(&full_ref_name(&top, r)?, RefOrigin::Flag)?;
            let commit = git_line(
                Some(&top),
                ["rev-parse", "--verify", &format!("{full}^{{commit}}")],
            )?;
            (full, commit)
        }
        None => {
            let sym = git(Some(&top), ["symbolic-ref", "-q", "HEAD"])
                .map_err(|_| SourceError::DetachedHead(shown.clone()))?;
            let sym = String::from_utf8_lossy(&sym).trim().to_string();
            if git(Some(&top), ["rev-parse", "--verify", "-q", "HEAD^{commit}"]).is_err() {
                return Err(SourceError::NoCommit(shown));
            }
            let status = git(
                Some(&top),
                ["status", "--porcelain", "--untracked-files=no"],
            )?;
            // The recipe decides the build: its own changes get their own message, even with --allow-dirty.
            if String::from_utf8_lossy(&status)
                .lines()
                .any(|l| l.get(3..) == Some(kettle_wire::recipe::RECIPE_FILE))
            {
                return Err(SourceError::RecipeUncommitted(shown));
            }
            if !allow_dirty && !status.is_empty() {
                return Err(SourceError::Dirty(shown));
            }
            (
                full_ref(&sym, RefOrigin::Head)?,
                git_line(Some(&top), ["rev-parse", "--verify", "HEAD^{commit}"])?,
            )
        }
    };
    let (repository, repository_from) = match repository {
        Some(url) => (repository_url(url, RepoOrigin::Flag)?, RepoOrigin::Flag),
        None => match git_line(Some(&top), ["remote", "get-url", "origin"]) {
            Ok(url) if !url.is_empty() => (
                repository_url(&url, RepoOrigin::OriginRemote)?,
                RepoOrigin::OriginRemote,
            ),
            _ => {
                let path = top.canonicalize().map_err(|source| SourceError::Io {
                    path: top.clone(),
                    source,
                })?;
                let url = format!("file://{}", path.display());
                (
                    repository_url(&url, RepoOrigin::Default)?,
                    RepoOrigin::Default,
                )
            }
        },
    };
    let object_format = object_format(&top)?;
    Ok(ResolvedSource {
        repository,
        repository_from,
        worktree: Some(top),
        git_ref,
        commit,
        object_format,
        git_dir,
    })
}

/// Fetches `git_ref` of the repository at `url` into a bare repository under `work` and
/// resolves it; the repository recorded is `repository` (--repo), else `url`, normalized.
pub fn resolve_url(
    url: &str,
    git_ref: &str,
    repository: Option<&str>,
    work: &Path,
) -> Result<ResolvedSource, SourceError> {
    let (repository, repository_from) = match repository {
        Some(r) => (repository_url(r, RepoOrigin::Flag)?, RepoOrigin::Flag),
        None => (
            repository_url(url, RepoOrigin::SourceArgument)?,
            RepoOrigin::SourceArgument,
        ),
    };
    let bare = work.join("source.git");
    git(
        None,
        [
            OsStr::new("init"),
            OsStr::new("--bare"),
            OsStr::new("-q"),
            bare.as_os_str(),
        ],
    )?;
    git(
        Some(&bare),
        [
            "fetch",
            "-q",
            "--depth",
            "1",
            url,
            &format!("{git_ref}:refs/kettle/build"),
        ],
    )?;
    let commit = git_line(
        Some(&bare),
        ["rev-parse", "--verify", "refs/kettle/build^{commit}"],
    )?;
    let full = if git_ref.starts_with("refs/") {
        git_ref.to_string()
    } else {
        // Ask the remote which full ref the short name is.
        let listing =
            String::from_utf8_lossy(&git(Some(&bare), ["ls-remote", url, git_ref])?).into_owned();
        listing
            .lines()
            .filter_map(|l| l.split_whitespace().nth(1))
            .find(|r| r.ends_with(&format!("/{git_ref}")))
            .map(str::to_string)
            .unwrap_or_else(|| git_ref.to_string())
    };
    let full = full_ref(&full, RefOrigin::Flag)?;
    let object_format = object_format(&bare)?;
    Ok(ResolvedSource {
        repository,
        repository_from,
        worktree: None,
        git_ref: full,
        commit,
        object_format,
        git_dir: bare,
    })
}

/// `refs/heads/x` or `refs/tags/x` for a short name; full names pass through.
/// What an auditor's own clone at `dir` says the built commit must be: the tip of
/// `git_ref`, or (with `reachable`) any commit reachable from it.
pub fn pin_from_clone(
    dir: &Path,
    git_ref: &str,
    reachable: bool,
) -> Result<kettle_verify::SourcePin, SourceError> {
    let spec = format!("{git_ref}^{{commit}}");
    let tip = git_line(
        Some(dir),
        ["rev-parse", "--verify", "--quiet", spec.as_str()],
    )?;
    if !reachable {
        return Ok(kettle_verify::SourcePin::Commit(tip));
    }
    let list = git(Some(dir), ["rev-list", tip.as_str()])?;
    let commits = String::from_utf8_lossy(&list)
        .lines()
        .map(str::to_string)
        .collect();
    Ok(kettle_verify::SourcePin::ReachableFrom {
        tip: format!("{git_ref} ({tip})"),
        commits,
    })
}

/// The full name of ref `r` in the clone at `dir`: git decides whether a short name is a
/// branch or a tag there; a name it does not know gets the one text rule
/// ([`kettle_wire::source_url::normalize_ref`]).
pub fn full_ref_in(dir: &Path, r: &str) -> Result<String, SourceError> {
    match full_ref_name(dir, r) {
        Ok(full) => full_ref(&full, RefOrigin::Flag),
        Err(_) => full_ref(r, RefOrigin::Flag),
    }
}

fn full_ref_name(dir: &Path, r: &str) -> Result<String, SourceError> {
    if r.starts_with("refs/") {
        return Ok(r.to_string());
    }
    let name = git_line(Some(dir), ["rev-parse", "--symbolic-full-name", r])?;
    if name.starts_with("refs/") {
        Ok(name)
    } else {
        Err(SourceError::Git {
            args: format!("rev-parse --symbolic-full-name {r}"),
            stderr: format!("{r} is not a branch or tag"),
        })
    }
}

fn object_format(dir: &Path) -> Result<ObjectFormat, SourceError> {
    match git_line(Some(dir), ["rev-parse", "--show-object-format"])?.as_str() {
        "" | "sha1" => Ok(ObjectFormat::Sha1),
        "sha256" => Ok(ObjectFormat::Sha256),
        other => Err(SourceError::Git {
            args: "rev-parse --show-object-format".into(),
            stderr: format!("object format {other:?} is neither sha1 nor sha256"),
        }),
    }
}

impl ResolvedSource {
    /// Runs git on this source's repository (`--git-dir`) with `args`.
    fn git<'a>(
        &'a self,
        args: impl IntoIterator<Item = &'a OsStr>,
    ) -> Result<Vec<u8>, SourceError> {
        git(
            None,
            [OsStr::new("--git-dir"), self.git_dir.as_os_str()]
                .into_iter()
                .chain(args),
        )
    }

    /// The raw commit object, as `git cat-file commit` prints it (what the guest hashes).
    pub fn commit_object(&self) -> Result<Vec<u8>, SourceError> {
        self.git([
            OsStr::new("cat-file"),
            OsStr::new("commit"),
            OsStr::new(&self.commit),
        ])
    }

    /// A tar of the commit's tree, like `git archive` (written to `dest`).
    pub fn write_archive(&self, dest: &Path) -> Result<(), SourceError> {
        self.git([
            OsStr::new("archive"),
            OsStr::new("--format=tar"),
            OsStr::new("-o"),
            dest.as_os_str(),
            OsStr::new(&self.commit),
        ])
        .map(drop)
    }

    /// The files of the commit's tree under directory `dir` (recursively), relative to the root.
    pub fn list_files(&self, dir: &str) -> Result<Vec<String>, SourceError> {
        let out = self.git([
            OsStr::new("ls-tree"),
            OsStr::new("-r"),
            OsStr::new("--name-only"),
            OsStr::new(&self.commit),
            OsStr::new("--"),
            OsStr::new(dir),
        ])?;
        Ok(String::from_utf8_lossy(&out)
            .lines()
            .map(str::to_string)
            .collect())
    }

    /// A file of the commit's tree, or None if the commit has no such file.
    pub fn read_file(&self, path: &str) -> Result<Option<Vec<u8>>, SourceError> {
        let spec = format!("{}:{path}", self.commit);
        let exists = Command::new("git")
            .arg("--git-dir")
            .arg(&self.git_dir)
            .args(["cat-file", "-e", &spec])
            .stderr(Stdio::null())
            .status()
            .map_err(SourceError::NoGit)?
            .success();
        if !exists {
            return Ok(None);
        }
        self.git([
            OsStr::new("cat-file"),
            OsStr::new("blob"),
            OsStr::new(&spec),
        ])
        .map(Some)
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use std::fs;

    /// A fresh repository with one commit on `main` holding `files`, tagged `v1`.
    pub(crate) fn repo_with(files: &[(&str, &[u8])]) -> kettle_testkit::GitRepo {
        let repo = kettle_testkit::GitRepo::new();
        for (name, content) in files {
            repo.write(name, content);
        }
        repo.commit_all("init");
        repo.git(&["tag", "v1"]);
        repo
    }

    #[test]
    fn resolves_a_checkout_head_and_its_ref() {
        let repo = repo_with(&[("kettle.toml", b"x"), ("src/main.rs", b"fn main() {}\n")]);
        let s = resolve_checkout(repo.path(), None, false).unwrap();
        assert_eq!(s.git_ref, "refs/heads/main");
        assert_eq!(s.object_format, ObjectFormat::Sha1);
        assert_eq!(s.commit.len(), 40);
        assert!(s.repository.starts_with("file:///"), "{}", s.repository);
        let raw = s.commit_object().unwrap();
        assert!(
            raw.starts_with(b"tree "),
            "{}",
            String::from_utf8_lossy(&raw)
        );
        // The commit id is the git object hash of the raw commit object.
        let id =
            kettle_provenance::git::commit_id(&raw, kettle_provenance::git::ObjectFormat::Sha1)
                .unwrap();
        assert_eq!(id, s.commit);
        assert_eq!(
            s.read_file("kettle.toml").unwrap().as_deref(),
            Some(&b"x"[..])
        );
        assert_eq!(s.read_file("Cargo.lock").unwrap(), None);
        let tar = repo.path().join("../src.tar");
        s.write_archive(&tar).unwrap();
        let bytes = fs::read(&tar).unwrap();
        fs::remove_file(&tar).unwrap();
        assert!(bytes.len() % 512 == 0 && bytes.windows(11).any(|w| w == b"src/main.rs"));
    }

    #[test]
    fn explicit_ref_and_dirty_tree() {
        let repo = repo_with(&[("a", b"1")]);
        let s = resolve_checkout(repo.path(), Some("v1"), false).unwrap();
        assert_eq!(s.git_ref, "refs/tags/v1");
        fs::write(repo.path().join("a"), b"2").unwrap();
        let err = resolve_checkout(repo.path(), None, false).unwrap_err();
        assert!(matches!(err, SourceError::Dirty(_)), "{err}");
        assert!(resolve_checkout(repo.path(), None, true).is_ok());
        let err = resolve_checkout(repo.path(), Some("nope"), false).unwrap_err();
        assert!(err.to_string().contains("nope"), "{err}");
    }

    #[test]
    fn resolves_a_url_with_a_ref() {
        let repo = repo_with(&[("a", b"1")]);
        let local = resolve_checkout(repo.path(), None, false).unwrap();
        let work = tempfile::tempdir().unwrap();
        let url = format!("file://{}", repo.path().display());
        let s = resolve_url(&url, "main", None, work.path()).unwrap();
        assert_eq!(s.commit, local.commit);
        assert_eq!(s.git_ref, "refs/heads/main");
        assert_eq!(s.repository, url);
        assert_eq!(s.commit_object().unwrap(), local.commit_object().unwrap());
    }

    #[test]
    fn a_repository_without_commits_says_commit_first() {
        let repo = kettle_testkit::GitRepo::new();
        repo.write("a", b"1");
        let err = resolve_checkout(repo.path(), None, false).unwrap_err();
        assert!(matches!(err, SourceError::NoCommit(_)), "{err}");
        assert!(err.to_string().contains("git commit"), "{err}");
    }

    #[test]
    fn not_a_checkout_says_what_to_pass() {
        let dir = tempfile::tempdir().unwrap();
        let err = resolve_checkout(dir.path(), None, false).unwrap_err();
        assert!(err.to_string().contains("not a git checkout"), "{err}");
        assert!(is_url("https://github.com/o/r"));
        assert!(!is_url("."));
    }
}
