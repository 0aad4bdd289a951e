//! `manifest.json`: what a platform team publishes with an image and an
//! auditor recomputes. It names the kernel, initrd and firmware by file name
//! and SHA-256, records every other launch parameter, the launch digest they
//! give, and the versions of the tools that produced them.

use std::collections::BTreeMap;
use std::fmt;
use std::path::{Component, Path, PathBuf};
use std::str::FromStr;

use serde::{Deserialize, Serialize};

use crate::measure::{
    launch_digest, GuestFeatures, KernelHashes, LaunchDigest, MeasureError, MeasureInputs, Ovmf,
    VcpuConfig, VcpuType, VmmType,
};

/// The manifest format version this code reads and writes.
pub const MANIFEST_SCHEMA: u32 = 1;

/// `versions` key: which CA roots went into the initramfs (`webpki-root-certs
/// 1.x.y (Mozilla, N roots)`, `file <sha256>` or `none`).
pub const VERSION_CA_ROOTS: &str = "ca-roots";
/// `versions` key: the tools that built the kernel (build/bzImage.tools, `name version, ...`).
pub const VERSION_KERNEL_TOOLS: &str = "kernel-tools";
/// `versions` key: the tools that built the firmware (build/OVMF.fd.tools, `name version, ...`).
pub const VERSION_OVMF_TOOLS: &str = "ovmf-tools";
/// `versions` key: the pinned kernel source (`linux-source-6.12 <version>`).
pub const VERSION_KERNEL_SOURCE: &str = "kernel-source";
/// `versions` key: the pinned firmware source (`edk2 <version>`).
pub const VERSION_OVMF_SOURCE: &str = "ovmf-source";
/// `versions` key: the compiler of kettle-init (`rustc -V`).
pub const VERSION_RUSTC: &str = "rustc";

/// The manifest's measured fields, in its order: what the launch digest is computed
/// from (the audit names which of them makes two digests differ).
pub const MEASURED_FIELDS: &[&str] = &[
    "kernel",
    "initrd",
    "ovmf",
    "cmdline",
    "vcpus",
    "vcpu_type",
    "vmm_type",
    "guest_features",
];

/// Why a manifest cannot be read, written or checked.
#[derive(Debug, thiserror::Error)]
pub enum ManifestError {
    /// The manifest file could not be read or written.
    #[error("cannot access manifest {path}: {source}")]
    Io {
        /// Manifest path.
        path: PathBuf,
        /// The I/O error.
        source: std::io::Error,
    },
    /// The manifest is not valid JSON of the expected shape.
    #[error("manifest {path} is not a valid image manifest: {source}")]
    Parse {
        /// Manifest path.
        path: PathBuf,
        /// The JSON error.
        source: serde_json::Error,
    },
    /// A schema this code does not know.
    #[error("manifest schema {0} is not supported (this kettle reads schema {MANIFEST_SCHEMA}); use a matching kettle version")]
    Schema(u32),
    /// A file name that would escape the manifest's directory.
    #[error("manifest names {role} file {file:?}; it must be a relative path without '..'")]
    BadFileName {
        /// kernel, initrd or ovmf.
        role: &'static str,
        /// The offending name.
        file: String,
    },
    /// Measuring failed (unreadable files, bad firmware).
    #[error(transparent)]
    Measure(#[from] MeasureError),
    /// A file of the image (or the manifest itself) is not a regular file, is too
    /// large, or could not be read.
    #[error(transparent)]
    File(#[from] crate::audit::files::ReadError),
}

/// A file of the image, by name (relative to the manifest) and content hash.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FileRef {
    /// File name relative to the manifest's directory.
    pub file: String,
    /// Lower-case hex SHA-256 of the file.
    pub sha256: String,
}

impl FileRef {
    /// A reference to `file` whose content has SHA-256 `sha256` (lower-case hex).
    pub fn new(file: &str, sha256: impl Into<String>) -> Self {
        FileRef {
            file: file.into(),
            sha256: sha256.into(),
        }
    }
}

/// One entry of the initramfs, listed so auditors can see what the guest runs.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct InitramfsEntry {
    /// Path inside the initramfs (no leading slash).
    pub path: String,
    /// `st_mode` in octal, e.g. "100755".
    pub mode: String,
    /// SHA-256 of regular files' contents.
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub sha256: Option<String>,
}

