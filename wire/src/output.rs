//! Where results go: a directory (local mode) or a tar stream on the output
//! disk (serial `kettle-output`). Layout, identical in both:
//!
//! ```text
//! artifacts/<subject name>   each declared output (success only)
//! provenance.json            the JCS bytes whose SHA-256 is in report_data (success only)
//! evidence                   the raw SNP attestation report (success with a provider)
//! chain.pem                  ARK/ASK/VCEK chain when the provider supplied it
//! status.json                written last: {"ok":true,...}
//! error.json                 instead of all of the above on failure: {"ok":false,"step","message","input"}
//! ```
//!
//! The host adds `manifest.json` (a copy of the image manifest it booted) and
//! `build.log` (the console) to the output directory; neither is evidence.

use std::fs::{self, File};
use std::io::{self, Write};
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::recipe::check_relative;
use crate::unpack::{unpack, UnpackError, UnpackLimits};

/// Directory of artifacts in the output.
pub const ARTIFACTS_DIR: &str = "artifacts";
/// The provenance file.
pub const PROVENANCE_FILE: &str = "provenance.json";
/// The raw report.
pub const EVIDENCE_FILE: &str = "evidence";
/// The certificate chain.
pub const CHAIN_FILE: &str = "chain.pem";
/// Written last on success.
pub const STATUS_FILE: &str = "status.json";
/// The host's copy of the image manifest it booted (informative only: the host wrote it).
pub const MANIFEST_FILE: &str = "manifest.json";
/// The host's log of the guest console.
pub const BUILD_LOG_FILE: &str = "build.log";
/// Written on failure (see [`crate::steps::ErrorReport`]).
pub use crate::steps::ERROR_FILE;

/// Contents of status.json. It never overstates: only AMD SEV-SNP hardware
/// evidence makes a build `attested`; the simulated PSP's is `simulated`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct BuildStatus {
    /// Always true.
    pub ok: bool,
    /// Whether `evidence` holds an AMD SEV-SNP hardware report (never true for simulated evidence).
    pub attested: bool,
    /// Whether `evidence` came from Kettle's simulated PSP (test keys: nothing is hardware-attested).
    /// Absent in status.json written before this field existed.
    #[serde(default)]
    pub simulated: bool,
    /// In words: which provider produced the evidence (`sev-snp: ...`, `SIMULATED: ...`) or why there is none.
    pub attestation: String,
    /// The subject names, in provenance order.
    pub artifacts: Vec<String>,
}

/// A place to write the output files.
pub trait OutputSink {
    /// Writes `bytes` as `name`.
    fn put_bytes(&mut self, name: &str, bytes: &[u8]) -> io::Result<()>;
    /// Copies the file at `path` as `name`, streaming.
    fn put_file(&mut self, name: &str, path: &Path) -> io::Result<()>;
    /// Flushes and syncs everything.
    fn finish(&mut self) -> io::Result<()>;
}

/// Output into a directory (local mode).
pub struct DirSink {
    root: PathBuf,
}

impl DirSink {
    /// Creates `root`; refuses a non-empty directory so results never mix with older ones.
    pub fn create(root: &Path) -> io::Result<DirSink> {
        fs::create_dir_all(root)?;
        if fs::read_dir(root)?.next().is_some() {
            return Err(io::Error::new(
                io::ErrorKind::AlreadyExists,
                format!("output directory {} is not empty", root.display()),
            ));
        }
        Ok(DirSink {
            root: root.to_path_buf(),
        })
    }

    fn target(&self, name: &str) -> io::Result<PathBuf> {
        check_relative(name)
            .map_err(|why| io::Error::new(io::ErrorKind::InvalidInput, format!("{name}: {why}")))?;
        let p = self.root.join(name);
        if let Some(parent) = p.parent() {
            fs::create_dir_all(parent)?;
        }
        Ok(p)
    }
}

