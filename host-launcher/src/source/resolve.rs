//! Resolving a source to one commit: a local checkout (HEAD, or a ref) or a
//! repository URL fetched into a bare repository; and an auditor's own clone
//! read for the commit a verifier pins.

use std::ffi::OsStr;
use std::path::{Path, PathBuf};

use kettle_wire::source_url;

use super::git::{git, git_line, object_format};
use super::{repository_url, RefOrigin, RepoOrigin, ResolvedSource, SourceError};

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
    if !path.exists() {
        return Err(SourceError::Missing(shown));
    }
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
