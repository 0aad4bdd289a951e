//! The build sandbox: a child in fresh mount, pid, ipc, uts and network
//! namespaces, pivoted into the build root, with a private /dev holding only
//! null, zero, full, random and urandom (never tty, sev-guest, the virtio ports
//! or the disks), a private /proc for its own pid namespace, no network (the new
//! namespace's loopback stays down), resource limits, no_new_privs, a seccomp
//! deny list (`sandbox/seccomp.rs`: no new user namespaces, keyrings, bpf,
//! ptrace, mounts, module loading, ..., and no sockets but AF_UNIX, AF_INET and
//! AF_INET6, the families the network namespace isolates), an unprivileged uid/gid with
//! supplementary groups cleared, and a session of its own with no controlling
//! terminal (stdin is /dev/null, stdout and stderr a pipe to kettle-init).
//!
//! The build's output is relayed line by line to the log with every buffer
//! bounded ([`relay_lines`]): a line longer than [`MAX_LINE_BYTES`] is cut
//! (with a marker), and only the last [`TAIL_BYTES`] are kept for the error
//! message of a failed build, so no output can exhaust kettle-init's memory.
//!
//! Process layout: the caller forks A, which unshares the namespaces and forks
//! B, pid 1 of the new pid namespace. B builds the mounts, pivots, makes itself
//! non-dumpable (so the build cannot open /proc/1/mem) and forks C, which drops
//! privileges, installs the seccomp filters and execs the build. B reaps every orphan and exits with C's
//! status; when B exits the kernel kills whatever the build left behind. The
//! caller enforces the wall-clock limit by killing A (B dies with it through
//! PR_SET_PDEATHSIG). Children only make async-signal-safe calls (raw syscalls,
//! writes of bytes already in memory) between fork and exec, and never allocate:
//! the caller may be multi-threaded, and a lock another thread held at the fork
//! stays held in the child. Failures are sent back over a close-on-exec pipe.
//!
//! Run by root (the guest; local mode as root) the build gets its own uid
//! 1000. Run by anyone else (local mode only), A also unshares a user
//! namespace mapping only the caller's uid/gid to 1000 inside. What that
//! weakens: the build's files belong to the caller on the host; the caller's
//! supplementary groups cannot be dropped (setgroups is denied in the
//! namespace; they appear as the overflow group); /dev nodes are bind mounts
//! of the host's null/zero/... instead of fresh nodes; RLIMIT_NPROC counts all
//! of the caller's processes; and it needs unprivileged user namespaces enabled.
//!
//! This module also defines what every recipe's build sees in there
//! ([`spec_for`], [`prepare_dirs`]): the binds, the environment every build
//! shares, SOURCE_DATE_EPOCH and the limits; the recipe (kettle-wire's
//! `recipe/`) adds its command, its environment and its files in the home. The exec plan the caller computes before it
//! forks is `sandbox/plan.rs`; the child processes live in `sandbox/process.rs`.

mod plan;
mod process;
mod seccomp;

pub use seccomp::{
    ALLOWED_SOCKET_FAMILIES as SECCOMP_ALLOWED_SOCKET_FAMILIES, DENIED as SECCOMP_DENIED,
    DENIED_WITH_NEWUSER as SECCOMP_DENIED_WITH_NEWUSER,
};

use std::collections::VecDeque;
use std::fs;
use std::io::{self, Read, Write};
use std::os::fd::OwnedFd;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use kettle_wire::console;
use kettle_wire::unpack::{Beneath, BeneathError};
use kettle_wire::{Limits, Recipe};
use nix::sys::signal::{kill, Signal};
use nix::sys::wait::{waitpid, WaitPidFlag, WaitStatus};
use nix::unistd::Pid;
use thiserror::Error;

use process::SETUP_FAILED;

/// The unprivileged uid and gid builds run as.
pub const BUILD_UID: u32 = 1000;
/// The unprivileged gid builds run as.
pub const BUILD_GID: u32 = 1000;
/// Device nodes in the sandbox's private /dev: (name, major, minor). No tty: the build
/// has no controlling terminal, and /dev/tty would name kettle-init's, if any.
pub const DEV_NODES: &[(&str, u64, u64)] = &[
    ("null", 1, 3),
    ("zero", 1, 5),
    ("full", 1, 7),
    ("random", 1, 8),
    ("urandom", 1, 9),
];
/// Longest line of build output relayed whole; the rest of a longer line is dropped.
pub const MAX_LINE_BYTES: usize = 8 * 1024;
/// How much of the build's last output is kept for a failed build's error message.
pub const TAIL_BYTES: usize = 16 * 1024;
/// Most bytes of a setup failure message read back from the sandbox.
const MAX_SETUP_MESSAGE_BYTES: u64 = 64 * 1024;

