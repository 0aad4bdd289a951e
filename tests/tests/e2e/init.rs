//! Your own project from a release, end to end: `make dist`'s release directory
//! (scripts/dist.sh, with the workspace's kettle as bin/kettle), unpacked where no
//! Kettle clone is, and a fresh `cargo new` project with one dependency that is a
//! proc-macro (`paste`): the release's `kettle init` (the recipe pinned to the
//! release's bundles through $KETTLE_IMAGE), `git commit`, `kettle build --tee
//! simulated --json` (SOURCE is the current directory; the bundles found beside the
//! release's image; no --input, no URL invented, no file edited by hand), then the
//! verify command its result.json names, which must say VERIFIED (SIMULATED). Boots
//! the image under QEMU (TCG + the simulated PSP) with the `make bundles` toolchain
//! and root filesystem; skips off CI when they have not been built; fails on CI.

use std::path::Path;
use std::process::Command;

use kettle::build_pipeline::result::{BuildResult, Outcome, RESULT_FILE};
use kettle_testkit::cli::{assert_built, provenance_with_crates, run_release_binary};
use kettle_testkit::{
    build_dir, kettle_binary, require_cargo_cvm, run, text, CargoCvm, Requirement,
};

/// `make dist` into `dist` from the build directory `cvm` came from, with the workspace's
/// kettle as bin/kettle; returns the release directory.
fn release(cvm: &CargoCvm, dist: &Path) -> std::path::PathBuf {
    let repo = Path::new(env!("CARGO_MANIFEST_DIR")).parent().unwrap();
    let build = cvm.image.parent().unwrap();
    run(Command::new("bash")
        .arg(repo.join("scripts/dist.sh"))
        .env("BUILD", build)
        .env("DIST", dist)
        .env("DIST_KETTLE", kettle_binary()));
    let mut releases: Vec<_> = std::fs::read_dir(dist)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.is_dir())
        .collect();
    assert_eq!(releases.len(), 1, "{releases:?}");
    releases.pop().unwrap()
}

#[test]
fn a_release_takes_cargo_new_to_verified() {
    let Some(cvm) = require_cargo_cvm(Requirement::from_env()) else {
        return;
    };
    let _vm = crate::big_vm();
    let tmp = tempfile::tempdir_in(build_dir()).unwrap();
    let release = release(&cvm, &tmp.path().join("dist"));
    let kettle = release.join("bin/kettle");
    let image = release.join("image");
    run(Command::new("sha256sum")
        .args(["-c", "--quiet", "SHA256SUMS"])
        .current_dir(&release));
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    // Outside Kettle's tree: `cargo new` inside a workspace would join it.
    let home = tempfile::tempdir().unwrap();
    let project = home.path().join("myproj");
    // What a user types; the environment only keeps this test's cargo target dir and git
    // identity out of their way.
    let sh = |program: &Path, args: &[&str]| {
        let mut c = Command::new(program);
        c.args(args)
            .current_dir(&project)
            .env_remove("CARGO_TARGET_DIR")
            .env("KETTLE_IMAGE", &image)
            .env("GIT_AUTHOR_NAME", "k")
            .env("GIT_AUTHOR_EMAIL", "k@kettle.invalid")
            .env("GIT_COMMITTER_NAME", "k")
            .env("GIT_COMMITTER_EMAIL", "k@kettle.invalid");
        c
    };
    let cargo = Path::new(&cargo);
    run(Command::new(cargo)
        .args(["new", "--vcs", "git", "--quiet"])
        .arg(&project));
    run(&mut sh(cargo, &["add", "--quiet", "paste@1"]));
    run(&mut sh(cargo, &["generate-lockfile", "--quiet"]));

    let init = run(&mut sh(&kettle, &["init"]));
    assert!(text(&init).contains("wrote"), "{}", text(&init));
    let recipe = std::fs::read_to_string(project.join("kettle.toml")).unwrap();
    assert!(
        recipe.contains("outputs = [\"target/release/myproj\"]"),
        "{recipe}"
    );
    assert!(!recipe.contains(&*release.to_string_lossy()), "{recipe}");
    let git = Path::new("git");
    run(&mut sh(git, &["add", "-A"]));
    run(&mut sh(git, &["commit", "-q", "-m", "kettle recipe"]));

    // `kettle build --tee simulated --json`, with room and time for TCG.
    let args = [
        "build",
        "--tee",
        "simulated",
        "--json",
        "--memory",
        "6144",
        "--timeout",
        "2400",
    ];
    let build = sh(&kettle, &args).output().unwrap();
    let out = project.join("out");
    assert_built(&build, &out);
    let result: BuildResult = serde_json::from_slice(&build.stdout)
        .unwrap_or_else(|e| panic!("--json printed no result ({e}): {}", text(&build)));
    assert_eq!(
        result,
        serde_json::from_slice(&std::fs::read(out.join(RESULT_FILE)).unwrap()).unwrap()
    );
    assert_eq!(result.outcome, Outcome::Verified);
    assert_eq!(result.artifacts[0].path, "artifacts/target/release/myproj");
    let argv = &result.verify_command;
    let verify = sh(&kettle, &[]).args(&argv[1..]).output().unwrap();
    let v = text(&verify);
    assert_eq!(verify.status.code(), Some(0), "{argv:?}\n{v}");
    assert!(
        v.trim_end()
            .ends_with("VERIFIED (SIMULATED: signed with test keys; nothing is hardware-attested); not checked: report.revocation, report.cert_validity"),
        "{v}"
    );
    provenance_with_crates(&out, &["paste"]);
    assert_eq!(run_release_binary(&out, "myproj").trim(), "Hello, world!");
}
