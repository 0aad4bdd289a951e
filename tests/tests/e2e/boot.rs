//! Boots build/bzImage under QEMU (TCG) with a tiny static test init and
//! checks, from the guest console, that the kernel has what the real init
//! relies on: configfs (and configfs-tsm), virtio-blk, both vCPUs, and the
//! namespaces of the build sandbox; and that it takes nothing the host should
//! not give it: the host's AML never runs (a hostile SSDT beside QEMU's
//! `isa-debug-exit` would end QEMU with status 67), its virtio-rng is not
//! bound, and the CRNG is ready without it. Skips off CI when bzImage is not built.

use std::os::unix::fs::PermissionsExt;
use std::time::Duration;

use kettle_testkit::hostile::{
    hostile_acpi_args, ssdt_writing_io_port, AML_RAN_EXIT_STATUS, DEBUG_EXIT_PORT, DEBUG_EXIT_VALUE,
};
use kettle_testkit::{
    compile_static_rust, pack_newc_with_system_cpio, require_artifact, Qemu, QemuConfig,
    Requirement, TestError,
};

/// The test init: a dependency-free Rust program run as PID 1. It reports
/// each check as `kettle-test-init: check <name>=ok|FAILED (<detail>)`, then
/// resets the VM (there is no ACPI power-off without AML) so that QEMU, run
/// with `-no-reboot`, exits by itself.
const TEST_INIT: &str = r#"
use std::ffi::CString;
use std::io::Write;
use std::os::raw::{c_char, c_int, c_ulong, c_void};
use std::os::unix::fs::FileTypeExt;

extern "C" {
    fn mount(source: *const c_char, target: *const c_char, fstype: *const c_char, flags: c_ulong, data: *const c_void) -> c_int;
    fn unshare(flags: c_int) -> c_int;
    fn reboot(cmd: c_int) -> c_int;
    fn sync();
    fn getrandom(buf: *mut c_void, len: usize, flags: u32) -> isize;
}

const CLONE_NEWNS: c_int = 0x0002_0000;
const CLONE_NEWUTS: c_int = 0x0400_0000;
const CLONE_NEWIPC: c_int = 0x0800_0000;
const CLONE_NEWPID: c_int = 0x2000_0000;
const CLONE_NEWNET: c_int = 0x4000_0000;
const LINUX_REBOOT_CMD_RESTART: c_int = 0x0123_4567;
const GRND_NONBLOCK: u32 = 0x0001;

fn say(console: &mut std::fs::File, msg: &str) {
    let _ = writeln!(console, "kettle-test-init: {msg}");
}

fn check(console: &mut std::fs::File, name: &str, result: Result<String, String>) {
    match result {
        Ok(detail) => say(console, &format!("check {name}=ok ({detail})")),
        Err(why) => say(console, &format!("check {name}=FAILED ({why})")),
    }
}

fn mount_fs(fstype: &str, target: &str) -> Result<String, String> {
    std::fs::create_dir_all(target).map_err(|e| format!("mkdir {target}: {e}"))?;
    let fs = CString::new(fstype).unwrap();
    let dir = CString::new(target).unwrap();
    let rc = unsafe { mount(fs.as_ptr(), dir.as_ptr(), fs.as_ptr(), 0, std::ptr::null()) };
    if rc == 0 {
        Ok(format!("{fstype} on {target}"))
    } else {
        Err(format!("mount {fstype} on {target}: {}", std::io::Error::last_os_error()))
    }
}

fn block_device(path: &str) -> Result<String, String> {
    let meta = std::fs::metadata(path).map_err(|e| format!("{path}: {e}"))?;
    if meta.file_type().is_block_device() {
        Ok(format!("{path} is a block device"))
    } else {
        Err(format!("{path} is not a block device"))
    }
}

fn exists(path: &str) -> Result<String, String> {
    std::fs::metadata(path).map(|_| format!("{path} exists")).map_err(|e| format!("{path}: {e}"))
}

fn absent(path: &str) -> Result<String, String> {
    match std::fs::metadata(path) {
        Ok(_) => Err(format!("{path} exists")),
        Err(_) => Ok(format!("no {path}")),
    }
}

fn crng_ready() -> Result<String, String> {
    let mut buf = [0u8; 16];
    let n = unsafe { getrandom(buf.as_mut_ptr().cast(), buf.len(), GRND_NONBLOCK) };
    if n == 16 {
        Ok("getrandom(GRND_NONBLOCK) answered at PID 1's start".to_owned())
    } else {
        Err(format!("getrandom(GRND_NONBLOCK): {}", std::io::Error::last_os_error()))
    }
}

