//! The output directory appears whole or not at all: everything is written
//! into a staging directory next to `--out` (same filesystem) and renamed
//! into place at the end. Dropping a [`Staging`] removes it.

use std::fs;
use std::io;
use std::path::{Path, PathBuf};

/// Why the output directory could not be prepared or published.
#[derive(Debug, thiserror::Error)]
pub enum OutDirError {
    /// `--out` exists and is not empty.
    #[error("{0} already exists and is not empty: remove it, pass another --out, or pass --force to replace it")]
    Exists(PathBuf),
    /// A filesystem operation failed.
    #[error("{path}: {source}")]
    Io {
        /// The path.
        path: PathBuf,
        /// Why.
        #[source]
        source: io::Error,
    },
}

fn io_err(path: &Path) -> impl FnOnce(io::Error) -> OutDirError + '_ {
    move |source| OutDirError::Io {
        path: path.to_path_buf(),
        source,
    }
}

/// A staging directory that becomes `target` on [`Staging::publish`].
#[derive(Debug)]
pub struct Staging {
    dir: tempfile::TempDir,
    target: PathBuf,
    replace: bool,
}

impl Staging {
    /// Stages for `target`; refuses a non-empty `target` unless `replace`.
    pub fn new(target: &Path, replace: bool) -> Result<Staging, OutDirError> {
        if !replace && !is_absent_or_empty(target)? {
            return Err(OutDirError::Exists(target.into()));
        }
        let parent = match target.parent() {
            Some(p) if !p.as_os_str().is_empty() => p.to_path_buf(),
            _ => PathBuf::from("."),
        };
        fs::create_dir_all(&parent).map_err(io_err(&parent))?;
        let name = target
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_else(|| "out".into());
        let dir = tempfile::Builder::new()
            .prefix(&format!(".{name}.kettle-staging-"))
            .tempdir_in(&parent)
            .map_err(io_err(&parent))?;
        Ok(Staging {
            dir,
            target: target.into(),
            replace,
        })
    }

    /// The staging directory to write into.
    pub fn path(&self) -> &Path {
        self.dir.path()
    }

    /// Where the output will appear.
    pub fn target(&self) -> &Path {
        &self.target
    }

    /// Moves the staged directory to the target (replacing an old one if allowed).
    pub fn publish(self) -> Result<PathBuf, OutDirError> {
        let staged = self.dir.keep();
        let target = self.target;
        if target.exists() {
            if is_absent_or_empty(&target)? {
                fs::remove_dir(&target).map_err(io_err(&target))?;
            } else if self.replace {
                // Move the old one aside first so the swap leaves no mixed state.
                let old = staged.with_extension("old");
                fs::rename(&target, &old).map_err(io_err(&target))?;
                fs::remove_dir_all(&old).map_err(io_err(&old))?;
            } else {
                let _ = fs::remove_dir_all(&staged);
                return Err(OutDirError::Exists(target));
            }
        }
        if let Err(e) = fs::rename(&staged, &target) {
            let _ = fs::remove_dir_all(&staged);
            return Err(io_err(&target)(e));
        }
        Ok(target)
    }
}

fn is_absent_or_empty(path: &Path) -> Result<bool, OutDirError> {
    match fs::read_dir(path) {
        Ok(mut entries) => Ok(entries.next().is_none()),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(true),
        Err(e) => Err(io_err(path)(e)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::ffi::OsString;

    /// A scratch directory and the output path `out` inside it (not yet created).
    fn scratch_out() -> (tempfile::TempDir, PathBuf) {
        let root = tempfile::tempdir().unwrap();
        let out = root.path().join("out");
        (root, out)
    }

    /// What a directory holds, by name: staging must leave nothing beside the output.
    fn entries(dir: &Path) -> Vec<OsString> {
        fs::read_dir(dir)
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .collect()
    }

    #[test]
    fn publishes_whole_and_cleans_up_when_dropped() {
        let (root, out) = scratch_out();
        let s = Staging::new(&out, false).unwrap();
        fs::write(s.path().join("provenance.json"), b"{}").unwrap();
        assert!(!out.exists(), "nothing appears before publish");
        s.publish().unwrap();
        assert_eq!(fs::read(out.join("provenance.json")).unwrap(), b"{}");

        let dropped = Staging::new(&root.path().join("other"), false).unwrap();
        let staged = dropped.path().to_path_buf();
        fs::write(staged.join("x"), b"1").unwrap();
        drop(dropped);
        assert!(!staged.exists());
        assert_eq!(entries(root.path()), ["out"]);
    }

    #[test]
    fn refuses_or_replaces_an_existing_output() {
        let (root, out) = scratch_out();
        fs::create_dir(&out).unwrap();
        fs::write(out.join("old"), b"1").unwrap();
        let err = Staging::new(&out, false).unwrap_err();
        assert!(err.to_string().contains("--force"), "{err}");
        let s = Staging::new(&out, true).unwrap();
        fs::write(s.path().join("new"), b"2").unwrap();
        s.publish().unwrap();
        assert!(!out.join("old").exists());
        assert!(out.join("new").exists());
        assert_eq!(entries(root.path()), ["out"]);
        // An empty existing directory is fine without --force.
        let empty = root.path().join("empty");
        fs::create_dir(&empty).unwrap();
        Staging::new(&empty, false).unwrap().publish().unwrap();
    }
}
