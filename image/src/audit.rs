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

/// Which initramfs entries differ from the manifest's listing.
fn explain_initrd(
    m: &ImageManifest,
    initrd: &[u8],
    local: Option<&(ImageManifest, PathBuf)>,
) -> Vec<String> {
    let entries = match cpio::list(initrd) {
        Ok(e) => e,
        Err(e) => return vec![format!("the initrd is not a newc initramfs ({e})")],
    };
    let mut because = Vec::new();
    let actual: BTreeMap<&str, &cpio::ArchiveEntry> =
        entries.iter().map(|e| (e.path.as_str(), e)).collect();
    let mut listed = BTreeSet::new();
    for want in &m.initramfs {
        listed.insert(want.path.as_str());
        let Some(got) = actual.get(want.path.as_str()) else {
            because.push(format!("entry {} is missing", want.path));
            continue;
        };
        let mode = format!("{:o}", got.mode);
        if mode != want.mode {
            because.push(format!(
                "entry {} has mode {mode}, the manifest says {}",
                want.path, want.mode
            ));
        }
        let sha = got.is_file().then(|| hex::encode(sha2_256(&got.data)));
        if sha.as_deref() != want.sha256.as_deref() {
            because.push(format!(
                "entry {} has sha256 {}, the manifest says {}{}",
                want.path,
                sha.as_deref().unwrap_or("(not a regular file)"),
                want.sha256.as_deref().unwrap_or("(not a regular file)"),
                entry_hint(&want.path, m, local)
            ));
        }
    }
    for e in &entries {
        if !listed.contains(e.path.as_str()) {
            because.push(format!("entry {} is not in the manifest", e.path));
        }
    }
    if because.is_empty() {
        because.push("every entry has the manifest's path, mode and contents: the archive itself is laid out differently (not written by this kettle's newc writer?)".into());
    }
    because
}

/// What a differing initramfs entry is, and the recorded versions that may explain it.
fn entry_hint(path: &str, m: &ImageManifest, local: Option<&(ImageManifest, PathBuf)>) -> String {
    let keys: &[&str] = match path {
        "init" => &[VERSION_RUSTC, "kettle"],
        "etc/kettle/ca-roots.pem" => &[VERSION_CA_ROOTS],
        _ => &[],
    };
    let what = match path {
        "init" => " (kettle-init: another commit, compiler or dependency set",
        "etc/kettle/ca-roots.pem" => " (the CA roots",
        _ => return String::new(),
    };
    let diffs = version_diffs(m, local, keys);
    if diffs.is_empty() {
        let published: Vec<String> = keys
            .iter()
            .filter_map(|k| m.versions.get(*k).map(|v| format!("{k} {v:?}")))
            .collect();
        if published.is_empty() {
            format!("{what})")
        } else {
            format!("{what}; published with {})", published.join(", "))
        }
    } else {
        format!("{what}; {})", diffs.join("; "))
    }
}

/// `versions` entries of the image's own manifest that differ from the published ones.
fn version_diffs(
    m: &ImageManifest,
    local: Option<&(ImageManifest, PathBuf)>,
    keys: &[&str],
) -> Vec<String> {
    let Some((local, _)) = local else {
        return Vec::new();
    };
    keys.iter()
        .filter(|k| local.versions.get(**k) != m.versions.get(**k))
        .map(|k| {
            format!(
                "versions.{k} is {} here, {} in the published manifest",
                show_opt(local.versions.get(*k)),
                show_opt(m.versions.get(*k))
            )
        })
        .collect()
}

fn show_opt(v: Option<&String>) -> String {
    v.map_or_else(|| "absent".into(), |v| format!("{v:?}"))
}

/// Explains a differing kernel or firmware by the recorded source pin and tools.
fn explain_by_versions(
    m: &ImageManifest,
    local: Option<&(ImageManifest, PathBuf)>,
    keys: &[&str],
    what: &str,
) -> Vec<String> {
    let diffs = version_diffs(m, local, keys);
    if !diffs.is_empty() {
        return diffs;
    }
    let published: Vec<String> = keys
        .iter()
        .filter_map(|k| m.versions.get(*k).map(|v| format!("{k} {v:?}")))
        .collect();
    vec![format!(
        "{what} was built from other inputs than the published one{}",
        if published.is_empty() {
            String::new()
        } else {
            format!(" (published with {})", published.join(", "))
        }
    )]
}