/// The published description of a measured guest image.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ImageManifest {
    /// Format version ([`MANIFEST_SCHEMA`]).
    pub schema: u32,
    /// The bzImage given to QEMU `-kernel`.
    pub kernel: FileRef,
    /// The initramfs given to `-initrd`.
    pub initrd: FileRef,
    /// The AmdSev OVMF given to `-bios`.
    pub ovmf: FileRef,
    /// The exact `-append` string (measured).
    pub cmdline: String,
    /// Number of vCPUs.
    pub vcpus: u32,
    /// vCPU model (`EPYC-v4`, `family=F,model=M,stepping=S`, `sig=0x..`).
    #[serde(with = "as_string")]
    pub vcpu_type: VcpuType,
    /// VMM flavour (QEMU, ec2, gce).
    #[serde(with = "as_string")]
    pub vmm_type: VmmType,
    /// VMSA SEV_FEATURES, hex.
    #[serde(with = "as_string")]
    pub guest_features: GuestFeatures,
    /// The SNP launch digest of all the above (hex, 96 digits).
    pub launch_digest: LaunchDigest,
    /// What the initramfs contains.
    #[serde(default)]
    pub initramfs: Vec<InitramfsEntry>,
    /// Versions of what produced the image (kettle, rustc, kernel source pin, ...).
    #[serde(default)]
    pub versions: BTreeMap<String, String>,
}

/// Serializes a field through its `Display`/`FromStr`.
pub(crate) mod as_string {
    use std::fmt::Display;
    use std::str::FromStr;

    pub fn serialize<T: Display, S: serde::Serializer>(value: &T, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(value)
    }

    pub fn deserialize<'de, T, D>(d: D) -> Result<T, D::Error>
    where
        T: FromStr,
        T::Err: Display,
        D: serde::Deserializer<'de>,
    {
        let s = <String as serde::Deserialize>::deserialize(d)?;
        s.parse().map_err(serde::de::Error::custom)
    }
}

/// Paths of the image files on disk.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ImageFiles {
    /// Firmware path.
    pub ovmf: PathBuf,
    /// Kernel path.
    pub kernel: PathBuf,
    /// Initrd path.
    pub initrd: PathBuf,
}

/// One way the files on disk disagree with the manifest.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Mismatch {
    /// A file's SHA-256 is not the recorded one.
    FileHash {
        /// kernel, initrd or ovmf.
        role: &'static str,
        /// The file checked.
        path: PathBuf,
        /// Recorded hash.
        expected: String,
        /// Hash of the file on disk.
        actual: String,
    },
    /// The recomputed launch digest is not the recorded one.
    LaunchDigest {
        /// Recorded digest.
        expected: LaunchDigest,
        /// Recomputed digest.
        actual: LaunchDigest,
    },
}

impl fmt::Display for Mismatch {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Mismatch::FileHash {
                role,
                path,
                expected,
                actual,
            } => {
                write!(
                    f,
                    "{role} {}: sha256 {actual}, manifest says {expected}",
                    path.display()
                )
            }
            Mismatch::LaunchDigest { expected, actual } => {
                write!(
                    f,
                    "launch digest: recomputed {actual}, manifest says {expected}"
                )
            }
        }
    }
}

/// The result of checking files against a manifest.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ManifestCheck {
    /// The digest recomputed from the files.
    pub recomputed: LaunchDigest,
    /// Every disagreement found (empty when the image matches).
    pub mismatches: Vec<Mismatch>,
}

impl ManifestCheck {
    /// Whether files and digest all match.
    pub fn is_match(&self) -> bool {
        self.mismatches.is_empty()
    }
}

impl ImageManifest {
    /// The manifest of `kernel`, `initrd` and `ovmf` booted with `cmdline` on `vm`, whose launch
    /// digest is `launch_digest`; the initramfs listing and the versions start empty.
    pub fn new(
        kernel: FileRef,
        initrd: FileRef,
        ovmf: FileRef,
        cmdline: &str,
        vm: &VcpuConfig,
        launch_digest: LaunchDigest,
    ) -> Self {
        ImageManifest {
            schema: MANIFEST_SCHEMA,
            kernel,
            initrd,
            ovmf,
            cmdline: cmdline.into(),
            vcpus: vm.vcpus,
            vcpu_type: vm.vcpu_type.clone(),
            vmm_type: vm.vmm_type,
            guest_features: vm.guest_features,
            launch_digest,
            initramfs: Vec::new(),
            versions: BTreeMap::new(),
        }
    }

    /// Reads and validates `manifest.json` (a regular file of at most
    /// [`crate::audit::files::MAX_JSON_BYTES`]: whoever published it chose what is there).
    pub fn load(path: &Path) -> Result<Self, ManifestError> {
        use crate::audit::files::{read_regular, MAX_JSON_BYTES};
        let bytes = read_regular("manifest", path, MAX_JSON_BYTES)?;
        Self::from_json(&bytes).map_err(|e| match e {
            ManifestError::Parse { source, .. } => ManifestError::Parse {
                path: path.to_path_buf(),
                source,
            },
            other => other,
        })
    }

