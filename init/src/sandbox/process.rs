//! The sandbox's own processes (see [`super`] for the layout): A unshares the
//! namespaces, B (pid 1 inside) mounts and pivots into the build root, C drops
//! privileges and execs the build. Everything here runs between fork and exec:
//! paths and arguments are turned into C strings beforehand (`sandbox/plan.rs`,
//! [`Prepared`]), and a failure is written to the error pipe and ends the
//! process ([`die`]).
//!
//! The caller may be multi-threaded (the test harness; a reader thread in
//! kettle-init), and a fork copies only the calling thread: a lock another
//! thread held at that instant (the allocator's, stdio's, the environment's)
//! stays held forever in the child. So between fork and exec (or `_exit`) the
//! children make only async-signal-safe calls: raw system calls (through nix's
//! thin wrappers, which build short paths on the stack), `write(2)` of bytes
//! already in memory or formatted into a stack buffer, and `_exit`. Nothing
//! allocates: argv and envp are arrays of pointers built by the plan, and
//! [`die`] formats into a fixed buffer on the stack.

use std::ffi::CStr;
use std::os::fd::AsRawFd;

use nix::mount::{mount, umount2, MntFlags, MsFlags};
use nix::sched::{unshare, CloneFlags};
use nix::sys::resource::{setrlimit, Resource};
use nix::sys::signal::Signal;
use nix::sys::stat::{makedev, mknod, Mode, SFlag};
use nix::sys::wait::{waitpid, WaitStatus};
use nix::unistd::{
    chdir, fork, pivot_root, setgroups, sethostname, setresgid, setresuid, ForkResult, Gid, Pid,
    Uid,
};

use super::plan::Prepared;
use super::seccomp;
use super::{SandboxError, SandboxLimits, BUILD_GID, BUILD_UID};

/// Exit code the sandbox's own processes use when setting up failed.
pub(super) const SETUP_FAILED: i32 = 125;

/// Longest setup failure message [`die`] writes; a longer one is cut (the step is named first).
const DIE_MESSAGE_BYTES: usize = 512;

/// A message being formatted on the stack: `core::fmt` into a fixed buffer, no allocation,
/// no lock, so it is usable between fork and exec. Text beyond the buffer is dropped.
struct StackMessage {
    buf: [u8; DIE_MESSAGE_BYTES],
    len: usize,
}

impl std::fmt::Write for StackMessage {
    fn write_str(&mut self, s: &str) -> std::fmt::Result {
        let room = self.buf.len() - self.len;
        let n = s.len().min(room);
        self.buf[self.len..self.len + n].copy_from_slice(&s.as_bytes()[..n]);
        self.len += n;
        Ok(())
    }
}

/// Writes a setup failure (`what: EXXX: description`) to the error pipe and exits the child.
/// Async-signal-safe: `what` is static, nix's Errno Display writes static strings, the
/// message is formatted on the stack and leaves with one raw write(2).
fn die(err_fd: i32, what: &'static str, e: nix::Error) -> ! {
    use std::fmt::Write as _;
    let mut msg = StackMessage {
        buf: [0; DIE_MESSAGE_BYTES],
        len: 0,
    };
    let _ = writeln!(msg, "{what}: {e}");
    // SAFETY: write(2) and _exit(2) are async-signal-safe; `msg.buf[..msg.len]` is
    // initialised memory on this stack frame, valid for the call's duration. A failed
    // write (the parent gone) changes nothing: the exit status still says setup failed.
    unsafe {
        nix::libc::write(err_fd, msg.buf.as_ptr().cast(), msg.len);
        nix::libc::_exit(SETUP_FAILED)
    }
}

macro_rules! try_or_die {
    ($fd:expr, $what:expr, $e:expr) => {
        match $e {
            Ok(v) => v,
            Err(e) => die($fd, $what, e),
        }
    };
}

const NONE: Option<&str> = None;

/// Bind-mounts `src` (recursively) onto `target`, or dies naming `what`.
fn bind(err_fd: i32, what: &'static str, src: &CStr, target: &CStr) {
    try_or_die!(
        err_fd,
        what,
        mount(
            Some(src),
            target,
            NONE,
            MsFlags::MS_BIND | MsFlags::MS_REC,
            NONE
        )
    );
}

