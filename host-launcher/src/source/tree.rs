//! The commit's tree read from its objects (`git ls-tree` and `git cat-file
//! --batch`): its raw commit object, the source archive, and a file or directory
//! listing of the commit (not of the worktree).

use std::ffi::OsStr;
use std::io::{BufRead, BufReader, BufWriter, Read, Write};
use std::os::unix::ffi::OsStrExt;
use std::path::Path;
use std::process::{Command, Stdio};

use super::git::git;
use super::{ResolvedSource, SourceError};

impl ResolvedSource {
    /// Runs git on this source's repository (`--git-dir`) with `args`.
    fn git<'a>(
        &'a self,
        args: impl IntoIterator<Item = &'a OsStr>,
    ) -> Result<Vec<u8>, SourceError> {
        git(
            None,
            [OsStr::new("--git-dir"), self.git_dir.as_os_str()]
                .into_iter()
                .chain(args),
        )
    }

    /// The raw commit object, as `git cat-file commit` prints it (what the guest hashes).
    pub fn commit_object(&self) -> Result<Vec<u8>, SourceError> {
        self.git([
            OsStr::new("cat-file"),
            OsStr::new("commit"),
            OsStr::new(&self.commit),
        ])
    }

    /// A tar of exactly the commit's tree (written to `dest`): every directory, file and
    /// symlink of its tree objects, with git's modes (0755 or 0644, symlinks), byte for
    /// byte as stored, so the guest's tree hash of it is the commit's tree id. No
    /// `.gitattributes` applies (see the module docs); a submodule is refused.
    pub fn write_archive(&self, dest: &Path) -> Result<(), SourceError> {
        let listing = self.git([
            OsStr::new("ls-tree"),
            OsStr::new("-r"),
            OsStr::new("-t"),
            OsStr::new("-z"),
            OsStr::new("--full-tree"),
            OsStr::new(&self.commit),
        ])?;
        let entries = parse_ls_tree(&listing).map_err(|message| self.tree_err(message))?;
        if let Some(sub) = entries.iter().find(|e| e.kind == TreeEntryKind::Submodule) {
            return Err(SourceError::Submodule {
                commit: self.commit.clone(),
                path: String::from_utf8_lossy(&sub.path).into_owned(),
            });
        }
        let mtime = commit_time(&self.commit_object()?);
        let io = |source| SourceError::Io {
            path: dest.to_path_buf(),
            source,
        };
        let mut tar = tar::Builder::new(BufWriter::new(std::fs::File::create(dest).map_err(io)?));
        let mut objects = CatFile::start(&self.git_dir)?;
        for e in &entries {
            let path = Path::new(OsStr::from_bytes(&e.path));
            let mut header = tar::Header::new_gnu();
            header.set_mtime(mtime);
            header.set_uid(0);
            header.set_gid(0);
            match e.kind {
                TreeEntryKind::Dir => {
                    header.set_entry_type(tar::EntryType::Directory);
                    header.set_mode(0o755);
                    header.set_size(0);
                    tar.append_data(&mut header, path, std::io::empty())
                        .map_err(io)?;
                }
                TreeEntryKind::Symlink => {
                    let target = objects
                        .blob(&e.oid, |size, body| {
                            // A capacity hint only: read_to_end takes what there is.
                            let mut t = Vec::with_capacity(usize::try_from(size).unwrap_or(0));
                            body.read_to_end(&mut t).map(|_| t)
                        })
                        .map_err(|m| self.tree_err(m))?;
                    header.set_entry_type(tar::EntryType::Symlink);
                    header.set_mode(0o777);
                    header.set_size(0);
                    tar.append_link(&mut header, path, Path::new(OsStr::from_bytes(&target)))
                        .map_err(io)?;
                }
                TreeEntryKind::File { executable } => {
                    header.set_entry_type(tar::EntryType::Regular);
                    header.set_mode(if executable { 0o755 } else { 0o644 });
                    objects
                        .blob(&e.oid, |size, body| {
                            header.set_size(size);
                            tar.append_data(&mut header, path, body)
                        })
                        .map_err(|m| self.tree_err(m))?;
                }
                TreeEntryKind::Submodule => unreachable!("refused above"),
            }
        }
        objects.finish().map_err(|m| self.tree_err(m))?;
        tar.into_inner()
            .and_then(|w| w.into_inner().map_err(|e| e.into_error()))
            .and_then(|f| f.sync_all())
            .map_err(io)
    }

    fn tree_err(&self, message: String) -> SourceError {
        SourceError::TreeObjects {
            commit: self.commit.clone(),
            message,
        }
    }

    /// The files of the commit's tree under directory `dir` (recursively), relative to the root.
    pub fn list_files(&self, dir: &str) -> Result<Vec<String>, SourceError> {
        let out = self.git([
            OsStr::new("ls-tree"),
            OsStr::new("-r"),
            OsStr::new("--name-only"),
            OsStr::new(&self.commit),
            OsStr::new("--"),
            OsStr::new(dir),
        ])?;
        Ok(String::from_utf8_lossy(&out)
            .lines()
            .map(str::to_string)
            .collect())
    }

    /// A file of the commit's tree, or None if the commit has no such file.
    pub fn read_file(&self, path: &str) -> Result<Option<Vec<u8>>, SourceError> {
        let spec = format!("{}:{path}", self.commit);
        let exists = Command::new("git")
            .arg("--git-dir")
            .arg(&self.git_dir)
            .args(["cat-file", "-e", &spec])
            .stderr(Stdio::null())
            .status()
            .map_err(SourceError::NoGit)?
            .success();
        if !exists {
            return Ok(None);
        }
        self.git([
            OsStr::new("cat-file"),
            OsStr::new("blob"),
            OsStr::new(&spec),
        ])
        .map(Some)
    }
}

