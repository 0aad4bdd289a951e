//! `launch-digests.json`: the launch digests of one image for every vCPU type
//! and count it is offered with. A verifier (or a policy) accepts a report
//! whose measurement is one of them; an auditor recomputes each one
//! (`kettle measure --manifest`). The image's files and the launch
//! parameters other than the vCPUs are recorded once, as in the manifest.

use serde::{Deserialize, Serialize};

use crate::manifest::{as_string, FileRef, ImageManifest};
use crate::measure::{
    launch_digest, ovmf_hash, GuestFeatures, KernelHashes, LaunchDigest, MeasureError, Ovmf,
    VcpuConfig, VcpuType, VmmType,
};

/// The table's file name, next to `manifest.json`.
pub const TABLE_FILE: &str = "launch-digests.json";
/// The table format version this code reads and writes.
pub const TABLE_SCHEMA: u32 = 1;
/// The vCPU types an image is published for unless told otherwise: QEMU's
/// Naples-compatible default model and the Milan and Genoa models.
pub const DEFAULT_VCPU_TYPES: &[&str] = &["EPYC-v4", "EPYC-Milan", "EPYC-Genoa"];
/// The vCPU counts an image is published for unless told otherwise.
pub const DEFAULT_VCPU_COUNTS: &[u32] = &[1, 2, 4, 8];

/// Why a table cannot be read.
#[derive(Debug, thiserror::Error)]
pub enum TableError {
    /// Unreadable file.
    #[error("cannot read launch digest table {path}: {source}")]
    Io {
        /// Its path.
        path: std::path::PathBuf,
        /// The I/O error.
        source: std::io::Error,
    },
    /// Not a table of this shape.
    #[error("{path} is not a valid launch digest table: {source}")]
    Parse {
        /// Its path.
        path: std::path::PathBuf,
        /// The JSON error.
        source: serde_json::Error,
    },
    /// A schema this code does not know.
    #[error(
        "launch digest table schema {0} is not supported (this kettle reads schema {TABLE_SCHEMA})"
    )]
    Schema(u32),
}

/// One published launch digest.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TableRow {
    /// The vCPU model.
    #[serde(with = "as_string")]
    pub vcpu_type: VcpuType,
    /// The number of vCPUs.
    pub vcpus: u32,
    /// The launch digest for these vCPUs and the table's image.
    pub launch_digest: LaunchDigest,
}

/// The launch digests of one image (`launch-digests.json`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LaunchDigestTable {
    /// Format version ([`TABLE_SCHEMA`]).
    pub schema: u32,
    /// The kernel (as in the manifest).
    pub kernel: FileRef,
    /// The initrd (as in the manifest).
    pub initrd: FileRef,
    /// The firmware (as in the manifest).
    pub ovmf: FileRef,
    /// The command line (as in the manifest).
    pub cmdline: String,
    /// The VMM flavour every row is for.
    #[serde(with = "as_string")]
    pub vmm_type: VmmType,
    /// The VMSA SEV_FEATURES every row is for.
    #[serde(with = "as_string")]
    pub guest_features: GuestFeatures,
    /// One row per vCPU type and count, types in the order given, counts ascending.
    pub launch_digests: Vec<TableRow>,
}

impl LaunchDigestTable {
    /// Computes the table for `manifest`'s image (its files already hashed in
    /// `hashes`, its firmware parsed in `ovmf`) for every type x count.
    pub fn compute(
        manifest: &ImageManifest,
        ovmf: &Ovmf,
        hashes: &KernelHashes,
        vcpu_types: &[VcpuType],
        vcpu_counts: &[u32],
    ) -> Result<Self, MeasureError> {
        let seed = ovmf_hash(ovmf);
        let mut counts = vcpu_counts.to_vec();
        counts.sort_unstable();
        counts.dedup();
        let mut types: Vec<VcpuType> = Vec::new();
        for t in vcpu_types {
            if !types.contains(t) {
                types.push(t.clone());
            }
        }
        let mut rows = Vec::new();
        for vcpu_type in &types {
            for &vcpus in &counts {
                let vm = VcpuConfig {
                    vcpus,
                    vcpu_type: vcpu_type.clone(),
                    vmm_type: manifest.vmm_type,
                    guest_features: manifest.guest_features,
                };
                rows.push(TableRow {
                    vcpu_type: vcpu_type.clone(),
                    vcpus,
                    launch_digest: launch_digest(ovmf, Some(&seed), Some(hashes), &vm)?,
                });
            }
        }
        Ok(LaunchDigestTable {
            schema: TABLE_SCHEMA,
            kernel: manifest.kernel.clone(),
            initrd: manifest.initrd.clone(),
            ovmf: manifest.ovmf.clone(),
            cmdline: manifest.cmdline.clone(),
            vmm_type: manifest.vmm_type,
            guest_features: manifest.guest_features,
            launch_digests: rows,
        })
    }

