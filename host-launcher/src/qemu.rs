//! The one place QEMU's command line is made, plus the up-front checks of the
//! QEMU binary (version, SEV-SNP support) and of KVM.
//!
//! [`argv`] is a pure function of a [`VmConfig`], so every configuration is
//! tested as data.

use std::ffi::OsString;
use std::path::{Path, PathBuf};
use std::process::Command;

use kettle_wire::{devices, Tee};

/// Oldest QEMU whose `sev-snp-guest` object can launch an SNP guest with kernel hashes.
pub const MIN_SNP_VERSION: QemuVersion = QemuVersion {
    major: 9,
    minor: 1,
    micro: 0,
};

/// The QEMU binary `kettle build` runs unless told otherwise.
pub const DEFAULT_QEMU: &str = "qemu-system-x86_64";

/// Where to install a recent enough QEMU from, said in every "QEMU too old/missing" error.
const INSTALL_HINT: &str = "install QEMU >= 9.1: on Debian bookworm `apt-get install -t bookworm-backports qemu-system-x86` (Debian trixie's qemu-system-x86 is recent enough)";

/// How QEMU isolates the guest and where its report comes from, with the
/// host-side settings each needs (which TEE it is: [`Isolation::tee`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Isolation {
    /// A real SEV-SNP guest: AmdSev OVMF, kernel hashes, the PSP signs the report.
    Snp {
        /// The C-bit position of this host (51 on Milan, Genoa and Turin).
        cbitpos: u32,
        /// Physical address bits lost to memory encryption.
        reduced_phys_bits: u32,
    },
    /// No SEV: the host's simulated PSP answers on a virtio-serial port backed by this unix socket.
    Simulated {
        /// The unix socket the host's simulated PSP listens on.
        psp_socket: PathBuf,
    },
}

impl Isolation {
    /// Which TEE signs the guest's report.
    pub fn tee(&self) -> Tee {
        match self {
            Isolation::Snp { .. } => Tee::SevSnp,
            Isolation::Simulated { .. } => Tee::Simulated,
        }
    }
}

/// QEMU's accelerator.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Accel {
    /// Hardware virtualization through /dev/kvm (required for SNP).
    Kvm,
    /// Software emulation: slow, but runs anywhere.
    Tcg,
}

impl Accel {
    /// QEMU's name for the accelerator (`-accel NAME`).
    pub fn name(self) -> &'static str {
        match self {
            Accel::Kvm => "kvm",
            Accel::Tcg => "tcg",
        }
    }
}

/// The three disks the guest gets: request (read-only), cache (read-only, cached mode) and output.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Disks {
    /// The build request, raw image, read-only (virtio serial `kettle-request`).
    pub request: PathBuf,
    /// The content-addressed input cache, raw image, read-only (`kettle-cache`); None in upstream mode.
    pub cache: Option<PathBuf>,
    /// Where the guest writes its outputs, raw image, read-write (`kettle-output`).
    pub output: PathBuf,
}

/// Everything that decides QEMU's command line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VmConfig {
    /// SNP or simulated.
    pub isolation: Isolation,
    /// KVM or TCG.
    pub accel: Accel,
    /// The vCPU model (`-cpu`); for SNP this must be the manifest's vCPU type.
    pub cpu: String,
    /// Number of vCPUs (for SNP: the manifest's count, it is measured).
    pub vcpus: u32,
    /// Guest memory in MiB.
    pub memory_mib: u64,
    /// AmdSev OVMF, used only for SNP (the simulated guest boots with QEMU's default firmware).
    pub ovmf: PathBuf,
    /// The guest kernel (bzImage).
    pub kernel: PathBuf,
    /// The initramfs (newc cpio).
    pub initrd: PathBuf,
    /// The kernel command line (measured under SNP: must equal the manifest's).
    pub cmdline: String,
    /// The guest's disks.
    pub disks: Disks,
    /// Give the guest a user-mode NIC (upstream mode fetches its inputs over HTTPS).
    pub network: bool,
}

/// The vCPU model to run: the manifest's type under SNP (it is part of the
/// launch digest), the host's under simulated KVM, `max` under TCG (TCG
/// lacks features of the EPYC models and would warn about each).
pub fn cpu_model(isolation: &Isolation, accel: Accel, manifest_vcpu_type: &str) -> String {
    match (isolation, accel) {
        (Isolation::Snp { .. }, _) => manifest_vcpu_type.to_string(),
        (Isolation::Simulated { .. }, Accel::Kvm) => "host".to_string(),
        (Isolation::Simulated { .. }, Accel::Tcg) => "max".to_string(),
    }
}

