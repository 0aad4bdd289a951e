//! What a toolchain or root filesystem bundle says it holds
//! (`kettle.bundle-manifest/v1`): the host writes it beside and inside each
//! bundle (`kettle bundle manifest`), the guest reads the copy inside the
//! unpacked bundle and lists its packages in the provenance. The copy inside is
//! covered by the bundle's pinned SHA-256, so it is the bundle publisher's word,
//! never the host's; it is still read as untrusted bytes (bounded, beneath the
//! unpacked root, no symlinks, every PURL recomputed).

use std::io::Read;
use std::path::Path;

use kettle_provenance::purl;
use serde::{Deserialize, Serialize};
use thiserror::Error;

use crate::unpack::{Beneath, BeneathError};

/// `schema` of a bundle manifest.
pub const MANIFEST_SCHEMA: &str = "kettle.bundle-manifest/v1";
/// Where the rootfs bundle carries its own manifest (a path inside the tarball).
pub const ROOTFS_MANIFEST_PATH: &str = "usr/share/kettle/bundle.json";
/// Where the toolchain bundle carries its own manifest (a path inside the tarball).
pub const TOOLCHAIN_MANIFEST_PATH: &str = "share/kettle/bundle.json";
/// The largest manifest read (a Debian build root lists a few hundred packages: ~100 KiB).
pub const MAX_MANIFEST_BYTES: u64 = 4 << 20;
/// The Debian vendor every rootfs package PURL names.
pub const DEB_VENDOR: &str = "debian";

/// What a bundle holds.
#[serde_with_macros::skip_serializing_none]
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BundleManifest {
    /// [`MANIFEST_SCHEMA`].
    pub schema: String,
    /// [`BundleKind::Rootfs`] or [`BundleKind::Toolchain`], as text.
    pub kind: String,
    /// One line on what it is.
    pub summary: String,
    /// Root filesystem: the installed Debian packages, sorted by name.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub packages: Vec<Package>,
    /// Toolchain: `rustc -vV`'s release line and fields.
    pub rustc: Option<RustcInfo>,
    /// Toolchain: the components it carries (binaries, the std of each target).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub components: Vec<String>,
}

/// One installed package of a root filesystem.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Package {
    /// Package name.
    pub name: String,
    /// Debian version (epoch:upstream-revision).
    pub version: String,
    /// Architecture (amd64, all).
    pub arch: String,
    /// `pkg:deb/debian/<name>@<version>?arch=<arch>`.
    pub purl: String,
}

/// What `rustc -vV` says.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RustcInfo {
    /// The first line, e.g. `rustc 1.85.0 (4d91de4e4 2025-02-17)`.
    pub version: String,
    /// `release:`.
    pub release: String,
    /// `commit-hash:`.
    pub commit_hash: String,
    /// `host:`.
    pub host: String,
    /// `LLVM version:`.
    pub llvm_version: String,
    /// `cargo -V`, e.g. `cargo 1.85.0 (d73d2caf9 2024-12-31)`.
    pub cargo: String,
}

/// Which bundle a manifest describes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BundleKind {
    /// The build root filesystem.
    Rootfs,
    /// The Rust toolchain.
    Toolchain,
}

impl BundleKind {
    /// The `kind` text.
    pub fn as_str(self) -> &'static str {
        match self {
            BundleKind::Rootfs => "rootfs",
            BundleKind::Toolchain => "toolchain",
        }
    }

    /// Where this kind of bundle carries its manifest.
    pub fn manifest_path(self) -> &'static str {
        match self {
            BundleKind::Rootfs => ROOTFS_MANIFEST_PATH,
            BundleKind::Toolchain => TOOLCHAIN_MANIFEST_PATH,
        }
    }
}

