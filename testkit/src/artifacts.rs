//! Where the repository and the built guest artifacts are, and what a test
//! does when an artifact has not been built.

use std::path::{Path, PathBuf};

/// The repository root (the workspace directory holding `tests/`).
pub fn repo_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("tests/ has a parent directory")
        .to_path_buf()
}

/// The build output directory: `$BUILD` if set (as the Makefile does), else `<repo>/build`.
pub fn build_dir() -> PathBuf {
    match std::env::var_os("BUILD") {
        Some(dir) if !dir.is_empty() => PathBuf::from(dir),
        _ => repo_root().join("build"),
    }
}

/// What to do about a missing artifact.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Requirement {
    /// CI (`CI=true`): a missing artifact fails the test.
    Fail,
    /// A developer machine: a missing artifact skips the test with a message.
    Skip,
}

impl Requirement {
    /// `Fail` when the environment variable CI is `true`, else `Skip`.
    pub fn from_env() -> Self {
        match std::env::var("CI") {
            Ok(v) if v.eq_ignore_ascii_case("true") => Requirement::Fail,
            _ => Requirement::Skip,
        }
    }
}

/// The path of `build/<name>` if it exists. If it does not, panics under
/// [`Requirement::Fail`] and returns `None` after printing why under
/// [`Requirement::Skip`]; `make_target` names what builds it.
pub fn require_artifact(
    name: &str,
    make_target: &str,
    requirement: Requirement,
) -> Option<PathBuf> {
    let path = build_dir().join(name);
    if path.is_file() {
        return Some(path);
    }
    let why = format!(
        "{} is missing; build it with `make {make_target}`",
        path.display()
    );
    match requirement {
        Requirement::Fail => panic!("{why} (CI=true: a missing artifact is a failure)"),
        Requirement::Skip => {
            eprintln!("SKIPPED: {why}");
            None
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn repo_root_holds_the_workspace_manifest_and_this_crate() {
        let root = repo_root();
        assert!(root.join("Cargo.toml").is_file());
        assert!(root.join("tests").join("Cargo.toml").is_file());
    }

    #[test]
    fn missing_artifact_is_skipped_off_ci() {
        assert_eq!(
            require_artifact("no-such-artifact.bin", "nothing", Requirement::Skip),
            None
        );
    }

    #[test]
    #[should_panic(expected = "make nothing")]
    fn missing_artifact_fails_on_ci() {
        require_artifact("no-such-artifact.bin", "nothing", Requirement::Fail);
    }
}

/// What a cargo-build/v1 build in the CVM needs: the image (`make image`) and the
/// root filesystem and toolchain bundles (`make bundles`).
#[derive(Debug, Clone)]
pub struct CargoCvm {
    /// `build/image/manifest.json`.
    pub manifest: PathBuf,
    /// The image directory (the manifest's).
    pub image: PathBuf,
    /// `build/rootfs.tar.gz`.
    pub rootfs: PathBuf,
    /// `build/toolchain.tar.gz`.
    pub toolchain: PathBuf,
}

/// The image and both bundles, or `None` (after saying which is missing) under
/// [`Requirement::Skip`]; panics under [`Requirement::Fail`].
pub fn require_cargo_cvm(requirement: Requirement) -> Option<CargoCvm> {
    let manifest = require_artifact("image/manifest.json", "image", requirement)?;
    let rootfs = require_artifact("rootfs.tar.gz", "bundles", requirement)?;
    let toolchain = require_artifact("toolchain.tar.gz", "bundles", requirement)?;
    let image = manifest
        .parent()
        .expect("manifest in a directory")
        .to_path_buf();
    Some(CargoCvm {
        manifest,
        image,
        rootfs,
        toolchain,
    })
}