/// The full argument vector (without the program name) for `cfg`.
///
/// The guest console (ttyS0) goes to QEMU's stdout, so the caller reads it from a pipe.
pub fn argv(cfg: &VmConfig) -> Vec<OsString> {
    let mut a = Args::default();
    let snp = matches!(cfg.isolation, Isolation::Snp { .. });
    // Under SNP every virtio device must use the IOMMU platform path (bounce
    // buffers in shared memory) and be modern-only.
    let virtio_opts = if snp {
        ",disable-legacy=on,iommu_platform=on"
    } else {
        ""
    };

    // -nodefaults: no monitor, no default NIC or disks; -display none rather
    // than -nographic, which would put the monitor on stdio next to the console.
    a.push([
        "-nodefaults",
        "-no-user-config",
        "-display",
        "none",
        "-no-reboot",
    ]);
    a.push(["-accel", cfg.accel.name()]);
    match &cfg.isolation {
        Isolation::Snp {
            cbitpos,
            reduced_phys_bits,
        } => {
            a.push([
                "-machine",
                "q35,confidential-guest-support=sev0,memory-backend=ram1",
            ]);
            a.push_s(
                "-object",
                format!(
                    "memory-backend-memfd,id=ram1,size={}M,share=true",
                    cfg.memory_mib
                ),
            );
            a.push_s(
                "-object",
                format!(
                    "sev-snp-guest,id=sev0,cbitpos={cbitpos},reduced-phys-bits={reduced_phys_bits},kernel-hashes=on"
                ),
            );
            a.push_p("-bios", &cfg.ovmf);
        }
        Isolation::Simulated { .. } => {
            a.push(["-machine", "q35"]);
        }
    }
    a.push_s("-m", format!("{}M", cfg.memory_mib));
    a.push_s("-cpu", cfg.cpu.clone());
    a.push_s("-smp", cfg.vcpus.to_string());
    a.push_p("-kernel", &cfg.kernel);
    a.push_p("-initrd", &cfg.initrd);
    a.push_s("-append", cfg.cmdline.clone());
    a.push(["-serial", "stdio"]);

    let mut disk = |id: &str, path: &Path, readonly: bool, serial: &str| {
        a.push_o("-drive", devices::qemu_drive(id, path, readonly));
        a.push_s(
            "-device",
            format!("virtio-blk-pci,drive={id},serial={serial}{virtio_opts}"),
        );
    };
    disk(
        "req",
        &cfg.disks.request,
        true,
        devices::REQUEST_DISK_SERIAL,
    );
    if let Some(cache) = &cfg.disks.cache {
        disk("cache", cache, true, devices::CACHE_DISK_SERIAL);
    }
    disk("out", &cfg.disks.output, false, devices::OUTPUT_DISK_SERIAL);

    if let Isolation::Simulated { psp_socket } = &cfg.isolation {
        a.push(["-device", "virtio-serial-pci"]);
        let mut chardev = OsString::from("socket,id=psp,path=");
        chardev.push(devices::qemu_escape_commas(psp_socket));
        a.push_o("-chardev", chardev);
        a.push_s(
            "-device",
            format!("virtserialport,chardev=psp,name={}", devices::PSP_PORT),
        );
    }
    if cfg.network {
        a.push(["-netdev", "user,id=net0"]);
        a.push_s(
            "-device",
            format!("virtio-net-pci,netdev=net0{virtio_opts}"),
        );
    } else {
        a.push(["-nic", "none"]);
    }
    a.0
}

/// Accumulates arguments.
#[derive(Default)]
struct Args(Vec<OsString>);

impl Args {
    fn push<const N: usize>(&mut self, items: [&str; N]) {
        self.0.extend(items.iter().map(OsString::from));
    }
    fn push_s(&mut self, flag: &str, value: String) {
        self.0.push(flag.into());
        self.0.push(value.into());
    }
    fn push_o(&mut self, flag: &str, value: OsString) {
        self.0.push(flag.into());
        self.0.push(value);
    }
    fn push_p(&mut self, flag: &str, path: &Path) {
        self.0.push(flag.into());
        self.0.push(path.as_os_str().to_os_string());
    }
}

/// A QEMU release number.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub struct QemuVersion {
    /// Major release.
    pub major: u32,
    /// Minor release.
    pub minor: u32,
    /// Patch level.
    pub micro: u32,
}

impl std::fmt::Display for QemuVersion {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}.{}.{}", self.major, self.minor, self.micro)
    }
}

