//! Reading the verifier's inputs: an output directory as `kettle build`
//! leaves it, or files named one by one. The directory was written by an
//! untrusted host, so only regular files are read (no symlinks, FIFOs or
//! devices), every read is bounded, and artifacts are hashed as streams.
//! Bytes are kept exactly as read: the binding is over them, never over a
//! re-serialization. An output directory's file that no subject of the
//! provenance names is refused without being read (the host chose its size),
//! and the bytes hashed over all artifacts are bounded.

use std::collections::BTreeSet;
use std::fs::{self, File};
use std::io::Read;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};

use kettle_attest::CertChain;
use kettle_provenance::{Sha256Digest, Statement};
use kettle_wire::output::{ARTIFACTS_DIR, CHAIN_FILE, EVIDENCE_FILE, PROVENANCE_FILE};

/// Largest evidence file read (a report is 1184 bytes; more is kept only to say so).
pub const MAX_EVIDENCE_BYTES: u64 = 64 << 10;
/// Largest provenance.json read. A real one is a few KiB (a cargo build locking a
/// thousand crates: a few hundred KiB); parsing costs about fifteen times the size
/// in memory, so a 64 MiB one cost about 1 GB.
pub const MAX_PROVENANCE_BYTES: u64 = 4 << 20;
/// Most bytes hashed over all the artifacts of one verification: the guest builds
/// in its own RAM, so no build's outputs come near it, and a host's 8 TiB sparse
/// file is refused by its size instead of being hashed for hours.
pub const MAX_ARTIFACT_BYTES: u64 = 64 << 30;
/// Largest certificate chain read.
pub const MAX_CHAIN_BYTES: u64 = 1 << 20;
/// Most artifacts one output directory may hold.
pub const MAX_ARTIFACTS: usize = 100_000;

/// Why the verifier's inputs could not be read (the verifier cannot run).
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
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
    #[error("{what} {path} is larger than {limit} bytes ({size} bytes): not a Kettle output, refusing to read it")]
    TooLarge {
        /// What the file is for.
        what: &'static str,
        /// The path.
        path: PathBuf,
        /// Its size (at least; a file that grew while read is cut at limit + 1).
        size: u64,
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
    /// Artifacts are read only when the provenance can name them (see [`Subjects`]).
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
        let subjects = Subjects::of(provenance.as_deref());
        let mut budget = HashBudget::new(MAX_ARTIFACT_BYTES);
        let mut artifacts = match &files.artifacts_dir {
            Some(d) => load_artifacts(d, &subjects, &mut budget)?,
            None => Vec::new(),
        };
        artifacts.extend(files.artifact_files.iter().map(|p| {
            let label = p.display().to_string();
            if subjects.readable() {
                hash_artifact(label, None, p, &mut budget)
            } else {
                not_read(label, None, subjects.why_not_read())
            }
        }));
        Ok(Bundle {
            report,
            chain,
            provenance,
            artifacts,
            complete_output: files.complete_output,
        })
    }
}

/// The subject names of the provenance, read before any artifact is: an output
/// directory's file is hashed only when a subject carries its name, and nothing is
/// hashed when there is no provenance to hold a digest against.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum Subjects {
    /// No provenance was given: no artifact can be checked, so none is read.
    NoProvenance,
    /// The provenance is not an in-toto Statement: its checks fail and no artifact is checked.
    Unparsed,
    /// The subject names of the Statement.
    Named(BTreeSet<String>),
}

impl Subjects {
    /// The subject names in `provenance` (the exact bytes that will be verified).
    pub fn of(provenance: Option<&[u8]>) -> Subjects {
        let Some(bytes) = provenance else {
            return Subjects::NoProvenance;
        };
        // The predicate is not needed here; the verifier parses the whole Statement itself.
        match serde_json::from_slice::<Statement<serde::de::IgnoredAny>>(bytes) {
            Ok(st) => Subjects::Named(st.subject.into_iter().filter_map(|s| s.name).collect()),
            Err(_) => Subjects::Unparsed,
        }
    }

    /// Whether artifacts are read at all.
    fn readable(&self) -> bool {
        matches!(self, Subjects::Named(_))
    }

    /// Whether a subject is named `name`.
    fn names(&self, name: &str) -> bool {
        matches!(self, Subjects::Named(n) if n.contains(name))
    }

    fn why_not_read(&self) -> String {
        match self {
            Subjects::NoProvenance => "not read: there is no provenance to name it".into(),
            Subjects::Unparsed => {
                "not read: the provenance is not an in-toto Statement (see provenance.parse)".into()
            }
            Subjects::Named(_) => "not read".into(),
        }
    }
}

/// How many artifact bytes may still be hashed ([`MAX_ARTIFACT_BYTES`] in all).
#[derive(Debug)]
pub struct HashBudget {
    left: u64,
}

