//! A user's own cargo project as Kettle sees it: which binaries `cargo build
//! --release` makes (so which outputs a cargo-build/v1 recipe can name), the
//! channel `rust-toolchain.toml` asks for, and the commented `kettle.toml`
//! that `kettle init` writes for it, pinned to the bundles that go with the
//! image. `kettle build` uses the same code to say what `kettle init` would
//! write, and to refuse outputs the recipe cannot produce before any VM boots.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::process::Command;

pub use kettle_wire::recipe::cargo::manifest::{
    bins_from_manifests, check_path_dependencies, path_dependencies, toolchain_channel, Bins,
    PathDependency, PathDependencyError, DEFAULT_FEATURES_ONLY,
};
pub use kettle_wire::recipe::cargo::RELEASE_DIR;
pub use kettle_wire::recipe::SourceTree;
/// Binaries that are a workspace's build tooling by convention (`cargo xtask`), not its product.
const TOOLING_BINS: [&str; 1] = ["xtask"];

/// Why a project cannot get a recipe, or a recipe's outputs cannot be built.
#[derive(Debug, thiserror::Error)]
pub enum ProjectError {
    /// No Cargo.toml.
    #[error("{0} has no Cargo.toml: `kettle init` writes cargo-build/v1 recipes for cargo projects; for anything else write a script/v1 kettle.toml by hand (see examples/hello-script)")]
    NotCargo(PathBuf),
    /// No Cargo.lock.
    #[error("{0} has no Cargo.lock: cargo-build/v1 builds with --locked, so the lockfile pins every crate; run `cargo generate-lockfile` there and commit Cargo.lock")]
    NoLockfile(PathBuf),
    /// kettle.toml is already there.
    #[error("{0} exists: kettle init does not overwrite a recipe (edit it, or remove it and run kettle init again; --force replaces it)")]
    Exists(PathBuf),
    /// No binary target to name as an output.
    #[error("{0}: no binary target that `cargo build --release` builds (a library-only package has no target/release/<bin>); write the recipe's outputs by hand")]
    NoBins(PathBuf),
    /// Cargo.toml could not be read.
    #[error("{path}: {message}")]
    Manifest {
        /// The manifest.
        path: PathBuf,
        /// What is wrong.
        message: String,
    },
    /// A path dependency the guest could never see.
    #[error(transparent)]
    PathDependency(#[from] PathDependencyError),
    /// Cargo.lock pins something the guest cannot fetch or check.
    #[error("Cargo.lock: {0}; cargo-build/v1 fetches only what Cargo.lock pins by checksum: depend on a published version, or vendor the crate into the repository as a path dependency")]
    Lockfile(kettle_wire::recipe::cargo::lockfile::LockfileError),
    /// `--bin` named a binary the project does not build.
    #[error(
        "--bin {name}: not a binary that `cargo build --release` builds here (binaries: {bins})"
    )]
    UnknownBin {
        /// The name given.
        name: String,
        /// The binaries there are, comma-separated.
        bins: String,
    },
    /// A file could not be read or written.
    #[error("{path}: {source}")]
    Io {
        /// The file.
        path: PathBuf,
        /// Why.
        #[source]
        source: std::io::Error,
    },
}

/// A cargo project's facts that decide its recipe.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CargoProject {
    /// The project directory.
    pub dir: PathBuf,
    /// The binaries `cargo build --release` makes there, sorted.
    pub bins: Vec<String>,
    /// Binaries it does not make by default, with why (required features).
    pub skipped: Vec<(String, String)>,
    /// `rust-toolchain.toml`'s (or `rust-toolchain`'s) channel, if any.
    pub channel: Option<String>,
    /// How the binaries were found.
    pub found_by: &'static str,
    /// Whether `--bin` named the binaries: the recipe then builds only those (`[cargo] bins`).
    pub named_bins: bool,
}

/// A directory on disk.
pub struct DirTree<'a>(pub &'a Path);

