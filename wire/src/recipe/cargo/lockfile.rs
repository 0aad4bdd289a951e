//! Cargo.lock: the registry crates a cargo build needs, each pinned by the
//! SHA-256 `checksum` of its .crate file. The lock file is in the verified
//! source tree, so the commit covers every pin.

use serde::Deserialize;
use thiserror::Error;

use kettle_provenance::Sha256Digest;

use crate::recipe::{BuildType, Dependency};

/// Sources that mean "crates.io".
const CRATES_IO_SOURCES: &[&str] = &[
    "registry+https://github.com/rust-lang/crates.io-index",
    "sparse+https://index.crates.io/",
];
/// Largest Cargo.lock accepted.
pub const MAX_LOCKFILE_BYTES: u64 = 8 << 20;

/// Why Cargo.lock could not be used.
#[derive(Debug, Error)]
pub enum LockfileError {
    /// Not TOML of the expected shape.
    #[error("Cargo.lock is invalid: {0}")]
    Toml(#[from] toml::de::Error),
    /// Lock file v1 keeps checksums elsewhere; only v2+ is supported.
    #[error("Cargo.lock format v1 is not supported: regenerate it with a current cargo")]
    OldFormat,
    /// A package comes from a source the guest cannot verify or fetch.
    #[error("package {name} {version} comes from {source_id:?}: only crates.io registry and path dependencies are supported")]
    UnsupportedSource {
        /// Package name.
        name: String,
        /// Version.
        version: String,
        /// Its source id.
        source_id: String,
    },
    /// A registry package has no or a malformed checksum.
    #[error("package {name} {version} has no valid sha256 checksum in Cargo.lock")]
    BadChecksum {
        /// Package name.
        name: String,
        /// Version.
        version: String,
    },
    /// A name or version has characters that cannot be a crate.
    #[error("package {0:?} has an invalid name or version")]
    BadPackage(String),
}

#[derive(Deserialize)]
struct RawLock {
    #[serde(default)]
    package: Vec<RawPackage>,
    #[serde(default)]
    metadata: Option<toml::Table>,
}

#[derive(Deserialize)]
struct RawPackage {
    name: String,
    version: String,
    #[serde(default)]
    source: Option<String>,
    #[serde(default)]
    checksum: Option<String>,
}

/// Parses Cargo.lock text: its crates.io packages, sorted by name and version (path
/// dependencies are part of the verified tree, not inputs).
pub fn parse(text: &str) -> Result<Vec<Dependency>, LockfileError> {
    let raw: RawLock = toml::from_str(text)?;
    if raw
        .metadata
        .as_ref()
        .is_some_and(|m| m.keys().any(|k| k.starts_with("checksum ")))
    {
        return Err(LockfileError::OldFormat);
    }
    let mut out = Vec::new();
    for p in raw.package {
        let plain = |s: &str| {
            !s.is_empty()
                && s.len() < 128
                && s.bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b"-_.+".contains(&b))
        };
        if !plain(&p.name)
            || !plain(&p.version)
            || p.name.starts_with('.')
            || p.version.starts_with('.')
        {
            return Err(LockfileError::BadPackage(format!(
                "{} {}",
                p.name, p.version
            )));
        }
        let Some(source) = p.source else { continue }; // path dependency: part of the verified tree
        if !CRATES_IO_SOURCES.contains(&source.as_str()) {
            return Err(LockfileError::UnsupportedSource {
                name: p.name,
                version: p.version,
                source_id: source,
            });
        }
        match p.checksum.as_deref().map(Sha256Digest::from_hex) {
            Some(Ok(sha256)) => out.push(Dependency {
                build_type: BuildType::CargoBuild,
                name: p.name,
                version: p.version,
                sha256,
            }),
            _ => {
                return Err(LockfileError::BadChecksum {
                    name: p.name,
                    version: p.version,
                })
            }
        }
    }
    out.sort();
    out.dedup();
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    const SUM: &str = "7f24a3e41c0e2a5a5d4c34e9e6ebb58f2fae2f95ee6dd36c2b1de0ec6b4b2e9e";

    #[test]
    fn parses_registry_and_skips_path_packages() {
        let text = format!(
            "version = 4\n[[package]]\nname = \"app\"\nversion = \"0.1.0\"\ndependencies = [\"hex\"]\n\n[[package]]\nname = \"hex\"\nversion = \"0.4.3\"\nsource = \"registry+https://github.com/rust-lang/crates.io-index\"\nchecksum = \"{SUM}\"\n"
        );
        let crates = parse(&text).unwrap();
        assert_eq!(
            crates,
            vec![Dependency {
                build_type: BuildType::CargoBuild,
                name: "hex".into(),
                version: "0.4.3".into(),
                sha256: Sha256Digest::from_hex(SUM).unwrap()
            }]
        );
        assert_eq!(crates[0].label(), "crate hex 0.4.3");
    }

    #[test]
    fn refuses_git_sources_missing_checksums_and_v1() {
        let git = "[[package]]\nname = \"x\"\nversion = \"1.0.0\"\nsource = \"git+https://github.com/o/x#abc\"\n";
        assert!(matches!(
            parse(git),
            Err(LockfileError::UnsupportedSource { .. })
        ));
        let nosum = "[[package]]\nname = \"x\"\nversion = \"1.0.0\"\nsource = \"registry+https://github.com/rust-lang/crates.io-index\"\n";
        assert!(matches!(
            parse(nosum),
            Err(LockfileError::BadChecksum { .. })
        ));
        let v1 = format!("[[package]]\nname = \"x\"\nversion = \"1.0.0\"\n[metadata]\n\"checksum x 1.0.0 (registry+https://github.com/rust-lang/crates.io-index)\" = \"{SUM}\"\n");
        assert!(matches!(parse(&v1), Err(LockfileError::OldFormat)));
        let evil = "[[package]]\nname = \"../x\"\nversion = \"1.0.0\"\n";
        assert!(matches!(parse(evil), Err(LockfileError::BadPackage(_))));
    }
}
