//! The SEV-SNP launch digest: the `measurement` field of an attestation
//! report, recomputed offline from the firmware, kernel, initrd, command line
//! and vCPU configuration exactly as QEMU (with `kernel-hashes=on`) and the
//! PSP build it.
//!
//! The digest is a chain of SHA-384 over PAGE_INFO records (SNP firmware ABI,
//! SNP_LAUNCH_UPDATE): the firmware pages, then the SEV metadata sections in
//! firmware order (zero, secrets, CPUID pages and the page holding QEMU's
//! SHA-256 table of kernel/initrd/cmdline), then one VMSA page per vCPU.
//!
//! The sev crate implements the same chain, but it cannot express every input
//! this tool must accept (explicit family/model/stepping or raw signatures,
//! GCE), it trims the command line (QEMU hashes it verbatim), its EC2 VMSA
//! differs from sev-snp-measure's, and its digest context is not usable from
//! outside the crate; so the chain is written here against the spec and
//! cross-checked in tests against both sev and sev-snp-measure.

mod cpu;
mod ovmf;
#[cfg(test)]
mod peer_tests;
mod vmsa;

use std::fmt;
use std::path::{Path, PathBuf};
use std::str::FromStr;

use sha2::{Digest, Sha256, Sha384};

pub use cpu::{cpu_model_names, cpu_signature, CpuError, GuestFeatures, VcpuType, VmmType};
pub use ovmf::{MetadataSection, Ovmf, OvmfError, SectionType};

use ovmf::{guid, PAGE_SIZE};

use crate::audit::files;

/// Length of a launch digest (SHA-384).
pub const LAUNCH_DIGEST_LEN: usize = 48;

/// GPA the PSP records for VMSA pages: (u64)-1, page aligned, bits above 51 clear.
const VMSA_GPA: u64 = 0x0000_FFFF_FFFF_F000;

/// PAGE_INFO page types (SNP ABI, SNP_LAUNCH_UPDATE).
#[derive(Clone, Copy)]
#[repr(u8)]
enum PageType {
    Normal = 0x01,
    Vmsa = 0x02,
    Zero = 0x03,
    Unmeasured = 0x04,
    Secrets = 0x05,
    Cpuid = 0x06,
}

/// GUIDs of QEMU's SEV hashes table (`target/i386/sev.c`).
const SEV_HASH_TABLE_HEADER_GUID: [u8; 16] = guid("9438d606-4f22-4cc9-b479-a793d411fd21");
const SEV_KERNEL_ENTRY_GUID: [u8; 16] = guid("4de79437-abd2-427f-b835-d5b172d2045b");
const SEV_INITRD_ENTRY_GUID: [u8; 16] = guid("44baf731-3a2f-4bd7-9af1-41e29169781d");
const SEV_CMDLINE_ENTRY_GUID: [u8; 16] = guid("97d02dd8-bd20-4c94-aa78-e7714d36ab2a");
/// One table entry: GUID, u16 length, SHA-256.
const HASH_ENTRY_LEN: usize = 16 + 2 + 32;
/// The table: GUID, u16 length, three entries.
const HASH_TABLE_LEN: usize = 16 + 2 + 3 * HASH_ENTRY_LEN;
/// The two lengths as the table's little-endian u16 fields (checked to fit at compile time).
const HASH_ENTRY_LEN_LE: [u8; 2] = u16_le(HASH_ENTRY_LEN);
const HASH_TABLE_LEN_LE: [u8; 2] = u16_le(HASH_TABLE_LEN);

/// `n` as a little-endian u16; a constant over 16 bits fails the build.
const fn u16_le(n: usize) -> [u8; 2] {
    assert!(n <= u16::MAX as usize, "a table length field is 16 bits");
    #[allow(clippy::cast_possible_truncation)] // asserted above
    (n as u16).to_le_bytes()
}
/// QEMU pads the table to a multiple of 16 bytes.
const PADDED_HASH_TABLE_LEN: usize = (HASH_TABLE_LEN + 15) & !15;