/// What a `git ls-tree` entry is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum TreeEntryKind {
    /// A tree (040000).
    Dir,
    /// A blob, 100644 or 100755.
    File { executable: bool },
    /// A blob holding a symlink's target (120000).
    Symlink,
    /// A gitlink (160000): another repository's commit.
    Submodule,
}

/// One entry of `git ls-tree -r -t -z --full-tree`.
#[derive(Debug)]
struct LsTreeEntry {
    kind: TreeEntryKind,
    oid: String,
    /// The path from the tree's root, raw bytes (git paths need not be UTF-8).
    path: Vec<u8>,
}

/// Parses `git ls-tree -z` output: `<mode> SP <type> SP <oid> TAB <path> NUL` per entry.
fn parse_ls_tree(out: &[u8]) -> Result<Vec<LsTreeEntry>, String> {
    let mut entries = Vec::new();
    for record in out.split(|&b| b == 0).filter(|r| !r.is_empty()) {
        let bad = || {
            format!(
                "unexpected ls-tree entry {:?}",
                String::from_utf8_lossy(record)
            )
        };
        let tab = record.iter().position(|&b| b == b'\t').ok_or_else(bad)?;
        let (meta, path) = (&record[..tab], &record[tab + 1..]);
        let meta = std::str::from_utf8(meta).map_err(|_| bad())?;
        let [mode, kind, oid] = meta.split(' ').collect::<Vec<_>>()[..] else {
            return Err(bad());
        };
        let kind = match (mode, kind) {
            ("040000", "tree") => TreeEntryKind::Dir,
            ("100644", "blob") => TreeEntryKind::File { executable: false },
            ("100755", "blob") => TreeEntryKind::File { executable: true },
            ("120000", "blob") => TreeEntryKind::Symlink,
            ("160000", "commit") => TreeEntryKind::Submodule,
            _ => return Err(format!("{} (mode {mode}, type {kind})", bad())),
        };
        if oid.is_empty() || !oid.bytes().all(|b| b.is_ascii_hexdigit()) || path.is_empty() {
            return Err(bad());
        }
        entries.push(LsTreeEntry {
            kind,
            oid: oid.to_string(),
            path: path.to_vec(),
        });
    }
    Ok(entries)
}

/// The committer time of a raw commit object (the archive's mtimes, as `git archive`
/// uses), or 0 when it has none.
fn commit_time(raw: &[u8]) -> u64 {
    let header = raw.split(|&b| b == b'\n').take_while(|l| !l.is_empty());
    header
        .filter_map(|l| l.strip_prefix(b"committer "))
        .filter_map(|l| std::str::from_utf8(l).ok())
        .find_map(|l| l.rsplit(' ').nth(1).and_then(|t| t.parse().ok()))
        .unwrap_or(0)
}

