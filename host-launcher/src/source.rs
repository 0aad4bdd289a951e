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

use std::ffi::OsStr;
use std::io::{BufRead, BufReader, BufWriter, Read, Write};
use std::os::unix::ffi::OsStrExt;
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

    /// A tar of exactly the commit's tree (written to `dest`): every directory, file and
    /// symlink of its tree objects, with git's modes (0755 or 0644, symlinks), byte for
    /// byte as stored, so the guest's tree hash of it is the commit's tree id. No
    /// `.gitattributes` applies (see the module docs); a submodule is refused.
    pub fn write_archive(&self, dest: &Path) -> Result<(), SourceError> {
        let listing = self.git([
            OsStr::new("ls-tree"),
            OsStr::new("-r"),
            OsStr::new("-t"),
            OsStr::new("-z"),
            OsStr::new("--full-tree"),
            OsStr::new(&self.commit),
        ])?;
        let entries = parse_ls_tree(&listing).map_err(|message| self.tree_err(message))?;
        if let Some(sub) = entries.iter().find(|e| e.kind == TreeEntryKind::Submodule) {
            return Err(SourceError::Submodule {
                commit: self.commit.clone(),
                path: String::from_utf8_lossy(&sub.path).into_owned(),
            });
        }
        let mtime = commit_time(&self.commit_object()?);
        let io = |source| SourceError::Io {
            path: dest.to_path_buf(),
            source,
        };
        let mut tar = tar::Builder::new(BufWriter::new(std::fs::File::create(dest).map_err(io)?));
        let mut objects = CatFile::start(&self.git_dir)?;
        for e in &entries {
            let path = Path::new(OsStr::from_bytes(&e.path));
            let mut header = tar::Header::new_gnu();
            header.set_mtime(mtime);
            header.set_uid(0);
            header.set_gid(0);
            match e.kind {
                TreeEntryKind::Dir => {
                    header.set_entry_type(tar::EntryType::Directory);
                    header.set_mode(0o755);
                    header.set_size(0);
                    tar.append_data(&mut header, path, std::io::empty())
                        .map_err(io)?;
                }
                TreeEntryKind::Symlink => {
                    let target = objects
                        .blob(&e.oid, |size, body| {
                            // A capacity hint only: read_to_end takes what there is.
                            let mut t = Vec::with_capacity(usize::try_from(size).unwrap_or(0));
                            body.read_to_end(&mut t).map(|_| t)
                        })
                        .map_err(|m| self.tree_err(m))?;
                    header.set_entry_type(tar::EntryType::Symlink);
                    header.set_mode(0o777);
                    header.set_size(0);
                    tar.append_link(&mut header, path, Path::new(OsStr::from_bytes(&target)))
                        .map_err(io)?;
                }
                TreeEntryKind::File { executable } => {
                    header.set_entry_type(tar::EntryType::Regular);
                    header.set_mode(if executable { 0o755 } else { 0o644 });
                    objects
                        .blob(&e.oid, |size, body| {
                            header.set_size(size);
                            tar.append_data(&mut header, path, body)
                        })
                        .map_err(|m| self.tree_err(m))?;
                }
                TreeEntryKind::Submodule => unreachable!("refused above"),
            }
        }
        objects.finish().map_err(|m| self.tree_err(m))?;
        tar.into_inner()
            .and_then(|w| w.into_inner().map_err(|e| e.into_error()))
            .and_then(|f| f.sync_all())
            .map_err(io)
    }

    fn tree_err(&self, message: String) -> SourceError {
        SourceError::TreeObjects {
            commit: self.commit.clone(),
            message,
        }
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

/// What a `git ls-tree` entry is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum TreeEntryKind {
    /// A tree (040000).
    Dir,
    /// A blob, 100644 or 100755.
    File { executable: bool },
    /// A blob holding a symlink's target (120000).
    Symlink,
    /// A gitlink (160000): another repository's commit.
    Submodule,
}

/// One entry of `git ls-tree -r -t -z --full-tree`.
#[derive(Debug)]
struct LsTreeEntry {
    kind: TreeEntryKind,
    oid: String,
    /// The path from the tree's root, raw bytes (git paths need not be UTF-8).
    path: Vec<u8>,
}

/// Parses `git ls-tree -z` output: `<mode> SP <type> SP <oid> TAB <path> NUL` per entry.
fn parse_ls_tree(out: &[u8]) -> Result<Vec<LsTreeEntry>, String> {
    let mut entries = Vec::new();
    for record in out.split(|&b| b == 0).filter(|r| !r.is_empty()) {
        let bad = || {
            format!(
                "unexpected ls-tree entry {:?}",
                String::from_utf8_lossy(record)
            )
        };
        let tab = record.iter().position(|&b| b == b'\t').ok_or_else(bad)?;
        let (meta, path) = (&record[..tab], &record[tab + 1..]);
        let meta = std::str::from_utf8(meta).map_err(|_| bad())?;
        let [mode, kind, oid] = meta.split(' ').collect::<Vec<_>>()[..] else {
            return Err(bad());
        };
        let kind = match (mode, kind) {
            ("040000", "tree") => TreeEntryKind::Dir,
            ("100644", "blob") => TreeEntryKind::File { executable: false },
            ("100755", "blob") => TreeEntryKind::File { executable: true },
            ("120000", "blob") => TreeEntryKind::Symlink,
            ("160000", "commit") => TreeEntryKind::Submodule,
            _ => return Err(format!("{} (mode {mode}, type {kind})", bad())),
        };
        if oid.is_empty() || !oid.bytes().all(|b| b.is_ascii_hexdigit()) || path.is_empty() {
            return Err(bad());
        }
        entries.push(LsTreeEntry {
            kind,
            oid: oid.to_string(),
            path: path.to_vec(),
        });
    }
    Ok(entries)
}