/// Why a launch digest cannot be computed.
#[derive(Debug, thiserror::Error)]
pub enum MeasureError {
    /// An input file could not be read, is not a regular file, or is larger than any
    /// image's (a FIFO or a link to `/dev/zero` is refused, never read).
    #[error(transparent)]
    Read(#[from] crate::audit::files::ReadError),
    /// The firmware is not a usable SEV-SNP OVMF.
    #[error("firmware {path}: {source}")]
    Firmware {
        /// Path of the firmware.
        path: PathBuf,
        /// What is wrong with it.
        source: OvmfError,
    },
    /// A firmware-level problem found while measuring (no path attached).
    #[error(transparent)]
    Ovmf(#[from] OvmfError),
    /// A kernel was given but the firmware has no page for the hashes table.
    #[error("a kernel was given but the firmware has no SNP_KERNEL_HASHES section; use an OVMF built from edk2's AmdSev package")]
    NoKernelHashesSection,
    /// The hashes table section or offset cannot hold QEMU's table.
    #[error("the firmware's kernel hashes area is unusable: {0}")]
    BadKernelHashesArea(String),
    /// `--initrd` or `--append` without `--kernel`.
    #[error("{0} given without a kernel; QEMU only hashes an initrd and command line when it loads a kernel")]
    NeedsKernel(&'static str),
    /// Zero vCPUs.
    #[error("vcpus must be at least 1")]
    NoVcpus,
}

/// An SNP launch digest (the report's 48-byte `measurement`).
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct LaunchDigest(pub [u8; LAUNCH_DIGEST_LEN]);

impl fmt::Display for LaunchDigest {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&hex::encode(self.0))
    }
}

impl fmt::Debug for LaunchDigest {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "LaunchDigest({self})")
    }
}

/// A launch digest string that is not 96 hex digits.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[error("invalid launch digest {0:?}: expected 96 hex digits (48 bytes)")]
pub struct ParseDigestError(pub String);

impl FromStr for LaunchDigest {
    type Err = ParseDigestError;

    fn from_str(s: &str) -> Result<Self, ParseDigestError> {
        let mut out = [0u8; LAUNCH_DIGEST_LEN];
        hex::decode_to_slice(s.trim(), &mut out).map_err(|_| ParseDigestError(s.to_string()))?;
        Ok(LaunchDigest(out))
    }
}

impl serde::Serialize for LaunchDigest {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&self.to_string())
    }
}

impl<'de> serde::Deserialize<'de> for LaunchDigest {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        s.parse().map_err(serde::de::Error::custom)
    }
}

/// The running digest: each page folds into it as a PAGE_INFO record.
struct GuestContext {
    ld: [u8; LAUNCH_DIGEST_LEN],
}

impl GuestContext {
    fn new(seed: [u8; LAUNCH_DIGEST_LEN]) -> Self {
        Self { ld: seed }
    }

    /// Folds one PAGE_INFO (SNP ABI table "PAGE_INFO"): previous digest,
    /// page contents hash, length 0x70, page type, IMI=0, VMPL perms 0, GPA.
    fn update(&mut self, page_type: PageType, gpa: u64, contents: &[u8; LAUNCH_DIGEST_LEN]) {
        let mut h = Sha384::new();
        h.update(self.ld);
        h.update(contents);
        h.update(0x70u16.to_le_bytes());
        h.update([page_type as u8, 0, 0, 0, 0, 0]);
        h.update(gpa.to_le_bytes());
        self.ld.copy_from_slice(&h.finalize());
    }

    fn normal_pages(&mut self, gpa: u64, data: &[u8]) {
        for (i, page) in data.chunks(PAGE_SIZE).enumerate() {
            self.update(
                PageType::Normal,
                gpa + (i * PAGE_SIZE) as u64,
                &sha384(page),
            );
        }
    }

    fn empty_pages(&mut self, page_type: PageType, gpa: u64, len: u32) {
        for offset in (0..u64::from(len)).step_by(PAGE_SIZE) {
            self.update(page_type, gpa + offset, &[0; LAUNCH_DIGEST_LEN]);
        }
    }
}

fn sha384(data: &[u8]) -> [u8; LAUNCH_DIGEST_LEN] {
    Sha384::digest(data).into()
}

