//! Booting a kernel under QEMU (TCG) with its serial console captured to a
//! file, waiting for console lines with deadlines, and never leaving a QEMU
//! process behind.

use std::ffi::OsString;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};

use kettle_wire::devices;

use crate::TestError;

/// How often the console file and the QEMU process are polled.
const POLL: Duration = Duration::from_millis(100);
/// How much of the console an error message quotes.
const CONSOLE_TAIL_LINES: usize = 60;

/// What to boot and with which devices. Defaults: q35, TCG, EPYC-v4 (the
/// measured vCPU type), 1 vCPU, 512 MiB, QEMU's default firmware, no NIC.
#[derive(Debug, Clone)]
pub struct QemuConfig {
    /// The QEMU binary: `$QEMU`, else `qemu-system-x86_64`.
    pub program: String,
    /// The kernel (bzImage) passed with `-kernel`.
    pub kernel: PathBuf,
    /// The initramfs passed with `-initrd`.
    pub initrd: Option<PathBuf>,
    /// The kernel command line.
    pub append: String,
    /// A firmware image for `-bios`; `None` keeps QEMU's default (SeaBIOS).
    /// Under TCG without SEV the AmdSev OVMF does not direct-boot a kernel,
    /// so tests use the default firmware with the same kernel and initramfs.
    pub firmware: Option<PathBuf>,
    /// The `-cpu` model.
    pub cpu: String,
    /// The vCPU count.
    pub smp: u32,
    /// The guest memory (`-m`).
    pub memory: String,
    /// Raw disk images attached as virtio-blk devices, in order (vda, vdb, ...).
    pub disks: Vec<PathBuf>,
    /// Whether to attach a virtio-rng device.
    pub rng: bool,
    /// Further arguments appended verbatim.
    pub extra_args: Vec<OsString>,
}

impl QemuConfig {
    /// A configuration that boots `kernel` with the defaults above and `console=ttyS0`.
    pub fn new(kernel: impl Into<PathBuf>) -> Self {
        QemuConfig {
            program: std::env::var("QEMU").unwrap_or_else(|_| "qemu-system-x86_64".to_owned()),
            kernel: kernel.into(),
            initrd: None,
            append: "console=ttyS0".to_owned(),
            firmware: None,
            cpu: "EPYC-v4".to_owned(),
            smp: 1,
            memory: "512M".to_owned(),
            disks: Vec::new(),
            rng: false,
            extra_args: Vec::new(),
        }
    }

    /// Sets the initramfs.
    pub fn initrd(mut self, path: impl Into<PathBuf>) -> Self {
        self.initrd = Some(path.into());
        self
    }

    /// Sets the kernel command line.
    pub fn append(mut self, cmdline: impl Into<String>) -> Self {
        self.append = cmdline.into();
        self
    }

    /// Attaches a raw disk image as the next virtio-blk device.
    pub fn disk(mut self, path: impl Into<PathBuf>) -> Self {
        self.disks.push(path.into());
        self
    }

    /// Attaches a virtio-rng device.
    pub fn rng(mut self) -> Self {
        self.rng = true;
        self
    }

    /// The QEMU arguments, with the serial console written to `serial_log`.
    pub fn args(&self, serial_log: &Path) -> Vec<OsString> {
        let mut args: Vec<OsString> = Vec::new();
        let mut push = |a: &str| args.push(a.into());
        for a in [
            "-machine",
            "q35",
            "-accel",
            "tcg",
            "-nodefaults",
            "-display",
            "none",
        ] {
            push(a);
        }
        push("-no-reboot");
        push("-cpu");
        push(&self.cpu);
        push("-smp");
        push(&self.smp.to_string());
        push("-m");
        push(&self.memory);
        push("-monitor");
        push("none");
        let mut serial = OsString::from("file:");
        serial.push(serial_log);
        args.extend(["-serial".into(), serial]);
        if let Some(fw) = &self.firmware {
            args.extend(["-bios".into(), fw.into()]);
        }
        args.extend(["-kernel".into(), self.kernel.clone().into()]);
        if let Some(initrd) = &self.initrd {
            args.extend(["-initrd".into(), initrd.into()]);
        }
        args.extend(["-append".into(), self.append.clone().into()]);
        for (i, disk) in self.disks.iter().enumerate() {
            let id = format!("disk{i}");
            args.extend(["-drive".into(), devices::qemu_drive(&id, disk, false)]);
            args.extend([
                "-device".into(),
                format!("virtio-blk-pci,drive={id}").into(),
            ]);
        }
        if self.rng {
            args.extend(["-device".into(), "virtio-rng-pci".into()]);
        }
        args.extend(self.extra_args.iter().cloned());
        args
    }
}

