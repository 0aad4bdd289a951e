//! Assembling an image directory: `initramfs.cpio` (the static kettle-init at
//! `/init` plus data files), copies of the kernel and firmware,
//! `manifest.json` with the launch digest, `launch-digests.json` with the
//! digests for every offered vCPU type and count, and any files the caller
//! derives from them (`kettle image` adds `provenance.json`). The directory
//! appears complete or not at all: it is built beside its destination and
//! renamed into place.

use std::collections::BTreeMap;
use std::fs;
use std::io::Write;
use std::path::{Path, PathBuf};

use sha2::{Digest, Sha256};

use crate::cpio::{CpioError, Initramfs};
use crate::manifest::{FileRef, ImageManifest, InitramfsEntry};
use crate::measure::{launch_digest, KernelHashes, MeasureError, Ovmf, VcpuConfig, VcpuType};
use crate::table::{LaunchDigestTable, TABLE_FILE};

/// Kernel command line baked into images unless overridden. It is measured, so
/// it holds nothing build-specific: `console=ttyS0` sends init's step log to
/// the serial port the launcher streams; `panic=-1` reboots at once on a
/// kernel panic (including PID 1 exiting), which QEMU `-no-reboot` turns into
/// an exit instead of a hang; `quiet` keeps the console to init's own lines
/// (warnings and errors still print).
pub const DEFAULT_CMDLINE: &str = "console=ttyS0 panic=-1 quiet";

/// File names inside an image directory.
pub const KERNEL_FILE: &str = "bzImage";
/// The initramfs file name.
pub const INITRD_FILE: &str = "initramfs.cpio";
/// The firmware file name.
pub const OVMF_FILE: &str = "OVMF.fd";
/// The manifest file name.
pub const MANIFEST_FILE: &str = "manifest.json";

/// Mount points and scratch directories init expects to exist before it mounts anything.
const GUEST_DIRS: &[(&str, u32)] = &[
    ("dev", 0o755),
    ("etc", 0o755),
    ("etc/kettle", 0o755),
    ("mnt", 0o755),
    ("proc", 0o555),
    ("run", 0o755),
    ("sys", 0o555),
    ("tmp", 0o1777),
];

/// Why an image could not be assembled.
#[derive(Debug, thiserror::Error)]
pub enum BundleError {
    /// An input could not be read.
    #[error("cannot read {what} {path}: {source}")]
    Read {
        /// Which input.
        what: String,
        /// Its path.
        path: PathBuf,
        /// The I/O error.
        source: std::io::Error,
    },
    /// The output could not be written.
    #[error("cannot write image to {path}: {source}")]
    Write {
        /// Where.
        path: PathBuf,
        /// The I/O error.
        source: std::io::Error,
    },
    /// The init binary is not a static x86-64 ELF executable.
    #[error("init {path} is not usable as the guest's PID 1: {reason} (build it with scripts/build-init.sh)")]
    BadInit {
        /// Its path.
        path: PathBuf,
        /// What is wrong.
        reason: ElfError,
    },
    /// The kernel is not an EFI-bootable bzImage.
    #[error("kernel {path} cannot be booted by OVMF: {reason} (build it with make kernel)")]
    BadKernel {
        /// Its path.
        path: PathBuf,
        /// What is wrong.
        reason: BzImageError,
    },
    /// The firmware is not a usable SNP OVMF.
    #[error("firmware {path}: {source}")]
    BadFirmware {
        /// Its path.
        path: PathBuf,
        /// What is wrong.
        source: crate::measure::OvmfError,
    },
    /// The initramfs could not be built.
    #[error("initramfs: {0}")]
    Initramfs(#[from] CpioError),
    /// Measuring failed.
    #[error(transparent)]
    Measure(#[from] MeasureError),
}

/// A data file to place in the initramfs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ExtraFile {
    /// Path inside the guest (e.g. `etc/kettle/ca-roots.pem`).
    pub guest_path: String,
    /// Where its bytes come from.
    pub source: ExtraSource,
    /// Permission bits.
    pub mode: u32,
}

/// The contents of an [`ExtraFile`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ExtraSource {
    /// A host file, read when the image is assembled.
    File(PathBuf),
    /// Bytes the caller made (e.g. the pinned CA bundle).
    Bytes(Vec<u8>),
}