/// The committer time of a raw commit object (the archive's mtimes, as `git archive`
/// uses), or 0 when it has none.
fn commit_time(raw: &[u8]) -> u64 {
    let header = raw.split(|&b| b == b'\n').take_while(|l| !l.is_empty());
    header
        .filter_map(|l| l.strip_prefix(b"committer "))
        .filter_map(|l| std::str::from_utf8(l).ok())
        .find_map(|l| l.rsplit(' ').nth(1).and_then(|t| t.parse().ok()))
        .unwrap_or(0)
}

/// `git cat-file --batch`, asked one object at a time (it answers each before reading on).
struct CatFile {
    child: std::process::Child,
    stdin: std::process::ChildStdin,
    stdout: BufReader<std::process::ChildStdout>,
}

impl CatFile {
    fn start(git_dir: &Path) -> Result<CatFile, SourceError> {
        let mut child = Command::new("git")
            .arg("--git-dir")
            .arg(git_dir)
            .args(["cat-file", "--batch"])
            .env("GIT_TERMINAL_PROMPT", "0")
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .map_err(SourceError::NoGit)?;
        let (stdin, stdout) = (child.stdin.take(), child.stdout.take());
        match (stdin, stdout) {
            (Some(stdin), Some(stdout)) => Ok(CatFile {
                child,
                stdin,
                stdout: BufReader::new(stdout),
            }),
            _ => Err(SourceError::NoGit(std::io::Error::other(
                "git cat-file --batch without pipes",
            ))),
        }
    }

    /// Asks for blob `oid` and hands `with` its size and exactly its bytes (raw: no filter,
    /// no attribute applies in cat-file's batch output).
    fn blob<T>(
        &mut self,
        oid: &str,
        with: impl FnOnce(u64, &mut dyn Read) -> std::io::Result<T>,
    ) -> Result<T, String> {
        let io = |e: std::io::Error| format!("git cat-file --batch, object {oid}: {e}");
        writeln!(self.stdin, "{oid}").map_err(io)?;
        self.stdin.flush().map_err(io)?;
        let mut line = String::new();
        self.stdout.read_line(&mut line).map_err(io)?;
        let header = line.trim_end_matches('\n');
        let size = match header.split(' ').collect::<Vec<_>>()[..] {
            [id, "blob", size] if id == oid => size.parse::<u64>().ok(),
            _ => None,
        }
        .ok_or_else(|| format!("git cat-file --batch answered {header:?} for blob {oid}"))?;
        let mut body = (&mut self.stdout).take(size);
        let value = with(size, &mut body).map_err(io)?;
        if body.limit() != 0 {
            return Err(format!(
                "blob {oid}: {} of its {size} bytes were not read",
                body.limit()
            ));
        }
        let mut newline = [0u8; 1];
        self.stdout.read_exact(&mut newline).map_err(io)?;
        if newline != *b"\n" {
            return Err(format!("git cat-file --batch: no newline after blob {oid}"));
        }
        Ok(value)
    }

