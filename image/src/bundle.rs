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
use crate::manifest::{FileRef, ImageManifest, InitramfsEntry, MANIFEST_SCHEMA};
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
        reason: String,
    },
    /// The kernel is not an EFI-bootable bzImage.
    #[error("kernel {path} cannot be booted by OVMF: {reason} (build it with make kernel)")]
    BadKernel {
        /// Its path.
        path: PathBuf,
        /// What is wrong.
        reason: String,
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

/// Checks that `bytes` is a static x86-64 ELF executable (no PT_INTERP).
pub fn check_static_elf(bytes: &[u8]) -> Result<(), String> {
    const PT_INTERP: u32 = 3;
    if bytes.len() < 64 || &bytes[..4] != b"\x7fELF" {
        return Err("not an ELF file".into());
    }
    if bytes[4] != 2 || bytes[5] != 1 {
        return Err("not a 64-bit little-endian ELF".into());
    }
    let u16_at = |at: usize| u16::from_le_bytes([bytes[at], bytes[at + 1]]);
    let e_type = u16_at(16);
    if e_type != 2 && e_type != 3 {
        return Err(format!("ELF type {e_type} is not an executable"));
    }
    if u16_at(18) != 62 {
        return Err("not an x86-64 binary".into());
    }
    let phoff = u64::from_le_bytes(bytes[32..40].try_into().expect("8 bytes")) as usize;
    let phentsize = usize::from(u16_at(54));
    let phnum = usize::from(u16_at(56));
    for i in 0..phnum {
        let at = phoff
            .checked_add(i * phentsize)
            .filter(|at| at + 4 <= bytes.len())
            .ok_or("program headers run past the end of the file")?;
        if u32::from_le_bytes(bytes[at..at + 4].try_into().expect("4 bytes")) == PT_INTERP {
            return Err(
                "it is dynamically linked (has PT_INTERP); the initramfs has no loader or libc"
                    .into(),
            );
        }
    }
    Ok(())
}

/// Checks that `bytes` is a bzImage with an EFI stub (OVMF boots it through the stub).
pub fn check_bzimage(bytes: &[u8]) -> Result<(), String> {
    if bytes.len() < 0x264 || &bytes[0x202..0x206] != b"HdrS" {
        return Err("no Linux boot header (HdrS at 0x202); not a bzImage".into());
    }
    let pe_at = u32::from_le_bytes(bytes[0x3c..0x40].try_into().expect("4 bytes")) as usize;
    if &bytes[..2] != b"MZ" || bytes.get(pe_at..pe_at + 4) != Some(b"PE\0\0") {
        return Err("no PE/COFF header; enable CONFIG_EFI_STUB".into());
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
        schema: MANIFEST_SCHEMA,
        kernel: FileRef {
            file: KERNEL_FILE.into(),
            sha256: hex::encode(kernel_sha),
        },
        initrd: FileRef {
            file: INITRD_FILE.into(),
            sha256: hex::encode(initrd_sha),
        },
        ovmf: FileRef {
            file: OVMF_FILE.into(),
            sha256: ovmf_sha,
        },
        cmdline: spec.cmdline.clone(),
        vcpus: spec.vm.vcpus,
        vcpu_type: spec.vm.vcpu_type.clone(),
        vmm_type: spec.vm.vmm_type,
        guest_features: spec.vm.guest_features,
        launch_digest: digest,
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
mod tests {
    use super::*;
    use crate::manifest::ImageManifest;
    use crate::measure::tests_support::synthetic_ovmf_file;
    use crate::measure::{GuestFeatures, VmmType};

    /// A minimal static ELF64 x86-64 header with one PT_LOAD (or PT_INTERP) program header.
    fn elf(program_type: u32) -> Vec<u8> {
        let mut b = vec![0u8; 64 + 56];
        b[..4].copy_from_slice(b"\x7fELF");
        b[4] = 2;
        b[5] = 1;
        b[16..18].copy_from_slice(&2u16.to_le_bytes());
        b[18..20].copy_from_slice(&62u16.to_le_bytes());
        b[32..40].copy_from_slice(&64u64.to_le_bytes());
        b[54..56].copy_from_slice(&56u16.to_le_bytes());
        b[56..58].copy_from_slice(&1u16.to_le_bytes());
        b[64..68].copy_from_slice(&program_type.to_le_bytes());
        b
    }

    fn bzimage() -> Vec<u8> {
        let mut b = vec![0u8; 0x400];
        b[..2].copy_from_slice(b"MZ");
        b[0x3c..0x40].copy_from_slice(&0x80u32.to_le_bytes());
        b[0x80..0x84].copy_from_slice(b"PE\0\0");
        b[0x202..0x206].copy_from_slice(b"HdrS");
        b
    }

    fn spec(dir: &Path) -> ImageSpec {
        std::fs::write(dir.join("kettle-init"), elf(1)).unwrap();
        std::fs::write(dir.join("vmlinuz"), bzimage()).unwrap();
        std::fs::write(dir.join("roots.pem"), b"-----BEGIN CERTIFICATE-----\n").unwrap();
        ImageSpec {
            init: dir.join("kettle-init"),
            kernel: dir.join("vmlinuz"),
            ovmf: synthetic_ovmf_file(dir),
            cmdline: DEFAULT_CMDLINE.into(),
            vm: VcpuConfig {
                vcpus: 2,
                vcpu_type: "EPYC-v4".parse().unwrap(),
                vmm_type: VmmType::Qemu,
                guest_features: GuestFeatures::default(),
            },
            extra_files: vec![ExtraFile {
                guest_path: "etc/kettle/ca-roots.pem".into(),
                source: ExtraSource::File(dir.join("roots.pem")),
                mode: 0o644,
            }],
            versions: BTreeMap::from([("kettle".into(), "test".into())]),
            table_vcpu_types: crate::table::default_vcpu_types(),
            table_vcpu_counts: vec![1, 2],
        }
    }

    #[test]
    fn elf_and_bzimage_checks() {
        assert!(check_static_elf(&elf(1)).is_ok());
        assert!(check_static_elf(&elf(3)).unwrap_err().contains("PT_INTERP"));
        assert!(check_static_elf(b"#!/bin/sh\n").is_err());
        assert!(check_bzimage(&bzimage()).is_ok());
        let mut no_stub = bzimage();
        no_stub[0x80] = 0;
        assert!(check_bzimage(&no_stub).unwrap_err().contains("EFI_STUB"));
        assert!(check_bzimage(&elf(1)).is_err());
    }

    #[test]
    fn writes_a_checkable_reproducible_image() {
        let dir = tempfile::tempdir().unwrap();
        let spec = spec(dir.path());
        let out = dir.path().join("image");
        let m = write_image(&spec, &out).unwrap();
        let on_disk = ImageManifest::load(&out.join(MANIFEST_FILE)).unwrap();
        assert_eq!(on_disk, m);
        let check = m.check(&m.files_in(&out).unwrap()).unwrap();
        assert!(check.is_match(), "{:?}", check.mismatches);
        let paths: Vec<&str> = m.initramfs.iter().map(|e| e.path.as_str()).collect();
        assert!(
            paths.contains(&"init")
                && paths.contains(&"etc/kettle/ca-roots.pem")
                && paths.contains(&"dev/console")
        );
        assert_eq!(
            m.initramfs.iter().find(|e| e.path == "init").unwrap().mode,
            "100755"
        );
        // The table has every type x count, and its row for the manifest's vCPUs is the manifest's digest.
        let table = LaunchDigestTable::load(&out.join(TABLE_FILE)).unwrap();
        assert_eq!(table.launch_digests.len(), 6);
        let own = table
            .launch_digests
            .iter()
            .find(|r| r.vcpus == m.vcpus && r.vcpu_type == m.vcpu_type)
            .unwrap();
        assert_eq!(own.launch_digest, m.launch_digest);
        assert_eq!(table.cmdline, m.cmdline);
        assert_eq!(table.initrd, m.initrd);

        // Rebuilding replaces the directory with identical bytes and leaves no temp dirs.
        let first = std::fs::read(out.join(INITRD_FILE)).unwrap();
        let again = write_image(&spec, &out).unwrap();
        assert_eq!(again, m);
        assert_eq!(std::fs::read(out.join(INITRD_FILE)).unwrap(), first);
        let leftovers: Vec<_> = std::fs::read_dir(dir.path())
            .unwrap()
            .flatten()
            .filter(|e| e.file_name().to_string_lossy().starts_with('.'))
            .collect();
        assert!(leftovers.is_empty(), "{leftovers:?}");
    }

    #[test]
    fn in_memory_data_files_and_extra_outputs() {
        let dir = tempfile::tempdir().unwrap();
        let mut spec = spec(dir.path());
        spec.extra_files[0].source = ExtraSource::Bytes(b"pinned roots".to_vec());
        let image = assemble(&spec).unwrap();
        let pem = crate::cpio::read_file(&image.initrd, "etc/kettle/ca-roots.pem").unwrap();
        assert_eq!(pem.as_deref(), Some(&b"pinned roots"[..]));
        let listed = image
            .manifest
            .initramfs
            .iter()
            .find(|e| e.path == "etc/kettle/ca-roots.pem")
            .unwrap();
        assert_eq!(
            listed.sha256.as_deref(),
            Some(sha256_hex(b"pinned roots").as_str())
        );
        let out = dir.path().join("image");
        image.write(&out, &[("provenance.json", b"{}")]).unwrap();
        let mut names: Vec<String> = std::fs::read_dir(&out)
            .unwrap()
            .flatten()
            .map(|e| e.file_name().to_string_lossy().into())
            .collect();
        names.sort();
        assert_eq!(
            names,
            [
                "OVMF.fd",
                "bzImage",
                "initramfs.cpio",
                "launch-digests.json",
                "manifest.json",
                "provenance.json"
            ]
        );
        assert_eq!(
            std::fs::read(out.join(MANIFEST_FILE)).unwrap(),
            image.manifest_json
        );
    }

    #[test]
    fn bad_input_leaves_nothing_behind() {
        let dir = tempfile::tempdir().unwrap();
        let mut spec = spec(dir.path());
        let out = dir.path().join("image");
        write_image(&spec, &out).unwrap();
        let before = std::fs::read(out.join(MANIFEST_FILE)).unwrap();
        // A dynamically linked init is refused and the old image stays intact.
        std::fs::write(&spec.init, elf(3)).unwrap();
        assert!(matches!(
            write_image(&spec, &out),
            Err(BundleError::BadInit { .. })
        ));
        std::fs::write(&spec.init, elf(1)).unwrap();
        spec.extra_files[0].source = ExtraSource::File(dir.path().join("missing.pem"));
        assert!(matches!(
            write_image(&spec, &out),
            Err(BundleError::Read { .. })
        ));
        assert_eq!(std::fs::read(out.join(MANIFEST_FILE)).unwrap(), before);
        let fresh = dir.path().join("never");
        assert!(write_image(&spec, &fresh).is_err());
        assert!(!fresh.exists());
        let names: Vec<String> = std::fs::read_dir(dir.path())
            .unwrap()
            .flatten()
            .map(|e| e.file_name().to_string_lossy().into())
            .collect();
        assert!(names.iter().all(|n| !n.starts_with('.')), "{names:?}");
    }
}
