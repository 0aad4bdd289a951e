//! What a cargo project depends on that the guest could never see: a path dependency
//! that leaves the repository, or that the tree does not hold, and a Cargo.lock entry
//! from a source other than crates.io. The guest sees exactly the commit's tree and the
//! crates Cargo.lock pins, so each of these would fail inside the VM minutes later;
//! `kettle init` and `kettle build` refuse them on the host, before any VM boots.

use std::collections::BTreeSet;

use super::{expand_members, join, manifest_at, ProjectError, Tree};

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
pub fn path_dependencies(tree: &dyn Tree) -> Result<Vec<PathDependency>, String> {
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
pub fn check_path_dependencies(tree: &dyn Tree, in_tree: &str) -> Result<(), ProjectError> {
    let deps = path_dependencies(tree).map_err(|message| ProjectError::Manifest {
        path: "Cargo.toml".into(),
        message,
    })?;
    for dep in deps {
        match &dep.resolved {
            None => {
                return Err(ProjectError::PathDependencyOutside {
                    manifest: dep.manifest,
                    name: dep.name,
                    path: dep.path,
                })
            }
            Some(dir) if tree.read(&join(dir, "Cargo.toml")).is_none() => {
                return Err(ProjectError::PathDependencyMissing {
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

/// Refuses a Cargo.lock the guest cannot fetch from (git or other registries), with the
/// same parser the guest's pins come from.
pub fn check_lockfile(tree: &dyn Tree) -> Result<(), ProjectError> {
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
mod tests {
    use super::*;
    use crate::project::tests::project as tree;
    use crate::project::DirTree;
    use std::fs;

    #[test]
    fn paths_resolve_from_the_member_and_never_climb_out() {
        assert_eq!(resolve("", "crates/a").as_deref(), Some("crates/a"));
        assert_eq!(resolve("crates/b", "../a").as_deref(), Some("crates/a"));
        assert_eq!(
            resolve("crates/b", "./x/../y").as_deref(),
            Some("crates/b/y")
        );
        assert_eq!(resolve("", "../sibling"), None);
        assert_eq!(resolve("crates/b", "../../../up"), None);
        assert_eq!(resolve("", "/abs/dep"), None);
    }

    #[test]
    fn a_path_dependency_outside_the_repository_is_refused_by_name() {
        let d = tree(&[
            ("Cargo.toml", "[workspace]\nmembers = [\"app\"]\n"),
            (
                "app/Cargo.toml",
                "[package]\nname = \"app\"\nversion = \"0.1.0\"\n\n[target.'cfg(unix)'.dependencies]\nhelper = { path = \"../../helper\" }\n",
            ),
        ]);
        let err = check_path_dependencies(&DirTree(d.path()), "the directory").unwrap_err();
        assert_eq!(
            err.to_string(),
            "app/Cargo.toml: dependency helper has path \"../../helper\", outside the repository: \
the build sees only the commit's tree; move helper into the repository (a workspace member) \
or depend on a published version"
        );
    }

    #[test]
    fn a_path_dependency_the_tree_lacks_is_refused_and_one_inside_passes() {
        let d = tree(&[
            (
                "Cargo.toml",
                "[package]\nname = \"app\"\nversion = \"0.1.0\"\n\n[dev-dependencies]\ngone = { path = \"vendor/gone\" }\n\n[build-dependencies]\nhere = { path = \"vendor/here\" }\n",
            ),
            (
                "vendor/here/Cargo.toml",
                "[package]\nname = \"here\"\nversion = \"0.1.0\"\n",
            ),
        ]);
        let err = check_path_dependencies(&DirTree(d.path()), "the commit").unwrap_err();
        assert_eq!(
            err.to_string(),
            "Cargo.toml: dependency gone has path \"vendor/gone\", which is not in the commit \
(no vendor/gone/Cargo.toml): commit it (git add vendor/gone && git commit), or remove the dependency"
        );
        fs::create_dir_all(d.path().join("vendor/gone")).unwrap();
        fs::write(
            d.path().join("vendor/gone/Cargo.toml"),
            "[package]\nname = \"gone\"\nversion = \"0.1.0\"\n",
        )
        .unwrap();
        check_path_dependencies(&DirTree(d.path()), "the commit").unwrap();
        let deps = path_dependencies(&DirTree(d.path())).unwrap();
        assert_eq!(deps.len(), 2, "{deps:?}");
    }

    #[test]
    fn patch_and_workspace_dependencies_count_too() {
        let d = tree(&[(
            "Cargo.toml",
            "[package]\nname = \"app\"\nversion = \"0.1.0\"\n\n[workspace.dependencies]\nw = { path = \"../w\" }\n\n[patch.crates-io]\np = { path = \"../p\" }\n",
        )]);
        let names: Vec<String> = path_dependencies(&DirTree(d.path()))
            .unwrap()
            .into_iter()
            .map(|d| d.name)
            .collect();
        assert_eq!(names, ["w", "p"]);
    }

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