impl SourceTree for DirTree<'_> {
    fn read(&self, path: &str) -> Option<Vec<u8>> {
        std::fs::read(self.0.join(path)).ok()
    }
    fn list(&self, dir: &str) -> Vec<String> {
        let mut out = Vec::new();
        let mut stack = vec![dir.trim_end_matches('/').to_string()];
        while let Some(d) = stack.pop() {
            let Ok(entries) = std::fs::read_dir(self.0.join(&d)) else {
                continue;
            };
            for e in entries.flatten() {
                let rel = format!("{d}/{}", e.file_name().to_string_lossy());
                match e.file_type() {
                    Ok(t) if t.is_dir() => stack.push(rel),
                    Ok(t) if t.is_file() => out.push(rel),
                    _ => {}
                }
            }
        }
        out.sort();
        out
    }
}

impl SourceTree for crate::source::ResolvedSource {
    fn read(&self, path: &str) -> Option<Vec<u8>> {
        self.read_file(path).ok().flatten()
    }
    fn list(&self, dir: &str) -> Vec<String> {
        self.list_files(dir).unwrap_or_default()
    }
}

/// The facts of the cargo project in `dir`: binaries from `cargo metadata --no-deps`
/// (else from Cargo.toml as cargo's target auto-discovery reads it), and the toolchain channel.
pub fn detect(dir: &Path) -> Result<CargoProject, ProjectError> {
    if !dir.join("Cargo.toml").is_file() {
        return Err(ProjectError::NotCargo(dir.into()));
    }
    if !dir.join("Cargo.lock").is_file() {
        return Err(ProjectError::NoLockfile(dir.into()));
    }
    let (bins, skipped, found_by) = match bins_from_metadata(dir) {
        Some(Ok((bins, skipped))) => (bins, skipped, "cargo metadata --no-deps"),
        Some(Err(e)) => return Err(e),
        None => {
            let (bins, skipped) =
                bins_from_manifests(&DirTree(dir)).map_err(|message| ProjectError::Manifest {
                    path: dir.join("Cargo.toml"),
                    message,
                })?;
            (bins, skipped, "Cargo.toml (cargo is not installed)")
        }
    };
    if bins.is_empty() {
        return Err(ProjectError::NoBins(dir.into()));
    }
    Ok(CargoProject {
        dir: dir.into(),
        bins,
        skipped,
        channel: toolchain_channel(&DirTree(dir)),
        found_by,
        named_bins: false,
    })
}

/// Chooses the outputs: the binaries `wanted` names (each one the project builds), or when
/// none is named every binary but build tooling (`xtask`), which is listed as skipped.
pub fn select_bins(project: &mut CargoProject, wanted: &[String]) -> Result<(), ProjectError> {
    let all: Vec<String> = project
        .bins
        .iter()
        .chain(project.skipped.iter().map(|(b, _)| b))
        .cloned()
        .collect();
    if let Some(name) = wanted.iter().find(|w| !all.contains(w)) {
        return Err(ProjectError::UnknownBin {
            name: name.clone(),
            bins: all.join(", "),
        });
    }
    let (chosen, left): (Vec<String>, Vec<String>) = if wanted.is_empty() {
        project
            .bins
            .drain(..)
            .partition(|b| !TOOLING_BINS.contains(&b.as_str()))
    } else {
        project.bins.drain(..).partition(|b| wanted.contains(b))
    };
    let why = if wanted.is_empty() {
        "build tooling by convention; `kettle init --bin NAME` lists exactly the binaries named"
    } else {
        "not named by --bin"
    };
    project
        .skipped
        .extend(left.into_iter().map(|b| (b, why.to_string())));
    project.bins = chosen;
    project.named_bins = !wanted.is_empty();
    if project.bins.is_empty() {
        return Err(ProjectError::NoBins(project.dir.clone()));
    }
    Ok(())
}

