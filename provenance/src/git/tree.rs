//! The tree id of a directory on disk, as `git add -A && git write-tree`
//! would record it: git's modes, sort order and skipping rules.

use std::fs;
use std::io::Read;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::PermissionsExt;
use std::path::Path;

use super::object::{finish, hash_object, object_id, start_object, ObjectFormat};
use super::{GitError, TreeId};

/// Hex id of the tree git would record for the directory `root`
/// (`git add -A && git write-tree`), skipping `.git` at the top.
///
/// Modes follow git: 100755 when the owner-execute bit is set (git's rule),
/// else 100644; 120000 for symlinks (the target path is the blob); 40000 for
/// directories. Directories holding no files at any depth are left out, as git
/// does not track them. A directory with nothing in it hashes to the empty tree.
pub fn tree_id(root: &Path, format: ObjectFormat) -> Result<TreeId, GitError> {
    let raw = match hash_dir(root, format, true)? {
        Some(raw) => raw,
        None => object_id(format, "tree", b"")?,
    };
    Ok(TreeId(hex::encode(raw)))
}

/// One entry of a tree object being assembled.
struct TreeEntry {
    /// Git's sort key: the name, plus "/" for directories.
    sort_key: Vec<u8>,
    mode: &'static str,
    name: Vec<u8>,
    id: Vec<u8>,
}

/// Raw tree id of `dir`, or None if it holds no files at any depth.
fn hash_dir(dir: &Path, format: ObjectFormat, top: bool) -> Result<Option<Vec<u8>>, GitError> {
    let io_err = |path: &Path| {
        let path = path.to_path_buf();
        move |source| GitError::Io { path, source }
    };
    let mut entries: Vec<TreeEntry> = Vec::new();
    for entry in fs::read_dir(dir).map_err(io_err(dir))? {
        let entry = entry.map_err(io_err(dir))?;
        let name = entry.file_name().as_bytes().to_vec();
        let path = entry.path();
        if name == b".git" {
            if top {
                continue;
            }
            return Err(GitError::NestedGitDir(path));
        }
        let meta = fs::symlink_metadata(&path).map_err(io_err(&path))?;
        let kind = meta.file_type();
        let (mode, id) = if kind.is_symlink() {
            let target = fs::read_link(&path).map_err(io_err(&path))?;
            let id = hash_object(format, "blob", target.as_os_str().as_bytes(), || {
                format!("of the symlink {}", path.display())
            })?;
            ("120000", id)
        } else if kind.is_file() {
            let mode = if meta.permissions().mode() & 0o100 != 0 {
                "100755"
            } else {
                "100644"
            };
            (mode, hash_file(&path, meta.len(), format)?)
        } else if kind.is_dir() {
            match hash_dir(&path, format, false)? {
                Some(id) => ("40000", id),
                None => continue,
            }
        } else {
            return Err(GitError::UnsupportedFileType(path));
        };
        let mut sort_key = name.clone();
        if mode == "40000" {
            sort_key.push(b'/');
        }
        entries.push(TreeEntry {
            sort_key,
            mode,
            name,
            id,
        });
    }
    if entries.is_empty() {
        return Ok(None);
    }
    entries.sort_unstable_by(|a, b| a.sort_key.cmp(&b.sort_key));
    let mut body = Vec::new();
    for e in &entries {
        body.extend_from_slice(e.mode.as_bytes());
        body.push(b' ');
        body.extend_from_slice(&e.name);
        body.push(0);
        body.extend_from_slice(&e.id);
    }
    let id = hash_object(format, "tree", &body, || {
        format!("of the directory {}", dir.display())
    })?;
    Ok(Some(id))
}

/// Streams a regular file into a blob hash without holding it in memory.
fn hash_file(path: &Path, len: u64, format: ObjectFormat) -> Result<Vec<u8>, GitError> {
    let io_err = |source| GitError::Io {
        path: path.to_path_buf(),
        source,
    };
    let mut file = fs::File::open(path).map_err(io_err)?;
    let mut h = start_object(format, "blob", len);
    let mut buf = vec![0u8; 64 * 1024];
    let mut read = 0u64;
    loop {
        let n = file.read(&mut buf).map_err(io_err)?;
        if n == 0 {
            break;
        }
        read += n as u64;
        if read > len {
            break;
        }
        h.update(&buf[..n]);
    }
    if read != len {
        return Err(GitError::FileChanged {
            path: path.to_path_buf(),
            expected: len,
            read,
        });
    }
    finish(h, "blob", || format!("of the file {}", path.display()))
}
