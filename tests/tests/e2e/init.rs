//! Your own project in one command, end to end: a fresh `cargo new` project
//! with one dependency that is a proc-macro (`paste`), `kettle init` (the
//! recipe pinned to the bundles that go with the image), `git commit`,
//! `kettle build . --tee simulated` with the image named by $KETTLE_IMAGE and
//! the bundles found beside it (no --input, no URL invented, no file edited by
//! hand), then the `kettle verify ...` line that build printed, which must say
//! VERIFIED (SIMULATED). Boots build/image under QEMU (TCG + the simulated
//! PSP) with the `make bundles` toolchain and root filesystem; skips off CI
//! when they have not been built; fails on CI.

use std::fs;
use std::os::unix::fs::symlink;
use std::path::{Path, PathBuf};
use std::process::Command;

use kettle_testkit::cli::{assert_built, provenance_with_crates, run_release_binary};
use kettle_testkit::{
    build_dir, kettle_binary, require_cargo_cvm, run, text, CargoCvm, Requirement,
};

/// The image directory to build with: `cvm`'s if it carries bundles.json, else a copy
/// of it (links) with the pins `make bundles` would write and the bundles beside it.
fn image_with_pins(kettle: &Path, cvm: &CargoCvm, tmp: &Path) -> PathBuf {
    let image = &cvm.image;
    if image.join("bundles.json").is_file() {
        return image.to_path_buf();
    }
    let dir = tmp.join("published");
    let copy = dir.join("image");
    fs::create_dir_all(&copy).unwrap();
    for f in ["bzImage", "initramfs.cpio", "OVMF.fd", "manifest.json"] {
        symlink(image.join(f).canonicalize().unwrap(), copy.join(f)).unwrap();
    }
    for b in [&cvm.rootfs, &cvm.toolchain] {
        symlink(b.canonicalize().unwrap(), dir.join(b.file_name().unwrap())).unwrap();
    }
    run(Command::new(kettle)
        .args(["bundle", "pins", "--rootfs"])
        .arg(dir.join("rootfs.tar.gz"))
        .arg("--toolchain")
        .arg(dir.join("toolchain.tar.gz"))
        .arg("--out")
        .arg(copy.join("bundles.json")));
    copy
}

/// Splits one shell command line as POSIX sh would for what `kettle build` prints
/// (words, single quotes).
fn shell_words(line: &str) -> Vec<String> {
    let (mut words, mut word, mut quoted, mut any) = (Vec::new(), String::new(), false, false);
    for c in line.chars() {
        match c {
            '\'' => {
                quoted = !quoted;
                any = true;
            }
            c if c.is_whitespace() && !quoted => {
                if any || !word.is_empty() {
                    words.push(std::mem::take(&mut word));
                }
                any = false;
            }
            c => word.push(c),
        }
    }
    if any || !word.is_empty() {
        words.push(word);
    }
    words
}

#[test]
fn cargo_new_to_verified_with_kettle_init() {
    let Some(cvm) = require_cargo_cvm(Requirement::from_env()) else {
        return;
    };
    let _vm = crate::big_vm();
    let kettle = kettle_binary();
    let tmp = tempfile::tempdir_in(build_dir()).unwrap();
    let image = image_with_pins(&kettle, &cvm, tmp.path());
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    // Outside Kettle's tree: `cargo new` inside a workspace would join it.
    let home = tempfile::tempdir().unwrap();
    let project = home.path().join("myproj");
    // What a user types; the environment only keeps this test's cargo target dir and git
    // identity out of their way.
    let sh = |program: &str, args: &[&str]| {
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
    run(Command::new(&cargo)
        .args(["new", "--vcs", "git", "--quiet"])
        .arg(&project));
    run(&mut sh(&cargo, &["add", "--quiet", "paste@1"]));
    run(&mut sh(&cargo, &["generate-lockfile", "--quiet"]));

    let init = run(&mut sh(kettle.to_str().unwrap(), &["init"]));
    assert!(text(&init).contains("wrote"), "{}", text(&init));
    let recipe = fs::read_to_string(project.join("kettle.toml")).unwrap();
    assert!(
        recipe.contains("outputs = [\"target/release/myproj\"]"),
        "{recipe}"
    );
    run(&mut sh("git", &["add", "-A"]));
    run(&mut sh("git", &["commit", "-q", "-m", "kettle recipe"]));

    // `kettle build . --tee simulated`, with room and time for TCG.
    let build = sh(
        kettle.to_str().unwrap(),
        &[
            "build",
            ".",
            "--tee",
            "simulated",
            "--memory",
            "6144",
            "--timeout",
            "2400",
        ],
    )
    .output()
    .unwrap();
    let out = project.join("out");
    assert_built(&build, &out);
    let said = String::from_utf8_lossy(&build.stderr);
    let line = said
        .lines()
        .map(str::trim)
        .find(|l| l.starts_with("kettle verify "))
        .unwrap_or_else(|| panic!("no verify command printed:\n{said}"));
    let words = shell_words(line);
    let verify = sh(kettle.to_str().unwrap(), &[])
        .args(&words[1..])
        .output()
        .unwrap();
    let v = text(&verify);
    assert_eq!(verify.status.code(), Some(0), "{line}\n{v}");
    assert!(
        v.trim_end()
            .ends_with("VERIFIED (SIMULATED: signed with test keys; nothing is hardware-attested); not checked: report.revocation, report.cert_validity"),
        "{v}"
    );
    provenance_with_crates(&out, &["paste"]);
    assert_eq!(run_release_binary(&out, "myproj").trim(), "Hello, world!");
}

#[test]
fn shell_words_splits_what_kettle_build_prints() {
    assert_eq!(
        shell_words("kettle verify out --ref refs/heads/main --source '/tmp/a b' --x ''"),
        [
            "kettle",
            "verify",
            "out",
            "--ref",
            "refs/heads/main",
            "--source",
            "/tmp/a b",
            "--x",
            ""
        ]
    );
}
