//! Reading the verifier's inputs: an output directory as `kettle build`
//! leaves it, or files named one by one. The directory was written by an
//! untrusted host, so only regular files are read (no symlinks, FIFOs or
//! devices), every read is bounded, and artifacts are hashed as streams.
//! Bytes are kept exactly as read: the binding is over them, never over a
//! re-serialization.

use std::fs::{self, File};
use std::io::Read;
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};

use kettle_attest::CertChain;
use kettle_provenance::Sha256Digest;
use kettle_wire::output::{ARTIFACTS_DIR, CHAIN_FILE, EVIDENCE_FILE, PROVENANCE_FILE};

/// Largest evidence file read (a report is 1184 bytes; more is kept only to say so).
pub const MAX_EVIDENCE_BYTES: u64 = 64 << 10;
/// Largest provenance.json read.
pub const MAX_PROVENANCE_BYTES: u64 = 64 << 20;
/// Largest certificate chain read.
pub const MAX_CHAIN_BYTES: u64 = 1 << 20;
/// Most artifacts one output directory may hold.
pub const MAX_ARTIFACTS: usize = 100_000;

/// Why the verifier's inputs could not be read (the verifier cannot run).
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
    /// A file is not a regular file (a symlink, FIFO, device or directory).
    #[error("{what} {path} is not a regular file ({kind}): refusing to read it")]
    NotRegular {
        /// What the file is for.
        what: &'static str,
        /// The path.
        path: PathBuf,
        /// What it is instead.
        kind: &'static str,
    },
    /// A file is larger than its limit.
    #[error("{what} {path} is larger than {limit} bytes: not a Kettle output")]
    TooLarge {
        /// What the file is for.
        what: &'static str,
        /// The path.
        path: PathBuf,
        /// The limit.
        limit: u64,
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
    /// The artifacts directory holds more entries than any build produces.
    #[error("{dir} holds more than {MAX_ARTIFACTS} entries")]
    TooManyArtifacts {
        /// The artifacts directory.
        dir: PathBuf,
    },
}

/// An artifact handed to the verifier: where it came from and its SHA-256.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Artifact {
    /// How to name it in the output (the path given, or its path under artifacts/).
    pub label: String,
    /// The subject name it must carry, when known (its path under an output dir's artifacts/).
    pub subject_name: Option<String>,
    /// SHA-256 of its bytes, or why it was not read (not a regular file, unreadable).
    pub sha256: Result<Sha256Digest, String>,
}

impl Artifact {
    /// An artifact of these bytes.
    pub fn from_bytes(
        label: impl Into<String>,
        subject_name: Option<String>,
        bytes: &[u8],
    ) -> Artifact {
        Artifact {
            label: label.into(),
            subject_name,
            sha256: Ok(Sha256Digest::of_bytes(bytes)),
        }
    }
}

/// Everything the verifier checks, read from disk.
#[derive(Debug, Clone)]
pub struct Bundle {
    /// The raw SNP attestation report.
    pub report: Vec<u8>,
    /// The certificate chain, or why it could not be read (the chain check then fails saying so).
    pub chain: Result<CertChain, String>,
    /// The exact bytes of provenance.json, when given.
    pub provenance: Option<Vec<u8>>,
    /// The artifacts to check against the provenance's subjects.
    pub artifacts: Vec<Artifact>,
    /// Whether this is a whole output directory (then every subject must have an artifact).
    pub complete_output: bool,
}

/// Where the verifier's inputs are.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct BundleFiles {
    /// The raw report.
    pub evidence: PathBuf,
    /// provenance.json (None: the report is verified alone).
    pub provenance: Option<PathBuf>,
    /// A PEM bundle with the VCEK (and optionally ASK, ARK).
    pub chain: Option<PathBuf>,
    /// An output directory's artifacts/ (every file in it is an artifact named by its path).
    pub artifacts_dir: Option<PathBuf>,
    /// Artifacts given one by one (matched by digest only).
    pub artifact_files: Vec<PathBuf>,
    /// These are an output directory's files: every subject must have an artifact.
    pub complete_output: bool,
}