/// Remounts the bind mount at `target` with `flags` added, or dies naming `what`.
fn remount_bind(err_fd: i32, what: &'static str, target: &CStr, flags: MsFlags) {
    let flags = MsFlags::MS_BIND | MsFlags::MS_REMOUNT | flags;
    try_or_die!(err_fd, what, mount(NONE, target, NONE, flags, NONE));
}

/// B: pid 1 of the sandbox. Mounts, pivots, forks C, reaps, exits with C's status.
fn sandbox_init(p: &Prepared, limits: &SandboxLimits, log_fd: i32, err_fd: i32) -> ! {
    let _ = nix::sys::prctl::set_pdeathsig(Signal::SIGKILL);
    let nosuid = MsFlags::MS_NOSUID | MsFlags::MS_NODEV;
    bind(err_fd, "bind the build root", &p.root, &p.root);
    for (src, target, link) in &p.host_dirs {
        match link {
            Some(l) => {
                let r = nix::unistd::symlinkat(l.as_c_str(), None, target.as_c_str());
                if let Err(e) = r {
                    if e != nix::Error::EEXIST {
                        die(err_fd, "host dir symlink", e)
                    }
                }
            }
            None => {
                bind(err_fd, "bind a host dir", src, target);
                let flags = MsFlags::MS_RDONLY | nosuid;
                remount_bind(err_fd, "remount a host dir read-only", target, flags);
            }
        }
    }
    // The root itself goes read-only before anything is mounted on it.
    let flags = MsFlags::MS_RDONLY | nosuid;
    remount_bind(err_fd, "remount the build root read-only", &p.root, flags);
    for (src, target, writable) in &p.binds {
        bind(err_fd, "bind mount", src, target);
        let ro = if *writable {
            MsFlags::empty()
        } else {
            MsFlags::MS_RDONLY
        };
        remount_bind(err_fd, "bind remount", target, ro | nosuid);
    }
    try_or_die!(
        err_fd,
        "mount /dev tmpfs",
        mount(
            Some("tmpfs"),
            p.dev.as_c_str(),
            Some("tmpfs"),
            MsFlags::MS_NOSUID | MsFlags::MS_NOEXEC,
            Some("mode=0755,size=1m")
        )
    );
    for (node, major, minor, host) in &p.dev_nodes {
        if p.rootless.is_some() {
            // mknod is not allowed in a user namespace: bind the host's node onto an empty file.
            let fd = try_or_die!(
                err_fd,
                "create a /dev mount point",
                nix::fcntl::open(
                    node.as_c_str(),
                    nix::fcntl::OFlag::O_CREAT
                        | nix::fcntl::OFlag::O_WRONLY
                        | nix::fcntl::OFlag::O_CLOEXEC,
                    Mode::from_bits_truncate(0o666)
                )
            );
            let _ = nix::unistd::close(fd);
            try_or_die!(
                err_fd,
                "bind a host /dev node",
                mount(
                    Some(host.as_c_str()),
                    node.as_c_str(),
                    NONE,
                    MsFlags::MS_BIND,
                    NONE
                )
            );
            continue;
        }
        try_or_die!(
            err_fd,
            "mknod in /dev",
            mknod(
                node.as_c_str(),
                SFlag::S_IFCHR,
                Mode::from_bits_truncate(0o666),
                makedev(*major, *minor)
            )
        );
        // mknod honours the umask; make the nodes usable by the build uid.
        try_or_die!(
            err_fd,
            "chmod /dev node",
            nix::sys::stat::fchmodat(
                None,
                node.as_c_str(),
                Mode::from_bits_truncate(0o666),
                nix::sys::stat::FchmodatFlags::FollowSymlink
            )
        );
    }
    for (target, link) in &p.dev_links {
        try_or_die!(
            err_fd,
            "symlink in /dev",
            nix::unistd::symlinkat(target.as_c_str(), None, link.as_c_str())
        );
    }
    try_or_die!(
        err_fd,
        "remount /dev read-only",
        mount(
            NONE,
            p.dev.as_c_str(),
            NONE,
            MsFlags::MS_REMOUNT | MsFlags::MS_RDONLY | MsFlags::MS_NOSUID | MsFlags::MS_NOEXEC,
            Some("mode=0755,size=1m")
        )
    );
    try_or_die!(
        err_fd,
        "mount /proc",
        mount(
            Some("proc"),
            p.proc_.as_c_str(),
            Some("proc"),
            nosuid | MsFlags::MS_NOEXEC,
            NONE
        )
    );
    try_or_die!(
        err_fd,
        "mount /tmp",
        mount(
            Some("tmpfs"),
            p.tmp.as_c_str(),
            Some("tmpfs"),
            nosuid,
            Some("mode=1777")
        )
    );
    // pivot_root(".", ".") stacks the old root on top; detaching it leaves only the build root.
    try_or_die!(err_fd, "chdir to the build root", chdir(p.root.as_c_str()));
    match pivot_root(".", ".") {
        Ok(()) => try_or_die!(
            err_fd,
            "detach the old root",
            umount2(".", MntFlags::MNT_DETACH)
        ),
        // In the guest the old root is the initramfs (rootfs), which can never be
        // pivoted away (EINVAL). Move the build root over it and chroot, as
        // switch_root does: the build runs without capabilities under
        // no_new_privs, so it cannot chroot back out, and it holds no descriptor
        // outside the new root.
        Err(nix::Error::EINVAL) => {
            try_or_die!(
                err_fd,
                "move the build root over /",
                mount(Some("."), "/", NONE, MsFlags::MS_MOVE, NONE)
            );
            try_or_die!(err_fd, "chroot", nix::unistd::chroot("."));
        }
        Err(e) => die(err_fd, "pivot_root", e),
    }
    try_or_die!(err_fd, "chdir /", chdir("/"));
    // Not dumpable: the build (another uid) can neither ptrace pid 1 nor open /proc/1/mem.
    let _ = nix::sys::prctl::set_dumpable(false);

    // SAFETY: B is single-threaded (a forked child), and C makes only async-signal-safe
    // calls until it execs or _exits (the module docs).
    let child = match unsafe { fork() } {
        Ok(ForkResult::Child) => build_process(p, limits, log_fd, err_fd),
        Ok(ForkResult::Parent { child }) => child,
        Err(e) => die(err_fd, "fork the build", e),
    };
    let _ = nix::unistd::close(log_fd);
    let _ = nix::unistd::close(err_fd);
    let code = loop {
        match waitpid(None, None) {
            Ok(WaitStatus::Exited(pid, code)) if pid == child => break code,
            Ok(WaitStatus::Signaled(pid, sig, _)) if pid == child => break 128 + sig as i32,
            Ok(_) => continue, // an orphan reparented to us
            Err(nix::Error::EINTR) => continue,
            Err(_) => break SETUP_FAILED,
        }
    };
    // SAFETY: ends this forked process without running atexit handlers or flushing stdio
    // buffers copied from the parent; async-signal-safe.
    unsafe { nix::libc::_exit(code) }
}