/// A directory made visible inside the sandbox.
#[derive(Debug, Clone)]
pub struct Bind {
    /// Directory outside.
    pub source: PathBuf,
    /// Absolute path inside the sandbox.
    pub target: String,
    /// Whether the build may write to it.
    pub writable: bool,
}

/// Resource limits applied to the build processes.
#[derive(Debug, Clone, Copy)]
pub struct SandboxLimits {
    /// Wall-clock limit (the whole sandbox is killed after it).
    pub wall_seconds: u64,
    /// RLIMIT_CPU per process.
    pub cpu_seconds: u64,
    /// RLIMIT_DATA per process, if any.
    pub data_bytes: Option<u64>,
    /// RLIMIT_FSIZE: largest file a build may write.
    pub file_bytes: u64,
    /// RLIMIT_NPROC for the build uid.
    pub processes: u64,
    /// RLIMIT_NOFILE.
    pub open_files: u64,
}

/// What to run and how.
#[derive(Debug, Clone)]
pub struct SandboxSpec {
    /// Directory that becomes `/` (mounted read-only).
    pub root: PathBuf,
    /// Host directories bound read-only at the same path (local host-tools mode only; empty in the guest).
    pub host_dirs: Vec<PathBuf>,
    /// Extra binds (source, toolchain, vendored crates, home).
    pub binds: Vec<Bind>,
    /// argv; `argv[0]` is looked up in PATH inside the sandbox when it has no '/'.
    pub argv: Vec<String>,
    /// The complete environment.
    pub env: Vec<(String, String)>,
    /// Working directory inside the sandbox.
    pub cwd: String,
    /// Limits.
    pub limits: SandboxLimits,
}

/// Why the sandboxed build did not succeed.
#[derive(Debug, Error)]
pub enum SandboxError {
    /// Preparing the sandbox failed before anything ran.
    #[error("preparing the sandbox: {0}")]
    Prepare(String),
    /// Setting up namespaces, mounts or credentials failed in the child.
    #[error("sandbox setup failed: {0}")]
    Setup(String),
    /// The build exited non-zero or was killed.
    #[error("build command {argv:?} {status}; last output:\n{tail}")]
    Failed {
        /// The command.
        argv: Vec<String>,
        /// How it ended.
        status: String,
        /// Last lines of its output.
        tail: String,
    },
    /// The build ran longer than the wall-clock limit.
    #[error("build exceeded its {0} s time limit and was killed (the request's limits.max_build_seconds: raise `kettle build --timeout`)")]
    TimedOut(u64),
    /// Preparing the build's writable directories failed.
    #[error("{what}: {source}")]
    Io {
        /// What was being done.
        what: &'static str,
        /// Cause.
        #[source]
        source: std::io::Error,
    },
}

fn pipe_cloexec() -> Result<(OwnedFd, OwnedFd), SandboxError> {
    nix::unistd::pipe2(nix::fcntl::OFlag::O_CLOEXEC)
        .map_err(|e| SandboxError::Prepare(format!("pipe: {e}")))
}

/// Runs `spec` in the sandbox; each output line goes to the log (and the last ones into errors).
pub fn run(spec: &SandboxSpec) -> Result<(), SandboxError> {
    let prepared = plan::prepare(spec)?;
    let (log_r, log_w) = pipe_cloexec()?;
    let (err_r, err_w) = pipe_cloexec()?;
    let tail = Arc::new(Mutex::new(Tail::new(TAIL_BYTES)));
    let pid = process::spawn(&prepared, &spec.limits, &log_w, &err_w)?;
    drop(log_w);
    drop(err_w);
    let reader_tail = Arc::clone(&tail);
    let reader = std::thread::spawn(move || {
        let _ = relay_lines(fs::File::from(log_r), MAX_LINE_BYTES, |line| {
            log::info!("{}", console::build_output(line));
            reader_tail.lock().unwrap().push(line);
        });
    });
    let status = wait_with_deadline(pid, Duration::from_secs(spec.limits.wall_seconds));
    let _ = reader.join();
    let mut setup_msg = Vec::new();
    let _ = fs::File::from(err_r)
        .take(MAX_SETUP_MESSAGE_BYTES)
        .read_to_end(&mut setup_msg);
    let setup_msg = String::from_utf8_lossy(&setup_msg).into_owned();
    let tail = tail.lock().unwrap().joined();
    match status {
        None => Err(SandboxError::TimedOut(spec.limits.wall_seconds)),
        Some(_) if !setup_msg.is_empty() => Err(SandboxError::Setup(setup_msg.trim().to_string())),
        Some(WaitStatus::Exited(_, 0)) => Ok(()),
        Some(WaitStatus::Exited(_, code)) => Err(SandboxError::Failed {
            argv: spec.argv.clone(),
            status: describe_exit(code),
            tail,
        }),
        Some(other) => Err(SandboxError::Failed {
            argv: spec.argv.clone(),
            status: format!("ended as {other:?}"),
            tail,
        }),
    }
}

