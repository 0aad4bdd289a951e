//! The build sandbox as the build sees it: each probe script records why each
//! thing it tries is denied, so a probe that fails for an unrelated reason
//! cannot pass. The build never sees the attestation device, the PSP port, the
//! disks, pid 1's memory or the network, even when the world around
//! kettle-init has them (a fake /dev in a mount namespace), and stays
//! sandboxed when kettle-init runs unprivileged (in a user namespace, see the
//! sandbox module docs for what that weakens). These tests need root to set
//! the scene.

use std::fs;
use std::net::TcpListener;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::Command;

use kettle_testkit::fixtures::PROBE_FN;
use kettle_testkit::Scenario;
use nix::mount::{mount, MsFlags};
use nix::sched::{unshare, CloneFlags};
use nix::sys::stat::{makedev, mknod, Mode, SFlag};

use crate::common::build_unattested;

/// Where the probe scripts write what they found.
const PROBE_OUTPUT: &str = "out/probe.txt";
/// The probe line listing the sandbox's private /dev: only these nodes and links.
const PRIVATE_DEV: &str = "dev=fd full null random stderr stdin stdout urandom zero \n";

/// A `kettle-init --local` directory at `base/dir` for a script/v1 build running the
/// probes `body` ([`probe_script`]).
fn probe_dir(base: &Path, body: &str) -> PathBuf {
    let sc = Scenario::script(&probe_script(body), &[PROBE_OUTPUT]).commit();
    sc.write_local_dir(&base.join("dir"))
}

/// Asserts that the test runs as root; `why` ends the message "this test ...".
fn assert_root(why: &str) {
    assert!(nix::unistd::geteuid().is_root(), "this test {why}");
}

/// A build script defining `probe` ([`PROBE_FN`]) and running `body` into [`PROBE_OUTPUT`].
fn probe_script(body: &str) -> String {
    format!("mkdir -p out\n{PROBE_FN}\n{{\n{body}\n}} > {PROBE_OUTPUT}")
}

/// What the probe wrote, from the output dir `out`.
fn probe_found(out: &Path) -> String {
    fs::read_to_string(out.join("artifacts").join(PROBE_OUTPUT)).unwrap()
}

/// `kettle-init --local dir`, not yet run.
fn kettle_init_local(dir: &Path) -> Command {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_kettle-init"));
    cmd.arg("--local").arg(dir);
    cmd
}

/// Probe script lines: a TCP connection to 127.0.0.1:`port`, a write to the rootfs,
/// the build's ids and its /dev listing.
fn net_rootfs_and_id_probes(port: u16, id_args: &str) -> String {
    format!(
        r#"if err=$( {{ exec 3<>/dev/tcp/127.0.0.1/{port}; }} 2>&1 ); then echo "net OPEN"; else echo "net denied: ${{err##*: }}"; fi
if err=$( {{ echo x > /bin/owned; }} 2>&1 ); then echo "rootfs OPEN"; else echo "rootfs denied: ${{err##*: }}"; fi
echo "{id_args}"
echo "dev=$(ls /dev | tr '\n' ' ')""#
    )
}

/// Asserts what [`net_rootfs_and_id_probes`] found: no network (its own network namespace,
/// loopback down), a read-only rootfs, the id line `ids` and only the private /dev.
fn assert_no_network_read_only_rootfs(probe: &str, ids: &str) {
    assert_denied(
        probe,
        &[
            ("net", "Network is unreachable"),
            ("rootfs", "Read-only file system"),
        ],
    );
    assert!(probe.contains(&format!("{ids}\n")), "{probe}");
    assert!(probe.contains(PRIVATE_DEV), "{probe}");
}

/// Probe script lines: the build's session and terminal (from /proc/$$/stat: session id
/// and tty_nr), whether /dev/tty exists and opens, and what its fds are.
const SESSION_PROBES: &str = r#"read -r stat < /proc/$$/stat; set -- ${stat##*) }
echo "session: pid=$$ sid=$4 tty_nr=$5"
if [ -e /dev/tty ]; then echo "devtty present"; else echo "devtty absent"; fi
probe /dev/tty
echo "fds: $(ls -l /proc/$$/fd/ | tr '\n' ' ')""#;

/// Asserts the session probes found a session of the build's own, no terminal and no /dev/tty.
fn assert_own_session_without_terminal(probe: &str) {
    let line = probe
        .lines()
        .find(|l| l.starts_with("session: "))
        .unwrap_or_else(|| panic!("no session probe in:\n{probe}"));
    let field = |k: &str| {
        line.split_whitespace()
            .find_map(|w| w.strip_prefix(k))
            .unwrap_or_else(|| panic!("{k} missing in {line}"))
            .to_string()
    };
    assert_eq!(field("sid="), field("pid="), "not its own session: {line}");
    assert_eq!(
        field("tty_nr="),
        "0",
        "it has a controlling terminal: {line}"
    );
    assert!(probe.contains("devtty absent\n"), "{probe}");
    assert_denied(probe, &[("/dev/tty", "No such file or directory")]);
    let fds = probe.lines().find(|l| l.starts_with("fds: ")).unwrap();
    assert!(!fds.contains("/dev/pts") && !fds.contains("ptmx"), "{fds}");
}

