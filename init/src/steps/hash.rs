//! The hash step: every declared output, a regular file reached without
//! symlinks inside the source tree, hashed into a subject. A symlink would let
//! the build make the step read files outside its tree (the guest's, or the
//! host's in local mode).

use std::fs;
use std::path::{Path, PathBuf};

use kettle_provenance::Sha256Digest;
use kettle_wire::unpack::{Beneath, BeneathError};
use thiserror::Error;

use super::WorkDir;
use crate::error::{InStep, Step, StepError};

/// Errors of the hash step.
#[derive(Debug, Error)]
pub enum HashError {
    /// A declared output is missing.
    #[error("declared output {0:?} was not produced")]
    Missing(String),
    /// An output is not a regular file reached without symlinks.
    #[error("declared output {0:?} is not a regular file (or is reached through a symlink)")]
    NotRegular(String),
    /// Reading failed.
    #[error("reading output {name:?}: {source}")]
    Io {
        /// Output name.
        name: String,
        /// Cause.
        #[source]
        source: std::io::Error,
    },
}

/// A hashed output.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Subject {
    /// The declared output path (the subject name).
    pub name: String,
    /// The SHA-256 of its bytes.
    pub sha256: Sha256Digest,
    /// Where the file is now.
    pub path: PathBuf,
}

/// Hashes the declared `outputs` (relative to the source tree), in declared order.
pub fn outputs(outputs: &[String], work: &WorkDir) -> Result<(Vec<Subject>, String), StepError> {
    let src = work.src();
    let tree = Beneath::open(&src)
        .map_err(|source| HashError::Io {
            name: src.display().to_string(),
            source,
        })
        .in_step(Step::Hash)?;
    let subjects = outputs
        .iter()
        .map(|name| {
            let path =
                regular_file_without_symlinks(&src, name).in_step_for(Step::Hash, name.clone())?;
            // Hash what the kernel resolves beneath the tree with no symlink anywhere,
            // not whatever the path names by the time it is read.
            let io = |source| HashError::Io {
                name: name.clone(),
                source,
            };
            let file = tree
                .open_file(Path::new(name))
                .map_err(|e| match e {
                    BeneathError::Symlink(_) | BeneathError::Escapes(_) => {
                        HashError::NotRegular(name.clone())
                    }
                    other => io(other.into_io()),
                })
                .in_step_for(Step::Hash, name.clone())?;
            let meta = file
                .metadata()
                .map_err(io)
                .in_step_for(Step::Hash, name.clone())?;
            if !meta.is_file() {
                return Err(
                    StepError::new(Step::Hash, HashError::NotRegular(name.clone()))
                        .with_input(name.clone()),
                );
            }
            let (sha256, _) = Sha256Digest::of_reader(file)
                .map_err(io)
                .in_step_for(Step::Hash, name.clone())?;
            Ok(Subject {
                name: name.clone(),
                sha256,
                path,
            })
        })
        .collect::<Result<Vec<_>, StepError>>()?;
    let summary = subjects
        .iter()
        .map(|s| format!("{} sha256:{}", s.name, s.sha256))
        .collect::<Vec<_>>()
        .join(", ");
    Ok((subjects, summary))
}

/// Resolves an output path, refusing symlinks anywhere along it and non-regular files.
fn regular_file_without_symlinks(base: &Path, rel: &str) -> Result<PathBuf, HashError> {
    let mut cur = base.to_path_buf();
    for c in Path::new(rel).components() {
        cur.push(c);
        match fs::symlink_metadata(&cur) {
            Ok(m) if m.file_type().is_symlink() => return Err(HashError::NotRegular(rel.into())),
            Ok(_) => {}
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                return Err(HashError::Missing(rel.into()))
            }
            Err(source) => {
                return Err(HashError::Io {
                    name: rel.into(),
                    source,
                })
            }
        }
    }
    if !fs::symlink_metadata(&cur)
        .map(|m| m.is_file())
        .unwrap_or(false)
    {
        return Err(HashError::NotRegular(rel.into()));
    }
    Ok(cur)
}
