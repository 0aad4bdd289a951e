//! Reading the verifier's inputs from disk: single files, or an output
//! directory as `kettle build` leaves it. Bytes are kept exactly as read.

use std::fs;
use std::path::{Path, PathBuf};

use super::provenance::Artifact;

/// The artifacts directory of an output dir.
pub const ARTIFACTS_DIR: &str = "artifacts";
/// The provenance file of an output dir.
pub const PROVENANCE_FILE: &str = "provenance.json";
/// The raw attestation report of an output dir.
pub const EVIDENCE_FILE: &str = "evidence";
/// The ARK/ASK/VCEK chain of an output dir.
pub const CHAIN_FILE: &str = "chain.pem";
/// The copy of the image manifest in an output dir.
pub const MANIFEST_FILE: &str = "manifest.json";

/// Why the verifier's inputs could not be read (the command could not run).
#[derive(Debug, thiserror::Error)]
pub enum LoadError {
    /// A file could not be read.
    #[error("cannot read {what} {path}: {source}")]
    Read {
        /// What the file is for.
        what: &'static str,
        /// The path.
        path: PathBuf,
        /// The underlying error.
        #[source]
        source: std::io::Error,
    },
    /// The output directory lacks a file verification needs.
    #[error("{dir} has no {file}: {hint}")]
    MissingInDir {
        /// The directory.
        dir: PathBuf,
        /// The missing file.
        file: &'static str,
        /// What to do.
        hint: &'static str,
    },
}

/// Reads a file, naming what it is for in the error.
pub fn read(what: &'static str, path: &Path) -> Result<Vec<u8>, LoadError> {
    fs::read(path).map_err(|source| LoadError::Read {
        what,
        path: path.to_path_buf(),
        source,
    })
}

/// The files found in an output directory.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DirLayout {
    /// provenance.json (required).
    pub provenance: PathBuf,
    /// evidence (required: a `--local` build has none and cannot be verified).
    pub evidence: PathBuf,
    /// chain.pem, when present.
    pub chain: Option<PathBuf>,
    /// manifest.json, when present.
    pub manifest: Option<PathBuf>,
    /// artifacts/, when present.
    pub artifacts: Option<PathBuf>,
}

/// Finds the verifier's inputs in an output directory.
pub fn load_dir(dir: &Path) -> Result<DirLayout, LoadError> {
    let meta = fs::metadata(dir).map_err(|source| LoadError::Read {
        what: "output directory",
        path: dir.into(),
        source,
    })?;
    if !meta.is_dir() {
        return Err(LoadError::Read {
            what: "output directory",
            path: dir.into(),
            source: std::io::Error::new(std::io::ErrorKind::NotADirectory, "not a directory"),
        });
    }
    let present = |name: &str| Some(dir.join(name)).filter(|p| p.exists());
    let provenance = present(PROVENANCE_FILE).ok_or(LoadError::MissingInDir {
        dir: dir.into(),
        file: PROVENANCE_FILE,
        hint: "is this the --out directory of a successful `kettle build`? (a failed build leaves error.json instead)",
    })?;
    let evidence = present(EVIDENCE_FILE).ok_or(LoadError::MissingInDir {
        dir: dir.into(),
        file: EVIDENCE_FILE,
        hint: "there is no attestation report to verify (a `kettle build --local` output is never hardware-attested)",
    })?;
    Ok(DirLayout {
        provenance,
        evidence,
        chain: present(CHAIN_FILE),
        manifest: present(MANIFEST_FILE),
        artifacts: present(ARTIFACTS_DIR).filter(|p| p.is_dir()),
    })
}

/// Hashes every regular file under `root` (recursively), naming each by its
/// `/`-separated path relative to `root` (the subject name it must carry).
pub fn load_artifacts(root: &Path) -> Result<Vec<Artifact>, LoadError> {
    let mut out = Vec::new();
    walk(root, root, &mut out)?;
    out.sort_by(|a, b| a.label.cmp(&b.label));
    Ok(out)
}

fn walk(root: &Path, dir: &Path, out: &mut Vec<Artifact>) -> Result<(), LoadError> {
    let entries = fs::read_dir(dir).map_err(|source| LoadError::Read {
        what: "artifacts directory",
        path: dir.into(),
        source,
    })?;
    for entry in entries {
        let entry = entry.map_err(|source| LoadError::Read {
            what: "artifacts directory",
            path: dir.into(),
            source,
        })?;
        let path = entry.path();
        let ty = entry.file_type().map_err(|source| LoadError::Read {
            what: "artifact",
            path: path.clone(),
            source,
        })?;
        if ty.is_dir() {
            walk(root, &path, out)?;
        } else {
            // Symlinks and other non-regular entries are hashed as what they point to;
            // a dangling one fails to read and stops verification.
            let rel = path.strip_prefix(root).expect("walk stays under root");
            let name = rel
                .components()
                .map(|c| c.as_os_str().to_string_lossy())
                .collect::<Vec<_>>()
                .join("/");
            let bytes = read("artifact", &path)?;
            out.push(Artifact::from_bytes(name.clone(), Some(name), &bytes));
        }
    }
    Ok(())
}

/// Hashes artifacts given one by one on the command line (matched by digest only).
pub fn load_files(paths: &[PathBuf]) -> Result<Vec<Artifact>, LoadError> {
    paths
        .iter()
        .map(|p| {
            Ok(Artifact::from_bytes(
                p.display().to_string(),
                None,
                &read("artifact", p)?,
            ))
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_output_dir_files_and_names_artifacts_by_relative_path() {
        let dir = tempfile::tempdir().unwrap();
        let d = dir.path();
        fs::write(d.join(PROVENANCE_FILE), b"{}").unwrap();
        fs::write(d.join(EVIDENCE_FILE), b"r").unwrap();
        fs::create_dir_all(d.join("artifacts/bin")).unwrap();
        fs::write(d.join("artifacts/bin/hello"), b"hello").unwrap();
        fs::write(d.join("artifacts/README"), b"x").unwrap();
        let layout = load_dir(d).unwrap();
        assert_eq!(layout.chain, None);
        assert_eq!(layout.manifest, None);
        let arts = load_artifacts(layout.artifacts.as_ref().unwrap()).unwrap();
        let names: Vec<_> = arts
            .iter()
            .map(|a| a.subject_name.clone().unwrap())
            .collect();
        assert_eq!(names, ["README", "bin/hello"]);
    }

    #[test]
    fn a_local_build_dir_cannot_be_verified_and_says_why() {
        let dir = tempfile::tempdir().unwrap();
        fs::write(dir.path().join(PROVENANCE_FILE), b"{}").unwrap();
        let err = load_dir(dir.path()).unwrap_err();
        assert!(err.to_string().contains("never hardware-attested"), "{err}");
        let err = load_dir(&dir.path().join("nope")).unwrap_err();
        assert!(
            err.to_string().contains("cannot read output directory"),
            "{err}"
        );
    }
}
