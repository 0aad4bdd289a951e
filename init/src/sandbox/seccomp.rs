//! The build's seccomp-bpf filters (compiled with `seccompiler` before forking,
//! installed by the build process after no_new_privs, just before exec): a
//! deny list of the system calls a build never needs and that widen the
//! kernel's attack surface or reach outside the sandbox. Denied calls fail
//! with EPERM; `clone3` fails with ENOSYS (its flags are behind a pointer the
//! filter cannot read, and libc then falls back to `clone`, whose flags it can).
//!
//! * new user namespaces: `unshare` / `clone` with CLONE_NEWUSER, `setns`;
//! * the kernel keyring: `keyctl`, `add_key`, `request_key`;
//! * `bpf`, `ptrace`, `perf_event_open`, `userfaultfd`, `io_uring_*`;
//! * other processes' memory: `process_vm_readv`, `process_vm_writev`;
//! * the kernel itself: `kexec_load`, `kexec_file_load`, `init_module`,
//!   `finit_module`, `delete_module`;
//! * mounts: `mount`, `umount2`, `pivot_root`, and the new mount API
//!   (`open_tree`, `move_mount`, `fsopen`, `fsconfig`, `fsmount`, `fspick`,
//!   `mount_setattr`);
//! * file handles: `open_by_handle_at` (the "shocker" escape);
//! * socket families other than AF_UNIX, AF_INET and AF_INET6: `socket` and
//!   `socketpair` fail with EAFNOSUPPORT (what the kernel answers for a family
//!   it lacks, so tools fall back as they would there). The build's network
//!   namespace isolates only those three: AF_VSOCK reaches the hypervisor host
//!   from the guest (and the VM host from `--local` on one) whatever namespace
//!   the build is in, and AF_NETLINK's families are a wide kernel surface, some
//!   of them (uevents, audit, the proc connector) not per network namespace. A
//!   build needs no netlink: there is no interface to configure, and glibc's
//!   getaddrinfo treats a failed netlink socket as "both address families
//!   present" and goes on.
//!
//! On x86-64 the x32 numbering of each (syscall number | 0x4000_0000, same
//! audit arch) is denied too, and a call from another architecture's ABI (a
//! 32-bit `int 0x80`) kills the process: seccompiler checks the arch first.

use std::collections::BTreeMap;

use seccompiler::{
    BpfProgram, SeccompAction, SeccompCmpArgLen, SeccompCmpOp, SeccompCondition, SeccompFilter,
    SeccompRule, TargetArch,
};

use super::SandboxError;
use nix::libc;

/// System calls denied outright (EPERM), by name and number on this architecture.
pub const DENIED: &[(&str, i64)] = &[
    ("setns", libc::SYS_setns),
    ("keyctl", libc::SYS_keyctl),
    ("add_key", libc::SYS_add_key),
    ("request_key", libc::SYS_request_key),
    ("bpf", libc::SYS_bpf),
    ("ptrace", libc::SYS_ptrace),
    ("perf_event_open", libc::SYS_perf_event_open),
    ("userfaultfd", libc::SYS_userfaultfd),
    ("io_uring_setup", libc::SYS_io_uring_setup),
    ("io_uring_enter", libc::SYS_io_uring_enter),
    ("io_uring_register", libc::SYS_io_uring_register),
    ("process_vm_readv", libc::SYS_process_vm_readv),
    ("process_vm_writev", libc::SYS_process_vm_writev),
    ("kexec_load", libc::SYS_kexec_load),
    ("kexec_file_load", libc::SYS_kexec_file_load),
    ("init_module", libc::SYS_init_module),
    ("finit_module", libc::SYS_finit_module),
    ("delete_module", libc::SYS_delete_module),
    ("mount", libc::SYS_mount),
    ("umount2", libc::SYS_umount2),
    ("pivot_root", libc::SYS_pivot_root),
    ("open_tree", libc::SYS_open_tree),
    ("move_mount", libc::SYS_move_mount),
    ("fsopen", libc::SYS_fsopen),
    ("fsconfig", libc::SYS_fsconfig),
    ("fsmount", libc::SYS_fsmount),
    ("fspick", libc::SYS_fspick),
    ("mount_setattr", libc::SYS_mount_setattr),
    ("open_by_handle_at", libc::SYS_open_by_handle_at),
];

/// System calls denied (EPERM) only when their first argument (the flags) has CLONE_NEWUSER.
pub const DENIED_WITH_NEWUSER: &[(&str, i64)] =
    &[("unshare", libc::SYS_unshare), ("clone", libc::SYS_clone)];

