//! Throwaway git repositories for tests: one helper instead of a "make a temp
//! repo" function per test file. Every git command runs with a fixed identity
//! and fixed author/committer dates and without the user's or the system's git
//! config, so the same files give the same commit id on any machine.

use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::Command;

use crate::cli::run;

/// Author and committer date of every commit a [`GitRepo`] makes.
pub const COMMIT_DATE: &str = "2025-01-01T00:00:00Z";
/// Author and committer name.
pub const COMMIT_NAME: &str = "Kettle Test";
/// Author and committer email.
pub const COMMIT_EMAIL: &str = "test@kettle.invalid";
/// The branch a new repository starts on.
pub const BRANCH: &str = "main";

/// A git working tree with branch [`BRANCH`].
#[derive(Debug)]
pub struct GitRepo {
    dir: PathBuf,
    /// Holds a temporary directory's lifetime (None: the caller owns the directory).
    _tmp: Option<tempfile::TempDir>,
}

impl GitRepo {
    /// A new repository in a fresh temporary directory, removed when this is dropped.
    pub fn new() -> GitRepo {
        let tmp = tempfile::tempdir().expect("create a temporary directory");
        let mut repo = GitRepo::init(tmp.path());
        repo._tmp = Some(tmp);
        repo
    }

    /// `git init` at `dir` (created if absent; files already there are kept and not committed).
    pub fn init(dir: &Path) -> GitRepo {
        fs::create_dir_all(dir).unwrap_or_else(|e| panic!("create {}: {e}", dir.display()));
        let repo = GitRepo {
            dir: dir.to_path_buf(),
            _tmp: None,
        };
        repo.git(&["init", "-q", "-b", BRANCH]);
        repo
    }

    /// The working tree.
    pub fn path(&self) -> &Path {
        &self.dir
    }

    /// Writes `contents` at `rel` (parent directories created).
    pub fn write(&self, rel: &str, contents: impl AsRef<[u8]>) -> &Self {
        let p = self.dir.join(rel);
        fs::create_dir_all(p.parent().expect("a file path has a parent"))
            .unwrap_or_else(|e| panic!("create the parent of {}: {e}", p.display()));
        fs::write(&p, contents).unwrap_or_else(|e| panic!("write {}: {e}", p.display()));
        self
    }

    /// Writes `contents` at `rel` as an executable (mode 0755).
    pub fn write_executable(&self, rel: &str, contents: impl AsRef<[u8]>) -> &Self {
        self.write(rel, contents);
        let p = self.dir.join(rel);
        fs::set_permissions(&p, fs::Permissions::from_mode(0o755))
            .unwrap_or_else(|e| panic!("chmod {}: {e}", p.display()));
        self
    }

    /// Commits every change in the working tree (`git add -A`); returns the new commit id.
    pub fn commit_all(&self, message: &str) -> String {
        self.git(&["add", "-A"]);
        self.git(&["commit", "-q", "-m", message]);
        self.rev_parse("HEAD")
    }

    /// The object id `rev` names.
    pub fn rev_parse(&self, rev: &str) -> String {
        String::from_utf8(self.git(&["rev-parse", rev]))
            .expect("git prints ids as text")
            .trim()
            .to_string()
    }

    /// The raw commit object of `rev`, as `git cat-file commit` prints it.
    pub fn commit_object(&self, rev: &str) -> Vec<u8> {
        self.git(&["cat-file", "commit", rev])
    }

    /// `git archive --format=tar rev`: the commit's tree as a tar stream.
    pub fn archive(&self, rev: &str) -> Vec<u8> {
        self.git(&["archive", "--format=tar", rev])
    }

    /// Runs git in the working tree with `args`; returns its stdout, panicking with its stderr on failure.
    pub fn git(&self, args: &[&str]) -> Vec<u8> {
        run(Command::new("git")
            .arg("-C")
            .arg(&self.dir)
            .args(["-c", "commit.gpgsign=false", "-c", "tag.gpgsign=false"])
            .args(args)
            .env("GIT_CONFIG_GLOBAL", "/dev/null")
            .env("GIT_CONFIG_NOSYSTEM", "1")
            .env("GIT_AUTHOR_NAME", COMMIT_NAME)
            .env("GIT_AUTHOR_EMAIL", COMMIT_EMAIL)
            .env("GIT_COMMITTER_NAME", COMMIT_NAME)
            .env("GIT_COMMITTER_EMAIL", COMMIT_EMAIL)
            .env("GIT_AUTHOR_DATE", COMMIT_DATE)
            .env("GIT_COMMITTER_DATE", COMMIT_DATE))
        .stdout
    }
}

impl Default for GitRepo {
    fn default() -> Self {
        GitRepo::new()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn commits_are_reproducible_and_archives_hold_the_tree() {
        let make = || {
            let repo = GitRepo::new();
            repo.write("a/b.txt", "hello\n")
                .write_executable("run.sh", "#!/bin/sh\n");
            let id = repo.commit_all("first");
            (repo, id)
        };
        let (repo, id) = make();
        assert_eq!(id, make().1, "same files, same commit id");
        assert_eq!(repo.rev_parse("main"), id);
        let raw = repo.commit_object("HEAD");
        assert!(
            raw.starts_with(b"tree "),
            "{}",
            String::from_utf8_lossy(&raw)
        );
        assert!(String::from_utf8_lossy(&raw).contains(COMMIT_EMAIL));
        let names = crate::tarball::entry_names(&repo.archive("HEAD"));
        assert!(names.contains(&"a/b.txt".to_string()), "{names:?}");
        assert!(names.contains(&"run.sh".to_string()), "{names:?}");
    }
}
