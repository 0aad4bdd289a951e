//! What a cargo project's manifests say, read on the host before any VM boots
//! (`kettle init`, and `kettle build`'s check of the commit): the binaries `cargo
//! build --release` makes, the channel `rust-toolchain.toml` asks for, and the
//! path dependencies the guest could never see (one that leaves the repository,
//! or that the tree does not hold: the guest sees exactly the commit's tree).

use std::collections::BTreeSet;

use thiserror::Error;

use crate::recipe::SourceTree;

/// Why a binary behind required features is not an output.
pub const DEFAULT_FEATURES_ONLY: &str =
    "cargo-build/v1 builds default features unless [cargo] features names others";

/// Binaries and the ones skipped with why: `(bins, [(bin, why)])`.
pub type Bins = (Vec<String>, Vec<(String, String)>);

/// A path dependency the guest could never see.
#[derive(Debug, Error)]
pub enum PathDependencyError {
    /// A Cargo.toml could not be read.
    #[error("Cargo.toml: {0}")]
    Manifest(String),
    /// A path dependency climbs out of the repository.
    #[error("{manifest}: dependency {name} has path {path:?}, outside the repository: the build sees only the commit's tree; move {name} into the repository (a workspace member) or depend on a published version")]
    Outside {
        /// The manifest that declares it.
        manifest: String,
        /// The dependency.
        name: String,
        /// Its `path` as written.
        path: String,
    },
    /// A path dependency the tree does not hold.
    #[error("{manifest}: dependency {name} has path {path:?}, which is not in {in_tree} (no {path}/Cargo.toml): commit it (git add {path} && git commit), or remove the dependency")]
    Missing {
        /// The manifest that declares it.
        manifest: String,
        /// The dependency.
        name: String,
        /// Its `path` as written.
        path: String,
        /// What was looked in ("the commit", "the directory").
        in_tree: String,
    },
}

