//! A user's own cargo project as Kettle sees it: which binaries `cargo build
//! --release` makes (so which outputs a cargo-build/v1 recipe can name), the
//! channel `rust-toolchain.toml` asks for, and the commented `kettle.toml`
//! that `kettle init` writes for it, pinned to the bundles that go with the
//! image. `kettle build` uses the same code to say what `kettle init` would
//! write, and to refuse outputs the recipe cannot produce before any VM boots.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::process::Command;

pub use kettle_wire::recipe::cargo::RELEASE_DIR;
/// Why a binary behind required features is not an output.
const DEFAULT_FEATURES_ONLY: &str = "cargo-build/v1 builds default features only";
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
    /// A path dependency climbs out of the repository.
    #[error("{manifest}: dependency {name} has path {path:?}, outside the repository: the build sees only the commit's tree; move {name} into the repository (a workspace member) or depend on a published version")]
    PathDependencyOutside {
        /// The manifest that declares it.
        manifest: String,
        /// The dependency.
        name: String,
        /// Its `path` as written.
        path: String,
    },
    /// A path dependency the tree does not hold.
    #[error("{manifest}: dependency {name} has path {path:?}, which is not in {in_tree} (no {path}/Cargo.toml): commit it (git add {path} && git commit), or remove the dependency")]
    PathDependencyMissing {
        /// The manifest that declares it.
        manifest: String,
        /// The dependency.
        name: String,
        /// Its `path` as written.
        path: String,
        /// What was looked in ("the commit", "the directory").
        in_tree: String,
    },
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

/// Reads a project's files from a directory or a commit.
pub trait Tree {
    /// The bytes of the file at `path` (relative, `/`-separated), None if absent.
    fn read(&self, path: &str) -> Option<Vec<u8>>;
    /// The files directly or deeper under directory `dir`, relative to the root.
    fn list(&self, dir: &str) -> Vec<String>;
}

/// A directory on disk.
pub struct DirTree<'a>(pub &'a Path);

impl Tree for DirTree<'_> {
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

