//! Shared setup of the integration tests: a committed probe project and a
//! `kettle-init --local` directory (request.json + cache layout) for it.

use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;

use kettle_init::cache::CacheWriter;
use kettle_init::digest::sha256_bytes;
use kettle_init::request::{BuildRequest, FetchMode, Limits, ObjectFormat, Tee, REQUEST_SCHEMA};

fn git(dir: &Path, args: &[&str]) -> Vec<u8> {
    let out = Command::new("git")
        .args([
            "-c",
            "user.name=t",
            "-c",
            "user.email=t@kettle.invalid",
            "-c",
            "commit.gpgsign=false",
        ])
        .args(args)
        .current_dir(dir)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "git {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    out.stdout
}

/// Shell function the probe scripts use: prints "<path> OPEN" or "<path> denied: <why>".
pub const PROBE_FN: &str = r#"probe() { if err=$( { exec 3<"$1"; } 2>&1 ); then echo "$1 OPEN"; else echo "$1 denied: ${err##*: }"; fi; }"#;

/// Under `base`: a git repo whose script/v1 recipe runs `bash -c script` with output
/// out/probe.txt, and a local-mode dir (returned) holding request.json and the inputs.
pub fn probe_project(base: &Path, script: &str) -> PathBuf {
    let repo = base.join("repo");
    let dir = base.join("dir");
    fs::create_dir_all(&repo).unwrap();
    let rootfs =
        kettle_init::hostroot::host_binaries_tar(&["bash", "mkdir", "id", "ls", "tr"]).unwrap();
    let manifest = format!(
        "[build]\ntype = \"script/v1\"\noutputs = [\"out/probe.txt\"]\ncommand = {}\n[rootfs]\nurl = \"https://example.invalid/rootfs.tar\"\nsha256 = \"{}\"\n",
        serde_json::to_string(&["bash", "-c", script]).unwrap(),
        sha256_bytes(&rootfs)
    );
    fs::write(repo.join("kettle.toml"), manifest).unwrap();
    git(&repo, &["init", "-q"]);
    git(&repo, &["add", "-A"]);
    git(&repo, &["commit", "-q", "-m", "probe"]);
    let commit = String::from_utf8(git(&repo, &["rev-parse", "HEAD"]))
        .unwrap()
        .trim()
        .to_string();
    let mut w = CacheWriter::create_dir(&dir).unwrap();
    w.add_commit_object(&commit, &git(&repo, &["cat-file", "commit", "HEAD"]))
        .unwrap();
    let archive = base.join("src.tar");
    fs::write(&archive, git(&repo, &["archive", "--format=tar", "HEAD"])).unwrap();
    w.add_source_archive(&commit, &archive).unwrap();
    w.add_blob_bytes(&rootfs).unwrap();
    w.finish().unwrap();
    let request = BuildRequest {
        schema: REQUEST_SCHEMA.into(),
        repository: "https://example.invalid/repo".into(),
        git_ref: "main".into(),
        commit,
        object_format: ObjectFormat::Sha1,
        mode: FetchMode::Cached,
        tee: Tee::Simulated,
        invocation_id: "probe-1".into(),
        limits: Limits::default(),
        upstream: None,
    };
    fs::write(
        dir.join("request.json"),
        serde_json::to_vec(&request).unwrap(),
    )
    .unwrap();
    dir
}
