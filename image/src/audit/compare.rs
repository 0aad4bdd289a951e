//! Comparing what the published files record with each other: the table
//! against the manifest, the image's own manifest against the published one.

use super::*;
use crate::manifest::MEASURED_FIELDS;

/// The table must describe the manifest's image.
pub(super) fn compare_table(
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

pub(super) fn file_ref_diffs(role: &str, a: &FileRef, b: &FileRef) -> Vec<String> {
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

/// Compares the image directory's manifest with the published one, field by field.
pub(super) fn compare_image_manifest(
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
pub(super) fn value_diffs(
    key: &str,
    here: Option<&Value>,
    published: Option<&Value>,
) -> Vec<String> {
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

pub(super) fn show(v: Option<&Value>) -> String {
    match v {
        None => "absent".into(),
        Some(v) => compact(v),
    }
}

pub(super) fn compact(v: &Value) -> String {
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
pub(super) fn role_name(role: &str) -> &str {
    match role {
        "ovmf" => "OVMF",
        other => other,
    }
}