/// Why a bundle's manifest was refused.
#[derive(Debug, Error)]
pub enum BundleManifestError {
    /// The path could not be opened safely (a symlink, an escape) or read.
    #[error("the {kind} bundle's {path}: {source}")]
    Open {
        /// rootfs or toolchain.
        kind: &'static str,
        /// The manifest path inside the bundle.
        path: &'static str,
        /// Why.
        #[source]
        source: BeneathError,
    },
    /// Larger than [`MAX_MANIFEST_BYTES`].
    #[error("the {kind} bundle's {path} is larger than {MAX_MANIFEST_BYTES} bytes")]
    TooLarge {
        /// rootfs or toolchain.
        kind: &'static str,
        /// The manifest path inside the bundle.
        path: &'static str,
    },
    /// Not a manifest of this kind, or an entry is malformed.
    #[error("the {kind} bundle's {path} is not a valid {MANIFEST_SCHEMA} manifest: {message} (rebuild the bundle with `make bundles`, or delete the file from it)")]
    Invalid {
        /// rootfs or toolchain.
        kind: &'static str,
        /// The manifest path inside the bundle.
        path: &'static str,
        /// What is wrong.
        message: String,
    },
}

impl BundleManifest {
    /// The manifest as written: pretty JSON and a final newline (the bytes its pin hashes).
    pub fn to_bytes(&self) -> Vec<u8> {
        let mut b = serde_json::to_vec_pretty(self).expect("a manifest serializes");
        b.push(b'\n');
        b
    }

    /// Parses and checks manifest bytes: the schema, the kind, and every package's PURL
    /// (recomputed from its name, version and arch, so the listed PURL is the one they make).
    pub fn parse(bytes: &[u8], kind: BundleKind) -> Result<BundleManifest, BundleManifestError> {
        let invalid = |message: String| BundleManifestError::Invalid {
            kind: kind.as_str(),
            path: kind.manifest_path(),
            message,
        };
        let m: BundleManifest =
            serde_json::from_slice(bytes).map_err(|e| invalid(e.to_string()))?;
        if m.schema != MANIFEST_SCHEMA {
            return Err(invalid(format!("schema is {:?}", m.schema)));
        }
        if m.kind != kind.as_str() {
            return Err(invalid(format!(
                "kind is {:?}, not {:?}",
                m.kind,
                kind.as_str()
            )));
        }
        for p in &m.packages {
            let expected = purl::deb(DEB_VENDOR, &p.name, &p.version, &p.arch)
                .map_err(|e| invalid(format!("package {:?}: {e}", p.name)))?;
            if p.purl != expected {
                return Err(invalid(format!(
                    "package {:?} lists PURL {:?}; its name, version and arch make {expected:?}",
                    p.name, p.purl
                )));
            }
        }
        Ok(m)
    }

