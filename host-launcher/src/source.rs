//! Resolving the source to build on the host: the commit id, the ref it was
//! reached by, the repository URL, its raw commit object and an archive of its
//! tree. The host is untrusted: the guest recomputes the tree hash from the
//! archive and checks it against the commit object, and the commit id against
//! the request. Everything here runs `git`.

use std::ffi::OsStr;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use kettle_wire::ObjectFormat;

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
    /// Repository URL recorded in the provenance (origin's URL, or file:// of the checkout).
    pub repository: String,
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

/// Resolves a local checkout: HEAD's commit, its symbolic ref (or `git_ref`).
pub fn resolve_checkout(
    path: &Path,
    git_ref: Option<&str>,
    allow_dirty: bool,
) -> Result<ResolvedSource, SourceError> {
    let shown = path.display().to_string();
    let top = git_line(Some(path), ["rev-parse", "--show-toplevel"])
        .map_err(|_| SourceError::NotASource(shown.clone()))?;
    let top = PathBuf::from(top);
    let git_dir = PathBuf::from(git_line(Some(&top), ["rev-parse", "--absolute-git-dir"])?);
    let (git_ref, commit) = match git_ref {
        Some(r) => {
            let full = full_ref_name(&top, r)?;
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
            if !allow_dirty
                && !git(
                    Some(&top),
                    ["status", "--porcelain", "--untracked-files=no"],
                )?
                .is_empty()
            {
                return Err(SourceError::Dirty(shown));
            }
            (
                sym,
                git_line(Some(&top), ["rev-parse", "--verify", "HEAD^{commit}"])?,
            )
        }
    };
    let repository = match git_line(Some(&top), ["remote", "get-url", "origin"]) {
        Ok(url) if !url.is_empty() => url,
        _ => format!(
            "file://{}",
            top.canonicalize()
                .map_err(|source| SourceError::Io {
                    path: top.clone(),
                    source
                })?
                .display()
        ),
    };
    let object_format = object_format(&top)?;
    Ok(ResolvedSource {
        repository,
        git_ref,
        commit,
        object_format,
        git_dir,
    })
}

/// Fetches `git_ref` of the repository at `url` into a bare repository under `work` and resolves it.
pub fn resolve_url(url: &str, git_ref: &str, work: &Path) -> Result<ResolvedSource, SourceError> {
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
    let object_format = object_format(&bare)?;
    Ok(ResolvedSource {
        repository: url.to_string(),
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
    /// The raw commit object, as `git cat-file commit` prints it (what the guest hashes).
    pub fn commit_object(&self) -> Result<Vec<u8>, SourceError> {
        git(
            None,
            [
                OsStr::new("--git-dir"),
                self.git_dir.as_os_str(),
                OsStr::new("cat-file"),
                OsStr::new("commit"),
                OsStr::new(&self.commit),
            ],
        )
    }

    /// A tar of the commit's tree, like `git archive` (written to `dest`).
    pub fn write_archive(&self, dest: &Path) -> Result<(), SourceError> {
        git(
            None,
            [
                OsStr::new("--git-dir"),
                self.git_dir.as_os_str(),
                OsStr::new("archive"),
                OsStr::new("--format=tar"),
                OsStr::new("-o"),
                dest.as_os_str(),
                OsStr::new(&self.commit),
            ],
        )
        .map(drop)
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
        git(
            None,
            [
                OsStr::new("--git-dir"),
                self.git_dir.as_os_str(),
                OsStr::new("cat-file"),
                OsStr::new("blob"),
                OsStr::new(&spec),
            ],
        )
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
            kettle_provenance::git::commit_id(&raw, kettle_provenance::git::ObjectFormat::Sha1);
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
        let s = resolve_url(&url, "main", work.path()).unwrap();
        assert_eq!(s.commit, local.commit);
        assert_eq!(s.git_ref, "refs/heads/main");
        assert_eq!(s.repository, url);
        assert_eq!(s.commit_object().unwrap(), local.commit_object().unwrap());
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
