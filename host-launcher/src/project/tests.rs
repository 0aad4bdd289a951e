use super::*;
use crate::bundles::{BundlePins, MARKER_URL_BASE};
use kettle_wire::recipe::{BuildType, Recipe, RecipeOptions};
use std::fs;

fn pins(dir: &Path) -> BundlePins {
    fs::write(dir.join("toolchain.tar.gz"), b"t").unwrap();
    fs::write(dir.join("rootfs.tar.gz"), b"r").unwrap();
    BundlePins::for_files(
        &dir.join("toolchain.tar.gz"),
        &dir.join("rootfs.tar.gz"),
        MARKER_URL_BASE,
    )
    .unwrap()
}

/// A temporary directory holding `files` (path, contents).
pub(super) fn project(files: &[(&str, &str)]) -> tempfile::TempDir {
    let d = tempfile::tempdir().unwrap();
    for (p, c) in files {
        let path = d.path().join(p);
        fs::create_dir_all(path.parent().unwrap()).unwrap();
        fs::write(path, c).unwrap();
    }
    d
}

#[test]
fn bins_are_found_like_cargo_finds_them() {
    let d = project(&[
        ("Cargo.toml", "[package]\nname = \"app\"\nversion = \"0.1.0\"\nedition = \"2021\"\n\n[[bin]]\nname = \"extra\"\npath = \"tools/extra.rs\"\n\n[[bin]]\nname = \"gated\"\npath = \"tools/gated.rs\"\nrequired-features = [\"x\"]\n\n[features]\nx = []\n"),
        ("Cargo.lock", "version = 3\n"),
        ("src/main.rs", "fn main() {}\n"),
        ("src/bin/second.rs", "fn main() {}\n"),
        ("src/bin/third/main.rs", "fn main() {}\n"),
        ("tools/extra.rs", "fn main() {}\n"),
        ("tools/gated.rs", "fn main() {}\n"),
        ("rust-toolchain.toml", "[toolchain]\nchannel = \"1.80.0\"\n"),
    ]);
    let (bins, skipped) = bins_from_manifests(&DirTree(d.path())).unwrap();
    assert_eq!(bins, ["app", "extra", "second", "third"]);
    assert_eq!(skipped.len(), 1);
    let p = detect(d.path()).unwrap();
    assert_eq!(
        p.bins,
        ["app", "extra", "second", "third"],
        "{}",
        p.found_by
    );
    assert_eq!(p.skipped[0].0, "gated");
    assert_eq!(p.channel.as_deref(), Some("1.80.0"));
}

#[test]
fn workspaces_build_their_default_members() {
    let d = project(&[
        ("Cargo.toml", "[workspace]\nmembers = [\"crates/*\"]\n"),
        (
            "crates/a/Cargo.toml",
            "[package]\nname = \"a\"\nversion = \"0.1.0\"\n",
        ),
        ("crates/a/src/main.rs", "fn main() {}\n"),
        (
            "crates/b/Cargo.toml",
            "[package]\nname = \"b-lib\"\nversion = \"0.1.0\"\n",
        ),
        ("crates/b/src/lib.rs", ""),
    ]);
    assert_eq!(bins_from_manifests(&DirTree(d.path())).unwrap().0, ["a"]);
}

#[test]
fn init_refuses_what_it_cannot_pin() {
    let d = project(&[("README", "x")]);
    assert!(matches!(detect(d.path()), Err(ProjectError::NotCargo(_))));
    let d = project(&[(
        "Cargo.toml",
        "[package]\nname = \"x\"\nversion = \"0.1.0\"\n",
    )]);
    let err = detect(d.path()).unwrap_err();
    assert!(err.to_string().contains("cargo generate-lockfile"), "{err}");
}

#[test]
fn the_written_recipe_parses_and_is_not_overwritten() {
    let d = project(&[
        (
            "Cargo.toml",
            "[package]\nname = \"hello\"\nversion = \"0.1.0\"\nedition = \"2021\"\n",
        ),
        ("Cargo.lock", "version = 3\n"),
        ("src/main.rs", "fn main() {}\n"),
        ("rust-toolchain", "1.79\n"),
    ]);
    let p = detect(d.path()).unwrap();
    let pins = pins(d.path());
    let text = render_recipe(&p, &pins);
    let recipe = Recipe::parse(&text).unwrap();
    assert_eq!(recipe.build_type, BuildType::CargoBuild);
    assert_eq!(recipe.outputs, ["target/release/hello"]);
    assert_eq!(
        recipe.rootfs.url,
        "https://kettle-bundle.invalid/rootfs.tar.gz"
    );
    assert_eq!(
        recipe.toolchain.unwrap().sha256.to_hex(),
        pins.toolchain.sha256
    );
    assert!(text.contains("channel \"1.79\""), "{text}");
    // Committed into the user's repository: nothing of the builder's machine.
    let host = d.path().display().to_string();
    assert!(!text.contains(&host), "a host path in the recipe:\n{text}");
    assert!(!text.contains("build/image"), "{text}");
    write_recipe(d.path(), &text, false).unwrap();
    let err = write_recipe(d.path(), &text, false).unwrap_err();
    assert!(matches!(err, ProjectError::Exists(_)), "{err}");
    write_recipe(d.path(), &text, true).unwrap();
    assert_eq!(
        recipe.options,
        RecipeOptions::None,
        "no --bin: cargo's default set"
    );
}

