//! `kettle verify`'s could-not-run message names host paths (the output
//! directory the build host delivered, the files in it): a name with escape
//! sequences must reach the terminal escaped, not drive it.

use std::fs;
use std::process::Command;

use kettle_testkit::cli::text;

#[test]
fn a_could_not_run_message_prints_host_paths_escaped() {
    let root = tempfile::tempdir().unwrap();
    // An output directory named to write the clipboard (OSC 52) and clear the screen,
    // holding provenance.json but no evidence: verify cannot run, and says where.
    let dir = root.path().join("out\u{1b}]52;c;ZXZpbA==\u{7}\u{1b}[2J");
    fs::create_dir(&dir).unwrap();
    fs::write(dir.join("provenance.json"), b"{}").unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_kettle"))
        .arg("verify")
        .arg(&dir)
        .output()
        .unwrap();
    let t = text(&out);
    assert_eq!(out.status.code(), Some(2), "{t}");
    assert!(t.contains("kettle verify: could not run"), "{t}");
    let controls: Vec<char> = t.chars().filter(|c| c.is_control() && *c != '\n').collect();
    assert!(
        controls.is_empty(),
        "{controls:?} reached the terminal: {t}"
    );
    assert!(
        t.contains("out\\u{1b}]52;c;ZXZpbA==\\u{7}\\u{1b}[2J has no evidence"),
        "{t}"
    );
}