/// The binaries `cargo build --release` makes, read from the Cargo.toml files of `tree`
/// the way cargo discovers targets: `[[bin]]`, `src/main.rs`, `src/bin/*.rs`,
/// `src/bin/*/main.rs`, over the workspace's default members.
pub fn bins_from_manifests(tree: &dyn SourceTree) -> Result<Bins, String> {
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

pub(crate) fn manifest_at(tree: &dyn SourceTree, dir: &str) -> Result<Option<toml::Table>, String> {
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
fn expand_members(tree: &dyn SourceTree, patterns: &[String]) -> Vec<String> {
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

fn package_bins(tree: &dyn SourceTree, dir: &str, manifest: &toml::Table) -> Bins {
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
pub fn toolchain_channel(tree: &dyn SourceTree) -> Option<String> {
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

/// A `path = "..."` dependency of one manifest, resolved against the repository root.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PathDependency {
    /// The manifest that declares it (`Cargo.toml`, `crates/app/Cargo.toml`).
    pub manifest: String,
    /// The dependency's name as written (the table key).
    pub name: String,
    /// The `path` value as written.
    pub path: String,
    /// Where it points from the repository root (`/`-separated, no `..`), or None when it
    /// climbs out of the repository.
    pub resolved: Option<String>,
}

/// Every path dependency declared by the root manifest and the workspace's members
/// (all members: cargo resolves the whole workspace, dev- and build-dependencies too),
/// including `[workspace.dependencies]`, `[patch.*]` and `[replace]`.
pub fn path_dependencies(tree: &dyn SourceTree) -> Result<Vec<PathDependency>, String> {
    // No Cargo.toml: nothing to resolve here (cargo says so in the build, kettle init before it).
    let Some(root) = manifest_at(tree, "")? else {
        return Ok(Vec::new());
    };
    let mut dirs = vec![String::new()];
    if let Some(ws) = root.get("workspace") {
        let members: Vec<String> = ws
            .get("members")
            .and_then(|v| v.as_array())
            .map(|a| {
                a.iter()
                    .filter_map(|v| v.as_str().map(String::from))
                    .collect()
            })
            .unwrap_or_default();
        dirs.extend(expand_members(tree, &members).into_iter().filter(|m| {
            // A member pattern can itself climb out; that member is reported as a path.
            !m.is_empty()
        }));
    }
    let mut seen = BTreeSet::new();
    let mut out = Vec::new();
    for dir in dirs {
        if !seen.insert(dir.clone()) {
            continue;
        }
        let manifest_path = join(&dir, "Cargo.toml");
        let Some(manifest) = manifest_at(tree, &dir)? else {
            continue;
        };
        for (name, path) in declared_paths(&manifest) {
            out.push(PathDependency {
                manifest: manifest_path.clone(),
                resolved: resolve(&dir, &path),
                name,
                path,
            });
        }
    }
    Ok(out)
}

/// Refuses a project whose path dependencies leave the repository or are not in `tree`
/// (on disk for `kettle init`, the commit for `kettle build`: `in_tree` says which).
pub fn check_path_dependencies(
    tree: &dyn SourceTree,
    in_tree: &str,
) -> Result<(), PathDependencyError> {
    let deps = path_dependencies(tree).map_err(PathDependencyError::Manifest)?;
    for dep in deps {
        match &dep.resolved {
            None => {
                return Err(PathDependencyError::Outside {
                    manifest: dep.manifest,
                    name: dep.name,
                    path: dep.path,
                })
            }
            Some(dir) if tree.read(&join(dir, "Cargo.toml")).is_none() => {
                return Err(PathDependencyError::Missing {
                    manifest: dep.manifest,
                    name: dep.name,
                    path: dep.path,
                    in_tree: in_tree.to_string(),
                })
            }
            Some(_) => {}
        }
    }
    Ok(())
}

/// `(name, path)` of every dependency table entry with a `path` key in one manifest.
fn declared_paths(manifest: &toml::Table) -> Vec<(String, String)> {
    // Cargo still reads the underscore spellings.
    const KINDS: [&str; 5] = [
        "dependencies",
        "dev-dependencies",
        "build-dependencies",
        "dev_dependencies",
        "build_dependencies",
    ];
    let mut tables: Vec<&toml::Table> = Vec::new();
    for kind in KINDS {
        tables.extend(manifest.get(kind).and_then(|t| t.as_table()));
    }
    for target in manifest
        .get("target")
        .and_then(|t| t.as_table())
        .into_iter()
        .flat_map(|t| t.values())
    {
        for kind in KINDS {
            tables.extend(target.get(kind).and_then(|t| t.as_table()));
        }
    }
    if let Some(ws) = manifest.get("workspace") {
        tables.extend(ws.get("dependencies").and_then(|t| t.as_table()));
    }
    if let Some(patches) = manifest.get("patch").and_then(|t| t.as_table()) {
        tables.extend(patches.values().filter_map(|t| t.as_table()));
    }
    tables.extend(manifest.get("replace").and_then(|t| t.as_table()));
    let mut out = Vec::new();
    for table in tables {
        for (name, spec) in table {
            if let Some(path) = spec.get("path").and_then(|p| p.as_str()) {
                out.push((name.clone(), path.to_string()));
            }
        }
    }
    out
}

/// `path` relative to the member directory `dir`, as a path from the repository root
/// without `.` or `..`; None when it leaves the root (or is absolute).
fn resolve(dir: &str, path: &str) -> Option<String> {
    if path.starts_with('/') || path.starts_with('\\') {
        return None;
    }
    let mut parts: Vec<&str> = dir.split('/').filter(|p| !p.is_empty()).collect();
    for part in path.split(['/', '\\']) {
        match part {
            "" | "." => {}
            ".." => {
                parts.pop()?;
            }
            p => parts.push(p),
        }
    }
    Some(parts.join("/"))
}

#[cfg(test)]
mod tests;