/// `git cat-file --batch`, asked one object at a time (it answers each before reading on).
struct CatFile {
    child: std::process::Child,
    stdin: std::process::ChildStdin,
    stdout: BufReader<std::process::ChildStdout>,
}

impl CatFile {
    fn start(git_dir: &Path) -> Result<CatFile, SourceError> {
        let mut child = Command::new("git")
            .arg("--git-dir")
            .arg(git_dir)
            .args(["cat-file", "--batch"])
            .env("GIT_TERMINAL_PROMPT", "0")
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .map_err(SourceError::NoGit)?;
        let (stdin, stdout) = (child.stdin.take(), child.stdout.take());
        match (stdin, stdout) {
            (Some(stdin), Some(stdout)) => Ok(CatFile {
                child,
                stdin,
                stdout: BufReader::new(stdout),
            }),
            _ => Err(SourceError::NoGit(std::io::Error::other(
                "git cat-file --batch without pipes",
            ))),
        }
    }

    /// Asks for blob `oid` and hands `with` its size and exactly its bytes (raw: no filter,
    /// no attribute applies in cat-file's batch output).
    fn blob<T>(
        &mut self,
        oid: &str,
        with: impl FnOnce(u64, &mut dyn Read) -> std::io::Result<T>,
    ) -> Result<T, String> {
        let io = |e: std::io::Error| format!("git cat-file --batch, object {oid}: {e}");
        writeln!(self.stdin, "{oid}").map_err(io)?;
        self.stdin.flush().map_err(io)?;
        let mut line = String::new();
        self.stdout.read_line(&mut line).map_err(io)?;
        let header = line.trim_end_matches('\n');
        let size = match header.split(' ').collect::<Vec<_>>()[..] {
            [id, "blob", size] if id == oid => size.parse::<u64>().ok(),
            _ => None,
        }
        .ok_or_else(|| format!("git cat-file --batch answered {header:?} for blob {oid}"))?;
        let mut body = (&mut self.stdout).take(size);
        let value = with(size, &mut body).map_err(io)?;
        if body.limit() != 0 {
            return Err(format!(
                "blob {oid}: {} of its {size} bytes were not read",
                body.limit()
            ));
        }
        let mut newline = [0u8; 1];
        self.stdout.read_exact(&mut newline).map_err(io)?;
        if newline != *b"\n" {
            return Err(format!("git cat-file --batch: no newline after blob {oid}"));
        }
        Ok(value)
    }

    /// Ends the batch (EOF on its stdin) and checks git exited cleanly.
    fn finish(self) -> Result<(), String> {
        let CatFile {
            mut child, stdin, ..
        } = self;
        drop(stdin);
        let status = child
            .wait()
            .map_err(|e| format!("git cat-file --batch: {e}"))?;
        if !status.success() {
            return Err(format!("git cat-file --batch ended with {status}"));
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ls_tree_entries_and_commit_times_are_read_exactly() {
        let out = b"040000 tree 4b825dc642cb6eb9a060e54bf8d69288fbee4904\td\x00100755 blob e69de29bb2d1d6434b8b29ae775ad8c2e48c5391\td/x y\x00120000 blob e69de29bb2d1d6434b8b29ae775ad8c2e48c5391\tl\x00";
        let e = parse_ls_tree(out).unwrap();
        let kinds: Vec<_> = e.iter().map(|e| (e.kind, e.path.as_slice())).collect();
        assert_eq!(
            kinds,
            [
                (TreeEntryKind::Dir, &b"d"[..]),
                (TreeEntryKind::File { executable: true }, b"d/x y"),
                (TreeEntryKind::Symlink, b"l"),
            ]
        );
        let err = parse_ls_tree(b"100664 blob e69de29bb2d1d6434b8b29ae775ad8c2e48c5391\tf\x00")
            .unwrap_err();
        assert!(err.contains("mode 100664"), "{err}");
        assert!(parse_ls_tree(b"garbage\x00").is_err());
        let raw = b"tree t\nauthor A <a@x> 5 +0000\ncommitter C <c@x> 1700000000 -0500\n\ncommitter 9 +0000\n";
        assert_eq!(commit_time(raw), 1_700_000_000);
        assert_eq!(commit_time(b"tree t\n\nmessage"), 0);
    }
}