    /// Reads the manifest an unpacked bundle carries at [`BundleKind::manifest_path`]
    /// beneath `root`: `None` when the bundle has none (made without one).
    pub fn read_unpacked(
        root: &Path,
        kind: BundleKind,
    ) -> Result<Option<BundleManifest>, BundleManifestError> {
        let open = |source| BundleManifestError::Open {
            kind: kind.as_str(),
            path: kind.manifest_path(),
            source,
        };
        let beneath = Beneath::open(root).map_err(|e| {
            open(BeneathError::Io {
                path: root.display().to_string(),
                source: e,
            })
        })?;
        let file = match beneath.open_file(Path::new(kind.manifest_path())) {
            Ok(f) => f,
            Err(BeneathError::Io { source, .. })
                if source.kind() == std::io::ErrorKind::NotFound =>
            {
                return Ok(None)
            }
            Err(e) => return Err(open(e)),
        };
        let mut bytes = Vec::new();
        file.take(MAX_MANIFEST_BYTES + 1)
            .read_to_end(&mut bytes)
            .map_err(|source| {
                open(BeneathError::Io {
                    path: kind.manifest_path().into(),
                    source,
                })
            })?;
        if bytes.len() as u64 > MAX_MANIFEST_BYTES {
            return Err(BundleManifestError::TooLarge {
                kind: kind.as_str(),
                path: kind.manifest_path(),
            });
        }
        BundleManifest::parse(&bytes, kind).map(Some)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::fs;

    fn package(name: &str, version: &str) -> Package {
        Package {
            name: name.into(),
            version: version.into(),
            arch: "amd64".into(),
            purl: purl::deb(DEB_VENDOR, name, version, "amd64").unwrap(),
        }
    }

    fn rootfs_manifest(packages: Vec<Package>) -> BundleManifest {
        BundleManifest {
            schema: MANIFEST_SCHEMA.into(),
            kind: "rootfs".into(),
            summary: "Debian bookworm, 2 packages".into(),
            packages,
            rustc: None,
            components: Vec::new(),
        }
    }

    fn write_at(root: &Path, rel: &str, bytes: &[u8]) {
        let path = root.join(rel);
        fs::create_dir_all(path.parent().unwrap()).unwrap();
        fs::write(path, bytes).unwrap();
    }

    #[test]
    fn an_unpacked_rootfs_manifest_is_read_and_its_purls_rechecked() {
        let tmp = tempfile::tempdir().unwrap();
        let m = rootfs_manifest(vec![
            package("gcc-12", "12.2.0-14"),
            package("libc6", "2.36-9+deb12u10"),
        ]);
        write_at(
            tmp.path(),
            ROOTFS_MANIFEST_PATH,
            &serde_json::to_vec(&m).unwrap(),
        );
        let read = BundleManifest::read_unpacked(tmp.path(), BundleKind::Rootfs).unwrap();
        assert_eq!(read, Some(m));
        assert_eq!(
            read.unwrap().packages[1].purl,
            "pkg:deb/debian/libc6@2.36-9%2Bdeb12u10?arch=amd64"
        );
    }

    #[test]
    fn a_bundle_without_a_manifest_has_none() {
        let tmp = tempfile::tempdir().unwrap();
        assert_eq!(
            BundleManifest::read_unpacked(tmp.path(), BundleKind::Toolchain).unwrap(),
            None
        );
    }

    #[test]
    fn a_purl_that_its_fields_do_not_make_is_refused() {
        let mut p = package("libc6", "2.36-9");
        p.purl = "pkg:deb/debian/libc6@2.40-1?arch=amd64".into();
        let bytes = serde_json::to_vec(&rootfs_manifest(vec![p])).unwrap();
        let err = BundleManifest::parse(&bytes, BundleKind::Rootfs).unwrap_err();
        assert!(
            err.to_string()
                .contains("make \"pkg:deb/debian/libc6@2.36-9?arch=amd64\""),
            "{err}"
        );
    }

    #[test]
    fn the_wrong_kind_schema_or_an_unknown_field_is_refused() {
        let m = rootfs_manifest(vec![]);
        let bytes = serde_json::to_vec(&m).unwrap();
        assert!(BundleManifest::parse(&bytes, BundleKind::Toolchain)
            .unwrap_err()
            .to_string()
            .contains("kind is \"rootfs\""));
        let mut other = m.clone();
        other.schema = "kettle.bundle-manifest/v2".into();
        assert!(
            BundleManifest::parse(&serde_json::to_vec(&other).unwrap(), BundleKind::Rootfs)
                .unwrap_err()
                .to_string()
                .contains("schema is")
        );
        let mut v = serde_json::to_value(&m).unwrap();
        v["installedBy"] = "host".into();
        assert!(
            BundleManifest::parse(&serde_json::to_vec(&v).unwrap(), BundleKind::Rootfs)
                .unwrap_err()
                .to_string()
                .contains("unknown field")
        );
    }

    #[test]
    fn a_manifest_reached_through_a_symlink_or_too_large_is_refused() {
        let tmp = tempfile::tempdir().unwrap();
        let outside = tempfile::tempdir().unwrap();
        let m = serde_json::to_vec(&rootfs_manifest(vec![])).unwrap();
        fs::write(outside.path().join("bundle.json"), &m).unwrap();
        fs::create_dir_all(tmp.path().join("usr/share/kettle")).unwrap();
        std::os::unix::fs::symlink(
            outside.path().join("bundle.json"),
            tmp.path().join(ROOTFS_MANIFEST_PATH),
        )
        .unwrap();
        let err = BundleManifest::read_unpacked(tmp.path(), BundleKind::Rootfs).unwrap_err();
        assert!(
            matches!(
                err,
                BundleManifestError::Open {
                    source: BeneathError::Symlink(_),
                    ..
                }
            ),
            "{err}"
        );

        let big = tempfile::tempdir().unwrap();
        write_at(
            big.path(),
            ROOTFS_MANIFEST_PATH,
            &vec![b' '; MAX_MANIFEST_BYTES as usize + 1],
        );
        assert!(matches!(
            BundleManifest::read_unpacked(big.path(), BundleKind::Rootfs).unwrap_err(),
            BundleManifestError::TooLarge { .. }
        ));
    }
}
