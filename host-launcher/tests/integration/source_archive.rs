//! The source archive `kettle build` hands the guest is exactly the commit's tree, whatever
//! the repository's `.gitattributes` say: `git archive` would leave out `export-ignore`
//! files and rewrite `export-subst` ones, and the guest's verify step would then refuse the
//! archive (its tree is not the commit's). Run end to end with `kettle build --local`: the
//! guest's own pipeline, tree check included.

use std::fs;
use std::process::Command;

#[test]
fn a_repository_using_export_ignore_and_export_subst_builds_from_its_whole_tree() {
    assert!(
        nix_is_root(),
        "this test runs the guest's sandbox, which needs root"
    );
    let tmp = tempfile::tempdir().unwrap();
    let (out_dir, out, text) = crate::build::local::local_script_build(
        tmp.path(),
        "attrs",
        &[
            (
                ".gitattributes",
                "ignored.txt export-ignore\nversion.txt export-subst\ntests/ export-ignore\n",
            ),
            ("ignored.txt", "export-ignore: git archive leaves me out\n"),
            ("version.txt", "export-subst: $Format:%H$\n"),
            ("tests/fixture.txt", "a whole export-ignored directory\n"),
        ],
        "mkdir -p out && cat ignored.txt version.txt tests/fixture.txt > out/all.txt",
        &["out/all.txt"],
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