/// A running QEMU. Dropping it kills QEMU (and QEMU also dies with SIGKILL
/// if the thread that spawned it goes away), so no process outlives a test.
pub struct Qemu {
    child: Child,
    exit: Option<ExitStatus>,
    console: PathBuf,
    stderr: PathBuf,
    started: Instant,
    _dir: tempfile::TempDir,
}

impl Qemu {
    /// Starts QEMU (`config.program`) with `config`.
    pub fn spawn(config: &QemuConfig) -> Result<Qemu, TestError> {
        let dir = tempfile::Builder::new()
            .prefix("kettle-qemu-")
            .tempdir()
            .map_err(|e| {
                TestError::io("create a temporary directory in", std::env::temp_dir(), e)
            })?;
        let console = dir.path().join("console.log");
        let mut command = Command::new(&config.program);
        command.args(config.args(&console));
        Self::start(command, &config.program, dir)
    }

    /// Runs `command` as the VM process, its console file in `dir`.
    fn start(
        mut command: Command,
        program: &str,
        dir: tempfile::TempDir,
    ) -> Result<Qemu, TestError> {
        let console = dir.path().join("console.log");
        let stderr = dir.path().join("qemu-stderr.log");
        std::fs::write(&console, b"").map_err(|e| TestError::io("create", &console, e))?;
        let stderr_file =
            std::fs::File::create(&stderr).map_err(|e| TestError::io("create", &stderr, e))?;
        command
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(stderr_file);
        // SAFETY: prctl(PR_SET_PDEATHSIG) is async-signal-safe and touches no
        // memory of the parent; it only asks the kernel to SIGKILL QEMU if
        // the spawning thread dies without dropping this handle.
        unsafe {
            command.pre_exec(|| {
                rustix::process::set_parent_process_death_signal(Some(
                    rustix::process::Signal::KILL,
                ))
                .map_err(std::io::Error::from)
            });
        }
        let started = Instant::now();
        let child = command.spawn().map_err(|source| TestError::Spawn {
            program: program.to_owned(),
            source,
        })?;
        Ok(Qemu {
            child,
            exit: None,
            console,
            stderr,
            started,
            _dir: dir,
        })
    }

    /// Time since QEMU was started.
    pub fn elapsed(&self) -> Duration {
        self.started.elapsed()
    }

    /// The serial console so far (lossy UTF-8).
    pub fn console(&self) -> String {
        String::from_utf8_lossy(&std::fs::read(&self.console).unwrap_or_default()).into_owned()
    }

    /// What QEMU printed on stderr so far.
    pub fn stderr(&self) -> String {
        String::from_utf8_lossy(&std::fs::read(&self.stderr).unwrap_or_default()).into_owned()
    }

    fn console_tail(&self) -> String {
        let console = self.console();
        let lines: Vec<&str> = console.lines().collect();
        lines[lines.len().saturating_sub(CONSOLE_TAIL_LINES)..].join("\n")
    }

    /// QEMU's exit status if it has exited.
    fn poll_exit(&mut self) -> Option<ExitStatus> {
        if self.exit.is_none() {
            self.exit = self.child.try_wait().ok().flatten();
        }
        self.exit
    }

    /// Waits until a console line contains `needle` and returns that line
    /// (without the line ending). Fails at `timeout`, or as soon as QEMU exits
    /// without having printed it.
    pub fn wait_for_line(&mut self, needle: &str, timeout: Duration) -> Result<String, TestError> {
        let deadline = Instant::now() + timeout;
        loop {
            // Check for exit before reading, so output written just before exiting is seen.
            let exited = self.poll_exit();
            if let Some(line) = self.console().lines().find(|l| l.contains(needle)) {
                return Ok(line.trim_end_matches('\r').to_owned());
            }
            if let Some(status) = exited {
                return Err(TestError::ExitedEarly {
                    needle: needle.to_owned(),
                    status,
                    console: self.console_tail(),
                    stderr: self.stderr(),
                });
            }
            if Instant::now() >= deadline {
                return Err(TestError::Timeout {
                    needle: needle.to_owned(),
                    waited: timeout,
                    console: self.console_tail(),
                });
            }
            std::thread::sleep(POLL);
        }
    }