/// Opens a pseudo-terminal: (master, slave path).
fn open_pty() -> (fs::File, PathBuf) {
    use std::os::fd::FromRawFd;
    // SAFETY: libc pty calls on the descriptor just opened; `name` is a local buffer whose
    // length is passed, and ptsname_r NUL-terminates it before CStr reads it.
    unsafe {
        let m = nix::libc::posix_openpt(nix::libc::O_RDWR | nix::libc::O_NOCTTY);
        assert!(m >= 0, "posix_openpt: {}", std::io::Error::last_os_error());
        assert_eq!(nix::libc::grantpt(m), 0);
        assert_eq!(nix::libc::unlockpt(m), 0);
        let mut name = [0 as nix::libc::c_char; 128];
        assert_eq!(nix::libc::ptsname_r(m, name.as_mut_ptr(), name.len()), 0);
        let slave = std::ffi::CStr::from_ptr(name.as_ptr())
            .to_str()
            .unwrap()
            .to_string();
        (fs::File::from_raw_fd(m), PathBuf::from(slave))
    }
}

/// Runs `cmd` with the pty slave `slave` as its controlling terminal and stdin/stdout/stderr.
fn on_terminal(cmd: &mut Command, slave: &Path) {
    let slave = std::ffi::CString::new(slave.as_os_str().as_encoded_bytes()).unwrap();
    // SAFETY: the hook runs between fork and exec and makes only raw system calls on the
    // C string built before the fork (no allocation).
    unsafe {
        cmd.pre_exec(move || {
            if nix::libc::setsid() < 0 {
                return Err(std::io::Error::last_os_error());
            }
            // Opening a tty without O_NOCTTY as a session leader makes it the controlling one.
            let fd = nix::libc::open(slave.as_ptr(), nix::libc::O_RDWR);
            if fd < 0 || nix::libc::ioctl(fd, nix::libc::TIOCSCTTY, 0) < 0 {
                return Err(std::io::Error::last_os_error());
            }
            for target in 0..3 {
                nix::libc::dup2(fd, target);
            }
            Ok(())
        });
    }
}

#[test]
fn the_build_has_its_own_session_and_never_the_terminal_kettle_init_runs_on() {
    // kettle-init --local started from a terminal (a pty here): the build must not be able
    // to read it or push input into it (TIOCSTI needs a descriptor: /dev/tty, or an
    // inherited fd), and must lead a session of its own.
    let base = tempfile::tempdir().unwrap();
    let dir = probe_dir(base.path(), SESSION_PROBES);
    let (master, slave) = open_pty();
    // Drain the terminal so kettle-init's log never blocks on it.
    let drain = std::thread::spawn(move || {
        let mut seen = Vec::new();
        let _ = std::io::Read::read_to_end(&mut &master, &mut seen);
        seen
    });
    let mut cmd = kettle_init_local(&dir);
    on_terminal(&mut cmd, &slave);
    let status = cmd.status().unwrap();
    let log = String::from_utf8_lossy(&drain.join().unwrap()).into_owned();
    assert!(status.success(), "kettle-init --local failed:\n{log}");
    assert_own_session_without_terminal(&probe_found(&dir.join("out")));
}

#[test]
fn the_build_cannot_make_a_user_namespace() {
    // seccomp: unshare(CLONE_NEWUSER) is EPERM, in root (guest) mode and rootless mode alike.
    let script = r#"mkdir -p out
{ if err=$(unshare -U sh -c 'echo made' 2>&1); then echo "userns OPEN: $err"; else echo "userns denied: ${err##*: }"; fi
  if err=$(unshare -U -r sh -c 'echo made' 2>&1); then echo "userns-root OPEN: $err"; else echo "userns-root denied: ${err##*: }"; fi
} > out/probe.txt"#;
    let sc = Scenario::script(script, &[PROBE_OUTPUT])
        .rootfs_binaries(&["unshare"])
        .commit();
    let (_, out) = build_unattested(&sc);
    let probe = probe_found(&out);
    let denied = [
        ("userns", "Operation not permitted"),
        ("userns-root", "Operation not permitted"),
    ];
    assert_denied(&probe, &denied);

    // Rootless: kettle-init as nobody builds in a user namespace of its own; the build
    // still cannot make another.
    let base = tempfile::tempdir().unwrap();
    let dir = sc.write_local_dir(&base.path().join("dir"));
    let probe = run_as_nobody(base.path(), &dir);
    assert_denied(&probe, &denied);
}

