//! The source archive `kettle build` hands the guest is exactly the commit's tree, whatever
//! the repository's `.gitattributes` say: `git archive` would leave out `export-ignore`
//! files and rewrite `export-subst` ones, and the guest's verify step would then refuse the
//! archive (its tree is not the commit's). Run end to end with `kettle build --local`: the
//! guest's own pipeline, tree check included.

use std::fs;
use std::process::Command;

use kettle_testkit::fixtures::{rootfs, rootfs_pin, script_recipe, PLACEHOLDER_BASE_URL};
use kettle_testkit::GitRepo;

#[test]
fn a_repository_using_export_ignore_and_export_subst_builds_from_its_whole_tree() {
    assert!(
        nix_is_root(),
        "this test runs the guest's sandbox, which needs root"
    );
    let tmp = tempfile::tempdir().unwrap();
    let t = tmp.path();
    let rootfs_path = t.join("rootfs.tar");
    fs::write(&rootfs_path, rootfs()).unwrap();
    let repo = t.join("attrs");
    let recipe = script_recipe(
        "mkdir -p out && cat ignored.txt version.txt tests/fixture.txt > out/all.txt",
        &["out/all.txt"],
        &rootfs_pin(&format!("{PLACEHOLDER_BASE_URL}/rootfs.tar")),
        None,
    );
    GitRepo::init(&repo)
        .write(
            ".gitattributes",
            "ignored.txt export-ignore\nversion.txt export-subst\ntests/ export-ignore\n",
        )
        .write("ignored.txt", "export-ignore: git archive leaves me out\n")
        .write("version.txt", "export-subst: $Format:%H$\n")
        .write("tests/fixture.txt", "a whole export-ignored directory\n")
        .write("kettle.toml", recipe)
        .commit_all("x");
    let out_dir = t.join("out");
    let out = Command::new(env!("CARGO_BIN_EXE_kettle"))
        .arg("build")
        .arg(&repo)
        .arg("--local")
        .arg("--out")
        .arg(&out_dir)
        .arg("--init")
        .arg(kettle_testkit::kettle_init_binary())
        .arg("--cache-dir")
        .arg(t.join("cache"))
        .arg("--input")
        .arg(&rootfs_path)
        .output()
        .unwrap();
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(out.status.code(), Some(0), "{text}");
    assert_eq!(
        fs::read_to_string(out_dir.join("artifacts/out/all.txt")).unwrap(),
        "export-ignore: git archive leaves me out\nexport-subst: $Format:%H$\na whole export-ignored directory\n"
    );
}

fn nix_is_root() -> bool {
    let out = Command::new("id").arg("-u").output().unwrap();
    String::from_utf8_lossy(&out.stdout).trim() == "0"
}
