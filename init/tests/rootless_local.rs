//! `kettle-init --local` run by an unprivileged user: the build is still
//! sandboxed, in a user namespace (see the sandbox module docs for what that
//! weakens). Needs root to set the scene (it drops to nobody for the run).

mod common;

use std::fs;
use std::os::unix::process::CommandExt;
use std::process::Command;

const NOBODY: u32 = 65534;

#[test]
fn unprivileged_local_mode_still_sandboxes_the_build() {
    assert!(
        nix::unistd::geteuid().is_root(),
        "this test sets up as root and drops to nobody"
    );
    let base = tempfile::tempdir().unwrap();
    let script = format!(
        r#"mkdir -p out
{}
{{
probe /proc/1/mem
probe /dev/vda
if err=$( {{ exec 3<>/dev/tcp/127.0.0.1/9; }} 2>&1 ); then echo "net OPEN"; else echo "net denied: ${{err##*: }}"; fi
if err=$( {{ echo x > /bin/owned; }} 2>&1 ); then echo "rootfs OPEN"; else echo "rootfs denied: ${{err##*: }}"; fi
echo "uid=$(id -u) gid=$(id -g)"
echo "dev=$(ls /dev | tr '\n' ' ')"
}} > out/probe.txt"#,
        common::PROBE_FN
    );
    let dir = common::probe_project(base.path(), &script);
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
