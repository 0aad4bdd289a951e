//! `kettle-init --local` run by an unprivileged user: the build is still
//! sandboxed, in a user namespace (see the sandbox module docs for what that
//! weakens). Needs root to set the scene (it drops to nobody for the run).

use std::fs;
use std::os::unix::process::CommandExt;
use std::path::Path;
use std::process::Command;

use kettle_init::cache::CacheWriter;
use kettle_init::digest::sha256_bytes;
use kettle_init::request::{BuildRequest, FetchMode, Limits, ObjectFormat, Tee, REQUEST_SCHEMA};

const NOBODY: u32 = 65534;

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

#[test]
fn unprivileged_local_mode_still_sandboxes_the_build() {
    assert!(
        nix::unistd::geteuid().is_root(),
        "this test sets up as root and drops to nobody"
    );
    let base = tempfile::tempdir().unwrap();
    let repo = base.path().join("repo");
    let dir = base.path().join("dir");
    fs::create_dir_all(&repo).unwrap();
    let rootfs =
        kettle_init::hostroot::host_binaries_tar(&["bash", "mkdir", "id", "ls", "tr"]).unwrap();
    let script = r#"mkdir -p out
probe() { if err=$( { exec 3<"$1"; } 2>&1 ); then echo "$1 OPEN"; else echo "$1 denied: ${err##*: }"; fi; }
{
probe /proc/1/mem
probe /dev/vda
if err=$( { exec 3<>/dev/tcp/127.0.0.1/9; } 2>&1 ); then echo "net OPEN"; else echo "net denied: ${err##*: }"; fi
if err=$( { echo x > /bin/owned; } 2>&1 ); then echo "rootfs OPEN"; else echo "rootfs denied: ${err##*: }"; fi
echo "uid=$(id -u) gid=$(id -g)"
echo "dev=$(ls /dev | tr '\n' ' ')"
} > out/probe.txt"#;
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
    let archive = base.path().join("src.tar");
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
        invocation_id: "rootless-1".into(),
        limits: Limits::default(),
        upstream: None,
    };
    fs::write(
        dir.join("request.json"),
        serde_json::to_vec(&request).unwrap(),
    )
    .unwrap();
    let status = Command::new("chown")
        .args(["-R", &format!("{NOBODY}:{NOBODY}")])
        .arg(base.path())
        .status()
        .unwrap();
    assert!(status.success());

    let out = Command::new(env!("CARGO_BIN_EXE_kettle-init"))
        .arg("--local")
        .arg(&dir)
        .env("TMPDIR", base.path())
        .uid(NOBODY)
        .gid(NOBODY)
        .output()
        .unwrap();
    let log = String::from_utf8_lossy(&out.stderr);
    assert!(
        out.status.success(),
        "kettle-init --local as nobody failed:\n{log}"
    );
    let probe = fs::read_to_string(dir.join("out/artifacts/out/probe.txt")).unwrap();
    for (what, why) in [
        ("/proc/1/mem", "Permission denied"),
        ("/dev/vda", "No such file or directory"),
        ("net", "Network is unreachable"),
        ("rootfs", "Read-only file system"),
    ] {
        assert!(
            probe.contains(&format!("{what} denied: {why}\n")),
            "{what} was not denied with {why:?}:\n{probe}"
        );
    }
    assert!(probe.contains("uid=1000 gid=1000\n"), "{probe}");
    assert!(
        probe.contains("dev=fd full null random stderr stdin stdout tty urandom zero \n"),
        "{probe}"
    );
}