impl Tree for crate::source::ResolvedSource {
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

type Bins = (Vec<String>, Vec<(String, String)>);

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

/// The binaries `cargo build --release` makes, read from the Cargo.toml files of `tree`
/// the way cargo discovers targets: `[[bin]]`, `src/main.rs`, `src/bin/*.rs`,
/// `src/bin/*/main.rs`, over the workspace's default members.
pub fn bins_from_manifests(tree: &dyn Tree) -> Result<Bins, String> {
    let root = manifest_at(tree, "")?.ok_or("no Cargo.toml")?;
    let members: Vec<String> = match root.get("workspace") {
        None => vec![String::new()],
        Some(ws) => {
            let list = |key: &str| -> Vec<String> {
                ws.get(key)
                    .and_then(|v| v.as_array())
                    .map(|a| {
                        a.iter()
                            .filter_map(|v| v.as_str().map(String::from))
                            .collect()
                    })
                    .unwrap_or_default()
            };
            let defaults = list("default-members");
            if !defaults.is_empty() {
                expand_members(tree, &defaults)
            } else if root.get("package").is_some() {
                vec![String::new()]
            } else {
                expand_members(tree, &list("members"))
            }
        }
    };
    let (mut bins, mut skipped) = (BTreeSet::new(), Vec::new());
    for m in members {
        let Some(manifest) = manifest_at(tree, &m)? else {
            continue;
        };
        let (b, s) = package_bins(tree, &m, &manifest);
        bins.extend(b);
        skipped.extend(s);
    }
    Ok((bins.into_iter().collect(), skipped))
}

fn manifest_at(tree: &dyn Tree, dir: &str) -> Result<Option<toml::Table>, String> {
    let path = join(dir, "Cargo.toml");
    let Some(bytes) = tree.read(&path) else {
        return Ok(None);
    };
    let text = String::from_utf8(bytes).map_err(|_| format!("{path} is not UTF-8"))?;
    text.parse::<toml::Table>()
        .map(Some)
        .map_err(|e| format!("{path}: {e}"))
}

fn join(dir: &str, rel: &str) -> String {
    if dir.is_empty() {
        rel.to_string()
    } else {
        format!("{}/{rel}", dir.trim_end_matches('/'))
    }
}

/// Workspace member patterns: literal paths and a trailing `dir/*`.
fn expand_members(tree: &dyn Tree, patterns: &[String]) -> Vec<String> {
    let mut out = Vec::new();
    for p in patterns {
        match p.strip_suffix("/*") {
            Some(parent) => {
                let dirs: BTreeSet<String> = tree
                    .list(parent)
                    .into_iter()
                    .filter_map(|f| {
                        let rest = f.strip_prefix(&format!("{parent}/"))?;
                        let (dir, file) = rest.split_once('/')?;
                        (file == "Cargo.toml").then(|| format!("{parent}/{dir}"))
                    })
                    .collect();
                out.extend(dirs);
            }
            None => out.push(p.trim_end_matches('/').to_string()),
        }
    }
    out
}

fn package_bins(tree: &dyn Tree, dir: &str, manifest: &toml::Table) -> Bins {
    let (mut bins, mut skipped) = (BTreeSet::new(), Vec::new());
    let Some(package) = manifest.get("package").and_then(|p| p.as_table()) else {
        return (Vec::new(), skipped);
    };
    let name = package.get("name").and_then(|n| n.as_str()).unwrap_or("");
    let autobins = package
        .get("autobins")
        .and_then(|v| v.as_bool())
        .unwrap_or(true);
    let explicit = manifest.get("bin").and_then(|b| b.as_array());
    let mut named_paths = BTreeSet::new();
    for b in explicit.into_iter().flatten() {
        let Some(n) = b.get("name").and_then(|n| n.as_str()) else {
            continue;
        };
        if let Some(p) = b.get("path").and_then(|p| p.as_str()) {
            named_paths.insert(join(dir, p));
        }
        match b.get("required-features").and_then(|f| f.as_array()) {
            Some(f) if !f.is_empty() => skipped.push((
                n.to_string(),
                format!("needs features; {DEFAULT_FEATURES_ONLY}"),
            )),
            _ => {
                bins.insert(n.to_string());
            }
        }
    }
    if autobins {
        let main = join(dir, "src/main.rs");
        if tree.read(&main).is_some() && !named_paths.contains(&main) && !name.is_empty() {
            bins.insert(name.to_string());
        }
        let bin_dir = join(dir, "src/bin");
        for f in tree.list(&bin_dir) {
            if named_paths.contains(&f) {
                continue;
            }
            let Some(rest) = f.strip_prefix(&format!("{bin_dir}/")) else {
                continue;
            };
            match rest.split_once('/') {
                None => {
                    if let Some(stem) = rest.strip_suffix(".rs") {
                        bins.insert(stem.to_string());
                    }
                }
                Some((d, "main.rs")) => {
                    bins.insert(d.to_string());
                }
                Some(_) => {}
            }
        }
    }
    // cargo names the file after the target; `-` stays `-` for binaries.
    (bins.into_iter().collect(), skipped)
}

/// The channel `rust-toolchain.toml` (or the legacy `rust-toolchain`) asks for.
pub fn toolchain_channel(tree: &dyn Tree) -> Option<String> {
    if let Some(bytes) = tree.read("rust-toolchain.toml") {
        let t = String::from_utf8(bytes).ok()?.parse::<toml::Table>().ok()?;
        return t
            .get("toolchain")?
            .get("channel")?
            .as_str()
            .map(str::to_string);
    }
    let legacy = String::from_utf8(tree.read("rust-toolchain")?).ok()?;
    let line = legacy.lines().next()?.trim();
    (!line.is_empty() && !line.starts_with('[')).then(|| line.to_string())
}

/// Why a cargo-build/v1 output cannot be produced, if it cannot: it must be under
/// `release_dir` (`target/release/`, or `target/<triple>/release/` with `[cargo] target`), and a file directly there without an extension must be one of
/// `bins` (when they are known). Libraries (`lib*.so`, `.a`, `.rlib`) and deeper
/// paths are left to the build.
pub fn check_cargo_output(
    output: &str,
    release_dir: &str,
    bins: Option<&[String]>,
) -> Result<(), String> {
    let Some(file) = output.strip_prefix(release_dir) else {
        return Err(format!(
            "cargo-build/v1 runs `cargo build --release`, which writes {release_dir}; name outputs {release_dir}<bin>"
        ));
    };
    if file.contains('/') || file.contains('.') {
        return Ok(());
    }
    match bins {
        Some(b) if !b.iter().any(|x| x == file) => Err(format!(
            "{file:?} is not a binary target that `cargo build --release` builds here (binaries: {})",
            if b.is_empty() {
                "none".to_string()
            } else {
                b.join(", ")
            }
        )),
        _ => Ok(()),
    }
}

mod dependencies;
mod git_state;
mod recipe;
pub use dependencies::{
    check_lockfile, check_path_dependencies, path_dependencies, PathDependency,
};
pub use git_state::commit_warnings;
pub use recipe::{render_recipe, write_recipe};

#[cfg(test)]
mod tests;