/// Runs `kettle-init --local dir` as nobody (chowning `base` to it); returns the probe output.
fn run_as_nobody(base: &Path, dir: &Path) -> String {
    let status = Command::new("chown")
        .args(["-R", &format!("{NOBODY}:{NOBODY}")])
        .arg(base)
        .status()
        .unwrap();
    assert!(status.success());
    let out = kettle_init_local(dir)
        .env("TMPDIR", base)
        .uid(NOBODY)
        .gid(NOBODY)
        .output()
        .unwrap();
    let log = String::from_utf8_lossy(&out.stderr);
    assert!(
        out.status.success(),
        "kettle-init --local as nobody failed:\n{log}"
    );
    probe_found(&dir.join("out"))
}

/// Asserts each `(what, why)` was probed and denied for exactly that reason.
fn assert_denied(probe: &str, denials: &[(&str, &str)]) {
    for (what, why) in denials {
        assert!(
            probe.contains(&format!("{what} denied: {why}\n")),
            "{what} was not denied with {why:?}:\n{probe}"
        );
    }
}

#[test]
fn the_sandbox_denies_devices_proc_mem_and_network() {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    listener.set_nonblocking(true).unwrap();
    let port = listener.local_addr().unwrap().port();
    // Each probe records why it failed, so a probe that fails for an unrelated reason cannot pass.
    let net_rootfs_and_ids =
        net_rootfs_and_id_probes(port, "uid=$(id -u) gid=$(id -g) groups=$(id -G)");
    let script = probe_script(&format!(
        r#"set -u
probe /dev/sev-guest
probe /dev/vda
probe /dev/virtio-ports/kettle.psp
probe /dev/vport0p1
probe /proc/1/mem
probe /proc/1/environ
probe /sys/kernel/config/tsm/report
{net_rootfs_and_ids}
echo "pid=$$"
{SESSION_PROBES}"#
    ));
    let sc = Scenario::script(&script, &[PROBE_OUTPUT]).commit();
    let (_, out) = build_unattested(&sc);
    let probe = probe_found(&out);
    assert_denied(
        &probe,
        &[
            // Not in the private /dev at all (the host's /dev/vda, the disks and ports, never exist there).
            ("/dev/sev-guest", "No such file or directory"),
            ("/dev/vda", "No such file or directory"),
            ("/dev/virtio-ports/kettle.psp", "No such file or directory"),
            ("/dev/vport0p1", "No such file or directory"),
            // pid 1 of the sandbox is root and non-dumpable.
            ("/proc/1/mem", "Permission denied"),
            ("/proc/1/environ", "Permission denied"),
            // No /sys (and so no configfs-tsm) is mounted.
            ("/sys/kernel/config/tsm/report", "No such file or directory"),
        ],
    );
    assert_no_network_read_only_rootfs(&probe, "uid=1000 gid=1000 groups=1000");
    assert_own_session_without_terminal(&probe);
    // The build is not pid 1 of its namespace: the non-dumpable sandbox init is.
    assert!(!probe.contains("pid=1\n"), "{probe}");
    // Nothing reached the host's listener.
    assert!(
        listener.accept().is_err(),
        "the sandbox connected to the host network"
    );
}

