//! What `kettle init` can tell from git before anything is committed: the build sees
//! only a commit, so a Cargo.lock that git ignores, or a path dependency nobody added,
//! would be missing in the VM. These are warnings (the user is about to commit), each
//! with the command that fixes it.

use std::path::Path;

use super::PathDependency;

/// The warnings for the project in `dir` (a repository root) about to be committed.
pub fn commit_warnings(dir: &Path, path_deps: &[PathDependency]) -> Vec<String> {
    let shown = dir.display();
    match git_succeeds(dir, &["rev-parse", "--is-inside-work-tree"]) {
        None => return vec!["git is not installed: kettle build builds a commit of a git repository; install git, then commit the project with Cargo.lock and kettle.toml".into()],
        Some(false) => return vec![format!(
            "{shown} is not a git checkout: kettle build builds a commit; run `git -C {shown} init` and commit the project with Cargo.lock and kettle.toml"
        )],
        Some(true) => {}
    }
    let mut out = Vec::new();
    if !tracked(dir, "Cargo.lock") {
        if git_succeeds(dir, &["check-ignore", "-q", "--", "Cargo.lock"]) == Some(true) {
            out.push(format!(
                "Cargo.lock is ignored by git (a .gitignore rule), so no commit carries it and cargo-build/v1 cannot build: `git -C {shown} add -f Cargo.lock`, then commit"
            ));
        } else {
            out.push(format!(
                "Cargo.lock is not committed: `git -C {shown} add Cargo.lock` before the commit you build"
            ));
        }
    }
    for dep in path_deps {
        let Some(resolved) = &dep.resolved else {
            continue; // refused before this runs
        };
        let manifest = if resolved.is_empty() {
            "Cargo.toml".to_string()
        } else {
            format!("{resolved}/Cargo.toml")
        };
        if !tracked(dir, &manifest) {
            out.push(format!(
                "{}: path dependency {} ({}) is not committed: `git -C {shown} add {}`, then commit",
                dep.manifest, dep.name, dep.path, resolved
            ));
        }
    }
    out
}

/// Whether git tracks `path` (relative to the repository root `dir`).
fn tracked(dir: &Path, path: &str) -> bool {
    git_succeeds(dir, &["ls-files", "--error-unmatch", "--", path]) == Some(true)
}

/// Whether `git -C dir ARGS` exits 0 (the source module's one git runner); None when git
/// cannot be run.
fn git_succeeds(dir: &Path, args: &[&str]) -> Option<bool> {
    match crate::source::git::git(Some(dir), args) {
        Ok(_) => Some(true),
        Err(crate::source::SourceError::NoGit(_)) => None,
        Err(_) => Some(false),
    }
}
