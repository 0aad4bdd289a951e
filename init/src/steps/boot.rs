//! The boot step (guest only): mount the kernel filesystems, put the console
//! on stdio and the logger, wait for the entropy pool, count the CPUs, and the
//! PID 1 duties (reaping orphans, ending the VM).

use std::fs::OpenOptions;
use std::os::fd::AsRawFd;

use nix::mount::{mount, MsFlags};
use thiserror::Error;

use super::timed;
use crate::clock::{Clock, ClockError};
use crate::error::{InStep, Step, StepError};

/// Why the guest could not boot into the pipeline.
#[derive(Debug, Error)]
pub enum BootError {
    /// A mount failed.
    #[error("mounting {fstype} at {target}: {source}")]
    Mount {
        /// Filesystem type.
        fstype: &'static str,
        /// Mount point.
        target: &'static str,
        /// Cause.
        #[source]
        source: nix::Error,
    },
    /// Creating a mount point failed.
    #[error("creating {0}: {1}")]
    MkDir(&'static str, #[source] std::io::Error),
    /// The kernel's random pool could not be read.
    #[error("waiting for entropy: {0}")]
    Entropy(String),
    /// The clock the host gave the guest is before this binary's build date.
    #[error(transparent)]
    Clock(#[from] ClockError),
}

/// No set-uid programs, no device nodes.
const NOSUID_NODEV: MsFlags = MsFlags::MS_NOSUID.union(MsFlags::MS_NODEV);
/// And nothing executable (proc, sysfs, configfs).
const NOSUID_NODEV_NOEXEC: MsFlags = NOSUID_NODEV.union(MsFlags::MS_NOEXEC);

/// The kernel filesystems init mounts: (source, target, type, flags, data).
#[rustfmt::skip]
const MOUNTS: &[(&str, &str, &str, MsFlags, Option<&str>)] = &[
    ("proc", "/proc", "proc", NOSUID_NODEV_NOEXEC, None),
    ("sysfs", "/sys", "sysfs", NOSUID_NODEV_NOEXEC, None),
    // devtmpfs holds the device nodes, so it keeps nodev off.
    ("devtmpfs", "/dev", "devtmpfs", MsFlags::MS_NOSUID.union(MsFlags::MS_NOEXEC), Some("mode=0755")),
    ("tmpfs", "/tmp", "tmpfs", NOSUID_NODEV, Some("mode=1777")),
    // The build's work area (cache, source, rootfs, toolchain) lives here, in guest RAM.
    ("tmpfs", "/run", "tmpfs", NOSUID_NODEV, Some("mode=0755,size=90%")),
    ("configfs", "/sys/kernel/config", "configfs", NOSUID_NODEV_NOEXEC, None),
];

/// Mounts, console, logger, entropy, the clock; logs the step's console line (also when it fails).
pub fn boot() -> Result<(), StepError> {
    let what = format!("kettle-init {} as PID 1", env!("CARGO_PKG_VERSION"));
    timed(Step::Boot, &what, || {
        let mounted = mount_all();
        // The logger comes up even when a mount failed, so the failure reaches the console.
        console_on_stdio();
        init_logger();
        mounted.in_step(Step::Boot)?;
        // getrandom(2) without GRND_NONBLOCK blocks until the pool is initialized.
        let mut seed = [0u8; 32];
        getrandom::getrandom(&mut seed)
            .map_err(|e| BootError::Entropy(e.to_string()))
            .in_step(Step::Boot)?;
        let now = check_clock(Clock::System)?;
        // The vCPU count is part of the launch digest; the line shows the kernel
        // brought them all up from the static ACPI tables alone (no AML runs).
        let cpus = std::fs::read_to_string(ONLINE_CPUS)
            .ok()
            .and_then(|list| count_cpus(&list))
            .map_or_else(
                || "CPU count unknown".to_owned(),
                |n| format!("{n} CPU{} online", if n == 1 { "" } else { "s" }),
            );
        Ok((
            (),
            format!(
                "filesystems mounted, {cpus}, entropy ready (seeded by the CPU), clock {} (host-provided, unverified)",
                kettle_provenance::timestamp::format_rfc3339_utc(now)
            ),
        ))
    })
}

/// The kernel's list of online CPUs.
const ONLINE_CPUS: &str = "/sys/devices/system/cpu/online";

/// The number of CPUs in a kernel CPU list (`0`, `0-3`, `0-1,4`), or `None`
/// if it is not one.
fn count_cpus(list: &str) -> Option<usize> {
    let mut n = 0usize;
    for part in list.trim().split(',') {
        let (first, last) = match part.split_once('-') {
            Some((a, b)) => (a.parse::<usize>().ok()?, b.parse::<usize>().ok()?),
            None => {
                let one = part.parse::<usize>().ok()?;
                (one, one)
            }
        };
        n += last.checked_sub(first)? + 1;
    }
    Some(n)
}

/// The host sets the guest's clock: refuse one before this binary's build date, before
/// anything is fetched (the provenance step checks its timestamps again).
pub fn check_clock(clock: Clock) -> Result<i64, StepError> {
    clock
        .checked_now()
        .map_err(BootError::from)
        .in_step(Step::Boot)
}

fn mount_all() -> Result<(), BootError> {
    for (src, target, fstype, flags, data) in MOUNTS {
        std::fs::create_dir_all(target).map_err(|e| BootError::MkDir(target, e))?;
        match mount(Some(*src), *target, Some(*fstype), *flags, *data) {
            Ok(()) | Err(nix::Error::EBUSY) => {}
            Err(source) => {
                return Err(BootError::Mount {
                    fstype,
                    target,
                    source,
                })
            }
        }
    }
    Ok(())
}

/// Points fds 0-2 at /dev/console (the serial console), in case the kernel could not.
fn console_on_stdio() {
    if let Ok(console) = OpenOptions::new()
        .read(true)
        .write(true)
        .open("/dev/console")
    {
        for fd in 0..3 {
            // SAFETY: dup2 on a descriptor we own (kept open by `console` for
            // the call) onto 0-2; it touches no memory.
            unsafe { nix::libc::dup2(console.as_raw_fd(), fd) };
        }
    }
}

/// Logs to stderr (the console), UTC timestamps, info and above.
pub fn init_logger() {
    let config = simplelog::ConfigBuilder::new()
        .set_time_format_rfc3339()
        .set_target_level(simplelog::LevelFilter::Off)
        .build();
    let _ = simplelog::WriteLogger::init(simplelog::LevelFilter::Info, config, std::io::stderr());
}

/// Reaps every exited child (orphans reparented to PID 1) without blocking.
pub fn reap_zombies() {
    use nix::sys::wait::{waitpid, WaitPidFlag, WaitStatus};
    while let Ok(status) = waitpid(None, Some(WaitPidFlag::WNOHANG)) {
        if status == WaitStatus::StillAlive {
            break;
        }
    }
}

/// Flushes filesystems and ends the VM. Only PID 1 may call it.
///
/// It resets the VM rather than powering it off: ACPI power-off needs the
/// firmware's `\_S5` AML, and the kernel never runs AML (the host supplies it;
/// kernel-config/patches/0001-acpi-no-aml.patch), so a power-off request
/// would only halt the vCPUs. The launcher runs QEMU with `-no-reboot`, which
/// turns the reset into QEMU exiting.
pub fn end_vm() -> ! {
    nix::unistd::sync();
    log::logger().flush();
    let _ = nix::sys::reboot::reboot(nix::sys::reboot::RebootMode::RB_AUTOBOOT);
    // reboot(2) only returns on error; PID 1 must not exit (that panics the kernel).
    loop {
        std::thread::sleep(std::time::Duration::from_secs(3600));
    }
}

/// True when this process is the guest's PID 1.
pub fn is_pid1() -> bool {
    std::process::id() == 1
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::clock::BUILD_EPOCH;

    #[test]
    fn boot_refuses_a_clock_before_the_build_date() {
        let err = check_clock(Clock::Fixed(BUILD_EPOCH - 3600)).unwrap_err();
        assert_eq!(err.step, Step::Boot);
        assert!(
            err.message().contains("before this kettle-init was built"),
            "{}",
            err.message()
        );
        assert!(check_clock(Clock::Fixed(BUILD_EPOCH + 1)).is_ok());
    }

    #[test]
    fn counts_the_cpus_of_a_kernel_cpu_list() {
        assert_eq!(count_cpus("0\n"), Some(1));
        assert_eq!(count_cpus("0-1\n"), Some(2));
        assert_eq!(count_cpus("0-3,6,8-9"), Some(7));
        assert_eq!(count_cpus(""), None);
        assert_eq!(count_cpus("3-1"), None);
        assert_eq!(count_cpus("0-x"), None);
    }
}