/// The marker that ends a relayed line whose rest was dropped.
pub fn truncation_marker(dropped: u64) -> String {
    format!(" [kettle-init: {dropped} more bytes of this line dropped]")
}

/// Reads `reader` to its end and calls `on_line` with each line (without its newline, bytes
/// that are not UTF-8 replaced). A line longer than `max_line` bytes is cut there and ends
/// with [`truncation_marker`]; the rest of it is read and dropped. Memory stays bounded by
/// `max_line` plus one read buffer, however the output is shaped.
pub fn relay_lines(
    mut reader: impl Read,
    max_line: usize,
    mut on_line: impl FnMut(&str),
) -> io::Result<()> {
    let mut buf = vec![0u8; 64 * 1024];
    let mut line: Vec<u8> = Vec::with_capacity(max_line.min(4096));
    let mut dropped = 0u64;
    let mut emit = |line: &mut Vec<u8>, dropped: &mut u64| {
        let mut text = String::from_utf8_lossy(line).into_owned();
        if *dropped > 0 {
            text.push_str(&truncation_marker(*dropped));
        }
        on_line(&text);
        line.clear();
        *dropped = 0;
    };
    loop {
        let n = match reader.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(e),
        };
        let mut chunk = &buf[..n];
        while !chunk.is_empty() {
            let (part, newline) = match chunk.iter().position(|&b| b == b'\n') {
                Some(i) => (&chunk[..i], true),
                None => (chunk, false),
            };
            let room = max_line - line.len();
            let keep = part.len().min(room);
            line.extend_from_slice(&part[..keep]);
            dropped += (part.len() - keep) as u64;
            chunk = &chunk[part.len() + usize::from(newline)..];
            if newline {
                emit(&mut line, &mut dropped);
            }
        }
    }
    if !line.is_empty() || dropped > 0 {
        emit(&mut line, &mut dropped);
    }
    Ok(())
}

/// The last lines of the build's output, at most `limit` bytes of them (at least the last line).
struct Tail {
    lines: VecDeque<String>,
    bytes: usize,
    limit: usize,
}

impl Tail {
    fn new(limit: usize) -> Tail {
        Tail {
            lines: VecDeque::new(),
            bytes: 0,
            limit,
        }
    }

    fn push(&mut self, line: &str) {
        self.bytes += line.len() + 1;
        self.lines.push_back(line.to_string());
        while self.bytes > self.limit && self.lines.len() > 1 {
            let old = self.lines.pop_front().expect("more than one line");
            self.bytes -= old.len() + 1;
        }
    }

    fn joined(&self) -> String {
        Vec::from(self.lines.clone()).join("\n")
    }
}

fn describe_exit(code: i32) -> String {
    if code > 128 {
        format!("was killed by signal {}", code - 128)
    } else {
        format!("exited with status {code}")
    }
}