/// Everything an image is made from.
#[derive(Debug, Clone)]
pub struct ImageSpec {
    /// The static kettle-init binary (becomes `/init`).
    pub init: PathBuf,
    /// The bzImage.
    pub kernel: PathBuf,
    /// The AmdSev OVMF.
    pub ovmf: PathBuf,
    /// Kernel command line (measured).
    pub cmdline: String,
    /// vCPU parameters (measured).
    pub vm: VcpuConfig,
    /// Data files for the initramfs.
    pub extra_files: Vec<ExtraFile>,
    /// Tool and source versions to record in the manifest.
    pub versions: BTreeMap<String, String>,
    /// vCPU types of `launch-digests.json` (in this order).
    pub table_vcpu_types: Vec<VcpuType>,
    /// vCPU counts of `launch-digests.json`.
    pub table_vcpu_counts: Vec<u32>,
}

/// An assembled image, not yet written: every file's bytes.
#[derive(Debug, Clone)]
pub struct AssembledImage {
    /// The manifest.
    pub manifest: ImageManifest,
    /// `manifest.json` as written.
    pub manifest_json: Vec<u8>,
    /// The launch digest table.
    pub table: LaunchDigestTable,
    /// `launch-digests.json` as written.
    pub table_json: Vec<u8>,
    /// The kernel's bytes.
    pub kernel: Vec<u8>,
    /// The initramfs' bytes.
    pub initrd: Vec<u8>,
    /// The firmware's bytes.
    pub ovmf: Vec<u8>,
}

impl AssembledImage {
    /// The image's files by name, in a fixed order.
    pub fn files(&self) -> [(&'static str, &[u8]); 5] {
        [
            (KERNEL_FILE, &self.kernel),
            (INITRD_FILE, &self.initrd),
            (OVMF_FILE, &self.ovmf),
            (MANIFEST_FILE, &self.manifest_json),
            (TABLE_FILE, &self.table_json),
        ]
    }

    /// Writes the image and `extra` files (name, bytes) into `out`, replacing it atomically.
    pub fn write(&self, out: &Path, extra: &[(&str, &[u8])]) -> Result<(), BundleError> {
        let mut files: Vec<(&str, &[u8])> = self.files().to_vec();
        files.extend_from_slice(extra);
        write_dir_atomically(out, &files)?;
        log::info!(
            "image written to {} (launch digest {})",
            out.display(),
            self.manifest.launch_digest
        );
        Ok(())
    }
}

fn read(what: &str, path: &Path) -> Result<Vec<u8>, BundleError> {
    fs::read(path).map_err(|source| BundleError::Read {
        what: what.to_string(),
        path: path.to_path_buf(),
        source,
    })
}

/// Builds the initramfs: `/init`, the data files, the guest's directories and `/dev/console`.
pub fn build_initramfs(
    init: &[u8],
    extra: &[(String, Vec<u8>, u32)],
) -> Result<Initramfs, CpioError> {
    let mut fs = Initramfs::new();
    for (dir, mode) in GUEST_DIRS {
        fs.dir_with_mode(dir, *mode)?;
    }
    // The kernel opens /dev/console for PID 1 before anything is mounted.
    fs.char_device("dev/console", 0o600, 5, 1)?;
    fs.file("init", 0o755, init.to_vec())?;
    for (path, data, mode) in extra {
        fs.file(path, *mode, data.clone())?;
    }
    Ok(fs)
}

/// Why a file is not a static x86-64 ELF executable (the guest's PID 1).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ElfError {
    /// No ELF magic (or shorter than an ELF64 header).
    #[error("not an ELF file")]
    NotElf,
    /// Not ELFCLASS64 / ELFDATA2LSB.
    #[error("not a 64-bit little-endian ELF (EI_CLASS {class}, EI_DATA {data}; expected 2 and 1)")]
    NotElf64Le {
        /// EI_CLASS.
        class: u8,
        /// EI_DATA.
        data: u8,
    },
    /// e_type is neither ET_EXEC nor ET_DYN.
    #[error("ELF type {0} is not an executable")]
    NotExecutable(u16),
    /// e_machine is not EM_X86_64.
    #[error("not an x86-64 binary (e_machine {0}, expected 62)")]
    NotX86_64(u16),
    /// e_phoff does not fit in memory.
    #[error("program header offset beyond the address space")]
    HeaderOffset,
    /// A program header lies past the end of the file.
    #[error("program headers run past the end of the file")]
    HeadersPastEnd,
    /// A PT_INTERP program header: a dynamic executable.
    #[error("it is dynamically linked (has PT_INTERP); the initramfs has no loader or libc")]
    Dynamic,
}