/// The SHA-256s QEMU writes into the firmware's hashes table.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct KernelHashes {
    /// SHA-256 of the kernel file as given to `-kernel`.
    pub kernel: [u8; 32],
    /// SHA-256 of the initrd (of no bytes when there is none).
    pub initrd: [u8; 32],
    /// SHA-256 of the command line plus its NUL terminator.
    pub cmdline: [u8; 32],
}

impl KernelHashes {
    /// From file hashes and the `-append` string (hashed verbatim, as QEMU does).
    pub fn new(
        kernel_sha256: [u8; 32],
        initrd_sha256: Option<[u8; 32]>,
        cmdline: Option<&str>,
    ) -> Self {
        let mut c = Sha256::new();
        c.update(cmdline.unwrap_or("").as_bytes());
        c.update([0u8]);
        Self {
            kernel: kernel_sha256,
            initrd: initrd_sha256.unwrap_or_else(|| Sha256::digest(b"").into()),
            cmdline: c.finalize().into(),
        }
    }

    /// QEMU's padded SEV hashes table.
    fn table(&self) -> [u8; PADDED_HASH_TABLE_LEN] {
        let mut t = [0u8; PADDED_HASH_TABLE_LEN];
        t[..16].copy_from_slice(&SEV_HASH_TABLE_HEADER_GUID);
        t[16..18].copy_from_slice(&HASH_TABLE_LEN_LE);
        let entries = [
            (SEV_CMDLINE_ENTRY_GUID, &self.cmdline),
            (SEV_INITRD_ENTRY_GUID, &self.initrd),
            (SEV_KERNEL_ENTRY_GUID, &self.kernel),
        ];
        for (i, (guid, hash)) in entries.iter().enumerate() {
            let at = 18 + i * HASH_ENTRY_LEN;
            t[at..at + 16].copy_from_slice(guid);
            t[at + 16..at + 18].copy_from_slice(&HASH_ENTRY_LEN_LE);
            t[at + 18..at + 50].copy_from_slice(*hash);
        }
        t
    }
}

/// The vCPU side of the measurement.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VcpuConfig {
    /// Number of vCPUs (one VMSA page each).
    pub vcpus: u32,
    /// vCPU model (its signature goes into RDX).
    pub vcpu_type: VcpuType,
    /// VMM flavour.
    pub vmm_type: VmmType,
    /// VMSA SEV_FEATURES.
    pub guest_features: GuestFeatures,
}

/// SHA-384 chain over the firmware pages only (sev-snp-measure `--mode snp:ovmf-hash`).
pub fn ovmf_hash(ovmf: &Ovmf) -> LaunchDigest {
    let mut gctx = GuestContext::new([0; LAUNCH_DIGEST_LEN]);
    gctx.normal_pages(ovmf.gpa(), ovmf.data());
    LaunchDigest(gctx.ld)
}

/// Computes the launch digest. `ovmf_seed` replaces hashing the firmware pages
/// with a precomputed [`ovmf_hash`]; `hashes` is `None` when no kernel is loaded.
pub fn launch_digest(
    ovmf: &Ovmf,
    ovmf_seed: Option<&LaunchDigest>,
    hashes: Option<&KernelHashes>,
    vm: &VcpuConfig,
) -> Result<LaunchDigest, MeasureError> {
    if vm.vcpus == 0 {
        return Err(MeasureError::NoVcpus);
    }
    let mut digests = launch_digests_up_to(ovmf, ovmf_seed, hashes, vm, vm.vcpus)?;
    Ok(digests.pop().expect("at least one vCPU"))
}