impl BundleFiles {
    /// The files of an output directory of `kettle build`.
    pub fn output_dir(dir: &Path) -> Result<BundleFiles, LoadError> {
        require_dir(dir, "output directory", fs::metadata(dir))?;
        let present = |name: &str| Some(dir.join(name)).filter(|p| fs::symlink_metadata(p).is_ok());
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
        Ok(BundleFiles {
            evidence,
            provenance: Some(provenance),
            chain: present(CHAIN_FILE),
            artifacts_dir: present(ARTIFACTS_DIR),
            artifact_files: Vec::new(),
            complete_output: true,
        })
    }
}

impl Bundle {
    /// Reads every file `files` names (no chain file: the chain check fails saying so).
    pub fn load(files: &BundleFiles) -> Result<Bundle, LoadError> {
        let report = read_regular("attestation report", &files.evidence, MAX_EVIDENCE_BYTES)?;
        let provenance = files
            .provenance
            .as_deref()
            .map(|p| read_regular("provenance", p, MAX_PROVENANCE_BYTES))
            .transpose()?;
        let chain = match &files.chain {
            Some(path) => {
                let pem = read_regular("certificate chain", path, MAX_CHAIN_BYTES)?;
                CertChain::from_pem_bundle(&pem).map_err(|e| format!("{}: {e}", path.display()))
            }
            None => {
                Err("no certificate chain was given (chain.pem, --chain or --fetch-vcek)".into())
            }
        };
        let mut artifacts = match &files.artifacts_dir {
            Some(d) => load_artifacts(d)?,
            None => Vec::new(),
        };
        artifacts.extend(
            files
                .artifact_files
                .iter()
                .map(|p| hash_artifact(p.display().to_string(), None, p)),
        );
        Ok(Bundle {
            report,
            chain,
            provenance,
            artifacts,
            complete_output: files.complete_output,
        })
    }
}

/// What a non-regular file is, for messages.
/// Requires `meta`, the metadata of `path`, to be that of a directory.
fn require_dir(
    path: &Path,
    what: &'static str,
    meta: std::io::Result<fs::Metadata>,
) -> Result<(), LoadError> {
    let meta = meta.map_err(|source| LoadError::Read {
        what,
        path: path.into(),
        source,
    })?;
    let ft = meta.file_type();
    if ft.is_dir() {
        return Ok(());
    }
    Err(LoadError::NotRegular {
        what,
        path: path.into(),
        kind: if ft.is_file() {
            "not a directory"
        } else {
            kind_of(&ft)
        },
    })
}

fn kind_of(ft: &fs::FileType) -> &'static str {
    use std::os::unix::fs::FileTypeExt;
    if ft.is_symlink() {
        "a symlink"
    } else if ft.is_dir() {
        "a directory"
    } else if ft.is_fifo() {
        "a FIFO"
    } else if ft.is_socket() {
        "a socket"
    } else if ft.is_block_device() || ft.is_char_device() {
        "a device"
    } else {
        "not a regular file"
    }
}

/// Opens `path` only if it is a regular file: no symlink is followed and a FIFO cannot block the open.
fn open_regular(what: &'static str, path: &Path) -> Result<File, LoadError> {
    let read_err = |source| LoadError::Read {
        what,
        path: path.into(),
        source,
    };
    let meta = fs::symlink_metadata(path).map_err(read_err)?;
    if !meta.file_type().is_file() {
        return Err(LoadError::NotRegular {
            what,
            path: path.into(),
            kind: kind_of(&meta.file_type()),
        });
    }
    let flags = rustix::fs::OFlags::NOFOLLOW | rustix::fs::OFlags::NONBLOCK;
    let f = fs::OpenOptions::new()
        .read(true)
        .custom_flags(flags.bits() as i32)
        .open(path)
        .map_err(read_err)?;
    // Checked again on the open file: the path may have been swapped in between.
    let meta = f.metadata().map_err(read_err)?;
    if !meta.file_type().is_file() {
        return Err(LoadError::NotRegular {
            what,
            path: path.into(),
            kind: kind_of(&meta.file_type()),
        });
    }
    Ok(f)
}