/// Why a file is not a bzImage OVMF can boot.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum BzImageError {
    /// No `HdrS` at 0x202.
    #[error("no Linux boot header (HdrS at 0x202); not a bzImage")]
    NoBootHeader,
    /// No MZ / PE header: the kernel has no EFI stub.
    #[error("no PE/COFF header; enable CONFIG_EFI_STUB")]
    NoEfiStub,
}

/// Checks that `bytes` is a static x86-64 ELF executable (no PT_INTERP).
pub fn check_static_elf(bytes: &[u8]) -> Result<(), ElfError> {
    const PT_INTERP: u32 = 3;
    if bytes.len() < 64 || &bytes[..4] != b"\x7fELF" {
        return Err(ElfError::NotElf);
    }
    if bytes[4] != 2 || bytes[5] != 1 {
        return Err(ElfError::NotElf64Le {
            class: bytes[4],
            data: bytes[5],
        });
    }
    let u16_at = |at: usize| u16::from_le_bytes([bytes[at], bytes[at + 1]]);
    let e_type = u16_at(16);
    if e_type != 2 && e_type != 3 {
        return Err(ElfError::NotExecutable(e_type));
    }
    let machine = u16_at(18);
    if machine != 62 {
        return Err(ElfError::NotX86_64(machine));
    }
    let phoff = usize::try_from(u64::from_le_bytes(
        bytes[32..40].try_into().expect("8 bytes"),
    ))
    .map_err(|_| ElfError::HeaderOffset)?;
    let phentsize = usize::from(u16_at(54));
    let phnum = usize::from(u16_at(56));
    for i in 0..phnum {
        let at = phoff
            .checked_add(i * phentsize)
            .filter(|at| at + 4 <= bytes.len())
            .ok_or(ElfError::HeadersPastEnd)?;
        if u32::from_le_bytes(bytes[at..at + 4].try_into().expect("4 bytes")) == PT_INTERP {
            return Err(ElfError::Dynamic);
        }
    }
    Ok(())
}

/// Checks that `bytes` is a bzImage with an EFI stub (OVMF boots it through the stub).
pub fn check_bzimage(bytes: &[u8]) -> Result<(), BzImageError> {
    if bytes.len() < 0x264 || &bytes[0x202..0x206] != b"HdrS" {
        return Err(BzImageError::NoBootHeader);
    }
    let pe_at = u32::from_le_bytes(bytes[0x3c..0x40].try_into().expect("4 bytes")) as usize;
    if &bytes[..2] != b"MZ" || bytes.get(pe_at..pe_at + 4) != Some(b"PE\0\0") {
        return Err(BzImageError::NoEfiStub);
    }
    Ok(())
}

fn sha256_hex(data: &[u8]) -> String {
    hex::encode(Sha256::digest(data))
}

/// Assembles the image into `out` (replacing it) and returns its manifest.
pub fn write_image(spec: &ImageSpec, out: &Path) -> Result<ImageManifest, BundleError> {
    let image = assemble(spec)?;
    image.write(out, &[])?;
    Ok(image.manifest)
}

