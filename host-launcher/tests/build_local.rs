//! `kettle build --local`: the guest's pipeline as a host process (no VM, no
//! TEE) on a script recipe whose root filesystem is made from this host's
//! sh, mkdir and cat. The output has provenance and artifacts, no evidence,
//! and says plainly that nothing is hardware-attested.

use std::fs;
use std::path::Path;
use std::process::Command;

use sha2::{Digest, Sha256};

fn run(cmd: &mut Command) -> std::process::Output {
    let out = cmd.output().unwrap();
    assert!(
        out.status.success(),
        "{cmd:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    out
}

/// A root filesystem tar with sh, mkdir and cat (and their libraries) from this host, written to `path`.
fn host_rootfs(path: &Path) -> Vec<u8> {
    let tar = kettle_testkit::hostroot::host_binaries_tar(&["mkdir", "cat"]).unwrap();
    fs::write(path, &tar).unwrap();
    tar
}

#[test]
fn local_build_writes_provenance_and_artifacts_but_no_evidence() {
    let tmp = tempfile::tempdir().unwrap();
    let t = tmp.path();
    let rootfs_path = t.join("rootfs.tar");
    let rootfs = host_rootfs(&rootfs_path);
    let repo = t.join("hello");
    fs::create_dir_all(&repo).unwrap();
    fs::write(repo.join("greeting.txt"), "hi there\n").unwrap();
    fs::write(
        repo.join("kettle.toml"),
        format!(
            "[build]\ntype = \"script/v1\"\noutputs = [\"out/hello.txt\"]\n\
             command = [\"sh\", \"-c\", \"mkdir -p out && cat greeting.txt > out/hello.txt\"]\n\n\
             [rootfs]\nurl = \"https://example.invalid/rootfs.tar.gz\"\nsha256 = \"{}\"\n",
            hex::encode(Sha256::digest(&rootfs))
        ),
    )
    .unwrap();
    for args in [
        &["init", "-q", "-b", "main"][..],
        &[
            "-c",
            "user.name=T",
            "-c",
            "user.email=t@example.com",
            "add",
            "-A",
        ],
        &[
            "-c",
            "user.name=T",
            "-c",
            "user.email=t@example.com",
            "commit",
            "-q",
            "-m",
            "x",
        ],
    ] {
        run(Command::new("git").arg("-C").arg(&repo).args(args));
    }
    let out_dir = t.join("out");
    let out = Command::new(env!("CARGO_BIN_EXE_kettle"))
        .args([
            "build",
            repo.to_str().unwrap(),
            "--local",
            "--out",
            out_dir.to_str().unwrap(),
            "--init",
            kettle_testkit::kettle_init_binary().to_str().unwrap(),
        ])
        .args([
            "--cache-dir",
            t.join("cache").to_str().unwrap(),
            "--input",
            rootfs_path.to_str().unwrap(),
        ])
        .output()
        .unwrap();
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
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