/// C: its own session, drops to the build uid, seccomp, and execs the command.
fn build_process(p: &Prepared, limits: &SandboxLimits, log_fd: i32, err_fd: i32) -> ! {
    // A session of its own, with no controlling terminal: the build can neither read
    // nor inject (TIOCSTI) input on a terminal kettle-init was started from.
    try_or_die!(err_fd, "setsid", nix::unistd::setsid());
    let rl =
        |r: Resource, v: u64, what: &'static str| try_or_die!(err_fd, what, setrlimit(r, v, v));
    rl(Resource::RLIMIT_CPU, limits.cpu_seconds, "RLIMIT_CPU");
    rl(Resource::RLIMIT_FSIZE, limits.file_bytes, "RLIMIT_FSIZE");
    rl(Resource::RLIMIT_NPROC, limits.processes, "RLIMIT_NPROC");
    rl(Resource::RLIMIT_NOFILE, limits.open_files, "RLIMIT_NOFILE");
    rl(Resource::RLIMIT_CORE, 0, "RLIMIT_CORE");
    if let Some(d) = limits.data_bytes {
        rl(Resource::RLIMIT_DATA, d, "RLIMIT_DATA");
    }
    // In a user namespace setgroups is denied (and the caller's groups are not mapped).
    if p.rootless.is_none() {
        try_or_die!(err_fd, "setgroups([])", setgroups(&[]));
    }
    let gid = Gid::from_raw(BUILD_GID);
    let uid = Uid::from_raw(BUILD_UID);
    try_or_die!(err_fd, "setresgid", setresgid(gid, gid, gid));
    try_or_die!(err_fd, "setresuid", setresuid(uid, uid, uid));
    try_or_die!(
        err_fd,
        "PR_SET_NO_NEW_PRIVS",
        nix::sys::prctl::set_no_new_privs()
    );
    try_or_die!(
        err_fd,
        "chdir to the build directory",
        chdir(p.cwd.as_c_str())
    );
    let devnull = try_or_die!(
        err_fd,
        "open /dev/null",
        nix::fcntl::open("/dev/null", nix::fcntl::OFlag::O_RDONLY, Mode::empty())
    );
    // SAFETY: dup2(2) on descriptors this process owns (devnull was just opened; log_fd
    // was dup'ed for C by A); async-signal-safe. 0-2 are replaced, not leaked.
    unsafe {
        nix::libc::dup2(devnull, 0);
        nix::libc::dup2(log_fd, 1);
        nix::libc::dup2(log_fd, 2);
    }
    for fd in 3..4096 {
        if fd != err_fd {
            // SAFETY: close(2) of every other descriptor the build must not inherit; none
            // of them is owned by a Rust object that will use it again (this process execs
            // or _exits next). Async-signal-safe.
            unsafe { nix::libc::close(fd) };
        }
    }
    // Last before exec, after no_new_privs: from here on the deny list holds.
    try_or_die!(
        err_fd,
        "install the seccomp filters",
        seccomp::install(&p.seccomp)
    );
    // A binary the parent process just unpacked can still be open for writing in a
    // fork made by another of its threads for an instant (ETXTBSY, seen in the
    // multi-threaded test runner): retry for up to 1 s before failing the build.
    // (nix's execve builds its pointer arrays on the heap; this one uses prepare's.)
    let exec = || {
        // SAFETY: execve(2) is async-signal-safe. `exe` is a NUL-terminated string, and
        // `argv_ptrs`/`env_ptrs` are NULL-terminated arrays of pointers into `p.argv` and
        // `p.env`'s NUL-terminated strings, which `p` keeps alive and unchanged (`plan::prepare`).
        unsafe {
            nix::libc::execve(p.exe.as_ptr(), p.argv_ptrs.as_ptr(), p.env_ptrs.as_ptr());
        }
        nix::Error::last() // execve returns only on failure
    };
    let mut e = exec();
    for _ in 0..50 {
        if e != nix::Error::ETXTBSY {
            break;
        }
        // nanosleep(2) underneath: async-signal-safe, no allocation.
        std::thread::sleep(std::time::Duration::from_millis(20));
        e = exec();
    }
    die(err_fd, "exec the build command", e)
}