    /// Ends the batch (EOF on its stdin) and checks git exited cleanly.
    fn finish(self) -> Result<(), String> {
        let CatFile {
            mut child, stdin, ..
        } = self;
        drop(stdin);
        let status = child
            .wait()
            .map_err(|e| format!("git cat-file --batch: {e}"))?;
        if !status.success() {
            return Err(format!("git cat-file --batch ended with {status}"));
        }
        Ok(())
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

    /// What the guest does with a source archive in cached mode: unpack it with the guest's
    /// unpacker and limits, hash the tree, and compare it with the tree the verified commit
    /// object names. Returns the unpacked directory's (temp dir, computed, expected) tree ids.
    fn guest_tree_check(s: &ResolvedSource) -> (tempfile::TempDir, String, String) {
        use kettle_provenance::git;
        use kettle_wire::unpack::{open_archive, unpack, UnpackLimits};
        let tmp = tempfile::tempdir().unwrap();
        let tar = tmp.path().join("source.tar");
        s.write_archive(&tar).unwrap();
        let tree = tmp.path().join("tree");
        unpack(open_archive(&tar).unwrap(), &tree, &UnpackLimits::SOURCE).unwrap();
        let expected = git::verify_commit(&s.commit_object().unwrap(), &s.commit, s.object_format)
            .unwrap()
            .into_string();
        let computed = git::tree_id(&tree, s.object_format).unwrap().into_string();
        (tmp, computed, expected)
    }

    #[test]
    fn the_archive_is_the_commits_tree_whatever_gitattributes_say() {
        // export-ignore drops a file from `git archive`, export-subst rewrites one, and
        // $GIT_DIR/info/attributes (the host's own) counts too: the guest would receive
        // another tree than the commit's and refuse it.
        let repo = repo_with(&[
            (
                ".gitattributes",
                b"secret.txt export-ignore\nversion.txt export-subst\ntests/ export-ignore\n",
            ),
            ("secret.txt", b"left out by git archive\n"),
            ("version.txt", b"commit $Format:%H$\n"),
            ("tests/case.rs", b"#[test] fn t() {}\n"),
            ("kettle.toml", b"x"),
            (
                &format!("{}/long-name.rs", "deep/".repeat(30)),
                b"a path over 100 bytes\n",
            ),
        ]);
        repo.write_executable("run.sh", b"#!/bin/sh\necho hi\n");
        std::os::unix::fs::symlink("version.txt", repo.path().join("link")).unwrap();
        repo.commit_all("more");
        fs::write(
            repo.path().join(".git/info/attributes"),
            "kettle.toml export-ignore\n",
        )
        .unwrap();
        let s = resolve_checkout(repo.path(), None, false).unwrap();
        let (tmp, computed, expected) = guest_tree_check(&s);
        assert_eq!(computed, expected, "the archive is not the commit's tree");
        let tree = tmp.path().join("tree");
        let read = |p: &str| fs::read(tree.join(p)).unwrap();
        assert_eq!(read("version.txt"), b"commit $Format:%H$\n");
        assert_eq!(read("secret.txt"), b"left out by git archive\n");
        assert_eq!(read("kettle.toml"), b"x");
        assert_eq!(read("tests/case.rs"), b"#[test] fn t() {}\n");
        assert_eq!(
            fs::read_link(tree.join("link")).unwrap(),
            Path::new("version.txt")
        );
        use std::os::unix::fs::PermissionsExt;
        let mode = |p: &str| fs::metadata(tree.join(p)).unwrap().permissions().mode() & 0o777;
        assert_eq!((mode("run.sh"), mode("secret.txt")), (0o755, 0o644));
        // Control: `git archive` of the same commit is not the commit's tree.
        let archived = repo.archive(&s.commit);
        let names: Vec<String> = tar::Archive::new(archived.as_slice())
            .entries()
            .unwrap()
            .map(|e| e.unwrap().path().unwrap().display().to_string())
            .collect();
        assert!(
            !names
                .iter()
                .any(|n| n == "secret.txt" || n == "kettle.toml"),
            "{names:?}"
        );
    }

    #[test]
    fn a_submodule_is_refused_naming_it() {
        let repo = repo_with(&[("a", b"1")]);
        let other = repo.rev_parse("HEAD");
        repo.git(&[
            "update-index",
            "--add",
            "--cacheinfo",
            &format!("160000,{other},vendor/lib"),
        ]);
        repo.git(&["commit", "-q", "-m", "a submodule"]);
        let s = resolve_checkout(repo.path(), None, true).unwrap();
        let dest = tempfile::tempdir().unwrap();
        match s.write_archive(&dest.path().join("s.tar")) {
            Err(SourceError::Submodule { commit, path }) => {
                assert_eq!(
                    (commit.as_str(), path.as_str()),
                    (s.commit.as_str(), "vendor/lib")
                )
            }
            other => panic!("expected the submodule to be refused, got {other:?}"),
        }
    }

    #[test]
    fn ls_tree_entries_and_commit_times_are_read_exactly() {
        let out = b"040000 tree 4b825dc642cb6eb9a060e54bf8d69288fbee4904\td\x00100755 blob e69de29bb2d1d6434b8b29ae775ad8c2e48c5391\td/x y\x00120000 blob e69de29bb2d1d6434b8b29ae775ad8c2e48c5391\tl\x00";
        let e = parse_ls_tree(out).unwrap();
        let kinds: Vec<_> = e.iter().map(|e| (e.kind, e.path.as_slice())).collect();
        assert_eq!(
            kinds,
            [
                (TreeEntryKind::Dir, &b"d"[..]),
                (TreeEntryKind::File { executable: true }, b"d/x y"),
                (TreeEntryKind::Symlink, b"l"),
            ]
        );
        let err = parse_ls_tree(b"100664 blob e69de29bb2d1d6434b8b29ae775ad8c2e48c5391\tf\x00")
            .unwrap_err();
        assert!(err.contains("mode 100664"), "{err}");
        assert!(parse_ls_tree(b"garbage\x00").is_err());
        let raw = b"tree t\nauthor A <a@x> 5 +0000\ncommitter C <c@x> 1700000000 -0500\n\ncommitter 9 +0000\n";
        assert_eq!(commit_time(raw), 1_700_000_000);
        assert_eq!(commit_time(b"tree t\n\nmessage"), 0);
    }
}