impl OutputSink for DirSink {
    fn put_bytes(&mut self, name: &str, bytes: &[u8]) -> io::Result<()> {
        fs::write(self.target(name)?, bytes)
    }
    fn put_file(&mut self, name: &str, path: &Path) -> io::Result<()> {
        let target = self.target(name)?;
        fs::copy(path, &target)?;
        Ok(())
    }
    fn finish(&mut self) -> io::Result<()> {
        Ok(())
    }
}

/// Output as a tar stream (the output disk).
pub struct TarSink<W: Write> {
    builder: Option<tar::Builder<W>>,
}

impl<W: Write> TarSink<W> {
    /// Writes a tar stream to `w`.
    pub fn new(w: W) -> Self {
        TarSink {
            builder: Some(tar::Builder::new(w)),
        }
    }

    fn builder(&mut self) -> io::Result<&mut tar::Builder<W>> {
        self.builder
            .as_mut()
            .ok_or_else(|| io::Error::other("output already finished"))
    }

    /// Finishes and returns the writer.
    pub fn into_inner(mut self) -> io::Result<W> {
        self.builder
            .take()
            .ok_or_else(|| io::Error::other("output already finished"))?
            .into_inner()
    }
}

fn header(size: u64) -> tar::Header {
    let mut h = tar::Header::new_gnu();
    h.set_size(size);
    h.set_mode(0o644);
    h.set_mtime(0);
    h.set_entry_type(tar::EntryType::Regular);
    h
}

impl<W: Write> OutputSink for TarSink<W> {
    fn put_bytes(&mut self, name: &str, bytes: &[u8]) -> io::Result<()> {
        let mut h = header(bytes.len() as u64);
        self.builder()?.append_data(&mut h, name, bytes)
    }
    fn put_file(&mut self, name: &str, path: &Path) -> io::Result<()> {
        use std::os::unix::fs::PermissionsExt;
        let mut f = File::open(path)?;
        let meta = f.metadata()?;
        let mut h = header(meta.len());
        // Artifacts are often programs: keep "executable or not", nothing else.
        if meta.permissions().mode() & 0o111 != 0 {
            h.set_mode(0o755);
        }
        self.builder()?.append_data(&mut h, name, &mut f)
    }
    fn finish(&mut self) -> io::Result<()> {
        self.builder()?.finish()?;
        self.builder()?.get_mut().flush()
    }
}

/// Host side: extracts an output disk image (or any output tar stream) into `dest`, safely.
pub fn read_output_disk(disk: &Path, dest: &Path) -> Result<(), UnpackError> {
    let f = File::open(disk).map_err(|source| UnpackError::Io {
        path: disk.display().to_string(),
        source,
    })?;
    unpack(f, dest, &UnpackLimits::TREE).map(|_| ())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt;

    #[test]
    fn output_disk_keeps_the_exec_bit_and_nothing_else() {
        let dir = tempfile::tempdir().unwrap();
        let at = |name: &str| dir.path().join(name);
        let tool = at("tool");
        let data = at("data");
        fs::write(&tool, b"#!/bin/sh\n").unwrap();
        fs::set_permissions(&tool, fs::Permissions::from_mode(0o4750)).unwrap();
        fs::write(&data, b"x").unwrap();
        fs::set_permissions(&data, fs::Permissions::from_mode(0o600)).unwrap();

        let disk = at("out.img");
        let mut sink = TarSink::new(File::create(&disk).unwrap());
        sink.put_file("artifacts/tool", &tool).unwrap();
        sink.put_file("artifacts/data", &data).unwrap();
        sink.finish().unwrap();

        let got = at("got");
        read_output_disk(&disk, &got).unwrap();
        let mode = |p: &str| fs::metadata(got.join(p)).unwrap().permissions().mode() & 0o7777;
        assert_eq!(mode("artifacts/tool"), 0o755);
        assert_eq!(mode("artifacts/data"), 0o644);
    }
}