#[test]
fn bins_named_by_bin_are_all_cargo_builds() {
    let d = project(&[
        (
            "Cargo.toml",
            "[package]\nname = \"app\"\nversion = \"0.1.0\"\nedition = \"2021\"\n\n[[bin]]\nname = \"app\"\npath = \"src/main.rs\"\n\n[[bin]]\nname = \"xtask\"\npath = \"src/xtask.rs\"\n",
        ),
        ("Cargo.lock", "version = 3\n"),
        ("src/main.rs", "fn main() {}\n"),
        ("src/xtask.rs", "fn main() {}\n"),
    ]);
    let mut p = detect(d.path()).unwrap();
    select_bins(&mut p, &["app".into()]).unwrap();
    let text = render_recipe(&p, &pins(d.path()));
    let recipe = Recipe::parse(&text).unwrap();
    assert_eq!(recipe.outputs, ["target/release/app"]);
    match &recipe.options {
        RecipeOptions::Cargo(o) => assert_eq!(o.bins, ["app"]),
        other => panic!("expected [cargo] bins, got {other:?}\n{text}"),
    }
    assert_eq!(
        BuildType::CargoBuild.recipe().command(&recipe)[5..],
        ["--bin", "app"]
    );
}

fn bins_project(bins: &[&str]) -> CargoProject {
    CargoProject {
        dir: PathBuf::from("/p"),
        bins: bins.iter().map(|b| b.to_string()).collect(),
        skipped: Vec::new(),
        channel: None,
        found_by: "test",
        named_bins: false,
    }
}

#[test]
fn xtask_is_build_tooling_not_an_output_unless_named() {
    let mut p = bins_project(&["app", "xtask"]);
    select_bins(&mut p, &[]).unwrap();
    assert_eq!(p.bins, ["app"]);
    assert_eq!(
        p.skipped,
        [(
            "xtask".to_string(),
            "build tooling by convention; `kettle init --bin NAME` lists exactly the binaries named"
                .to_string()
        )]
    );
    let mut p = bins_project(&["app", "xtask", "other"]);
    select_bins(&mut p, &["xtask".into(), "other".into()]).unwrap();
    assert_eq!(p.bins, ["xtask", "other"]);
    assert_eq!(p.skipped[0].1, "not named by --bin");
}

#[test]
fn bin_names_a_binary_the_project_builds() {
    let mut p = bins_project(&["app", "xtask"]);
    let err = select_bins(&mut p, &["apps".into()]).unwrap_err();
    assert_eq!(
        err.to_string(),
        "--bin apps: not a binary that `cargo build --release` builds here (binaries: app, xtask)"
    );
    let mut p = bins_project(&["xtask"]);
    assert!(matches!(
        select_bins(&mut p, &[]),
        Err(ProjectError::NoBins(_))
    ));
}

fn git(dir: &Path, args: &[&str]) {
    let ok = std::process::Command::new("git")
        .arg("-C")
        .arg(dir)
        .args(args)
        .output()
        .unwrap();
    assert!(ok.status.success(), "git {args:?}: {ok:?}");
}

#[test]
fn uncommitted_lockfiles_and_path_dependencies_are_warned_about_with_the_fix() {
    let d = project(&[
        (
            "Cargo.toml",
            "[package]\nname = \"app\"\nversion = \"0.1.0\"\n\n[dependencies]\nhelper = { path = \"helper\" }\n",
        ),
        ("Cargo.lock", "version = 3\n"),
        (
            "helper/Cargo.toml",
            "[package]\nname = \"helper\"\nversion = \"0.1.0\"\n",
        ),
        (".gitignore", "Cargo.lock\n"),
    ]);
    let shown = d.path().display().to_string();
    let deps = path_dependencies(&DirTree(d.path())).unwrap();
    assert_eq!(
        commit_warnings(d.path(), &deps),
        [format!(
            "{shown} is not a git checkout: kettle build builds a commit; run `git -C {shown} init` and commit the project with Cargo.lock and kettle.toml"
        )]
    );
    git(d.path(), &["init", "-q"]);
    assert_eq!(
        commit_warnings(d.path(), &deps),
        [
            format!("Cargo.lock is ignored by git (a .gitignore rule), so no commit carries it and cargo-build/v1 cannot build: `git -C {shown} add -f Cargo.lock`, then commit"),
            format!("Cargo.toml: path dependency helper (helper) is not committed: `git -C {shown} add helper`, then commit"),
        ]
    );
    fs::write(d.path().join(".gitignore"), "target\n").unwrap();
    assert_eq!(
        commit_warnings(d.path(), &deps)[0],
        format!("Cargo.lock is not committed: `git -C {shown} add Cargo.lock` before the commit you build")
    );
    git(d.path(), &["add", "-A"]);
    assert_eq!(commit_warnings(d.path(), &deps), Vec::<String>::new());
}