/// Host-side `cargo ARGS --manifest-path MANIFEST`, run so that nothing in the project
/// chooses which cargo runs or how: from `outside` (a directory outside the project, so
/// `manifest` must be absolute). rustup picks the toolchain by the current directory, so a
/// `rust-toolchain.toml` in the project (which can name a `path` toolchain inside the
/// repository, i.e. the repository's own `cargo`) is never applied: the toolchain is the
/// user's `RUSTUP_TOOLCHAIN` when set (inherited), else rustup's default for `outside`.
/// cargo reads `.cargo/config.toml` from the current directory's ancestors, so the
/// project's cargo config (a `rustc-wrapper`, say) is not read either.
fn host_cargo(args: &[&str], manifest: &Path, outside: &Path) -> Command {
    let mut cmd = Command::new(std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into()));
    cmd.args(args)
        .arg("--manifest-path")
        .arg(manifest)
        .current_dir(outside)
        .stdin(std::process::Stdio::null());
    cmd
}

/// `cargo metadata --no-deps`: None when cargo cannot be run at all.
fn bins_from_metadata(dir: &Path) -> Option<Result<Bins, ProjectError>> {
    let manifest = dir.join("Cargo.toml");
    let manifest_err = |message: String| ProjectError::Manifest {
        path: manifest.clone(),
        message,
    };
    let absolute = match std::path::absolute(&manifest) {
        Ok(p) => p,
        Err(e) => {
            return Some(Err(manifest_err(format!(
                "cannot make the path absolute: {e}"
            ))))
        }
    };
    // `/`: no directory of the project's is at or above it (a project at the filesystem's
    // root aside), so none of its toolchain files, cargo config or rustup overrides apply.
    let outside = Path::new("/");
    let args = [
        "metadata",
        "--no-deps",
        "--format-version",
        "1",
        "--offline",
    ];
    let out = host_cargo(&args, &absolute, outside).output().ok()?;
    if !out.status.success() {
        return Some(Err(ProjectError::Manifest {
            path: dir.join("Cargo.toml"),
            message: format!(
                "`cargo metadata` failed: {}",
                String::from_utf8_lossy(&out.stderr).trim()
            ),
        }));
    }
    let meta: serde_json::Value = match serde_json::from_slice(&out.stdout) {
        Ok(m) => m,
        Err(e) => {
            return Some(Err(ProjectError::Manifest {
                path: dir.join("Cargo.toml"),
                message: format!("`cargo metadata` printed no JSON: {e}"),
            }))
        }
    };
    // `cargo build` in the root builds the default members (all members of a virtual workspace).
    let default: BTreeSet<&str> = meta["workspace_default_members"]
        .as_array()
        .map(|a| a.iter().filter_map(|v| v.as_str()).collect())
        .unwrap_or_default();
    let (mut bins, mut skipped) = (BTreeSet::new(), Vec::new());
    for pkg in meta["packages"].as_array().into_iter().flatten() {
        let id = pkg["id"].as_str().unwrap_or("");
        if !default.is_empty() && !default.contains(id) {
            continue;
        }
        for t in pkg["targets"].as_array().into_iter().flatten() {
            let is_bin = t["kind"]
                .as_array()
                .is_some_and(|k| k.iter().any(|k| k == "bin"));
            let Some(name) = t["name"].as_str().filter(|_| is_bin) else {
                continue;
            };
            match t["required-features"].as_array().filter(|f| !f.is_empty()) {
                Some(f) => skipped.push((
                    name.to_string(),
                    format!(
                        "needs features {}; {DEFAULT_FEATURES_ONLY}",
                        f.iter()
                            .filter_map(|v| v.as_str())
                            .collect::<Vec<_>>()
                            .join(", ")
                    ),
                )),
                None => {
                    bins.insert(name.to_string());
                }
            }
        }
    }
    Some(Ok((bins.into_iter().collect(), skipped)))
}

mod dependencies;
mod git_state;
mod recipe;
pub use dependencies::check_lockfile;
pub use git_state::commit_warnings;
pub use recipe::{render_recipe, write_recipe};

#[cfg(test)]
mod tests;