/// The launch digests for 1, 2, ..., `max_vcpus` vCPUs of `vm`'s type, VMM and
/// features (`vm.vcpus` is ignored), in one pass: the VMSA pages come last, so
/// each count's digest extends the previous one's chain by one page.
pub fn launch_digests_up_to(
    ovmf: &Ovmf,
    ovmf_seed: Option<&LaunchDigest>,
    hashes: Option<&KernelHashes>,
    vm: &VcpuConfig,
    max_vcpus: u32,
) -> Result<Vec<LaunchDigest>, MeasureError> {
    if max_vcpus == 0 {
        return Err(MeasureError::NoVcpus);
    }
    if hashes.is_some() && !ovmf.has_kernel_hashes_section() {
        return Err(MeasureError::NoKernelHashesSection);
    }
    let mut gctx = match ovmf_seed {
        Some(seed) => GuestContext::new(seed.0),
        None => {
            let mut g = GuestContext::new([0; LAUNCH_DIGEST_LEN]);
            g.normal_pages(ovmf.gpa(), ovmf.data());
            g
        }
    };
    for section in ovmf.sections() {
        let gpa = u64::from(section.gpa);
        match section.section_type {
            // GCE pre-validates this memory without measuring it.
            SectionType::SnpSecMem if vm.vmm_type == VmmType::Gce => {
                gctx.empty_pages(PageType::Unmeasured, gpa, section.size)
            }
            SectionType::SnpSecMem | SectionType::SvsmCaa => {
                gctx.empty_pages(PageType::Zero, gpa, section.size)
            }
            SectionType::SnpSecrets => gctx.update(PageType::Secrets, gpa, &[0; LAUNCH_DIGEST_LEN]),
            // EC2 adds the CPUID page after all other sections (below).
            SectionType::Cpuid if vm.vmm_type == VmmType::Ec2 => {}
            SectionType::Cpuid => gctx.update(PageType::Cpuid, gpa, &[0; LAUNCH_DIGEST_LEN]),
            SectionType::SnpKernelHashes => match hashes {
                Some(h) => gctx.normal_pages(gpa, &hashes_page(ovmf, section, h)?),
                None => gctx.empty_pages(PageType::Zero, gpa, section.size),
            },
        }
    }
    if vm.vmm_type == VmmType::Ec2 {
        for section in ovmf
            .sections()
            .iter()
            .filter(|s| s.section_type == SectionType::Cpuid)
        {
            gctx.update(
                PageType::Cpuid,
                u64::from(section.gpa),
                &[0; LAUNCH_DIGEST_LEN],
            );
        }
    }
    let bsp = vmsa::vmsa_page(vmsa::BSP_EIP, &vm.vcpu_type, vm.vmm_type, vm.guest_features);
    let ap = vmsa::vmsa_page(
        ovmf.sev_es_reset_eip()?,
        &vm.vcpu_type,
        vm.vmm_type,
        vm.guest_features,
    );
    let (bsp, ap) = (sha384(&bsp), sha384(&ap));
    let mut out = Vec::with_capacity(max_vcpus as usize);
    for i in 0..max_vcpus {
        let page = if i == 0 { &bsp } else { &ap };
        gctx.update(PageType::Vmsa, VMSA_GPA, page);
        out.push(LaunchDigest(gctx.ld));
    }
    Ok(out)
}

/// The kernel-hashes page: the table at the firmware's chosen offset, zeros elsewhere.
fn hashes_page(
    ovmf: &Ovmf,
    section: &MetadataSection,
    hashes: &KernelHashes,
) -> Result<Vec<u8>, MeasureError> {
    if section.size as usize != PAGE_SIZE {
        return Err(MeasureError::BadKernelHashesArea(format!(
            "section is {:#x} bytes, QEMU fills exactly one page",
            section.size
        )));
    }
    // Masked to the page: always below PAGE_SIZE.
    let offset = usize::try_from(ovmf.sev_hashes_table_gpa()? & (PAGE_SIZE as u64 - 1))
        .expect("an offset within a page");
    if offset + PADDED_HASH_TABLE_LEN > PAGE_SIZE {
        return Err(MeasureError::BadKernelHashesArea(format!(
            "table offset {offset:#x} leaves no room for the {PADDED_HASH_TABLE_LEN}-byte table"
        )));
    }
    let mut page = vec![0u8; PAGE_SIZE];
    page[offset..offset + PADDED_HASH_TABLE_LEN].copy_from_slice(&hashes.table());
    Ok(page)
}

/// Everything the launch digest depends on, as files and settings.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MeasureInputs {
    /// The OVMF firmware (AmdSev build).
    pub ovmf: PathBuf,
    /// The kernel given to QEMU `-kernel` (bzImage).
    pub kernel: Option<PathBuf>,
    /// The initrd given to `-initrd`.
    pub initrd: Option<PathBuf>,
    /// The `-append` command line.
    pub cmdline: Option<String>,
    /// vCPUs, their model, the VMM and the VMSA features.
    pub vcpu: VcpuConfig,
}