/// The table must describe the manifest's image.
fn compare_table(
    m: &ImageManifest,
    table: &LaunchDigestTable,
    path: &Path,
    findings: &mut Vec<Finding>,
) {
    let mut diffs = Vec::new();
    for (role, t, mm) in [
        ("kernel", &table.kernel, &m.kernel),
        ("initrd", &table.initrd, &m.initrd),
        ("ovmf", &table.ovmf, &m.ovmf),
    ] {
        diffs.extend(file_ref_diffs(role, t, mm));
    }
    if table.cmdline != m.cmdline {
        diffs.push(format!(
            "cmdline is {:?}, the manifest says {:?}",
            table.cmdline, m.cmdline
        ));
    }
    if table.vmm_type != m.vmm_type {
        diffs.push(format!(
            "vmm_type is {}, the manifest says {}",
            table.vmm_type, m.vmm_type
        ));
    }
    if table.guest_features != m.guest_features {
        diffs.push(format!(
            "guest_features is {}, the manifest says {}",
            table.guest_features, m.guest_features
        ));
    }
    let subject = format!("{} describes the manifest's image", path.display());
    if diffs.is_empty() {
        findings.push(Finding::ok(
            subject,
            "same kernel, initrd, OVMF, cmdline, VMM type and guest features",
        ));
    } else {
        findings.push(Finding::mismatch(
            subject,
            "the table was made for another image",
            diffs,
        ));
    }
    if let Some(own) = table
        .launch_digests
        .iter()
        .find(|r| r.vcpus == m.vcpus && r.vcpu_type == m.vcpu_type)
    {
        if own.launch_digest != m.launch_digest && table.cmdline == m.cmdline {
            findings.push(Finding::mismatch(
                format!("{} row {} x {}", path.display(), own.vcpus, own.vcpu_type),
                format!(
                    "{}, the manifest says {} for the same vCPUs",
                    own.launch_digest, m.launch_digest
                ),
                vec!["the table and the manifest disagree; at most one of them is right (see the recomputed digests below)".into()],
            ));
        }
    }
}

fn file_ref_diffs(role: &str, a: &FileRef, b: &FileRef) -> Vec<String> {
    let mut d = Vec::new();
    if a.file != b.file {
        d.push(format!(
            "{role} file is {:?}, the manifest says {:?}",
            a.file, b.file
        ));
    }
    if !a.sha256.eq_ignore_ascii_case(&b.sha256) {
        d.push(format!(
            "{role} sha256 is {}, the manifest says {}",
            a.sha256, b.sha256
        ));
    }
    d
}

/// The measured fields of a manifest, for naming what makes two digests differ.
const MEASURED_FIELDS: &[&str] = &[
    "kernel",
    "initrd",
    "ovmf",
    "cmdline",
    "vcpus",
    "vcpu_type",
    "vmm_type",
    "guest_features",
];

/// Compares the image directory's manifest with the published one, field by field.
fn compare_image_manifest(
    m: &ImageManifest,
    local: &ImageManifest,
    path: &Path,
    findings: &mut Vec<Finding>,
) {
    let a = serde_json::to_value(local).expect("manifests serialize");
    let b = serde_json::to_value(m).expect("manifests serialize");
    let (Value::Object(a), Value::Object(b)) = (a, b) else {
        unreachable!("a manifest is a JSON object")
    };
    let keys: BTreeSet<&String> = a.keys().chain(b.keys()).collect();
    let mut measured_diffs = Vec::new();
    let mut count = 0;
    // Keep the manifest's field order.
    let order: Vec<&String> = b
        .keys()
        .chain(a.keys().filter(|k| !b.contains_key(*k)))
        .filter(|k| keys.contains(k))
        .collect();
    for key in order {
        if key == "launch_digest" {
            continue;
        }
        let (va, vb) = (a.get(key), b.get(key));
        if va == vb {
            continue;
        }
        count += 1;
        if MEASURED_FIELDS.contains(&key.as_str()) {
            measured_diffs.push(key.clone());
        }
        findings.push(Finding::mismatch(
            format!("image manifest {}: {key}", path.display()),
            "differs from the published manifest",
            value_diffs(key, va, vb),
        ));
    }
    if local.launch_digest != m.launch_digest {
        count += 1;
        let because = if measured_diffs.is_empty() {
            vec!["no measured field differs: one of the two manifests records a digest its own fields do not give (see the recomputed digests below)".into()]
        } else {
            measured_diffs
                .iter()
                .map(|k| format!("its {k} differs (above), and the {k} is measured"))
                .collect()
        };
        findings.push(Finding::mismatch(
            format!("image manifest {}: launch_digest", path.display()),
            format!(
                "{}, the published manifest says {}",
                local.launch_digest, m.launch_digest
            ),
            because,
        ));
    }
    if count == 0 {
        findings.push(Finding::ok(
            format!("image manifest {}", path.display()),
            "identical to the published manifest in every field",
        ));
    }
}

