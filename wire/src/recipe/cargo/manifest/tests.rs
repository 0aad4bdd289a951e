use std::collections::BTreeMap;

use super::*;

/// Files in memory: (path, contents).
struct MapTree(BTreeMap<String, String>);

impl SourceTree for MapTree {
    fn read(&self, path: &str) -> Option<Vec<u8>> {
        self.0.get(path).map(|c| c.clone().into_bytes())
    }
    fn list(&self, dir: &str) -> Vec<String> {
        let prefix = format!("{}/", dir.trim_end_matches('/'));
        self.0
            .keys()
            .filter(|p| p.starts_with(&prefix))
            .cloned()
            .collect()
    }
}

fn tree(files: &[(&str, &str)]) -> MapTree {
    MapTree(
        files
            .iter()
            .map(|(p, c)| (p.to_string(), c.to_string()))
            .collect(),
    )
}

#[test]
fn bins_are_found_over_the_default_members() {
    let d = tree(&[
        ("Cargo.toml", "[workspace]\nmembers = [\"crates/*\"]\n"),
        (
            "crates/a/Cargo.toml",
            "[package]\nname = \"a\"\nversion = \"0.1.0\"\n",
        ),
        ("crates/a/src/main.rs", "fn main() {}\n"),
        ("crates/a/src/bin/tool.rs", "fn main() {}\n"),
        (
            "crates/b/Cargo.toml",
            "[package]\nname = \"b-lib\"\nversion = \"0.1.0\"\n\n[[bin]]\nname = \"gated\"\npath = \"g.rs\"\nrequired-features = [\"x\"]\n",
        ),
        ("crates/b/src/lib.rs", ""),
    ]);
    let (bins, skipped) = bins_from_manifests(&d).unwrap();
    assert_eq!(bins, ["a", "tool"]);
    assert_eq!(
        skipped,
        [(
            "gated".to_string(),
            format!("needs features; {DEFAULT_FEATURES_ONLY}")
        )]
    );
}

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
    let err = check_path_dependencies(&d, "the directory").unwrap_err();
    assert_eq!(
        err.to_string(),
        "app/Cargo.toml: dependency helper has path \"../../helper\", outside the repository: \
the build sees only the commit's tree; move helper into the repository (a workspace member) \
or depend on a published version"
    );
}

#[test]
fn a_path_dependency_the_tree_lacks_is_refused_and_one_inside_passes() {
    let mut d = tree(&[
        (
            "Cargo.toml",
            "[package]\nname = \"app\"\nversion = \"0.1.0\"\n\n[dev-dependencies]\ngone = { path = \"vendor/gone\" }\n\n[build-dependencies]\nhere = { path = \"vendor/here\" }\n",
        ),
        (
            "vendor/here/Cargo.toml",
            "[package]\nname = \"here\"\nversion = \"0.1.0\"\n",
        ),
    ]);
    let err = check_path_dependencies(&d, "the commit").unwrap_err();
    assert_eq!(
        err.to_string(),
        "Cargo.toml: dependency gone has path \"vendor/gone\", which is not in the commit \
(no vendor/gone/Cargo.toml): commit it (git add vendor/gone && git commit), or remove the dependency"
    );
    d.0.insert(
        "vendor/gone/Cargo.toml".into(),
        "[package]\nname = \"gone\"\nversion = \"0.1.0\"\n".into(),
    );
    check_path_dependencies(&d, "the commit").unwrap();
    let deps = path_dependencies(&d).unwrap();
    assert_eq!(deps.len(), 2, "{deps:?}");
}

#[test]
fn patch_and_workspace_dependencies_count_too() {
    let d = tree(&[(
        "Cargo.toml",
        "[package]\nname = \"app\"\nversion = \"0.1.0\"\n\n[workspace.dependencies]\nw = { path = \"../w\" }\n\n[patch.crates-io]\np = { path = \"../p\" }\n",
    )]);
    let names: Vec<String> = path_dependencies(&d)
        .unwrap()
        .into_iter()
        .map(|d| d.name)
        .collect();
    assert_eq!(names, ["w", "p"]);
}

#[test]
fn outputs_the_recipe_cannot_make_are_named() {
    let bins = ["hello".to_string()];
    assert!(check_cargo_output(
        "target/release/hello",
        crate::recipe::cargo::RELEASE_DIR,
        Some(&bins)
    )
    .is_ok());
    assert!(check_cargo_output(
        "target/release/libhello.so",
        crate::recipe::cargo::RELEASE_DIR,
        Some(&bins)
    )
    .is_ok());
    assert!(check_cargo_output(
        "target/release/hello",
        crate::recipe::cargo::RELEASE_DIR,
        None
    )
    .is_ok());
    let err = check_cargo_output(
        "target/debug/hello",
        crate::recipe::cargo::RELEASE_DIR,
        Some(&bins),
    )
    .unwrap_err();
    assert!(err.contains("target/release/"), "{err}");
    let err = check_cargo_output(
        "target/release/helo",
        crate::recipe::cargo::RELEASE_DIR,
        Some(&bins),
    )
    .unwrap_err();
    assert!(err.contains("binaries: hello"), "{err}");
}