impl MeasureInputs {
    /// Reads the files and computes the launch digest.
    pub fn launch_digest(&self) -> Result<LaunchDigest, MeasureError> {
        let ovmf = load_ovmf(&self.ovmf)?;
        let hashes = self.kernel_hashes()?;
        launch_digest(&ovmf, None, hashes.as_ref(), &self.vcpu)
    }

    /// Hashes the kernel, initrd and command line (None without a kernel).
    pub fn kernel_hashes(&self) -> Result<Option<KernelHashes>, MeasureError> {
        let Some(kernel) = &self.kernel else {
            if self.initrd.is_some() {
                return Err(MeasureError::NeedsKernel("an initrd"));
            }
            if self.cmdline.is_some() {
                return Err(MeasureError::NeedsKernel("a command line"));
            }
            return Ok(None);
        };
        let kernel = sha256_file(kernel, "kernel")?;
        let initrd = self
            .initrd
            .as_deref()
            .map(|p| sha256_file(p, "initrd"))
            .transpose()?;
        Ok(Some(KernelHashes::new(
            kernel,
            initrd,
            self.cmdline.as_deref(),
        )))
    }
}

/// Reads and parses a firmware file (a regular file within an image file's limit).
pub fn load_ovmf(path: &Path) -> Result<Ovmf, MeasureError> {
    let data = files::read_regular("firmware", path, files::MAX_IMAGE_FILE_BYTES)?;
    Ovmf::parse(data).map_err(|source| MeasureError::Firmware {
        path: path.to_path_buf(),
        source,
    })
}

/// SHA-256 of a regular file within an image file's limit, streamed.
pub fn sha256_file(path: &Path, what: &'static str) -> Result<[u8; 32], MeasureError> {
    Ok(files::sha256_regular(
        what,
        path,
        files::MAX_IMAGE_FILE_BYTES,
    )?)
}

/// Test helpers shared with the manifest and bundle tests.
#[cfg(test)]
pub(crate) mod tests_support {
    use super::{GuestFeatures, VcpuConfig, VmmType};
    use std::path::{Path, PathBuf};

    /// The manifest of `dir`'s bzImage, initramfs.cpio and OVMF.fd (hashed as they are now)
    /// booted with `cmdline` on 2 x EPYC-v4, with a zero launch digest.
    pub(crate) fn manifest_of_dir(dir: &Path, cmdline: &str) -> crate::ImageManifest {
        let file = |name: &str| {
            let sha = super::sha256_file(&dir.join(name), "test").unwrap();
            crate::manifest::FileRef::new(name, hex::encode(sha))
        };
        crate::ImageManifest::new(
            file("bzImage"),
            file("initramfs.cpio"),
            file("OVMF.fd"),
            cmdline,
            &vm(2, "EPYC-v4"),
            super::LaunchDigest([0; 48]),
        )
    }

    /// `vcpus` vCPUs of type `vcpu` under QEMU with the default SEV features.
    pub(crate) fn vm(vcpus: u32, vcpu: &str) -> VcpuConfig {
        VcpuConfig {
            vcpus,
            vcpu_type: vcpu.parse().unwrap(),
            vmm_type: VmmType::Qemu,
            guest_features: GuestFeatures::default(),
        }
    }

    /// Writes a small valid AmdSev-shaped firmware (with a kernel hashes page) as `dir/OVMF.fd`.
    pub(crate) fn synthetic_ovmf_file(dir: &Path) -> PathBuf {
        let data = super::ovmf::tests::synthetic_ovmf(
            16,
            &[
                (0x80_0000, 0x1000, 1),
                (0x80_1000, 0x1000, 2),
                (0x80_2000, 0x1000, 3),
                (0x80_f000, 0x1000, 0x10),
            ],
        );
        let path = dir.join("OVMF.fd");
        std::fs::write(&path, data).unwrap();
        path
    }
}

#[cfg(test)]
mod tests;
