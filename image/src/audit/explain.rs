//! Explaining a difference by the input that causes it: the initramfs entry,
//! the `versions` entry, or the vCPU count, type or VMM a digest was made for.

use super::*;

/// Which initramfs entries differ from the manifest's listing.
pub(super) fn explain_initrd(
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
pub(super) fn entry_hint(
    path: &str,
    m: &ImageManifest,
    local: Option<&(ImageManifest, PathBuf)>,
) -> String {
    // Entry names in the initramfs are relative: the guest's absolute path without its `/`.
    let ca_roots = kettle_wire::devices::GUEST_CA_ROOTS.trim_start_matches('/');
    let (keys, what): (&[&str], &str) = match path {
        "init" => (
            &[VERSION_RUSTC, "kettle"],
            " (kettle-init: another commit, compiler or dependency set",
        ),
        p if p == ca_roots => (&[VERSION_CA_ROOTS], " (the CA roots"),
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
pub(super) fn version_diffs(
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

pub(super) fn show_opt(v: Option<&String>) -> String {
    v.map_or_else(|| "absent".into(), |v| format!("{v:?}"))
}

/// Explains a differing kernel or firmware by the recorded source pin and tools.
pub(super) fn explain_by_versions(
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

pub(super) fn explain_digest(
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
pub(super) fn search_vcpus(
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
            // launch_digests_up_to gives one digest per count, 1..=SEARCH_MAX_VCPUS.
            if let Some(vcpus) = (1..=SEARCH_MAX_VCPUS)
                .zip(&digests)
                .find_map(|(n, d)| (*d == rec.digest).then_some(n))
            {
                return Ok(Some(VcpuConfig { vcpus, ..vm }));
            }
        }
    }
    Ok(None)
}

/// Other model names with the same CPUID signature as `t`.
pub(super) fn aliases(t: &VcpuType) -> Vec<&'static str> {
    let own = t.to_string();
    cpu_model_names()
        .into_iter()
        .filter(|n| *n != own && n.parse::<VcpuType>().map(|v| v.signature()) == Ok(t.signature()))
        .collect()
}