impl HashBudget {
    /// A budget of `bytes`.
    pub fn new(bytes: u64) -> HashBudget {
        HashBudget { left: bytes }
    }
}

/// An artifact that was not read, and why.
fn not_read(label: String, subject_name: Option<String>, why: String) -> Artifact {
    Artifact {
        label,
        subject_name,
        sha256: Err(why),
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
    let too_large = |size| LoadError::TooLarge {
        what,
        path: path.into(),
        size,
        limit,
    };
    let read_err = |source| LoadError::Read {
        what,
        path: path.into(),
        source,
    };
    // Refused by its size before a byte is read (a sparse file costs nothing to make).
    let size = f.metadata().map_err(read_err)?.len();
    if size > limit {
        return Err(too_large(size));
    }
    let mut bytes = Vec::new();
    f.take(limit + 1)
        .read_to_end(&mut bytes)
        .map_err(read_err)?;
    if bytes.len() as u64 > limit {
        return Err(too_large(bytes.len() as u64));
    }
    Ok(bytes)
}

/// Hashes one artifact as a stream, within `budget`; a file that is not regular, is
/// larger than what is left of the budget, or is unreadable is recorded, not read.
fn hash_artifact(
    label: String,
    subject_name: Option<String>,
    path: &Path,
    budget: &mut HashBudget,
) -> Artifact {
    let sha256 = open_regular("artifact", path)
        .map_err(|e| e.to_string())
        .and_then(|f| {
            let size = f
                .metadata()
                .map_err(|e| format!("reading {}: {e}", path.display()))?
                .len();
            if size > budget.left {
                return Err(format!(
                    "{size} bytes, more than the {} left of the {MAX_ARTIFACT_BYTES} bytes hashed per verification: not read",
                    budget.left
                ));
            }
            // Bounded even if the file grows while it is read.
            let (digest, read) = Sha256Digest::of_reader(f.take(budget.left + 1))
                .map_err(|e| format!("reading {}: {e}", path.display()))?;
            if read > budget.left {
                return Err(format!(
                    "grew past the {} bytes left of the {MAX_ARTIFACT_BYTES} bytes hashed per verification while it was read",
                    budget.left
                ));
            }
            budget.left -= read;
            Ok(digest)
        });
    Artifact {
        label,
        subject_name,
        sha256,
    }
}

/// The artifacts under `root` (recursively, never through a symlink), each named by its
/// `/`-separated path relative to `root` (the subject name it must carry). Only a file
/// that a subject names is hashed, within `budget`; any other entry is refused unread.
pub fn load_artifacts(
    root: &Path,
    subjects: &Subjects,
    budget: &mut HashBudget,
) -> Result<Vec<Artifact>, LoadError> {
    // Not followed: an artifacts directory that is a symlink could point anywhere.
    require_dir(root, "artifacts directory", fs::symlink_metadata(root))?;
    let mut found = Vec::new();
    walk(root, root, &mut found)?;
    // Sorted before hashing, so what the budget reaches does not depend on directory order.
    found.sort_by(|a, b| a.0.as_os_str().as_bytes().cmp(b.0.as_os_str().as_bytes()));
    Ok(found
        .into_iter()
        .map(|(rel, path)| artifact_at(&rel, &path, subjects, budget))
        .collect())
}

/// One entry of an output directory's artifacts/, hashed only when a subject names it.
fn artifact_at(rel: &Path, path: &Path, subjects: &Subjects, budget: &mut HashBudget) -> Artifact {
    let Some(name) = rel.to_str() else {
        // Lossy, two different names would both read as U+FFFD and both match one subject.
        return not_read(
            rel.to_string_lossy().into_owned(),
            None,
            format!(
                "its name {:?} is not UTF-8, and an in-toto subject name is a string: no subject can name it; not read",
                rel.as_os_str()
            ),
        );
    };
    let name = name.to_string();
    if !subjects.readable() {
        return not_read(name.clone(), Some(name), subjects.why_not_read());
    }
    if !subjects.names(&name) {
        let why = format!("no subject of the provenance is named {name:?}: not read");
        return not_read(name.clone(), Some(name), why);
    }
    hash_artifact(name.clone(), Some(name), path, budget)
}

/// Collects every non-directory entry under `dir` as (path relative to `root`, path).
fn walk(root: &Path, dir: &Path, out: &mut Vec<(PathBuf, PathBuf)>) -> Result<(), LoadError> {
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
        let rel = path
            .strip_prefix(root)
            .expect("walk stays under root")
            .to_path_buf();
        out.push((rel, path));
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
        let subjects = Subjects::Named(["README".into(), "bin/hello".into()].into());
        let mut budget = HashBudget::new(MAX_ARTIFACT_BYTES);
        let arts = load_artifacts(
            files.artifacts_dir.as_ref().unwrap(),
            &subjects,
            &mut budget,
        )
        .unwrap();
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
