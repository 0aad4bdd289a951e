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
    cpu_model_names, launch_digest, launch_digests_up_to, load_ovmf, ovmf_hash, sha256_file,
    GuestFeatures, KernelHashes, LaunchDigest, MeasureError, Ovmf, VcpuConfig, VcpuType, VmmType,
};
use crate::table::{LaunchDigestTable, TABLE_FILE};

mod compare;
mod explain;

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

/// Hashes the three files and compares each with the manifest.
fn read_files(inputs: &AuditInputs, findings: &mut Vec<Finding>) -> Result<Files, ManifestError> {
    let m = &inputs.manifest;
    let f = &inputs.files;
    let kernel_sha = sha256_file(&f.kernel, "kernel")?;
    let initrd = std::fs::read(&f.initrd).map_err(|source| MeasureError::Read {
        what: "initrd",
        path: f.initrd.clone(),
        source,
    })?;
    let initrd_sha = sha2_256(&initrd);
    let ovmf = load_ovmf(&f.ovmf)?;
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
mod tests {
    use super::*;
    use crate::bundle::build_initramfs;
    use crate::manifest::{InitramfsEntry, MANIFEST_SCHEMA};
    use crate::measure::tests_support::synthetic_ovmf_file;
    use crate::table::default_vcpu_types;

    struct Published {
        dir: tempfile::TempDir,
        manifest: ImageManifest,
        table: LaunchDigestTable,
    }

    fn initrd(init: &[u8]) -> (Vec<u8>, Vec<InitramfsEntry>) {
        let fs = build_initramfs(
            init,
            &[("etc/kettle/ca-roots.pem".into(), b"roots".to_vec(), 0o644)],
        )
        .unwrap();
        let listing = fs
            .entries()
            .into_iter()
            .map(|e| InitramfsEntry {
                sha256: fs.file_data(&e.path).map(|d| hex::encode(sha2_256(d))),
                mode: format!("{:o}", e.mode),
                path: e.path,
            })
            .collect();
        (fs.to_bytes(), listing)
    }

    /// A small image with its manifest (2 x EPYC-v4) and table (3 types x 1, 2, 4, 8).
    fn published() -> Published {
        let dir = tempfile::tempdir().unwrap();
        let ovmf_path = synthetic_ovmf_file(dir.path());
        std::fs::write(dir.path().join("bzImage"), b"kernel bytes").unwrap();
        let (cpio, listing) = initrd(b"init v1");
        std::fs::write(dir.path().join("initramfs.cpio"), &cpio).unwrap();
        let sha = |n: &str| sha256_file(&dir.path().join(n), "t").unwrap();
        let mut manifest = ImageManifest {
            schema: MANIFEST_SCHEMA,
            kernel: FileRef {
                file: "bzImage".into(),
                sha256: hex::encode(sha("bzImage")),
            },
            initrd: FileRef {
                file: "initramfs.cpio".into(),
                sha256: hex::encode(sha("initramfs.cpio")),
            },
            ovmf: FileRef {
                file: "OVMF.fd".into(),
                sha256: hex::encode(sha("OVMF.fd")),
            },
            cmdline: "console=ttyS0 quiet".into(),
            vcpus: 2,
            vcpu_type: "EPYC-v4".parse().unwrap(),
            vmm_type: VmmType::Qemu,
            guest_features: GuestFeatures::default(),
            launch_digest: LaunchDigest([0; 48]),
            initramfs: listing,
            versions: BTreeMap::from([
                (VERSION_RUSTC.to_string(), "rustc 1.95.0".to_string()),
                (VERSION_KERNEL_TOOLS.to_string(), "gcc 12".to_string()),
            ]),
        };
        manifest.launch_digest = manifest
            .recompute_digest(&manifest.files_in(dir.path()).unwrap())
            .unwrap();
        let ovmf = load_ovmf(&ovmf_path).unwrap();
        let hashes = KernelHashes::new(
            sha("bzImage"),
            Some(sha("initramfs.cpio")),
            Some(&manifest.cmdline),
        );
        let table = LaunchDigestTable::compute(
            &manifest,
            &ovmf,
            &hashes,
            &default_vcpu_types(),
            &[1, 2, 4, 8],
        )
        .unwrap();
        Published {
            dir,
            manifest,
            table,
        }
    }

    impl Published {
        fn inputs(&self) -> AuditInputs {
            AuditInputs {
                manifest: self.manifest.clone(),
                manifest_path: self.dir.path().join("manifest.json"),
                table: Some((self.table.clone(), self.dir.path().join(TABLE_FILE))),
                files: self.manifest.files_in(self.dir.path()).unwrap(),
                image_manifest: None,
            }
        }
    }

    fn failed(audit: &Audit) -> Vec<&Finding> {
        audit.mismatches().collect()
    }

    fn because(f: &Finding) -> String {
        f.because.join(" | ")
    }

    #[test]
    fn the_published_image_matches_everywhere() {
        let p = published();
        let a = audit(&p.inputs()).unwrap();
        assert!(a.is_match(), "{:#?}", failed(&a));
        assert_eq!(a.recomputed, p.manifest.launch_digest);
        // 3 files, the table's description, the manifest's digest, 12 rows.
        assert_eq!(a.findings.len(), 3 + 1 + 1 + 12);
    }

    #[test]
    fn a_changed_initrd_is_named_down_to_the_entry() {
        let p = published();
        let (cpio, _) = initrd(b"init v2");
        std::fs::write(p.dir.path().join("initramfs.cpio"), cpio).unwrap();
        let a = audit(&p.inputs()).unwrap();
        let bad = failed(&a);
        // The initrd and all 13 digests.
        assert_eq!(bad.len(), 1 + 13, "{bad:#?}");
        assert_eq!(bad[0].subject, "initrd");
        let why = because(bad[0]);
        assert!(why.contains("entry init has sha256"), "{why}");
        assert!(why.contains("kettle-init"), "{why}");
        assert!(why.contains("rustc 1.95.0"), "{why}");
        for digest in &bad[1..] {
            let why = because(digest);
            assert!(why.contains("the initrd is not the published one"), "{why}");
            assert!(
                why.contains("the differing initrd alone explains it"),
                "{why}"
            );
        }
    }

    #[test]
    fn a_changed_vcpu_type_or_count_is_found() {
        let p = published();
        let mut inputs = p.inputs();
        inputs.manifest.vcpu_type = "EPYC-Milan".parse().unwrap();
        let a = audit(&inputs).unwrap();
        let bad = failed(&a);
        // The table's 2 x EPYC-Milan row disagrees with the manifest, and the manifest's digest is wrong.
        assert_eq!(bad.len(), 2, "{bad:#?}");
        assert!(bad[0].subject.ends_with("row 2 x EPYC-Milan"));
        assert!(because(bad[0]).contains("the table and the manifest disagree"));
        assert!(bad[1]
            .subject
            .starts_with("launch digest 2 x EPYC-Milan (manifest)"));
        let why = because(bad[1]);
        assert!(
            why.contains("the recorded digest is that of 2 vCPU(s) of type EPYC-v4 under QEMU: the vCPU type (EPYC-Milan there, EPYC-v4 in the recorded digest"),
            "{why}"
        );

        // A table row recorded for 4 vCPUs but labelled 8.
        let mut inputs = p.inputs();
        let table = &mut inputs.table.as_mut().unwrap().0;
        let four = table.launch_digests[2].launch_digest;
        table.launch_digests[3].launch_digest = four;
        let a = audit(&inputs).unwrap();
        let bad = failed(&a);
        assert_eq!(bad.len(), 1, "{bad:#?}");
        assert!(bad[0]
            .subject
            .starts_with("launch digest 8 x EPYC-v4 (launch-digests.json)"));
        let why = because(bad[0]);
        assert!(
            why.contains("4 vCPU(s) of type EPYC-v4")
                && why.contains("the vCPU count (8 there, 4 in the recorded digest)"),
            "{why}"
        );
    }

    #[test]
    fn a_changed_cmdline_is_named() {
        let p = published();
        // The image dir was built with another command line: its manifest says so.
        let mut local = p.manifest.clone();
        local.cmdline = "console=ttyS0".into();
        local.launch_digest = local
            .recompute_digest(&local.files_in(p.dir.path()).unwrap())
            .unwrap();
        let mut inputs = p.inputs();
        inputs.image_manifest = Some((local.clone(), PathBuf::from("other/manifest.json")));
        let a = audit(&inputs).unwrap();
        let bad = failed(&a);
        assert_eq!(bad.len(), 2, "{bad:#?}");
        assert_eq!(
            bad[0].subject,
            "image manifest other/manifest.json: cmdline"
        );
        assert!(because(bad[0]).contains(
            r#"cmdline is "console=ttyS0" here, "console=ttyS0 quiet" in the published manifest"#
        ));
        assert_eq!(
            bad[1].subject,
            "image manifest other/manifest.json: launch_digest"
        );
        assert!(
            because(bad[1]).contains("its cmdline differs (above), and the cmdline is measured")
        );

        // The published manifest's cmdline was edited (its digest was not): the
        // recorded digest is that of the other command line.
        let mut inputs = p.inputs();
        inputs.manifest.cmdline = "console=ttyS0 debug".into();
        inputs.table = None;
        let mut local = p.manifest.clone();
        local.cmdline = "console=ttyS0 quiet".into();
        inputs.image_manifest = Some((local, PathBuf::from("img/manifest.json")));
        let a = audit(&inputs).unwrap();
        let digest = a
            .mismatches()
            .find(|f| f.subject.starts_with("launch digest"))
            .unwrap();
        let why = because(digest);
        assert!(
            why.contains(r#"the recorded digest is that of the command line "console=ttyS0 quiet" (img/manifest.json's), not "console=ttyS0 debug": the cmdline differs"#),
            "{why}"
        );
    }

    #[test]
    fn a_changed_firmware_or_kernel_is_named() {
        let p = published();
        let path = p.dir.path().join("OVMF.fd");
        let mut fw = std::fs::read(&path).unwrap();
        fw[0] ^= 1;
        std::fs::write(&path, fw).unwrap();
        std::fs::write(p.dir.path().join("bzImage"), b"other kernel").unwrap();
        let mut inputs = p.inputs();
        let mut local = p.manifest.clone();
        local
            .versions
            .insert(VERSION_KERNEL_TOOLS.into(), "gcc 13".into());
        inputs.image_manifest = Some((local, PathBuf::from("img/manifest.json")));
        let a = audit(&inputs).unwrap();
        let bad = failed(&a);
        assert_eq!(bad[0].subject, "kernel");
        assert!(
            because(bad[0]).contains(
                r#"versions.kernel-tools is "gcc 13" here, "gcc 12" in the published manifest"#
            ),
            "{}",
            because(bad[0])
        );
        assert_eq!(bad[1].subject, "ovmf");
        assert!(because(bad[1]).contains("make ovmf"));
        assert_eq!(bad[2].subject, "image manifest img/manifest.json: versions");
        let digest = bad
            .iter()
            .find(|f| f.subject.starts_with("launch digest"))
            .unwrap();
        let why = because(digest);
        assert!(
            why.contains("the kernel is not the published one")
                && why.contains("the OVMF is not the published one")
                && why.contains("firmware's pages"),
            "{why}"
        );
    }

    #[test]
    fn a_table_for_another_image_is_named() {
        let p = published();
        let mut inputs = p.inputs();
        let table = &mut inputs.table.as_mut().unwrap().0;
        table.cmdline = "console=ttyS0".into();
        table.initrd.sha256 = "00".repeat(32);
        let a = audit(&inputs).unwrap();
        let desc = a
            .mismatches()
            .find(|f| f.subject.ends_with("describes the manifest's image"))
            .unwrap();
        let why = because(desc);
        assert!(why.contains("initrd sha256 is 0000"), "{why}");
        assert!(
            why.contains(r#"cmdline is "console=ttyS0", the manifest says "console=ttyS0 quiet""#),
            "{why}"
        );
        // Each row was computed for the manifest's cmdline, not the one the table now claims.
        let row = a
            .mismatches()
            .find(|f| f.subject.contains("(launch-digests.json)"))
            .unwrap();
        assert!(
            because(row).contains(r#"the recorded digest is that of the command line "console=ttyS0 quiet" (the published manifest's)"#),
            "{}",
            because(row)
        );
    }

    #[test]
    fn finds_the_table_next_to_a_manifest() {
        let p = published();
        let m = p.dir.path().join("manifest.json");
        assert_eq!(table_next_to(&m), None);
        std::fs::write(p.dir.path().join(TABLE_FILE), p.table.to_json_pretty()).unwrap();
        assert_eq!(table_next_to(&m), Some(p.dir.path().join(TABLE_FILE)));
    }
}