/// The socket families a build may create (`socket`/`socketpair` domain argument);
/// the build's network namespace isolates these. Every other fails with EAFNOSUPPORT.
pub const ALLOWED_SOCKET_FAMILIES: &[(&str, i32)] = &[
    ("AF_UNIX", libc::AF_UNIX),
    ("AF_INET", libc::AF_INET),
    ("AF_INET6", libc::AF_INET6),
];

/// System calls whose first argument is a socket family, checked against
/// [`ALLOWED_SOCKET_FAMILIES`].
pub const SOCKET_CALLS: &[(&str, i64)] = &[
    ("socket", libc::SYS_socket),
    ("socketpair", libc::SYS_socketpair),
];

/// x86-64's x32 ABI: the same audit arch, syscall numbers with this bit set.
#[cfg(target_arch = "x86_64")]
const X32_BIT: i64 = 0x4000_0000;

/// x32-only numbers of denied calls whose x32 entry differs from the 64-bit one
/// (ptrace, kexec_load, process_vm_readv, process_vm_writev in syscall_64.tbl).
#[cfg(target_arch = "x86_64")]
const X32_ONLY_DENIED: &[i64] = &[521, 528, 539, 540];

/// Every number a denied call can be reached by on this architecture.
fn numbers(nr: i64) -> Vec<i64> {
    #[cfg(target_arch = "x86_64")]
    return vec![nr, nr | X32_BIT];
    #[cfg(not(target_arch = "x86_64"))]
    return vec![nr];
}

fn compile(
    rules: BTreeMap<i64, Vec<SeccompRule>>,
    on_match: SeccompAction,
) -> Result<BpfProgram, SandboxError> {
    let arch: TargetArch = std::env::consts::ARCH
        .try_into()
        .map_err(|e| SandboxError::Prepare(format!("seccomp: {e}")))?;
    SeccompFilter::new(rules, SeccompAction::Allow, on_match, arch)
        .and_then(|f| f.try_into())
        .map_err(|e| SandboxError::Prepare(format!("seccomp filter: {e}")))
}

/// The build's filters, in the order they are installed (the kernel applies the
/// strictest answer of all, so the two compose).
pub(super) fn build_filters() -> Result<Vec<BpfProgram>, SandboxError> {
    let newuser = libc::CLONE_NEWUSER as u64;
    let with_newuser = SeccompCondition::new(
        0,
        SeccompCmpArgLen::Qword,
        SeccompCmpOp::MaskedEq(newuser),
        newuser,
    )
    .and_then(|c| SeccompRule::new(vec![c]))
    .map_err(|e| SandboxError::Prepare(format!("seccomp rule: {e}")))?;
    let mut eperm: BTreeMap<i64, Vec<SeccompRule>> = BTreeMap::new();
    for (_, nr) in DENIED {
        for n in numbers(*nr) {
            eperm.insert(n, Vec::new()); // an empty rule list matches every call
        }
    }
    #[cfg(target_arch = "x86_64")]
    for nr in X32_ONLY_DENIED {
        eperm.insert(nr | X32_BIT, Vec::new());
    }
    for (_, nr) in DENIED_WITH_NEWUSER {
        for n in numbers(*nr) {
            eperm.insert(n, vec![with_newuser.clone()]);
        }
    }
    let mut enosys: BTreeMap<i64, Vec<SeccompRule>> = BTreeMap::new();
    for n in numbers(libc::SYS_clone3) {
        enosys.insert(n, Vec::new());
    }
    // One rule whose conditions all hold (AND) when the family is none of the allowed ones.
    // The domain is an int: compare its low 32 bits only, so no high garbage can slip past.
    let other_family = ALLOWED_SOCKET_FAMILIES
        .iter()
        .map(|(_, af)| {
            SeccompCondition::new(0, SeccompCmpArgLen::Dword, SeccompCmpOp::Ne, *af as u64)
        })
        .collect::<Result<Vec<_>, _>>()
        .and_then(SeccompRule::new)
        .map_err(|e| SandboxError::Prepare(format!("seccomp socket rule: {e}")))?;
    let mut eafnosupport: BTreeMap<i64, Vec<SeccompRule>> = BTreeMap::new();
    for (_, nr) in SOCKET_CALLS {
        for n in numbers(*nr) {
            eafnosupport.insert(n, vec![other_family.clone()]);
        }
    }
    Ok(vec![
        compile(eperm, SeccompAction::Errno(libc::EPERM as u32))?,
        compile(enosys, SeccompAction::Errno(libc::ENOSYS as u32))?,
        compile(
            eafnosupport,
            SeccompAction::Errno(libc::EAFNOSUPPORT as u32),
        )?,
    ])
}