/// Reads a regular file of at most `limit` bytes.
pub fn read_regular(what: &'static str, path: &Path, limit: u64) -> Result<Vec<u8>, LoadError> {
    let f = open_regular(what, path)?;
    let mut bytes = Vec::new();
    f.take(limit + 1)
        .read_to_end(&mut bytes)
        .map_err(|source| LoadError::Read {
            what,
            path: path.into(),
            source,
        })?;
    if bytes.len() as u64 > limit {
        return Err(LoadError::TooLarge {
            what,
            path: path.into(),
            limit,
        });
    }
    Ok(bytes)
}

/// Hashes one artifact as a stream; a file that is not regular or unreadable is recorded, not read.
fn hash_artifact(label: String, subject_name: Option<String>, path: &Path) -> Artifact {
    let sha256 = open_regular("artifact", path)
        .map_err(|e| e.to_string())
        .and_then(|f| {
            Sha256Digest::of_reader(f)
                .map(|(d, _)| d)
                .map_err(|e| format!("reading {}: {e}", path.display()))
        });
    Artifact {
        label,
        subject_name,
        sha256,
    }
}

/// Hashes every entry under `root` (recursively, never through a symlink), naming each by its
/// `/`-separated path relative to `root` (the subject name it must carry).
pub fn load_artifacts(root: &Path) -> Result<Vec<Artifact>, LoadError> {
    // Not followed: an artifacts directory that is a symlink could point anywhere.
    require_dir(root, "artifacts directory", fs::symlink_metadata(root))?;
    let mut out = Vec::new();
    walk(root, root, &mut out)?;
    out.sort_by(|a, b| a.label.cmp(&b.label));
    Ok(out)
}

fn walk(root: &Path, dir: &Path, out: &mut Vec<Artifact>) -> Result<(), LoadError> {
    let read_err = |path: &Path| {
        let path = path.to_path_buf();
        move |source| LoadError::Read {
            what: "artifacts directory",
            path,
            source,
        }
    };
    for entry in fs::read_dir(dir).map_err(read_err(dir))? {
        let entry = entry.map_err(read_err(dir))?;
        if out.len() >= MAX_ARTIFACTS {
            return Err(LoadError::TooManyArtifacts { dir: root.into() });
        }
        let path = entry.path();
        // file_type() does not follow symlinks: a linked directory is an (unreadable) artifact, not a walk.
        let ty = entry.file_type().map_err(read_err(&path))?;
        if ty.is_dir() {
            walk(root, &path, out)?;
            continue;
        }
        let rel = path.strip_prefix(root).expect("walk stays under root");
        let name = rel
            .components()
            .map(|c| c.as_os_str().to_string_lossy())
            .collect::<Vec<_>>()
            .join("/");
        out.push(hash_artifact(name.clone(), Some(name), &path));
    }
    Ok(())
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
        let files = BundleFiles::output_dir(d).unwrap();
        assert_eq!(files.chain, None);
        let arts = load_artifacts(files.artifacts_dir.as_ref().unwrap()).unwrap();
        let names: Vec<_> = arts
            .iter()
            .map(|a| a.subject_name.clone().unwrap())
            .collect();
        assert_eq!(names, ["README", "bin/hello"]);
        assert_eq!(arts[1].sha256, Ok(Sha256Digest::of_bytes(b"hello")));
    }

    #[test]
    fn a_local_build_dir_cannot_be_verified_and_says_why() {
        let dir = tempfile::tempdir().unwrap();
        fs::write(dir.path().join(PROVENANCE_FILE), b"{}").unwrap();
        let err = BundleFiles::output_dir(dir.path()).unwrap_err();
        assert!(err.to_string().contains("never hardware-attested"), "{err}");
        let err = BundleFiles::output_dir(&dir.path().join("nope")).unwrap_err();
        assert!(
            err.to_string().contains("cannot read output directory"),
            "{err}"
        );
    }
}
