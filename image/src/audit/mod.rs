//! Checking image files against a published manifest and its launch digest
//! table, and explaining every difference by the input that causes it.
//!
//! Every published digest (the manifest's and each row of
//! `launch-digests.json`) is recomputed from the files on disk. When one
//! differs, the explanation names the input: a file whose SHA-256 is not the
//! published one (for the initrd, down to the initramfs entry), or, when
//! the files are the published ones, the vCPU count, vCPU type or VMM type
//! that does give the recorded digest (searched), or the command line of the
//! image's own manifest. Everything else the published files record is
//! compared as well (the table against the manifest, the image directory's
//! own manifest against the published one): nothing is tolerated.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

use serde_json::Value;

use crate::cpio;
use crate::manifest::{
    FileRef, ImageFiles, ImageManifest, ManifestError, VERSION_CA_ROOTS, VERSION_KERNEL_SOURCE,
    VERSION_KERNEL_TOOLS, VERSION_OVMF_SOURCE, VERSION_OVMF_TOOLS, VERSION_RUSTC,
};
use crate::measure::{
    cpu_model_names, launch_digest, launch_digests_up_to, ovmf_hash, GuestFeatures, KernelHashes,
    LaunchDigest, MeasureError, Ovmf, VcpuConfig, VcpuType, VmmType,
};
use crate::table::{LaunchDigestTable, TABLE_FILE};

mod compare;
mod explain;
pub mod files;

use compare::*;
use explain::*;

/// Largest vCPU count tried when looking for the configuration a digest was computed for.
pub const SEARCH_MAX_VCPUS: u32 = 64;

/// What to check.
#[derive(Debug, Clone)]
pub struct AuditInputs {
    /// The published manifest.
    pub manifest: ImageManifest,
    /// Where it was read (for messages).
    pub manifest_path: PathBuf,
    /// The published launch digest table and its path, when there is one.
    pub table: Option<(LaunchDigestTable, PathBuf)>,
    /// The image files to check.
    pub files: ImageFiles,
    /// The image directory's own `manifest.json` and its path, when the files
    /// are not next to the published manifest (compared field by field).
    pub image_manifest: Option<(ImageManifest, PathBuf)>,
}

/// One check and, when it failed, why.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Finding {
    /// What was checked, e.g. `initrd`, `launch digest 4 x EPYC-Milan (launch-digests.json)`.
    pub subject: String,
    /// Whether it matched.
    pub ok: bool,
    /// What was found.
    pub detail: String,
    /// The inputs that explain a mismatch, most specific last.
    pub because: Vec<String>,
}

impl Finding {
    fn ok(subject: impl Into<String>, detail: impl Into<String>) -> Self {
        Finding {
            subject: subject.into(),
            ok: true,
            detail: detail.into(),
            because: Vec::new(),
        }
    }

    fn mismatch(
        subject: impl Into<String>,
        detail: impl Into<String>,
        because: Vec<String>,
    ) -> Self {
        Finding {
            subject: subject.into(),
            ok: false,
            detail: detail.into(),
            because,
        }
    }
}

/// The result of an audit: every check, in order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Audit {
    /// Every check made.
    pub findings: Vec<Finding>,
    /// The manifest's launch digest as recomputed from the files.
    pub recomputed: LaunchDigest,
}

impl Audit {
    /// Whether everything matched.
    pub fn is_match(&self) -> bool {
        self.findings.iter().all(|f| f.ok)
    }

    /// The failed checks.
    pub fn mismatches(&self) -> impl Iterator<Item = &Finding> {
        self.findings.iter().filter(|f| !f.ok)
    }
}

/// The measured image files as found on disk.
struct Files {
    ovmf: Ovmf,
    ovmf_seed: LaunchDigest,
    kernel_sha: [u8; 32],
    initrd_sha: [u8; 32],
    /// Roles whose file is not the published one.
    differing: Vec<&'static str>,
}

/// The launch parameters a digest was recorded for.
#[derive(Debug, Clone)]
struct Recorded<'a> {
    /// Where it is recorded (for messages).
    source: String,
    cmdline: &'a str,
    vm: VcpuConfig,
    digest: LaunchDigest,
}

/// Checks `inputs.files` against everything the published files record.
pub fn audit(inputs: &AuditInputs) -> Result<Audit, ManifestError> {
    let m = &inputs.manifest;
    let mut findings = Vec::new();
    let files = read_files(inputs, &mut findings)?;

    if let Some((table, path)) = &inputs.table {
        compare_table(m, table, path, &mut findings);
    }
    let mut alternative_cmdlines: Vec<(String, String)> = Vec::new();
    if let Some((local, path)) = &inputs.image_manifest {
        compare_image_manifest(m, local, path, &mut findings);
        if local.cmdline != m.cmdline {
            alternative_cmdlines.push((local.cmdline.clone(), format!("{}'s", path.display())));
        }
    }
    if let Some((table, path)) = &inputs.table {
        if table.cmdline != m.cmdline {
            alternative_cmdlines.push((table.cmdline.clone(), format!("{}'s", path.display())));
            alternative_cmdlines.push((m.cmdline.clone(), "the published manifest's".into()));
        }
    }

    let own = Recorded {
        source: format!("manifest {}", inputs.manifest_path.display()),
        cmdline: &m.cmdline,
        vm: m.vcpu_config(),
        digest: m.launch_digest,
    };
    let recomputed = check_digest(
        &own,
        &format!(
            "launch digest {} (manifest)",
            describe_vm(&own.vm, m.vmm_type, m.guest_features)
        ),
        inputs,
        &files,
        &alternative_cmdlines,
        &mut findings,
    )?;
    if let Some((table, path)) = &inputs.table {
        let name = path
            .file_name()
            .map_or_else(|| TABLE_FILE.into(), |n| n.to_string_lossy().into_owned());
        for row in &table.launch_digests {
            let vm = table.vcpu_config(row);
            let rec = Recorded {
                source: format!("{} row {} x {}", path.display(), row.vcpus, row.vcpu_type),
                cmdline: &table.cmdline,
                vm,
                digest: row.launch_digest,
            };
            check_digest(
                &rec,
                &format!(
                    "launch digest {} ({name})",
                    describe_vm(&rec.vm, m.vmm_type, m.guest_features)
                ),
                inputs,
                &files,
                &alternative_cmdlines,
                &mut findings,
            )?;
        }
    }
    Ok(Audit {
        findings,
        recomputed,
    })
}