    /// Parses and validates manifest JSON.
    pub fn from_json(bytes: &[u8]) -> Result<Self, ManifestError> {
        let manifest: Self =
            serde_json::from_slice(bytes).map_err(|source| ManifestError::Parse {
                path: PathBuf::new(),
                source,
            })?;
        if manifest.schema != MANIFEST_SCHEMA {
            return Err(ManifestError::Schema(manifest.schema));
        }
        for (role, file) in manifest.roles() {
            check_file_name(role, &file.file)?;
        }
        Ok(manifest)
    }

    /// Pretty JSON with a trailing newline; field order is fixed by the struct.
    pub fn to_json_pretty(&self) -> String {
        let mut s = serde_json::to_string_pretty(self).expect("manifest fields always serialize");
        s.push('\n');
        s
    }

    /// (role, file) pairs in a fixed order.
    fn roles(&self) -> [(&'static str, &FileRef); 3] {
        [
            ("ovmf", &self.ovmf),
            ("kernel", &self.kernel),
            ("initrd", &self.initrd),
        ]
    }

    /// The image files named by the manifest, relative to `dir`.
    pub fn files_in(&self, dir: &Path) -> Result<ImageFiles, ManifestError> {
        for (role, file) in self.roles() {
            check_file_name(role, &file.file)?;
        }
        Ok(ImageFiles {
            ovmf: dir.join(&self.ovmf.file),
            kernel: dir.join(&self.kernel.file),
            initrd: dir.join(&self.initrd.file),
        })
    }

    /// The vCPU part of the launch parameters.
    pub fn vcpu_config(&self) -> VcpuConfig {
        VcpuConfig {
            vcpus: self.vcpus,
            vcpu_type: self.vcpu_type.clone(),
            vmm_type: self.vmm_type,
            guest_features: self.guest_features,
        }
    }

    /// The measurement inputs for these files with the manifest's parameters.
    pub fn measure_inputs(&self, files: &ImageFiles) -> MeasureInputs {
        MeasureInputs {
            ovmf: files.ovmf.clone(),
            kernel: Some(files.kernel.clone()),
            initrd: Some(files.initrd.clone()),
            cmdline: Some(self.cmdline.clone()),
            vcpu: self.vcpu_config(),
        }
    }

    /// Recomputes the launch digest from the files on disk (not from the recorded hashes).
    pub fn recompute_digest(&self, files: &ImageFiles) -> Result<LaunchDigest, ManifestError> {
        Ok(self.measure_inputs(files).launch_digest()?)
    }

    /// Hashes each file and recomputes the digest; lists every disagreement. Each file
    /// is opened only if it is a regular file, and read within
    /// [`crate::audit::files::MAX_IMAGE_FILE_BYTES`].
    pub fn check(&self, files: &ImageFiles) -> Result<ManifestCheck, ManifestError> {
        use crate::audit::files::{read_regular, sha256_regular, MAX_IMAGE_FILE_BYTES};
        let mut mismatches = Vec::new();
        let mut hashes = BTreeMap::new();
        for ((role, recorded), path) in
            self.roles()
                .into_iter()
                .zip([&files.ovmf, &files.kernel, &files.initrd])
        {
            let actual = sha256_regular(role, path, MAX_IMAGE_FILE_BYTES)?;
            if !hex::encode(actual).eq_ignore_ascii_case(recorded.sha256.trim()) {
                mismatches.push(Mismatch::FileHash {
                    role,
                    path: path.clone(),
                    expected: recorded.sha256.clone(),
                    actual: hex::encode(actual),
                });
            }
            hashes.insert(role, actual);
        }
        let ovmf = read_regular("ovmf", &files.ovmf, MAX_IMAGE_FILE_BYTES)?;
        let ovmf = Ovmf::parse(ovmf).map_err(|source| MeasureError::Firmware {
            path: files.ovmf.clone(),
            source,
        })?;
        let kernel_hashes = KernelHashes::new(
            hashes["kernel"],
            Some(hashes["initrd"]),
            Some(&self.cmdline),
        );
        let recomputed = launch_digest(&ovmf, None, Some(&kernel_hashes), &self.vcpu_config())?;
        if recomputed != self.launch_digest {
            mismatches.push(Mismatch::LaunchDigest {
                expected: self.launch_digest,
                actual: recomputed,
            });
        }
        Ok(ManifestCheck {
            recomputed,
            mismatches,
        })
    }
}

/// Rejects absolute names and `..` so a manifest cannot point outside its directory.
fn check_file_name(role: &'static str, file: &str) -> Result<(), ManifestError> {
    let ok = !file.is_empty()
        && Path::new(file)
            .components()
            .all(|c| matches!(c, Component::Normal(_)));
    if ok {
        Ok(())
    } else {
        Err(ManifestError::BadFileName {
            role,
            file: file.to_string(),
        })
    }
}

impl FromStr for ImageManifest {
    type Err = ManifestError;