fn main() {
    let mut console = std::fs::OpenOptions::new().write(true).open("/dev/console").expect("open /dev/console");
    say(&mut console, "hello");
    // First thing, before anything could add entropy: seeded by the CPU alone.
    let crng = crng_ready();
    let mounts = mount_fs("proc", "/proc")
        .and_then(|_| mount_fs("sysfs", "/sys"))
        .and_then(|_| mount_fs("devtmpfs", "/dev"))
        .map(|_| "proc, sysfs, devtmpfs".to_owned());
    check(&mut console, "mounts", mounts);
    check(&mut console, "configfs", mount_fs("configfs", "/sys/kernel/config").and_then(|_| exists("/sys/kernel/config")));
    check(&mut console, "tsm-report", exists("/sys/kernel/config/tsm/report"));
    check(&mut console, "vda", block_device("/dev/vda"));
    check(&mut console, "crng", crng);
    // QEMU attaches a virtio-rng device: the host's entropy must not be bound.
    check(&mut console, "no-hwrng", absent("/dev/hwrng").and_then(|_| absent("/sys/class/misc/hw_random")));
    // No AML interpreter: ACPI is off once the static tables are read, so sysfs has no ACPI tables.
    check(&mut console, "no-acpi-interpreter", absent("/sys/firmware/acpi/tables"));
    let cpus = std::fs::read_to_string("/sys/devices/system/cpu/online").map_err(|e| e.to_string());
    check(&mut console, "two-cpus", cpus.and_then(|l| if l.trim() == "0-1" { Ok(format!("online {}", l.trim())) } else { Err(format!("online {}", l.trim())) }));
    let flags = CLONE_NEWPID | CLONE_NEWNET | CLONE_NEWNS | CLONE_NEWUTS | CLONE_NEWIPC;
    let ns = if unsafe { unshare(flags) } == 0 {
        Ok("unshare(NEWPID|NEWNET|NEWNS|NEWUTS|NEWIPC)".to_owned())
    } else {
        Err(format!("unshare: {}", std::io::Error::last_os_error()))
    };
    check(&mut console, "namespaces", ns);
    say(&mut console, "done");
    unsafe {
        sync();
        reboot(LINUX_REBOOT_CMD_RESTART);
    }
    say(&mut console, &format!("reset failed: {}", std::io::Error::last_os_error()));
    loop {
        std::thread::sleep(std::time::Duration::from_secs(3600));
    }
}
"#;

/// Every check the test init runs; each must report `=ok`.
const CHECKS: [&str; 9] = [
    "mounts",
    "configfs",
    "tsm-report",
    "vda",
    "crng",
    "no-hwrng",
    "no-acpi-interpreter",
    "two-cpus",
    "namespaces",
];

/// Deadline for the first init line: TCG on a loaded 2-core machine is slow.
const BOOT_TIMEOUT: Duration = Duration::from_secs(300);
/// Deadline for the init's checks and the reset after its first line.
const RUN_TIMEOUT: Duration = Duration::from_secs(120);

fn ok<T>(result: Result<T, TestError>) -> T {
    result.unwrap_or_else(|e| panic!("{e}"))
}

#[test]
fn kernel_boots_two_cpus_with_configfs_virtio_and_namespaces_and_runs_no_host_aml() {
    let Some(kernel) = require_artifact("bzImage", "kernel", Requirement::from_env()) else {
        return;
    };
    let _vm = crate::small_vm();
    let work = tempfile::tempdir().expect("temporary directory");
    let root = work.path().join("root");
    std::fs::create_dir(&root).expect("initramfs root");
    let init = ok(compile_static_rust(TEST_INIT, work.path(), "test-init"));
    std::fs::copy(&init, root.join("init")).expect("copy init");
    std::fs::set_permissions(root.join("init"), std::fs::Permissions::from_mode(0o755))
        .expect("chmod init");
    let initrd = work.path().join("initrd.cpio");
    ok(pack_newc_with_system_cpio(&root, &initrd));
    let disk = work.path().join("disk.img");
    std::fs::File::create(&disk)
        .and_then(|f| f.set_len(1 << 20))
        .expect("disk image");

    // The host's hostile SSDT: if the kernel ran its AML, QEMU would exit 67 during boot.
    let ssdt = work.path().join("evil.aml");
    std::fs::write(
        &ssdt,
        ssdt_writing_io_port(DEBUG_EXIT_PORT, DEBUG_EXIT_VALUE),
    )
    .expect("ssdt");

    // panic=-1: a kernel panic reboots, and -no-reboot turns that into QEMU exiting.
    let mut config = QemuConfig::new(&kernel)
        .initrd(&initrd)
        .append("console=ttyS0 panic=-1")
        .disk(&disk)
        .rng();
    config.smp = 2;
    config
        .extra_args
        .extend(hostile_acpi_args(&ssdt).into_iter().map(Into::into));
    let mut qemu = ok(Qemu::spawn(&config));
    if let Err(e) = qemu.wait_for_line("kettle-test-init: hello", BOOT_TIMEOUT) {
        let aml_ran = matches!(&e, TestError::ExitedEarly { status, .. } if status.code() == Some(AML_RAN_EXIT_STATUS));
        let why = if aml_ran {
            "the guest kernel ran the host's AML (isa-debug-exit ended QEMU with 67): "
        } else {
            ""
        };
        panic!("{why}{e}");
    }
    let boot = qemu.elapsed();
    ok(qemu.wait_for_line("kettle-test-init: done", RUN_TIMEOUT));
    let status = ok(qemu.wait_for_exit(RUN_TIMEOUT));
    let total = qemu.elapsed();
    eprintln!(
        "boot: {} to the init's first line in {:.1}s, reset after {:.1}s",
        kernel.display(),
        boot.as_secs_f64(),
        total.as_secs_f64()
    );

    let console = qemu.console();
    for line in console.lines().filter(|l| l.contains("kettle-test-init:")) {
        eprintln!("guest: {}", line.trim_end());
    }
    let failed: Vec<&str> = CHECKS
        .iter()
        .copied()
        .filter(|name| !console.contains(&format!("kettle-test-init: check {name}=ok")))
        .collect();
    assert!(
        failed.is_empty(),
        "guest checks not ok: {failed:?}; console:\n{console}"
    );
    assert_ne!(
        status.code(),
        Some(AML_RAN_EXIT_STATUS),
        "the guest kernel ran the host's AML (isa-debug-exit); console:\n{console}"
    );
    assert!(
        status.success(),
        "QEMU exited with {status} after the guest reset; stderr:\n{}",
        qemu.stderr()
    );
}