    /// Waits for QEMU to exit by itself (the guest ended the VM) and returns its status.
    pub fn wait_for_exit(&mut self, timeout: Duration) -> Result<ExitStatus, TestError> {
        let deadline = Instant::now() + timeout;
        loop {
            if let Some(status) = self.poll_exit() {
                return Ok(status);
            }
            if Instant::now() >= deadline {
                return Err(TestError::DidNotExit {
                    waited: timeout,
                    console: self.console_tail(),
                });
            }
            std::thread::sleep(POLL);
        }
    }
}

impl Drop for Qemu {
    fn drop(&mut self) {
        if self.poll_exit().is_none() {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn args_attach_disks_in_order_and_capture_the_serial_console() {
        let config = QemuConfig::new("/k/bzImage")
            .initrd("/k/initrd")
            .disk("/d/a.img")
            .disk("/d/b.img")
            .rng();
        let args: Vec<String> = config
            .args(Path::new("/t/console.log"))
            .iter()
            .map(|a| a.to_string_lossy().into_owned())
            .collect();
        let joined = args.join(" ");
        assert!(joined.contains("-accel tcg"), "{joined}");
        assert!(joined.contains("-no-reboot"), "{joined}");
        assert!(joined.contains("-serial file:/t/console.log"), "{joined}");
        assert!(
            joined.contains("-kernel /k/bzImage -initrd /k/initrd -append console=ttyS0"),
            "{joined}"
        );
        assert!(!joined.contains("-bios"), "default firmware: {joined}");
        let a = joined.find("file=/d/a.img").unwrap();
        let b = joined.find("file=/d/b.img").unwrap();
        assert!(a < b, "vda is the first disk: {joined}");
        assert!(joined.contains("virtio-blk-pci,drive=disk1"), "{joined}");
        assert!(joined.contains("virtio-rng-pci"), "{joined}");
    }

    #[test]
    fn a_missing_qemu_binary_is_a_spawn_error() {
        let mut config = QemuConfig::new("/k/bzImage");
        config.program = "kettle-no-such-qemu".to_owned();
        match Qemu::spawn(&config) {
            Err(TestError::Spawn { program, .. }) => assert_eq!(program, "kettle-no-such-qemu"),
            Err(other) => panic!("unexpected error {other}"),
            Ok(_) => panic!("spawned a program that does not exist"),
        }
    }

    #[test]
    fn a_process_that_exits_without_the_line_fails_fast_with_its_status() {
        // `false` ignores QEMU's arguments and exits 1 at once, like a QEMU that refused them.
        let mut config = QemuConfig::new("/k/bzImage");
        config.program = "false".to_owned();
        let mut qemu = Qemu::spawn(&config).unwrap();
        match qemu.wait_for_line("never printed", Duration::from_secs(30)) {
            Err(TestError::ExitedEarly { status, needle, .. }) => {
                assert_eq!(status.code(), Some(1));
                assert_eq!(needle, "never printed");
            }
            other => panic!("unexpected result {other:?}"),
        }
        assert_eq!(
            qemu.wait_for_exit(Duration::from_secs(1)).unwrap().code(),
            Some(1)
        );
    }

    #[test]
    fn a_guest_that_never_prints_times_out_and_is_killed_on_drop() {
        // A VM process that stays up and prints nothing.
        let mut sleeper = Command::new("sleep");
        sleeper.arg("600");
        let mut qemu = Qemu::start(sleeper, "sleep", tempfile::tempdir().unwrap()).unwrap();
        let pid = qemu.child.id();
        assert!(matches!(
            qemu.wait_for_line("never printed", Duration::from_millis(300)),
            Err(TestError::Timeout { .. })
        ));
        assert!(matches!(
            qemu.wait_for_exit(Duration::from_millis(200)),
            Err(TestError::DidNotExit { .. })
        ));
        drop(qemu);
        let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
        assert!(
            status.is_empty() || status.contains("State:\tZ"),
            "process {pid} survived the drop: {status}"
        );
    }
}