/// Human-readable differences of one JSON field (`here` vs `published`).
fn value_diffs(key: &str, here: Option<&Value>, published: Option<&Value>) -> Vec<String> {
    match (here, published) {
        (Some(Value::Object(a)), Some(Value::Object(b))) => {
            let keys: BTreeSet<&String> = a.keys().chain(b.keys()).collect();
            keys.into_iter()
                .filter(|k| a.get(*k) != b.get(*k))
                .map(|k| {
                    format!(
                        "{key}.{k} is {} here, {} in the published manifest",
                        show(a.get(k)),
                        show(b.get(k))
                    )
                })
                .collect()
        }
        (Some(Value::Array(a)), Some(Value::Array(b))) if key == "initramfs" => {
            let by_path = |v: &Vec<Value>| -> BTreeMap<String, Value> {
                v.iter()
                    .map(|e| (e["path"].as_str().unwrap_or("?").to_string(), e.clone()))
                    .collect()
            };
            let (a, b) = (by_path(a), by_path(b));
            let keys: BTreeSet<&String> = a.keys().chain(b.keys()).collect();
            keys.into_iter()
                .filter(|k| a.get(*k) != b.get(*k))
                .map(|k| match (a.get(k), b.get(k)) {
                    (Some(x), Some(y)) => format!(
                        "entry {k} is {} here, {} in the published manifest",
                        compact(x),
                        compact(y)
                    ),
                    (Some(_), None) => format!("entry {k} is not in the published manifest"),
                    _ => format!("entry {k} is missing here"),
                })
                .collect()
        }
        _ => vec![format!(
            "{key} is {} here, {} in the published manifest",
            show(here),
            show(published)
        )],
    }
}

fn show(v: Option<&Value>) -> String {
    match v {
        None => "absent".into(),
        Some(v) => compact(v),
    }
}

fn compact(v: &Value) -> String {
    match v {
        Value::Object(o) => {
            // An initramfs entry or file ref without its repeated path.
            let parts: Vec<String> = o
                .iter()
                .filter(|(k, _)| k.as_str() != "path")
                .map(|(k, v)| format!("{k} {}", compact(v)))
                .collect();
            parts.join(", ")
        }
        other => other.to_string(),
    }
}