/// Why QEMU (or KVM) cannot run the requested configuration.
#[derive(Debug, thiserror::Error)]
pub enum ProbeError {
    /// The QEMU binary could not be started.
    #[error("cannot run {binary}: {source}; {INSTALL_HINT}")]
    Missing {
        /// The binary tried.
        binary: String,
        /// Why it could not be started.
        #[source]
        source: std::io::Error,
    },
    /// `--version` printed something unexpected.
    #[error("cannot read the version of {binary} from {output:?}; {INSTALL_HINT}")]
    UnknownVersion {
        /// The binary tried.
        binary: String,
        /// What it printed.
        output: String,
    },
    /// QEMU is older than SNP needs.
    #[error("{binary} is QEMU {found}, SEV-SNP guests need >= {MIN_SNP_VERSION}; {INSTALL_HINT}, or use --tee simulated")]
    TooOld {
        /// The binary tried.
        binary: String,
        /// Its version.
        found: QemuVersion,
    },
    /// The binary has no sev-snp-guest object.
    #[error("{binary} has no sev-snp-guest object (`{binary} -object help`); {INSTALL_HINT}, or use --tee simulated")]
    NoSnpObject {
        /// The binary tried.
        binary: String,
    },
    /// SNP needs KVM and /dev/kvm is not usable.
    #[error("SEV-SNP guests need KVM but /dev/kvm is not usable ({0}); load kvm_amd with sev_snp=1 and check permissions, or use --tee simulated")]
    NoKvm(String),
    /// The host kernel does not offer SEV-SNP to KVM.
    #[error("this host does not offer SEV-SNP to KVM (/sys/module/kvm_amd/parameters/sev_snp is not Y); use --tee simulated")]
    NoHostSnp,
}

/// Parses the first line of `qemu-system-x86_64 --version`.
pub fn parse_version(output: &str) -> Option<QemuVersion> {
    let rest = output.split("version ").nth(1)?;
    let number: String = rest
        .chars()
        .take_while(|c| c.is_ascii_digit() || *c == '.')
        .collect();
    let mut parts = number.split('.').map(|p| p.parse::<u32>());
    let major = parts.next()?.ok()?;
    let minor = parts.next()?.ok()?;
    let micro = parts.next().and_then(|p| p.ok()).unwrap_or(0);
    Some(QemuVersion {
        major,
        minor,
        micro,
    })
}

/// Runs `binary --version` and returns its version.
pub fn version(binary: &str) -> Result<QemuVersion, ProbeError> {
    let out = Command::new(binary)
        .arg("--version")
        .output()
        .map_err(|source| ProbeError::Missing {
            binary: binary.into(),
            source,
        })?;
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    parse_version(&text).ok_or(ProbeError::UnknownVersion {
        binary: binary.into(),
        output: text,
    })
}

/// Whether `-object help` output lists the sev-snp-guest object.
pub fn lists_snp_object(object_help: &str) -> bool {
    object_help.lines().any(|l| l.trim() == "sev-snp-guest")
}

/// Checks that `binary` can launch SEV-SNP guests on this host (version, object, KVM, host SNP).
pub fn check_snp(binary: &str) -> Result<QemuVersion, ProbeError> {
    let found = version(binary)?;
    if found < MIN_SNP_VERSION {
        return Err(ProbeError::TooOld {
            binary: binary.into(),
            found,
        });
    }
    let out = Command::new(binary)
        .args(["-object", "help"])
        .output()
        .map_err(|source| ProbeError::Missing {
            binary: binary.into(),
            source,
        })?;
    if !lists_snp_object(&String::from_utf8_lossy(&out.stdout)) {
        return Err(ProbeError::NoSnpObject {
            binary: binary.into(),
        });
    }
    kvm_usable().map_err(ProbeError::NoKvm)?;
    if !host_offers_snp() {
        return Err(ProbeError::NoHostSnp);
    }
    Ok(found)
}

/// Whether the host kernel offers SEV-SNP guests to KVM.
pub fn host_offers_snp() -> bool {
    std::fs::read_to_string("/sys/module/kvm_amd/parameters/sev_snp")
        .map(|v| matches!(v.trim(), "Y" | "y" | "1"))
        .unwrap_or(false)
}

/// Ok when /dev/kvm opens read-write and the CPU has hardware virtualization
/// (some sandboxes expose a /dev/kvm that cannot run guests); otherwise why not.
pub fn kvm_usable() -> Result<(), String> {
    std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .open("/dev/kvm")
        .map_err(|e| format!("/dev/kvm: {e}"))?;
    let cpuinfo =
        std::fs::read_to_string("/proc/cpuinfo").map_err(|e| format!("/proc/cpuinfo: {e}"))?;
    if cpu_has_virtualization(&cpuinfo) {
        Ok(())
    } else {
        Err("/dev/kvm exists but the CPU flags show neither svm nor vmx".into())
    }
}

/// Whether /proc/cpuinfo text lists the svm or vmx flag.
pub fn cpu_has_virtualization(cpuinfo: &str) -> bool {
    cpuinfo
        .lines()
        .filter(|l| l.starts_with("flags"))
        .any(|l| l.split_whitespace().any(|f| f == "svm" || f == "vmx"))
}

#[cfg(test)]
mod tests;