/// Writes `data` to a /proc/self file (user namespace id maps), or dies.
fn write_proc_self(err_fd: i32, path: &CStr, data: &[u8]) {
    let fd = try_or_die!(
        err_fd,
        "open a /proc/self id map",
        nix::fcntl::open(
            path,
            nix::fcntl::OFlag::O_WRONLY | nix::fcntl::OFlag::O_CLOEXEC,
            Mode::empty()
        )
    );
    // SAFETY: `fd` was just opened above and is closed only after this write.
    let r = nix::unistd::write(unsafe { std::os::fd::BorrowedFd::borrow_raw(fd) }, data);
    let _ = nix::unistd::close(fd);
    try_or_die!(err_fd, "write a /proc/self id map", r);
}

/// `fd` moved above 0-2 (where stdio is about to be replaced), or -1 if that failed.
fn above_stdio(fd: i32, cloexec: bool) -> i32 {
    if fd > 2 {
        return fd;
    }
    let cmd = if cloexec {
        nix::libc::F_DUPFD_CLOEXEC
    } else {
        nix::libc::F_DUPFD
    };
    // SAFETY: fcntl(F_DUPFD*) and close(2) on a descriptor this process owns (A's copy
    // of a pipe end); async-signal-safe. The old number is closed only once it has a copy.
    let moved = unsafe { nix::libc::fcntl(fd, cmd, 3) };
    if moved >= 0 {
        // SAFETY: as above; `fd` is no longer used after this.
        unsafe { nix::libc::close(fd) };
    }
    moved
}