    /// The vCPU configuration of one row.
    pub fn vcpu_config(&self, row: &TableRow) -> VcpuConfig {
        VcpuConfig {
            vcpus: row.vcpus,
            vcpu_type: row.vcpu_type.clone(),
            vmm_type: self.vmm_type,
            guest_features: self.guest_features,
        }
    }

    /// Pretty JSON with a trailing newline; field order is fixed by the struct.
    pub fn to_json_pretty(&self) -> String {
        let mut s = serde_json::to_string_pretty(self).expect("table fields always serialize");
        s.push('\n');
        s
    }

    /// Parses and checks the schema.
    pub fn from_json(bytes: &[u8], path: &std::path::Path) -> Result<Self, TableError> {
        let table: Self = serde_json::from_slice(bytes).map_err(|source| TableError::Parse {
            path: path.to_path_buf(),
            source,
        })?;
        if table.schema != TABLE_SCHEMA {
            return Err(TableError::Schema(table.schema));
        }
        Ok(table)
    }

    /// Reads and parses a table file.
    pub fn load(path: &std::path::Path) -> Result<Self, TableError> {
        let bytes = std::fs::read(path).map_err(|source| TableError::Io {
            path: path.to_path_buf(),
            source,
        })?;
        Self::from_json(&bytes, path)
    }
}

/// The default vCPU types, parsed.
pub fn default_vcpu_types() -> Vec<VcpuType> {
    DEFAULT_VCPU_TYPES
        .iter()
        .map(|t| t.parse().expect("built-in model names parse"))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::measure::tests_support::{manifest_of_dir, synthetic_ovmf_file};
    use crate::measure::{load_ovmf, sha256_file, MeasureInputs};

    #[test]
    fn rows_are_the_digests_of_measure_inputs() {
        let dir = tempfile::tempdir().unwrap();
        let ovmf_path = synthetic_ovmf_file(dir.path());
        std::fs::write(dir.path().join("bzImage"), b"kernel").unwrap();
        std::fs::write(dir.path().join("initramfs.cpio"), b"initrd").unwrap();
        let sha = |n: &str| sha256_file(&dir.path().join(n), "t").unwrap();
        let manifest = manifest_of_dir(dir.path(), "console=ttyS0");
        let ovmf = load_ovmf(&ovmf_path).unwrap();
        let hashes = KernelHashes::new(
            sha("bzImage"),
            Some(sha("initramfs.cpio")),
            Some("console=ttyS0"),
        );
        let mut types = default_vcpu_types();
        types.push("EPYC-v4".parse().unwrap()); // duplicates are dropped
        let table = LaunchDigestTable::compute(&manifest, &ovmf, &hashes, &types, &[8, 1, 4, 2, 2])
            .unwrap();
        assert_eq!(table.launch_digests.len(), 12);
        let first: Vec<(String, u32)> = table
            .launch_digests
            .iter()
            .take(5)
            .map(|r| (r.vcpu_type.to_string(), r.vcpus))
            .collect();
        assert_eq!(
            first,
            [
                ("EPYC-v4".to_string(), 1),
                ("EPYC-v4".into(), 2),
                ("EPYC-v4".into(), 4),
                ("EPYC-v4".into(), 8),
                ("EPYC-Milan".into(), 1)
            ]
        );
        for row in &table.launch_digests {
            let inputs = MeasureInputs {
                ovmf: ovmf_path.clone(),
                kernel: Some(dir.path().join("bzImage")),
                initrd: Some(dir.path().join("initramfs.cpio")),
                cmdline: Some("console=ttyS0".into()),
                vcpu: table.vcpu_config(row),
            };
            assert_eq!(
                inputs.launch_digest().unwrap(),
                row.launch_digest,
                "{row:?}"
            );
        }
        let json = table.to_json_pretty();
        let back = LaunchDigestTable::from_json(json.as_bytes(), "t.json".as_ref()).unwrap();
        assert_eq!(back, table);
        assert!(json.contains("\"vcpu_type\": \"EPYC-Genoa\""));
        let mut v: serde_json::Value = serde_json::from_str(&json).unwrap();
        v["schema"] = 9.into();
        assert!(matches!(
            LaunchDigestTable::from_json(v.to_string().as_bytes(), "t.json".as_ref()),
            Err(TableError::Schema(9))
        ));
    }
}