/// "2 x EPYC-v4", plus the VMM and features when they are not the manifest's.
fn describe_vm(vm: &VcpuConfig, vmm: VmmType, features: GuestFeatures) -> String {
    let mut s = format!("{} x {}", vm.vcpus, vm.vcpu_type);
    if vm.vmm_type != vmm {
        s.push_str(&format!(", vmm {}", vm.vmm_type));
    }
    if vm.guest_features != features {
        s.push_str(&format!(", features {}", vm.guest_features));
    }
    s
}

/// Hashes the three files and compares each with the manifest. Each is opened only if
/// it is a regular file and read only up to [`files::MAX_IMAGE_FILE_BYTES`].
fn read_files(inputs: &AuditInputs, findings: &mut Vec<Finding>) -> Result<Files, ManifestError> {
    use files::{read_regular, sha256_regular, MAX_IMAGE_FILE_BYTES};
    let m = &inputs.manifest;
    let f = &inputs.files;
    let kernel_sha = sha256_regular("kernel", &f.kernel, MAX_IMAGE_FILE_BYTES)?;
    let initrd = read_regular("initrd", &f.initrd, MAX_IMAGE_FILE_BYTES)?;
    let initrd_sha = sha2_256(&initrd);
    let ovmf = read_regular("firmware", &f.ovmf, MAX_IMAGE_FILE_BYTES)?;
    let ovmf = Ovmf::parse(ovmf).map_err(|source| MeasureError::Firmware {
        path: f.ovmf.clone(),
        source,
    })?;
    let ovmf_sha = sha2_256(ovmf.data());
    let mut differing = Vec::new();
    for (role, path, recorded, actual) in [
        ("kernel", &f.kernel, &m.kernel, kernel_sha),
        ("initrd", &f.initrd, &m.initrd, initrd_sha),
        ("ovmf", &f.ovmf, &m.ovmf, ovmf_sha),
    ] {
        let actual = hex::encode(actual);
        if actual.eq_ignore_ascii_case(recorded.sha256.trim()) {
            findings.push(Finding::ok(
                role,
                format!("{}: sha256 {actual} (as published)", path.display()),
            ));
            continue;
        }
        differing.push(role);
        let because = match role {
            "initrd" => explain_initrd(m, &initrd, inputs.image_manifest.as_ref()),
            "kernel" => explain_by_versions(
                m,
                inputs.image_manifest.as_ref(),
                &[VERSION_KERNEL_SOURCE, VERSION_KERNEL_TOOLS],
                "the kernel (make kernel: kernel-config/source.pin, kernel-config/kettle.config, build/bzImage.tools)",
            ),
            _ => explain_by_versions(
                m,
                inputs.image_manifest.as_ref(),
                &[VERSION_OVMF_SOURCE, VERSION_OVMF_TOOLS],
                "the firmware (make ovmf: kernel-config/ovmf.pin, build/OVMF.fd.tools)",
            ),
        };
        findings.push(Finding::mismatch(
            role,
            format!(
                "{}: sha256 {actual}, the published manifest says {}",
                path.display(),
                recorded.sha256
            ),
            because,
        ));
    }
    Ok(Files {
        ovmf_seed: ovmf_hash(&ovmf),
        ovmf,
        kernel_sha,
        initrd_sha,
        differing,
    })
}

fn sha2_256(data: &[u8]) -> [u8; 32] {
    use sha2::Digest;
    sha2::Sha256::digest(data).into()
}

/// Recomputes one recorded digest from the files; on a mismatch, finds the input that explains it.
fn check_digest(
    rec: &Recorded<'_>,
    subject: &str,
    inputs: &AuditInputs,
    files: &Files,
    alternative_cmdlines: &[(String, String)],
    findings: &mut Vec<Finding>,
) -> Result<LaunchDigest, ManifestError> {
    let hashes = KernelHashes::new(files.kernel_sha, Some(files.initrd_sha), Some(rec.cmdline));
    let recomputed = launch_digest(&files.ovmf, Some(&files.ovmf_seed), Some(&hashes), &rec.vm)?;
    if recomputed == rec.digest {
        findings.push(Finding::ok(subject, recomputed.to_string()));
        return Ok(recomputed);
    }
    let because = explain_digest(rec, inputs, files, alternative_cmdlines)?;
    findings.push(Finding::mismatch(
        subject,
        format!(
            "recomputed {recomputed}, {} says {}",
            rec.source, rec.digest
        ),
        because,
    ));
    Ok(recomputed)
}

/// Reads the table next to a manifest, when there is one.
pub fn table_next_to(manifest_path: &Path) -> Option<PathBuf> {
    let dir = manifest_path
        .parent()
        .filter(|p| !p.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    let p = dir.join(TABLE_FILE);
    p.is_file().then_some(p)
}

#[cfg(test)]
mod tests;