    fn from_str(s: &str) -> Result<Self, ManifestError> {
        Self::from_json(s.as_bytes())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::measure::tests_support::{manifest_of_dir, synthetic_ovmf_file};

    /// Writes a tiny image (synthetic firmware, fake kernel/initrd) and its manifest.
    fn sample(dir: &Path) -> (ImageManifest, ImageFiles) {
        let files = ImageFiles {
            ovmf: synthetic_ovmf_file(dir),
            kernel: dir.join("bzImage"),
            initrd: dir.join("initramfs.cpio"),
        };
        std::fs::write(&files.kernel, b"kernel bytes").unwrap();
        std::fs::write(&files.initrd, b"initrd bytes").unwrap();
        let mut m = ImageManifest {
            initramfs: vec![InitramfsEntry {
                path: "init".into(),
                mode: "100755".into(),
                sha256: Some("00".into()),
            }],
            versions: BTreeMap::from([("kettle".to_string(), "0.1.0".to_string())]),
            ..manifest_of_dir(dir, "console=ttyS0")
        };
        m.launch_digest = m.recompute_digest(&files).unwrap();
        (m, files)
    }

    #[test]
    fn json_round_trip_with_stable_keys() {
        let dir = tempfile::tempdir().unwrap();
        let (m, _) = sample(dir.path());
        let json = m.to_json_pretty();
        assert_eq!(json.parse::<ImageManifest>().unwrap(), m);
        let keys: Vec<&str> = json
            .lines()
            .filter(|l| l.starts_with("  \"") && !l.starts_with("   "))
            .map(|l| l.trim().split('"').nth(1).unwrap())
            .collect();
        // The measured fields (the audit's list) in order, between the schema and the digest.
        let expected: Vec<&str> = ["schema"]
            .into_iter()
            .chain(MEASURED_FIELDS.iter().copied())
            .chain(["launch_digest", "initramfs", "versions"])
            .collect();
        assert_eq!(keys, expected);
        assert!(json.contains("\"vcpu_type\": \"EPYC-v4\""));
        assert!(json.contains("\"guest_features\": \"0x1\""));
        assert!(json.contains(&format!("\"launch_digest\": \"{}\"", m.launch_digest)));
    }

    #[test]
    fn check_matches_and_names_each_mismatch() {
        let dir = tempfile::tempdir().unwrap();
        let (m, files) = sample(dir.path());
        assert_eq!(m.files_in(dir.path()).unwrap(), files);
        let ok = m.check(&files).unwrap();
        assert!(ok.is_match(), "{:?}", ok.mismatches);
        assert_eq!(ok.recomputed, m.launch_digest);

        std::fs::write(&files.kernel, b"tampered kernel").unwrap();
        let bad = m.check(&files).unwrap();
        assert!(!bad.is_match());
        assert!(matches!(
            bad.mismatches[0],
            Mismatch::FileHash { role: "kernel", .. }
        ));
        assert!(matches!(bad.mismatches[1], Mismatch::LaunchDigest { .. }));
        assert_eq!(bad.mismatches.len(), 2);

        // A changed parameter alone shows up as a digest mismatch.
        std::fs::write(&files.kernel, b"kernel bytes").unwrap();
        let changed = ImageManifest {
            vcpus: 4,
            ..m.clone()
        };
        let r = changed.check(&files).unwrap();
        assert_eq!(r.mismatches.len(), 1);
        assert!(r.mismatches[0]
            .to_string()
            .starts_with("launch digest: recomputed"));
    }

    #[test]
    fn rejects_bad_manifests() {
        let dir = tempfile::tempdir().unwrap();
        let (m, _) = sample(dir.path());
        let mut v: serde_json::Value = serde_json::from_str(&m.to_json_pretty()).unwrap();
        v["schema"] = 2.into();
        assert!(matches!(
            v.to_string().parse::<ImageManifest>(),
            Err(ManifestError::Schema(2))
        ));
        v["schema"] = 1.into();
        v["kernel"]["file"] = "../etc/passwd".into();
        assert!(matches!(
            v.to_string().parse::<ImageManifest>(),
            Err(ManifestError::BadFileName { role: "kernel", .. })
        ));
        v["kernel"]["file"] = "bzImage".into();
        v["launch_digest"] = "abcd".into();
        assert!(matches!(
            v.to_string().parse::<ImageManifest>(),
            Err(ManifestError::Parse { .. })
        ));
        v["launch_digest"] = m.launch_digest.to_string().into();
        v["surprise"] = true.into();
        assert!(matches!(
            v.to_string().parse::<ImageManifest>(),
            Err(ManifestError::Parse { .. })
        ));
    }
}