#[test]
fn fake_attestation_devices_outside_are_absent_inside() {
    assert_root("builds a fake /dev in a mount namespace");
    let base = tempfile::tempdir().unwrap();
    let dir = probe_dir(
        base.path(),
        "probe /dev/sev-guest; probe /dev/virtio-ports/kettle.psp; probe /dev/kettle-psp-port",
    );
    // The fake /dev kettle-init will see: working null/zero/urandom plus the "attestation" nodes.
    let fake_dev = base.path().join("fake-dev");
    fs::create_dir_all(fake_dev.join("virtio-ports")).unwrap();
    for (name, minor) in [
        ("null", 3),
        ("zero", 5),
        ("urandom", 9),
        ("sev-guest", 3),
        ("kettle-psp-port", 3),
    ] {
        mknod(
            &fake_dev.join(name),
            SFlag::S_IFCHR,
            Mode::from_bits_truncate(0o666),
            makedev(1, minor),
        )
        .unwrap();
    }
    std::os::unix::fs::symlink(
        "../kettle-psp-port",
        fake_dev.join("virtio-ports/kettle.psp"),
    )
    .unwrap();
    assert!(fs::metadata(fake_dev.join("virtio-ports/kettle.psp")).is_ok());

    let in_fake_dev_namespace = |cmd: &mut Command| {
        let dev = fake_dev.clone();
        // SAFETY: the hook runs between fork and exec and makes only system calls (nix
        // builds the short paths on the stack).
        unsafe {
            cmd.pre_exec(move || {
                unshare(CloneFlags::CLONE_NEWNS)?;
                mount(
                    None::<&str>,
                    "/",
                    None::<&str>,
                    MsFlags::MS_REC | MsFlags::MS_PRIVATE,
                    None::<&str>,
                )?;
                mount(
                    Some(&dev),
                    "/dev",
                    None::<&str>,
                    MsFlags::MS_BIND,
                    None::<&str>,
                )?;
                Ok(())
            });
        }
    };
    // Control: in that namespace the fake nodes are there for anyone who looks.
    let mut control = Command::new("sh");
    control.args([
        "-c",
        "test -c /dev/sev-guest && test -c /dev/virtio-ports/kettle.psp",
    ]);
    in_fake_dev_namespace(&mut control);
    assert!(
        control.status().unwrap().success(),
        "the fake devices are not visible outside the sandbox"
    );

    let mut cmd = kettle_init_local(&dir);
    in_fake_dev_namespace(&mut cmd);
    let out = cmd.output().unwrap();
    assert!(
        out.status.success(),
        "kettle-init --local failed:\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let probe = probe_found(&dir.join("out"));
    let absent = "No such file or directory";
    assert_denied(
        &probe,
        &[
            ("/dev/sev-guest", absent),
            ("/dev/virtio-ports/kettle.psp", absent),
            ("/dev/kettle-psp-port", absent),
        ],
    );
}

const NOBODY: u32 = 65534;

#[test]
fn unprivileged_local_mode_still_sandboxes_the_build() {
    assert_root("sets up as root and drops to nobody");
    let base = tempfile::tempdir().unwrap();
    let net_rootfs_and_ids = net_rootfs_and_id_probes(9, "uid=$(id -u) gid=$(id -g)");
    let probes =
        format!("probe /proc/1/mem\nprobe /dev/vda\n{net_rootfs_and_ids}\n{SESSION_PROBES}");
    let dir = probe_dir(base.path(), &probes);
    let probe = run_as_nobody(base.path(), &dir);
    assert_own_session_without_terminal(&probe);
    assert_denied(
        &probe,
        &[
            ("/proc/1/mem", "Permission denied"),
            ("/dev/vda", "No such file or directory"),
        ],
    );
    assert_no_network_read_only_rootfs(&probe, "uid=1000 gid=1000");
}

#[test]
fn the_build_can_create_only_the_socket_families_its_network_namespace_isolates() {
    // A fresh network namespace does not cover AF_VSOCK (a way to the VM host, and from
    // local mode on a VM host, to its hypervisor) nor netlink: seccomp lets the build create
    // AF_UNIX, AF_INET and AF_INET6 sockets only, as root (the guest's sandbox) and in
    // rootless local mode alike. perl's socket() takes the raw numbers (no module needed).
    let families = [
        ("AF_UNIX", nix::libc::AF_UNIX, nix::libc::SOCK_STREAM),
        ("AF_INET", nix::libc::AF_INET, nix::libc::SOCK_STREAM),
        ("AF_INET6", nix::libc::AF_INET6, nix::libc::SOCK_STREAM),
        ("AF_VSOCK", nix::libc::AF_VSOCK, nix::libc::SOCK_STREAM),
        ("AF_NETLINK", nix::libc::AF_NETLINK, nix::libc::SOCK_RAW),
        ("AF_PACKET", nix::libc::AF_PACKET, nix::libc::SOCK_RAW),
    ];
    let perl: String = families
        .iter()
        .map(|(name, af, ty)| {
            format!("print socket(S, {af}, {ty}, 0) ? \"{name} OPEN\\n\" : \"{name} denied: $!\\n\"; close S; ")
        })
        .collect();
    let script = format!("mkdir -p out\nperl -e '{perl}' > {PROBE_OUTPUT}");
    let sc = Scenario::script(&script, &[PROBE_OUTPUT])
        .rootfs_binaries(&["perl"])
        .commit();
    let refused = "Address family not supported by protocol";
    let denied = [
        ("AF_VSOCK", refused),
        ("AF_NETLINK", refused),
        ("AF_PACKET", refused),
    ];
    let (_, out) = build_unattested(&sc);
    let probe = probe_found(&out);
    assert_denied(&probe, &denied);
    for open in ["AF_UNIX OPEN\n", "AF_INET OPEN\n", "AF_INET6 OPEN\n"] {
        assert!(probe.contains(open), "{open:?} missing:\n{probe}");
    }

    let base = tempfile::tempdir().unwrap();
    let dir = sc.write_local_dir(&base.path().join("dir"));
    let probe = run_as_nobody(base.path(), &dir);
    assert_denied(&probe, &denied);
    assert!(probe.contains("AF_UNIX OPEN\n"), "{probe}");
}
