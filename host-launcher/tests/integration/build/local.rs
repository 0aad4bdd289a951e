//! `kettle build --local`: the guest's pipeline as a host process (no VM, no
//! TEE) on a script recipe whose root filesystem is made from this host's
//! sh, mkdir and cat. The output has provenance and artifacts, no evidence,
//! and says plainly that nothing is hardware-attested.

use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;

use kettle_testkit::fixtures::{rootfs, rootfs_pin, script_recipe, PLACEHOLDER_BASE_URL};
use kettle_testkit::GitRepo;

fn run(cmd: &mut Command) -> std::process::Output {
    let out = cmd.output().unwrap();
    assert!(
        out.status.success(),
        "{cmd:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    out
}

/// `kettle build --local` of a script recipe (`command` making `outputs`) committed with
/// `files` in `t/<name>`, on the test rootfs (this host's sh, mkdir, cat...) handed over
/// with --input: the output directory, and kettle's exit and stdout + stderr.
pub(crate) fn local_script_build(
    t: &Path,
    name: &str,
    files: &[(&str, &str)],
    command: &str,
    outputs: &[&str],
) -> (PathBuf, std::process::Output, String) {
    let rootfs_path = t.join("rootfs.tar");
    fs::write(&rootfs_path, rootfs()).unwrap();
    let repo = t.join(name);
    let recipe = script_recipe(
        command,
        outputs,
        &rootfs_pin(&format!("{PLACEHOLDER_BASE_URL}/rootfs.tar")),
        None,
    );
    let git = GitRepo::init(&repo);
    for (file, contents) in files {
        git.write(file, contents);
    }
    git.write("kettle.toml", recipe).commit_all("x");
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
    (out_dir, out, text)
}

#[test]
fn local_build_writes_provenance_and_artifacts_but_no_evidence() {
    let tmp = tempfile::tempdir().unwrap();
    let (out_dir, out, text) = local_script_build(
        tmp.path(),
        "hello",
        &[("greeting.txt", "hi there\n")],
        "mkdir -p out && cat greeting.txt > out/hello.txt",
        &["out/hello.txt"],
    );
    assert!(text.contains("NOT hardware-attested"), "{text}");
    let is_root = String::from_utf8_lossy(&run(Command::new("id").arg("-u")).stdout).trim() == "0";
    if !is_root {
        // The sandbox needs root: the build must fail at its build step, saying so, and leave error.json.
        assert_eq!(out.status.code(), Some(1), "{text}");
        assert!(out_dir.join("error.json").is_file(), "{text}");
        return;
    }
    assert_eq!(out.status.code(), Some(0), "{text}");
    assert_eq!(
        fs::read_to_string(out_dir.join("artifacts/out/hello.txt")).unwrap(),
        "hi there\n"
    );
    let prov = fs::read(out_dir.join("provenance.json")).unwrap();
    assert!(kettle_provenance::jcs::is_canonical(&prov));
    assert!(
        !out_dir.join("evidence").exists(),
        "local mode never has evidence"
    );
    let status: serde_json::Value =
        serde_json::from_slice(&fs::read(out_dir.join("status.json")).unwrap()).unwrap();
    assert_eq!(status["attested"], false, "{status}");
    // And `kettle verify` refuses it plainly (exit 2: nothing to verify).
    let v = Command::new(env!("CARGO_BIN_EXE_kettle"))
        .args(["verify", out_dir.to_str().unwrap()])
        .output()
        .unwrap();
    assert_eq!(v.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&v.stderr).contains("never hardware-attested"));
}

/// A kettle-init stand-in whose output and error.json carry escape sequences (an OSC 52
/// clipboard write, a clear-screen, a green VERIFIED on a line of its own), as a hostile
/// build's would: `kettle build --local` must relay and report every one escaped.
const HOSTILE_INIT: &str = r#"#!/bin/sh
# kettle-init --local DIR --out OUT --work WORK
out="$4"
printf 'relayed \033]52;c;ZXZpbA==\007\033[2J\033[H\n\033[32mVERIFIED\033[0m\n'
printf 'on stderr \033[2J\r\033[32mVERIFIED\033[0m\n' >&2
mkdir -p "$out"
printf '{"ok":false,"step":"build","message":"boom \\u001b]52;c;ZXZpbA==\\u0007\\n\\u001b[32mVERIFIED\\u001b[0m"}' > "$out/error.json"
exit 1
"#;

#[test]
fn local_output_and_failure_reach_the_terminal_escaped() {
    use std::os::unix::fs::PermissionsExt;
    let f = kettle_testkit::stand_in::StandInProject::create();
    let init = f.root.path().join("kettle-init");
    fs::write(&init, HOSTILE_INIT).unwrap();
    fs::set_permissions(&init, fs::Permissions::from_mode(0o755)).unwrap();
    let out = f
        .build(
            env!("CARGO_BIN_EXE_kettle"),
            &["--local", "--init", init.to_str().unwrap()],
        )
        .output()
        .unwrap();
    let text = kettle_testkit::cli::text(&out);
    assert_eq!(out.status.code(), Some(1), "{text}");
    let controls: Vec<char> = text
        .chars()
        .filter(|c| c.is_control() && *c != '\n')
        .collect();
    assert!(
        controls.is_empty(),
        "control characters {controls:?} reached the terminal: {text}"
    );
    // Relayed (stdout and stderr) and reported (error.json), each escaped.
    for needle in [
        "relayed \\u{1b}]52;c;ZXZpbA==\\u{7}\\u{1b}[2J",
        "on stderr \\u{1b}[2J\\u{d}\\u{1b}[32mVERIFIED",
        "kettle build --local: step build failed: boom \\u{1b}]52;c;ZXZpbA==\\u{7}",
    ] {
        assert!(text.contains(needle), "no {needle:?} in: {text}");
    }
    // The work dir's removal (seconds for real inputs) is said once, not left to look like a hang.
    assert_eq!(
        text.matches("kettle build --local: cleaning up the work directory ")
            .count(),
        1,
        "{text}"
    );
    // A line break the build chose may start a line, but never with a live escape sequence.
    assert!(
        text.lines().any(|l| l.starts_with("\\u{1b}[32mVERIFIED")),
        "{text}"
    );
}
