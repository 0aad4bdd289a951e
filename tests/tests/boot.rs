//! Boots build/bzImage under QEMU (TCG) with a tiny static test init and
//! checks, from the guest console, that the kernel has what the real init
//! relies on: configfs (and configfs-tsm), virtio-blk, virtio-rng, and the
//! namespaces of the build sandbox. Skips off CI when bzImage is not built.

use std::os::unix::fs::PermissionsExt;
use std::time::Duration;

use kettle_testkit::{
    compile_static_rust, pack_newc_with_system_cpio, require_artifact, Qemu, QemuConfig,
    Requirement, TestError,
};

/// The test init: a dependency-free Rust program run as PID 1. It reports
/// each check as `kettle-test-init: check <name>=ok|FAILED (<detail>)`, then
/// powers the VM off so QEMU exits by itself.
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
}

const CLONE_NEWNS: c_int = 0x0002_0000;
const CLONE_NEWUTS: c_int = 0x0400_0000;
const CLONE_NEWIPC: c_int = 0x0800_0000;
const CLONE_NEWPID: c_int = 0x2000_0000;
const CLONE_NEWNET: c_int = 0x4000_0000;
const LINUX_REBOOT_CMD_POWER_OFF: c_int = 0x4321_fedc_u32 as c_int;

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

fn main() {
    let mut console = std::fs::OpenOptions::new().write(true).open("/dev/console").expect("open /dev/console");
    say(&mut console, "hello");
    let mounts = mount_fs("proc", "/proc")
        .and_then(|_| mount_fs("sysfs", "/sys"))
        .and_then(|_| mount_fs("devtmpfs", "/dev"))
        .map(|_| "proc, sysfs, devtmpfs".to_owned());
    check(&mut console, "mounts", mounts);
    check(&mut console, "configfs", mount_fs("configfs", "/sys/kernel/config").and_then(|_| exists("/sys/kernel/config")));
    check(&mut console, "tsm-report", exists("/sys/kernel/config/tsm/report"));
    check(&mut console, "vda", block_device("/dev/vda"));
    check(&mut console, "hwrng", exists("/dev/hwrng"));
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
        reboot(LINUX_REBOOT_CMD_POWER_OFF);
    }
    say(&mut console, &format!("power off failed: {}", std::io::Error::last_os_error()));
    loop {
        std::thread::sleep(std::time::Duration::from_secs(3600));
    }
}
"#;

/// Every check the test init runs; each must report `=ok`.
const CHECKS: [&str; 6] = [
    "mounts",
    "configfs",
    "tsm-report",
    "vda",
    "hwrng",
    "namespaces",
];

/// Deadline for the first init line: TCG on a loaded 2-core machine is slow.
const BOOT_TIMEOUT: Duration = Duration::from_secs(300);
/// Deadline for the init's checks and the power-off after its first line.
const RUN_TIMEOUT: Duration = Duration::from_secs(120);

fn ok<T>(result: Result<T, TestError>) -> T {
    result.unwrap_or_else(|e| panic!("{e}"))
}

#[test]
fn kernel_boots_a_static_init_with_configfs_virtio_and_namespaces() {
    let Some(kernel) = require_artifact("bzImage", "kernel", Requirement::from_env()) else {
        return;
    };
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

    // panic=-1: a kernel panic reboots, and -no-reboot turns that into QEMU exiting.
    let config = QemuConfig::new(&kernel)
        .initrd(&initrd)
        .append("console=ttyS0 panic=-1")
        .disk(&disk)
        .rng();
    let mut qemu = ok(Qemu::spawn(&config));
    ok(qemu.wait_for_line("kettle-test-init: hello", BOOT_TIMEOUT));
    let boot = qemu.elapsed();
    ok(qemu.wait_for_line("kettle-test-init: done", RUN_TIMEOUT));
    let status = ok(qemu.wait_for_exit(RUN_TIMEOUT));
    let total = qemu.elapsed();
    eprintln!(
        "boot: {} to the init's first line in {:.1}s, powered off after {:.1}s",
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
    assert!(
        status.success(),
        "QEMU exited with {status} after the guest powered off; stderr:\n{}",
        qemu.stderr()
    );
}