/// A: unshares the namespaces and runs B as pid 1 of the new pid namespace.
fn namespace_parent(p: &Prepared, limits: &SandboxLimits, log_fd: i32, err_fd: i32) -> ! {
    // The pipes may have landed on 0-2 if kettle-init was started with them closed.
    let err_fd = above_stdio(err_fd, true);
    let log_fd = above_stdio(log_fd, false);
    if err_fd < 0 || log_fd < 0 {
        // SAFETY: _exit(2) is async-signal-safe; with no error pipe there is nothing to report on.
        unsafe { nix::libc::_exit(SETUP_FAILED) }
    }
    // Leave kettle-init's session and its terminal (local mode may run on one): nothing
    // in the sandbox keeps the caller's stdin, stdout or stderr.
    try_or_die!(err_fd, "setsid", nix::unistd::setsid());
    let devnull = try_or_die!(
        err_fd,
        "open /dev/null",
        nix::fcntl::open("/dev/null", nix::fcntl::OFlag::O_RDWR, Mode::empty())
    );
    for fd in 0..3 {
        // SAFETY: dup2(2) of a descriptor just opened onto 0-2; async-signal-safe.
        unsafe { nix::libc::dup2(devnull, fd) };
    }
    if devnull > 2 {
        let _ = nix::unistd::close(devnull);
    }
    let flags = CloneFlags::CLONE_NEWNS
        | CloneFlags::CLONE_NEWPID
        | CloneFlags::CLONE_NEWIPC
        | CloneFlags::CLONE_NEWUTS
        | CloneFlags::CLONE_NEWNET;
    match &p.rootless {
        None => try_or_die!(err_fd, "unshare(mount, pid, ipc, uts, net)", unshare(flags)),
        Some((uid_map, gid_map)) => {
            try_or_die!(
                err_fd,
                "unshare(user, mount, pid, ipc, uts, net) (are unprivileged user namespaces enabled?)",
                unshare(flags | CloneFlags::CLONE_NEWUSER)
            );
            write_proc_self(err_fd, c"/proc/self/setgroups", b"deny");
            write_proc_self(err_fd, c"/proc/self/uid_map", uid_map.as_bytes());
            write_proc_self(err_fd, c"/proc/self/gid_map", gid_map.as_bytes());
        }
    }
    try_or_die!(
        err_fd,
        "make mounts private",
        mount(NONE, "/", NONE, MsFlags::MS_REC | MsFlags::MS_PRIVATE, NONE)
    );
    try_or_die!(err_fd, "sethostname", sethostname("kettle-build"));
    // SAFETY: A is single-threaded (a forked child), and B makes only async-signal-safe
    // calls until it _exits (the module docs).
    let child = match unsafe { fork() } {
        Ok(ForkResult::Child) => sandbox_init(p, limits, log_fd, err_fd),
        Ok(ForkResult::Parent { child }) => child,
        Err(e) => die(err_fd, "fork sandbox init", e),
    };
    let _ = nix::unistd::close(log_fd);
    let code = loop {
        match waitpid(child, None) {
            Ok(WaitStatus::Exited(_, code)) => break code,
            Ok(WaitStatus::Signaled(_, sig, _)) => break 128 + sig as i32,
            Ok(_) | Err(nix::Error::EINTR) => continue,
            Err(_) => break SETUP_FAILED,
        }
    };
    // SAFETY: ends this forked process without running atexit handlers or flushing stdio
    // buffers copied from the parent; async-signal-safe.
    unsafe { nix::libc::_exit(code) }
}

/// Forks A (which runs the whole sandbox); returns its pid. `log_w` becomes the build's
/// stdout and stderr; `err_w` carries setup failures back (it is close-on-exec).
pub(super) fn spawn(
    prepared: &Prepared,
    limits: &SandboxLimits,
    log_w: &impl AsRawFd,
    err_w: &impl AsRawFd,
) -> Result<Pid, SandboxError> {
    // SAFETY: the caller may have other threads, so the child (A) makes only
    // async-signal-safe calls until it _exits: everything it uses was built by `plan::prepare`
    // before this fork, and it neither allocates nor takes a lock (the module docs).
    match unsafe { fork() } {
        Ok(ForkResult::Child) => {
            // dup the log pipe without CLOEXEC so C keeps it across exec; err pipe stays CLOEXEC.
            // SAFETY: dup(2) of the caller's open pipe end; async-signal-safe.
            let log_fd = unsafe { nix::libc::dup(log_w.as_raw_fd()) };
            namespace_parent(prepared, limits, log_fd, err_w.as_raw_fd())
        }
        Ok(ForkResult::Parent { child }) => Ok(child),
        Err(e) => Err(SandboxError::Prepare(format!("fork: {e}"))),
    }
}