/// Builds every file of the image in memory (nothing is written).
pub fn assemble(spec: &ImageSpec) -> Result<AssembledImage, BundleError> {
    let init = read("init", &spec.init)?;
    check_static_elf(&init).map_err(|reason| BundleError::BadInit {
        path: spec.init.clone(),
        reason,
    })?;
    let kernel = read("kernel", &spec.kernel)?;
    check_bzimage(&kernel).map_err(|reason| BundleError::BadKernel {
        path: spec.kernel.clone(),
        reason,
    })?;
    let ovmf_bytes = read("firmware", &spec.ovmf)?;
    let ovmf_sha = sha256_hex(&ovmf_bytes);
    let ovmf = Ovmf::parse(ovmf_bytes).map_err(|source| BundleError::BadFirmware {
        path: spec.ovmf.clone(),
        source,
    })?;

    let mut extra = Vec::new();
    for f in &spec.extra_files {
        let data = match &f.source {
            ExtraSource::File(path) => read(&format!("data file for {}", f.guest_path), path)?,
            ExtraSource::Bytes(bytes) => bytes.clone(),
        };
        extra.push((f.guest_path.clone(), data, f.mode));
    }
    let initramfs = build_initramfs(&init, &extra)?;
    let initrd = initramfs.to_bytes();

    let kernel_sha: [u8; 32] = Sha256::digest(&kernel).into();
    let initrd_sha: [u8; 32] = Sha256::digest(&initrd).into();
    let hashes = KernelHashes::new(kernel_sha, Some(initrd_sha), Some(&spec.cmdline));
    let digest = launch_digest(&ovmf, None, Some(&hashes), &spec.vm)?;

    let manifest = ImageManifest {
        initramfs: initramfs
            .entries()
            .into_iter()
            .map(|e| InitramfsEntry {
                sha256: initramfs.file_data(&e.path).map(sha256_hex),
                mode: format!("{:o}", e.mode),
                path: e.path,
            })
            .collect(),
        versions: spec.versions.clone(),
        ..ImageManifest::new(
            FileRef::new(KERNEL_FILE, hex::encode(kernel_sha)),
            FileRef::new(INITRD_FILE, hex::encode(initrd_sha)),
            FileRef::new(OVMF_FILE, ovmf_sha),
            &spec.cmdline,
            &spec.vm,
            digest,
        )
    };
    let table = LaunchDigestTable::compute(
        &manifest,
        &ovmf,
        &hashes,
        &spec.table_vcpu_types,
        &spec.table_vcpu_counts,
    )?;
    Ok(AssembledImage {
        manifest_json: manifest.to_json_pretty().into_bytes(),
        table_json: table.to_json_pretty().into_bytes(),
        manifest,
        table,
        kernel,
        initrd,
        ovmf: ovmf.data().to_vec(),
    })
}

/// A staging directory removed on drop unless it was moved into place.
struct Staging {
    path: PathBuf,
    keep: bool,
}

impl Drop for Staging {
    fn drop(&mut self) {
        if !self.keep {
            let _ = fs::remove_dir_all(&self.path);
        }
    }
}

/// Writes `files` into a sibling staging directory, then renames it to `out`,
/// moving any previous `out` aside first and deleting it after.
fn write_dir_atomically(out: &Path, files: &[(&str, &[u8])]) -> Result<(), BundleError> {
    let werr = |path: &Path| {
        let path = path.to_path_buf();
        move |source| BundleError::Write { path, source }
    };
    let name = out
        .file_name()
        .ok_or_else(|| BundleError::Write {
            path: out.to_path_buf(),
            source: std::io::Error::new(
                std::io::ErrorKind::InvalidInput,
                "output path has no directory name",
            ),
        })?
        .to_string_lossy()
        .into_owned();
    let parent = match out.parent() {
        Some(p) if !p.as_os_str().is_empty() => p.to_path_buf(),
        _ => PathBuf::from("."),
    };
    fs::create_dir_all(&parent).map_err(werr(&parent))?;
    let unique = format!("{}.{}", std::process::id(), nanos());
    let staging = Staging {
        path: parent.join(format!(".{name}.tmp-{unique}")),
        keep: false,
    };
    fs::create_dir(&staging.path).map_err(werr(&staging.path))?;
    for (file, data) in files {
        let path = staging.path.join(file);
        let mut f = fs::File::create(&path).map_err(werr(&path))?;
        f.write_all(data).map_err(werr(&path))?;
        f.sync_all().map_err(werr(&path))?;
    }
    let mut staging = staging;
    let old = parent.join(format!(".{name}.old-{unique}"));
    let had_old = match fs::rename(out, &old) {
        Ok(()) => true,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => false,
        Err(e) => return Err(werr(out)(e)),
    };
    if let Err(e) = fs::rename(&staging.path, out) {
        if had_old {
            let _ = fs::rename(&old, out);
        }
        return Err(werr(out)(e));
    }
    staging.keep = true;
    if had_old {
        fs::remove_dir_all(&old).map_err(werr(&old))?;
    }
    Ok(())
}

fn nanos() -> u128 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_nanos())
        .unwrap_or(0)
}

#[cfg(test)]
mod tests;