/// Installs `filters` in the calling process (no_new_privs must already be set; it is
/// set again by seccompiler, harmlessly). Only raw system calls: safe between fork and exec.
pub(super) fn install(filters: &[BpfProgram]) -> Result<(), nix::Error> {
    for f in filters {
        seccompiler::apply_filter(f).map_err(|_| nix::Error::last())?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_filters_compile_for_this_architecture() {
        let filters = build_filters().unwrap();
        assert_eq!(filters.len(), 3);
        assert!(filters.iter().all(|f| !f.is_empty() && f.len() < 4096));
    }

    #[test]
    fn a_filtered_process_gets_eperm_for_a_new_user_namespace_enosys_for_clone3_and_eafnosupport_for_vsock(
    ) {
        // In a forked child, so the test runner itself stays unfiltered.
        let filters = build_filters().unwrap();
        // SAFETY: the child makes only raw system calls (no allocation, no lock: the test
        // runner has other threads) and ends with _exit; every libc call below passes plain
        // integers or a pointer to the local `pair` array, valid for the call.
        match unsafe { nix::unistd::fork() }.unwrap() {
            nix::unistd::ForkResult::Child => {
                let code = (|| {
                    nix::sys::prctl::set_no_new_privs().ok()?;
                    install(&filters).ok()?;
                    // SAFETY: unshare(2) with integer flags; only this forked child is affected.
                    let userns = unsafe { libc::unshare(libc::CLONE_NEWUSER) };
                    if userns != -1 || nix::Error::last() != nix::Error::EPERM {
                        return None;
                    }
                    // SAFETY: a raw system call with integer arguments (null pointers are not read).
                    let keyring = unsafe { libc::syscall(libc::SYS_keyctl, 0, 0, 0, 0, 0) };
                    if keyring != -1 || nix::Error::last() != nix::Error::EPERM {
                        return None;
                    }
                    // SAFETY: a raw system call with integer arguments (null pointers are not read).
                    let clone3 = unsafe { libc::syscall(libc::SYS_clone3, 0, 0) };
                    if clone3 != -1 || nix::Error::last() != nix::Error::ENOSYS {
                        return None;
                    }
                    // Socket families outside the namespace's reach: EAFNOSUPPORT.
                    for af in [libc::AF_VSOCK, libc::AF_NETLINK, libc::AF_PACKET] {
                        // SAFETY: socket(2) with integer arguments.
                        let s = unsafe { libc::socket(af, libc::SOCK_STREAM, 0) };
                        if s != -1 || nix::Error::last() != nix::Error::EAFNOSUPPORT {
                            return None;
                        }
                    }
                    let mut pair = [0; 2];
                    // SAFETY: socketpair(2) writes two descriptors into the local `pair`, valid here.
                    let vsock_pair = unsafe {
                        libc::socketpair(libc::AF_VSOCK, libc::SOCK_STREAM, 0, pair.as_mut_ptr())
                    };
                    if vsock_pair != -1 || nix::Error::last() != nix::Error::EAFNOSUPPORT {
                        return None;
                    }
                    // The allowed ones still work (the family is all the filter looks at).
                    for af in [libc::AF_UNIX, libc::AF_INET, libc::AF_INET6] {
                        // SAFETY: socket(2) with integer arguments.
                        let s = unsafe { libc::socket(af, libc::SOCK_STREAM, 0) };
                        if s < 0 && nix::Error::last() == nix::Error::EAFNOSUPPORT {
                            return None;
                        }
                    }
                    // SAFETY: socketpair(2) writes two descriptors into the local `pair`, valid here.
                    let unix_pair = unsafe {
                        libc::socketpair(libc::AF_UNIX, libc::SOCK_STREAM, 0, pair.as_mut_ptr())
                    };
                    if unix_pair != 0 {
                        return None;
                    }
                    // Ordinary calls still work: a plain unshare of nothing, getpid.
                    // SAFETY: unshare(2) with integer flags; only this forked child is affected.
                    if unsafe { libc::unshare(0) } != 0 || nix::unistd::getpid().as_raw() <= 0 {
                        return None;
                    }
                    Some(0)
                })()
                .unwrap_or(1);
                // SAFETY: _exit(2) ends the forked child without running the parent's atexit handlers.
                unsafe { libc::_exit(code) }
            }
            nix::unistd::ForkResult::Parent { child } => {
                let status = nix::sys::wait::waitpid(child, None).unwrap();
                assert_eq!(status, nix::sys::wait::WaitStatus::Exited(child, 0));
            }
        }
    }
}