/// Waits for `pid`; kills it (and so the whole sandbox) at the deadline. None = timed out.
fn wait_with_deadline(pid: Pid, limit: Duration) -> Option<WaitStatus> {
    let start = Instant::now();
    loop {
        match waitpid(pid, Some(WaitPidFlag::WNOHANG)) {
            Ok(WaitStatus::StillAlive) | Err(nix::Error::EINTR) => {}
            Ok(s @ (WaitStatus::Exited(..) | WaitStatus::Signaled(..))) => return Some(s),
            Ok(_) => {}
            Err(_) => return Some(WaitStatus::Exited(pid, SETUP_FAILED)),
        }
        if start.elapsed() >= limit {
            let _ = kill(pid, Signal::SIGKILL);
            let _ = waitpid(pid, None);
            return None;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// Recursively hands `dir` to the build uid. Walks by directory fd (`openat` with
/// O_NOFOLLOW of one name at a time, `fchownat` with AT_SYMLINK_NOFOLLOW): as root, a
/// symlink in the unpacked tree can neither redirect the walk nor have its target chowned.
fn chown_tree(dir: &Path) -> std::io::Result<()> {
    let fd = rustix::fs::open(
        dir,
        rustix::fs::OFlags::DIRECTORY | rustix::fs::OFlags::RDONLY | rustix::fs::OFlags::CLOEXEC,
        rustix::fs::Mode::empty(),
    )?;
    chown_dir_fd(fd)
}

fn chown_dir_fd(fd: OwnedFd) -> std::io::Result<()> {
    use rustix::fs::{AtFlags, FileType, Gid, Mode, OFlags, Uid};
    let (uid, gid) = (
        Some(Uid::from_raw(BUILD_UID)),
        Some(Gid::from_raw(BUILD_GID)),
    );
    rustix::fs::fchown(&fd, uid, gid)?;
    let mut subdirs = Vec::new();
    for entry in rustix::fs::Dir::read_from(&fd)? {
        let entry = entry?;
        let name = entry.file_name();
        if name == c"." || name == c".." {
            continue;
        }
        let kind = match entry.file_type() {
            // Some filesystems leave d_type unset: ask, without following a link.
            FileType::Unknown => FileType::from_raw_mode(
                rustix::fs::statat(&fd, name, AtFlags::SYMLINK_NOFOLLOW)?.st_mode,
            ),
            known => known,
        };
        if kind == FileType::Directory {
            subdirs.push(name.to_owned());
        } else {
            rustix::fs::chownat(&fd, name, uid, gid, AtFlags::SYMLINK_NOFOLLOW)?;
        }
    }
    for name in subdirs {
        let sub = rustix::fs::openat(
            &fd,
            name.as_c_str(),
            OFlags::DIRECTORY | OFlags::RDONLY | OFlags::CLOEXEC | OFlags::NOFOLLOW,
            Mode::empty(),
        )?;
        chown_dir_fd(sub)?;
    }
    Ok(())
}

/// Whether the sandbox runs with real root (true) or in a user namespace (false, see the module docs).
pub fn has_root() -> bool {
    nix::unistd::geteuid().is_root()
}

// ---- What a recipe's build sees ------------------------------------------------

/// Sandbox path of the source tree (the build's working directory).
pub const SANDBOX_SRC: &str = "/src";
/// Sandbox path of the laid-out dependencies (the vendored crates).
pub const SANDBOX_VENDOR: &str = "/vendor";
/// Sandbox path of the toolchain root (bin/cargo, bin/rustc, lib/...).
pub const SANDBOX_TOOLCHAIN: &str = "/opt/kettle/toolchain";
/// Sandbox path of the build's writable home (the recipe's files live under it: CARGO_HOME).
pub const SANDBOX_HOME: &str = "/kettle-home";
/// Host directories bound read-only at their own path when a local build uses the host's tools.
pub const HOST_TOOL_DIRS: &[&str] = &["/usr", "/bin", "/lib", "/lib64", "/sbin", "/etc"];
/// RLIMIT_FSIZE of a build: the largest file it may write.
const BUILD_FILE_BYTES: u64 = 16 << 30;
/// RLIMIT_NPROC of a build (the uid's processes) and RLIMIT_NOFILE of each process.
const BUILD_PROCESSES: u64 = 4096;
/// RLIMIT_NOFILE of each build process.
const BUILD_OPEN_FILES: u64 = 4096;

/// Where a build's directories are outside the sandbox.
#[derive(Debug, Clone)]
pub struct BuildDirs {
    /// The build root: becomes `/`, read-only.
    pub root: PathBuf,
    /// The verified source tree: [`SANDBOX_SRC`], writable, the working directory.
    pub src: PathBuf,
    /// The build's home: [`SANDBOX_HOME`], writable; the recipe's files go in it.
    pub home: PathBuf,
    /// The laid-out dependencies: [`SANDBOX_VENDOR`], read-only.
    pub vendor: PathBuf,
    /// The toolchain root, if any: [`SANDBOX_TOOLCHAIN`], read-only.
    pub toolchain: Option<PathBuf>,
    /// Whether [`HOST_TOOL_DIRS`] are bound in (local mode with host tools only).
    pub host_tools: bool,
}

/// Readies the writable directories: the home holding the recipe's files (cargo's
/// config pointing it at the vendored crates), and (as root) the writable trees owned
/// by the build uid.
pub fn prepare_dirs(recipe: &Recipe, dirs: &BuildDirs) -> Result<(), SandboxError> {
    let io = |what| move |source| SandboxError::Io { what, source };
    let beneath = |what| {
        move |e: BeneathError| SandboxError::Io {
            what,
            source: e.into_io(),
        }
    };
    let home = Beneath::create(&dirs.home).map_err(io("build home"))?;
    for (name, contents) in recipe.build_type.recipe().home_files(SANDBOX_VENDOR) {
        // The names are the recipe module's constants, never the source tree's. Written
        // beneath the home through real directories only, the file replaced, never
        // followed: a link an earlier build left in a reused work dir is refused.
        let name = Path::new(name);
        home.remove_file(name)
            .map_err(beneath("the recipe's files in the build home"))?;
        home.create_file(name, 0o644)
            .map_err(beneath("the recipe's files in the build home"))?
            .write_all(contents.as_bytes())
            .map_err(io("the recipe's files in the build home"))?;
    }
    // Rootless, the caller's own files already appear as the build uid inside the user namespace.
    if has_root() {
        chown_tree(&dirs.src).map_err(io("hand the source tree to the build user"))?;
        chown_tree(&dirs.home).map_err(io("hand the build home to the build user"))?;
    }
    Ok(())
}

/// The sandbox a recipe's build runs in: its binds, its complete environment (what every
/// build sees, SOURCE_DATE_EPOCH = the commit's committer time, KETTLE_COMMIT = the
/// verified commit id `commit`, since /src has no .git; then the recipe's), the recipe's
/// command and the request's limits.
pub fn spec_for(
    recipe: &Recipe,
    dirs: &BuildDirs,
    commit: &str,
    commit_raw: &[u8],
    limits: &Limits,
) -> SandboxSpec {
    let bind = |source: &Path, target: &str, writable| Bind {
        source: source.to_path_buf(),
        target: target.into(),
        writable,
    };
    let mut binds = vec![
        bind(&dirs.src, SANDBOX_SRC, true),
        bind(&dirs.home, SANDBOX_HOME, true),
        bind(&dirs.vendor, SANDBOX_VENDOR, false),
    ];
    if let Some(t) = &dirs.toolchain {
        binds.push(bind(t, SANDBOX_TOOLCHAIN, false));
    }
    let host_dirs = if dirs.host_tools {
        HOST_TOOL_DIRS.iter().map(PathBuf::from).collect()
    } else {
        Vec::new()
    };
    let build = recipe.build_type.recipe();
    let mut env: Vec<(String, String)> = [
        (
            "PATH",
            format!("{SANDBOX_TOOLCHAIN}/bin:/usr/local/bin:/usr/bin:/bin"),
        ),
        ("HOME", SANDBOX_HOME.into()),
        ("TMPDIR", "/tmp".into()),
        ("LANG", "C.UTF-8".into()),
        ("TZ", "UTC".into()),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_string(), v))
    .collect();
    if let Some(epoch) = committer_time(commit_raw) {
        env.push(("SOURCE_DATE_EPOCH".into(), epoch.to_string()));
    }
    env.push(("KETTLE_COMMIT".into(), commit.to_string()));
    env.extend(build.environment(recipe, SANDBOX_HOME));
    let argv = build.command(recipe);
    let secs = limits.build_seconds();
    SandboxSpec {
        root: dirs.root.clone(),
        host_dirs,
        binds,
        argv,
        env,
        cwd: SANDBOX_SRC.into(),
        limits: SandboxLimits {
            wall_seconds: secs,
            cpu_seconds: secs,
            data_bytes: limits.max_memory_bytes,
            file_bytes: BUILD_FILE_BYTES,
            processes: BUILD_PROCESSES,
            open_files: BUILD_OPEN_FILES,
        },
    }
}

/// The committer timestamp of a raw commit object (for SOURCE_DATE_EPOCH).
fn committer_time(raw: &[u8]) -> Option<i64> {
    let text = std::str::from_utf8(raw).ok()?;
    let header = text.split("\n\n").next()?;
    let line = header.lines().find(|l| l.starts_with("committer "))?;
    let mut parts = line.rsplitn(3, ' ');
    let _tz = parts.next()?;
    parts.next()?.parse().ok()
}

#[cfg(test)]
mod tests;
