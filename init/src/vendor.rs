//! Vendoring verified crates for cargo's directory source replacement: each
//! .crate is unpacked to `<vendor>/<name>-<version>/` with a
//! `.cargo-checksum.json` of `{"files": {path: sha256}, "package": checksum}`,
//! and cargo is pointed at the directory by a config file.

use std::collections::BTreeMap;
use std::fs;
use std::path::{Path, PathBuf};

use thiserror::Error;

use crate::digest::sha256_file;
use crate::lockfile::LockedCrate;
use crate::unpack::{maybe_gunzip, unpack, UnpackError, UnpackLimits};

/// Why a crate could not be vendored.
#[derive(Debug, Error)]
pub enum VendorError {
    /// The .crate archive was refused or could not be unpacked.
    #[error("unpacking {label}: {source}")]
    Unpack {
        /// Which crate.
        label: String,
        /// The cause.
        #[source]
        source: UnpackError,
    },
    /// The .crate does not hold a single `<name>-<version>/` directory with a Cargo.toml.
    #[error("{label}: the .crate does not contain {dir}/Cargo.toml")]
    Layout {
        /// Which crate.
        label: String,
        /// The expected directory.
        dir: String,
    },
    /// Filesystem error.
    #[error("vendoring {label}: {source}")]
    Io {
        /// Which crate.
        label: String,
        /// The cause.
        #[source]
        source: std::io::Error,
    },
}

/// Unpacks one verified .crate (its bytes) into `vendor_dir` and writes its checksum file.
pub fn vendor_crate(
    krate: &LockedCrate,
    crate_bytes: &[u8],
    vendor_dir: &Path,
) -> Result<PathBuf, VendorError> {
    let label = krate.label();
    let io = |source| VendorError::Io {
        label: label.clone(),
        source,
    };
    let staging = vendor_dir.join(format!(".unpack-{}", krate.dir_name()));
    let reader = maybe_gunzip(crate_bytes).map_err(io)?;
    unpack(reader, &staging, &UnpackLimits::CRATE).map_err(|source| VendorError::Unpack {
        label: label.clone(),
        source,
    })?;
    let inner = staging.join(krate.dir_name());
    let entries: Vec<_> = fs::read_dir(&staging)
        .map_err(io)?
        .collect::<Result<_, _>>()
        .map_err(io)?;
    if entries.len() != 1 || !inner.join("Cargo.toml").is_file() {
        return Err(VendorError::Layout {
            label,
            dir: krate.dir_name(),
        });
    }
    let dest = vendor_dir.join(krate.dir_name());
    fs::rename(&inner, &dest).map_err(io)?;
    fs::remove_dir(&staging).map_err(io)?;
    let mut files = BTreeMap::new();
    hash_files(&dest, &dest, &mut files).map_err(io)?;
    let doc = serde_json::json!({ "files": files, "package": krate.checksum });
    fs::write(
        dest.join(".cargo-checksum.json"),
        serde_json::to_vec(&doc).expect("json"),
    )
    .map_err(io)?;
    Ok(dest)
}

fn hash_files(base: &Path, dir: &Path, out: &mut BTreeMap<String, String>) -> std::io::Result<()> {
    for e in fs::read_dir(dir)? {
        let e = e?;
        let ft = e.file_type()?;
        let p = e.path();
        if ft.is_dir() {
            hash_files(base, &p, out)?;
        } else if ft.is_file() {
            let rel = p
                .strip_prefix(base)
                .expect("under base")
                .to_string_lossy()
                .into_owned();
            out.insert(rel, sha256_file(&p)?);
        }
    }
    Ok(())
}

/// The cargo config that replaces crates.io with the vendor directory at `vendor_path` (sandbox path).
pub fn cargo_config(vendor_path: &str) -> String {
    format!(
        "[source.crates-io]\nreplace-with = \"vendored-sources\"\n\n[source.vendored-sources]\ndirectory = \"{vendor_path}\"\n\n[net]\noffline = true\n"
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::digest::sha256_bytes;

    fn fake_crate(dir: &str) -> Vec<u8> {
        let mut b = tar::Builder::new(flate2::write::GzEncoder::new(
            Vec::new(),
            flate2::Compression::fast(),
        ));
        for (p, data) in [
            (format!("{dir}/Cargo.toml"), &b"[package]\nname=\"x\"\n"[..]),
            (format!("{dir}/src/lib.rs"), &b"pub fn f() {}\n"[..]),
        ] {
            let mut h = tar::Header::new_gnu();
            h.set_size(data.len() as u64);
            h.set_mode(0o644);
            b.append_data(&mut h, p, data).unwrap();
        }
        b.into_inner().unwrap().finish().unwrap()
    }

    #[test]
    fn vendors_with_cargo_checksums() {
        let bytes = fake_crate("x-1.0.0");
        let k = LockedCrate {
            name: "x".into(),
            version: "1.0.0".into(),
            checksum: sha256_bytes(&bytes),
        };
        let tmp = tempfile::tempdir().unwrap();
        let dest = vendor_crate(&k, &bytes, tmp.path()).unwrap();
        let sums: serde_json::Value =
            serde_json::from_slice(&fs::read(dest.join(".cargo-checksum.json")).unwrap()).unwrap();
        assert_eq!(sums["package"], k.checksum);
        assert_eq!(
            sums["files"]["src/lib.rs"],
            sha256_bytes(b"pub fn f() {}\n")
        );
        assert_eq!(sums["files"].as_object().unwrap().len(), 2);
    }

    #[test]
    fn refuses_a_crate_with_the_wrong_top_directory() {
        let bytes = fake_crate("other-9.9.9");
        let k = LockedCrate {
            name: "x".into(),
            version: "1.0.0".into(),
            checksum: sha256_bytes(&bytes),
        };
        let tmp = tempfile::tempdir().unwrap();
        assert!(matches!(
            vendor_crate(&k, &bytes, tmp.path()),
            Err(VendorError::Layout { .. })
        ));
    }
}
