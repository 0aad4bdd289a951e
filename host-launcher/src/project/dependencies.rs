//! A Cargo.lock entry the guest could never fetch (from git or another registry),
//! refused on the host by `kettle init` before any VM boots, with the parser the
//! guest's pins come from. (Path dependencies the guest could never see are the
//! cargo recipe's to check: kettle-wire's `recipe/cargo/manifest.rs`.)

use super::{ProjectError, SourceTree};

/// Refuses a Cargo.lock the guest cannot fetch from (git or other registries), with the
/// same parser the guest's pins come from.
pub fn check_lockfile(tree: &dyn SourceTree) -> Result<(), ProjectError> {
    let Some(bytes) = tree.read("Cargo.lock") else {
        return Ok(()); // detect() says "no Cargo.lock"; kettle build says it at [verify]
    };
    let text = String::from_utf8(bytes).map_err(|_| ProjectError::Manifest {
        path: "Cargo.lock".into(),
        message: "is not UTF-8".into(),
    })?;
    kettle_wire::recipe::cargo::lockfile::parse(&text)
        .map(|_| ())
        .map_err(ProjectError::Lockfile)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::project::tests::project as tree;
    use crate::project::DirTree;

    #[test]
    fn a_git_dependency_in_cargo_lock_is_refused_on_the_host() {
        let d = tree(&[(
            "Cargo.lock",
            "version = 3\n\n[[package]]\nname = \"x\"\nversion = \"1.0.0\"\nsource = \"git+https://github.com/o/x#abc\"\n",
        )]);
        let err = check_lockfile(&DirTree(d.path())).unwrap_err();
        assert_eq!(
            err.to_string(),
            "Cargo.lock: package x 1.0.0 comes from \"git+https://github.com/o/x#abc\": only crates.io \
registry and path dependencies are supported; cargo-build/v1 fetches only what Cargo.lock pins by \
checksum: depend on a published version, or vendor the crate into the repository as a path dependency"
        );
    }
}
