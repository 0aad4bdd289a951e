//! `kettle build` under SIGINT, SIGTERM and SIGHUP, and without a terminal:
//! the testkit's kettle-fake-qemu plays a guest that hangs (and starts a helper in its
//! process group); the signal must stop QEMU's whole group, remove the work
//! dir, the sparse disks, the staging dir and the PSP socket, write nothing
//! to --out and exit 128+signo. `--local` does the same with a stand-in
//! kettle-init that ignores SIGTERM. A slow guest gets heartbeat lines, and
//! the output carries no escape codes.

use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use kettle_testkit::cli::text;
use kettle_testkit::stand_in::{leftovers, StandInProject, MODE_VAR, PIDFILE_VAR, SLEEP_VAR};
use rustix::process::Signal;

/// `kettle build` of the stand-in project with `extra`, as from a script: no terminal, output captured.
fn command(f: &StandInProject, extra: &[&str]) -> Command {
    let mut cmd = f.build(env!("CARGO_BIN_EXE_kettle"), extra);
    cmd.env_remove("NO_COLOR")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    cmd
}

/// Waits for `path` to appear (the stand-in guest started), or panics.
fn wait_for(path: &Path, child: &mut Child) -> String {
    let start = Instant::now();
    while start.elapsed() < Duration::from_secs(60) {
        if let Ok(t) = fs::read_to_string(path) {
            return t;
        }
        if let Ok(Some(status)) = child.try_wait() {
            panic!("kettle build ended early with {status}");
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    panic!("{} never appeared", path.display());
}

/// True while `pid` is a live (not zombie) process.
fn alive(pid: &str) -> bool {
    match fs::read_to_string(format!("/proc/{pid}/stat")) {
        Ok(stat) => stat
            .rsplit_once(") ")
            .is_some_and(|(_, rest)| !rest.starts_with('Z')),
        Err(_) => false,
    }
}

fn send(child: &Child, signal: Signal) {
    let pid = rustix::process::Pid::from_raw(child.id() as i32).unwrap();
    rustix::process::kill_process(pid, signal).unwrap();
}

/// Starts `cmd` and waits for the stand-in to write `pidfile`; returns the build and the file's lines.
fn start(cmd: &mut Command, pidfile: &Path) -> (Child, Vec<String>) {
    let mut child = cmd.spawn().unwrap();
    let pids = wait_for(pidfile, &mut child);
    (child, pids.lines().map(String::from).collect())
}

/// Sends `signal` to the build and asserts it stopped as it must: exit `code` naming the
/// signal `name`, nothing at --out, nothing left beside it. Returns what it printed.
fn interrupt(f: &StandInProject, child: Child, signal: Signal, code: i32, name: &str) -> String {
    send(&child, signal);
    let out = child.wait_with_output().unwrap();
    let t = text(&out);
    assert_eq!(out.status.code(), Some(code), "{t}");
    assert!(t.contains(&format!("interrupted by {name}")), "{t}");
    assert!(!f.out.exists(), "--out was written");
    assert!(leftovers(&f.out).is_empty(), "{:?}", leftovers(&f.out));
    t
}

fn interrupt_cvm(signal: Signal, code: i32, name: &str) {
    let f = StandInProject::create();
    let pidfile = f.root.path().join("qemu.pids");
    let (child, pids) = start(
        command(&f, &[])
            .env(MODE_VAR, "hang")
            .env(PIDFILE_VAR, &pidfile),
        &pidfile,
    );
    let (qemu, helper, socket) = (&pids[0], &pids[1], Path::new(&pids[2]));
    assert!(alive(qemu) && alive(helper));
    assert!(socket.exists(), "the PSP socket is there while QEMU runs");
    let t = interrupt(&f, child, signal, code, name);
    assert!(t.contains("nothing written to"), "{t}");
    assert!(!alive(qemu), "QEMU outlived the build");
    assert!(!alive(helper), "QEMU's process group outlived the build");
    assert!(
        !socket.exists(),
        "the PSP socket is left: {}",
        socket.display()
    );
    assert!(
        !socket.parent().unwrap().exists(),
        "the PSP socket dir is left"
    );
}

#[test]
fn sigterm_stops_qemu_and_its_group_and_exits_143() {
    interrupt_cvm(Signal::TERM, 143, "SIGTERM");
}

#[test]
fn sighup_stops_qemu_and_exits_129() {
    interrupt_cvm(Signal::HUP, 129, "SIGHUP");
}

#[test]
fn sigint_stops_qemu_and_exits_130() {
    interrupt_cvm(Signal::INT, 130, "SIGINT");
}

/// A stand-in kettle-init for `--local`: records its pid and a helper's, ignores
/// SIGTERM (so kettle must kill it), and never finishes.
fn stubborn_init(dir: &Path, pidfile: &Path) -> PathBuf {
    let path = dir.join("kettle-init");
    fs::write(
        &path,
        format!(
            "#!/bin/sh\ntrap '' TERM INT HUP\nsleep 3600 &\necho $$ > {p}.tmp\necho $! >> {p}.tmp\nmv {p}.tmp {p}\nwhile :; do sleep 1; done\n",
            p = pidfile.display()
        ),
    )
    .unwrap();
    use std::os::unix::fs::PermissionsExt;
    fs::set_permissions(&path, fs::Permissions::from_mode(0o755)).unwrap();
    path
}

fn interrupt_local(signal: Signal, code: i32, name: &str) {
    let f = StandInProject::create();
    let pidfile = f.root.path().join("init.pids");
    let init = stubborn_init(f.root.path(), &pidfile);
    let (child, pids) = start(
        &mut command(&f, &["--local", "--init", init.to_str().unwrap()]),
        &pidfile,
    );
    let (init_pid, helper) = (&pids[0], &pids[1]);
    interrupt(&f, child, signal, code, name);
    assert!(!alive(init_pid), "kettle-init outlived the build");
    assert!(
        !alive(helper),
        "kettle-init's process group outlived the build"
    );
}

#[test]
fn local_mode_forwards_sigterm_then_kills_and_reaps_kettle_init() {
    interrupt_local(Signal::TERM, 143, "SIGTERM");
}

#[test]
fn local_mode_handles_ctrl_c_like_the_vm_path() {
    interrupt_local(Signal::INT, 130, "SIGINT");
}

#[test]
fn without_a_terminal_a_slow_build_has_heartbeats_durations_and_a_summary() {
    let f = StandInProject::create();
    let out = command(&f, &["--heartbeat", "1"])
        .env(SLEEP_VAR, "3.5")
        .output()
        .unwrap();
    let t = text(&out);
    assert_eq!(out.status.code(), Some(0), "{t}");
    assert!(!t.contains('\x1b'), "escape codes in non-TTY output: {t:?}");
    // The log path comes first, and the log is where it said.
    let log_line = t.lines().find(|l| l.starts_with("build log: ")).unwrap();
    assert!(log_line.contains("build.log"), "{log_line}");
    let beats: Vec<&str> = t
        .lines()
        .filter(|l| l.contains("... still in [build]"))
        .collect();
    assert!(beats.len() >= 2, "{t}");
    assert!(
        beats[0].contains("last console line: Compiling serde_derive v1.0.228"),
        "{}",
        beats[0]
    );
    // Each guest step with its duration, and the host's own steps.
    assert!(t.contains("  [unpack] ok in "), "{t}");
    assert!(t.contains("  [host: resolve the source] ok in "), "{t}");
    assert!(t.contains("  [host: verify the outputs] ok in "), "{t}");
    // The summary: total time, artifact paths, and the verify command.
    assert!(t.contains("built in "), "{t}");
    let artifact = f.out.join("artifacts/out/hello.txt");
    assert!(
        t.contains(&format!("artifact: {}", artifact.display())),
        "{t}"
    );
    let verify = t
        .lines()
        .find(|l| l.trim_start().starts_with("kettle verify "))
        .unwrap_or_else(|| panic!("no verify command: {t}"));
    assert!(
        verify.contains("--allow-simulated") && verify.contains("--source"),
        "{verify}"
    );
    assert!(fs::read_to_string(f.out.join("build.log"))
        .unwrap()
        .contains("Compiling serde_derive"));
}

#[test]
fn no_color_means_no_escape_codes_even_on_errors() {
    let f = StandInProject::create();
    let out = command(&f, &["-v"])
        .env("NO_COLOR", "1")
        .env(MODE_VAR, "fail")
        .output()
        .unwrap();
    let t = text(&out);
    assert_eq!(out.status.code(), Some(1), "{t}");
    assert!(!t.contains('\x1b'), "{t:?}");
}