/// How a role is named in explanations.
fn role_name(role: &str) -> &str {
    match role {
        "ovmf" => "OVMF",
        other => other,
    }
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

fn explain_digest(
    rec: &Recorded<'_>,
    inputs: &AuditInputs,
    files: &Files,
    alternative_cmdlines: &[(String, String)],
) -> Result<Vec<String>, ManifestError> {
    let m = &inputs.manifest;
    let mut because = Vec::new();
    for role in &files.differing {
        because.push(format!(
            "the {} is not the published one (sha256 above)",
            role_name(role)
        ));
    }
    if files.differing.contains(&"ovmf") {
        because.push("the firmware's pages themselves are measured, so nothing further can be told without the published OVMF.fd".into());
        return Ok(because);
    }
    // With the published file hashes (the kernel-hashes table holds only SHA-256s).
    let published_hash = |s: &str| -> Option<[u8; 32]> {
        let mut out = [0u8; 32];
        hex::decode_to_slice(s.trim(), &mut out).ok().map(|()| out)
    };
    let (kernel, initrd) = match (
        published_hash(&m.kernel.sha256),
        published_hash(&m.initrd.sha256),
    ) {
        (Some(k), Some(i)) => (k, i),
        _ => {
            because.push(
                "the published manifest's kernel or initrd sha256 is not 64 hex digits".into(),
            );
            return Ok(because);
        }
    };
    let digest_with = |cmdline: &str, vm: &VcpuConfig| -> Result<LaunchDigest, MeasureError> {
        let h = KernelHashes::new(kernel, Some(initrd), Some(cmdline));
        launch_digest(&files.ovmf, Some(&files.ovmf_seed), Some(&h), vm)
    };
    if !files.differing.is_empty() {
        if digest_with(rec.cmdline, &rec.vm)? == rec.digest {
            let which: Vec<&str> = files.differing.iter().map(|r| role_name(r)).collect();
            because.push(format!(
                "with the published {} SHA-256 the recorded digest is recomputed exactly: the differing {} alone explain{} it",
                which.join(" and "),
                which.join(" and "),
                if which.len() == 1 { "s" } else { "" }
            ));
            return Ok(because);
        }
        because.push("even with the published file SHA-256s the recorded digest is not recomputed: another input differs too".into());
    }
    // The same files: which vCPU configuration gives the recorded digest?
    let published = KernelHashes::new(kernel, Some(initrd), Some(rec.cmdline));
    if let Some(vm) = search_vcpus(rec, &files.ovmf, &files.ovmf_seed, &published)? {
        let mut what = Vec::new();
        if vm.vcpus != rec.vm.vcpus {
            what.push(format!(
                "vCPU count ({} there, {} in the recorded digest)",
                rec.vm.vcpus, vm.vcpus
            ));
        }
        if vm.vcpu_type.signature() != rec.vm.vcpu_type.signature() {
            let same = aliases(&vm.vcpu_type);
            what.push(format!(
                "vCPU type ({} there, {} in the recorded digest: signature {:#x}{})",
                rec.vm.vcpu_type,
                vm.vcpu_type,
                vm.vcpu_type.signature(),
                if same.is_empty() {
                    String::new()
                } else {
                    format!(", as {}", same.join(", "))
                }
            ));
        }
        if vm.vmm_type != rec.vm.vmm_type {
            what.push(format!(
                "VMM type ({} there, {} in the recorded digest)",
                rec.vm.vmm_type, vm.vmm_type
            ));
        }
        because.push(format!(
            "the recorded digest is that of {} vCPU(s) of type {} under {}: the {} differ{}",
            vm.vcpus,
            vm.vcpu_type,
            vm.vmm_type,
            what.join(" and the "),
            if what.len() == 1 { "s" } else { "" }
        ));
        return Ok(because);
    }
    for (cmdline, source) in alternative_cmdlines {
        if cmdline.as_str() != rec.cmdline && digest_with(cmdline, &rec.vm)? == rec.digest {
            because.push(format!(
                "the recorded digest is that of the command line {cmdline:?} ({source}), not {:?}: the cmdline differs",
                rec.cmdline
            ));
            return Ok(because);
        }
    }
    because.push(format!(
        "kernel, initrd and OVMF are the published ones, and no vCPU count (1-{SEARCH_MAX_VCPUS}), vCPU type or VMM type gives the recorded digest with the cmdline {:?}: the cmdline or the guest features ({}) it was computed for differ, or the recorded digest itself was altered",
        rec.cmdline, rec.vm.guest_features
    ));
    Ok(because)
}

/// The vCPU configuration (count 1-64, any known model signature, any VMM)
/// that gives `rec.digest` with `rec`'s command line and the given file hashes.
fn search_vcpus(
    rec: &Recorded<'_>,
    ovmf: &Ovmf,
    seed: &LaunchDigest,
    hashes: &KernelHashes,
) -> Result<Option<VcpuConfig>, MeasureError> {
    // The recorded type first, then the published defaults, then every other signature.
    let mut types: Vec<VcpuType> = vec![rec.vm.vcpu_type.clone()];
    let names = crate::table::DEFAULT_VCPU_TYPES
        .iter()
        .copied()
        .chain(cpu_model_names());
    for name in names {
        let t: VcpuType = name.parse().expect("known model names parse");
        if !types.iter().any(|k| k.signature() == t.signature()) {
            types.push(t);
        }
    }
    let mut vmms = vec![rec.vm.vmm_type];
    for v in [VmmType::Qemu, VmmType::Ec2, VmmType::Gce] {
        if !vmms.contains(&v) {
            vmms.push(v);
        }
    }
    for vmm_type in vmms {
        for vcpu_type in &types {
            let vm = VcpuConfig {
                vcpus: 1,
                vcpu_type: vcpu_type.clone(),
                vmm_type,
                guest_features: rec.vm.guest_features,
            };
            let digests =
                launch_digests_up_to(ovmf, Some(seed), Some(hashes), &vm, SEARCH_MAX_VCPUS)?;
            if let Some(i) = digests.iter().position(|d| *d == rec.digest) {
                return Ok(Some(VcpuConfig {
                    vcpus: i as u32 + 1,
                    ..vm
                }));
            }
        }
    }
    Ok(None)
}

/// Other model names with the same CPUID signature as `t`.
fn aliases(t: &VcpuType) -> Vec<&'static str> {
    let own = t.to_string();
    cpu_model_names()
        .into_iter()
        .filter(|n| *n != own && n.parse::<VcpuType>().map(|v| v.signature()) == Ok(t.signature()))
        .collect()
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
