//! Git object hashing in the SHA-1 and SHA-256 object formats: blobs, trees of
//! a directory on disk (as `git add -A && git write-tree` would record them) and
//! commit objects checked against their id.
//!
//! This is how the guest ties an unpacked source tree to a pinned commit:
//! verify the raw commit object against the commit id, then compare the tree
//! id it names with the tree id of the files on disk.
//!
//! SHA-1 objects are hashed with collision detection (SHA-1DC, Stevens'
//! algorithm, as git and the forges use; the `sha1-checked` crate): an object
//! whose blocks carry the marks of a SHA-1 collision attack is refused
//! ([`GitError::Sha1Collision`]), since a chosen-prefix collision would let two
//! different commits or trees share one id. SHA-256 objects need no such check.

use std::fmt;
use std::fs;
use std::io::{self, Read};
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

use sha1_checked::Sha1;
use sha2::{Digest, Sha256};
use thiserror::Error;

/// A repository's object format: which hash names its objects.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ObjectFormat {
    /// The classic format: 20-byte SHA-1 ids (40 hex digits).
    Sha1,
    /// `git init --object-format=sha256`: 32-byte SHA-256 ids (64 hex digits).
    Sha256,
}

impl ObjectFormat {
    /// Length of an object id in hex digits.
    pub fn hex_len(self) -> usize {
        match self {
            ObjectFormat::Sha1 => 40,
            ObjectFormat::Sha256 => 64,
        }
    }

    /// The format whose ids have this many hex digits, if any.
    pub fn from_hex_len(len: usize) -> Option<Self> {
        match len {
            40 => Some(ObjectFormat::Sha1),
            64 => Some(ObjectFormat::Sha256),
            _ => None,
        }
    }

    fn hasher(self) -> ObjectHasher {
        match self {
            // Detection on, with SHA-1DC's "safe hash" for a detected block (the crate's default).
            ObjectFormat::Sha1 => ObjectHasher::Sha1(Box::new(Sha1::new())),
            ObjectFormat::Sha256 => ObjectHasher::Sha256(Sha256::new()),
        }
    }
}

/// A tree object id (lowercase hex).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct TreeId(String);

impl TreeId {
    /// The id as lowercase hex.
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The id as an owned lowercase hex string.
    pub fn into_string(self) -> String {
        self.0
    }
}

impl fmt::Display for TreeId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl PartialEq<str> for TreeId {
    fn eq(&self, other: &str) -> bool {
        self.0 == other
    }
}

impl PartialEq<&str> for TreeId {
    fn eq(&self, other: &&str) -> bool {
        self.0 == *other
    }
}

/// Why a tree could not be hashed or a commit did not verify.
#[derive(Debug, Error)]
#[non_exhaustive]
pub enum GitError {
    /// Reading the directory tree failed.
    #[error("cannot read {path}: {source}")]
    Io {
        /// The path being read.
        path: PathBuf,
        /// The underlying error.
        source: io::Error,
    },
    /// A file changed size while it was being hashed.
    #[error("{path} changed while being hashed (expected {expected} bytes, read {read}): hash a quiescent tree")]
    FileChanged {
        /// The file.
        path: PathBuf,
        /// Size from its metadata.
        expected: u64,
        /// Bytes actually read.
        read: u64,
    },
    /// A device, FIFO or socket: git records no such entries.
    #[error("{0} is not a regular file, directory or symlink; git trees cannot record it")]
    UnsupportedFileType(PathBuf),
    /// A `.git` entry below the top: git refuses such paths, so no tree can contain it.
    #[error("{0} is named .git below the top of the tree; git trees cannot contain it (nested repositories/submodules are not supported)")]
    NestedGitDir(PathBuf),
    /// The commit id is not hex of the format's length.
    #[error("commit id {id:?} is not {len} lowercase hex digits ({format:?} object format)")]
    BadCommitId {
        /// The id given.
        id: String,
        /// Expected hex length.
        len: usize,
        /// The object format.
        format: ObjectFormat,
    },
    /// The commit object's bytes do not hash to the pinned commit id.
    #[error("commit object hashes to {computed}, not the pinned commit {expected}: the commit object was altered or belongs to another commit")]
    CommitIdMismatch {
        /// The pinned id.
        expected: String,
        /// The id of the bytes given.
        computed: String,
    },
    /// The commit object is not shaped like a git commit.
    #[error("malformed commit object: {0}")]
    MalformedCommit(String),
    /// SHA-1 collision detection fired: the object was crafted for a SHA-1 collision.
    #[error("the {kind} object {object} carries a SHA-1 collision attack (SHA-1 collision detection fired): it is refused, since another object can share its id; rebuild from a commit that does not contain it (or from a SHA-256 repository)")]
    Sha1Collision {
        /// The object kind (`blob`, `tree`, `commit`, `tag`).
        kind: String,
        /// Which object: a path in the tree, or what the bytes are.
        object: String,
    },
}

/// SHA-1 collision detection fired while hashing (the caller names the object).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct CollisionDetected;

/// Streams `"<kind> <len>\0" + body` through the format's hash.
enum ObjectHasher {
    /// Boxed: the detector's state is much larger than SHA-256's.
    Sha1(Box<Sha1>),
    Sha256(Sha256),
}

impl ObjectHasher {
    fn update(&mut self, data: &[u8]) {
        match self {
            ObjectHasher::Sha1(h) => h.update(data),
            ObjectHasher::Sha256(h) => h.update(data),
        }
    }

    /// The digest, or [`CollisionDetected`] when SHA-1 collision detection fired.
    fn finalize(self) -> Result<Vec<u8>, CollisionDetected> {
        match self {
            ObjectHasher::Sha1(h) => match (*h).try_finalize() {
                sha1_checked::CollisionResult::Ok(out) => Ok(out.to_vec()),
                // Mitigated (the "safe hash") or not: the object was built for a collision.
                _ => Err(CollisionDetected),
            },
            ObjectHasher::Sha256(h) => Ok(h.finalize().to_vec()),
        }
    }
}

fn start_object(format: ObjectFormat, kind: &str, len: u64) -> ObjectHasher {
    let mut h = format.hasher();
    h.update(format!("{kind} {len}\0").as_bytes());
    h
}

/// The id of `kind` with `body`; `object` names it in the error if detection fires.
fn hash_object(
    format: ObjectFormat,
    kind: &str,
    body: &[u8],
    object: impl FnOnce() -> String,
) -> Result<Vec<u8>, GitError> {
    let mut h = start_object(format, kind, body.len() as u64);
    h.update(body);
    finish(h, kind, object)
}

/// The id `h` computed, or [`GitError::Sha1Collision`] naming the object (`kind`, `object`).
fn finish(
    h: ObjectHasher,
    kind: &str,
    object: impl FnOnce() -> String,
) -> Result<Vec<u8>, GitError> {
    h.finalize()
        .map_err(|CollisionDetected| GitError::Sha1Collision {
            kind: kind.to_string(),
            object: object(),
        })
}

/// Raw id of the object `kind` (`blob`, `tree`, `commit`, `tag`) with `body`;
/// [`GitError::Sha1Collision`] if SHA-1 collision detection fires on it.
pub fn object_id(format: ObjectFormat, kind: &str, body: &[u8]) -> Result<Vec<u8>, GitError> {
    hash_object(format, kind, body, || format!("of {} bytes", body.len()))
}

/// Hex id of a blob with these bytes (`git hash-object`); [`GitError::Sha1Collision`] if
/// SHA-1 collision detection fires on it.
pub fn blob_id(format: ObjectFormat, data: &[u8]) -> Result<String, GitError> {
    object_id(format, "blob", data).map(hex::encode)
}

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

/// Hex id of a commit object whose body (what `git cat-file commit` prints) is `raw`;
/// [`GitError::Sha1Collision`] if SHA-1 collision detection fires on it.
pub fn commit_id(raw: &[u8], format: ObjectFormat) -> Result<String, GitError> {
    hash_object(format, "commit", raw, || "given as the commit".into()).map(hex::encode)
}

/// Checks that `raw` (the commit object's body, as `git cat-file commit <id>`
/// prints it) hashes to `commit_id_hex`, and returns the tree it names.
pub fn verify_commit(
    raw: &[u8],
    commit_id_hex: &str,
    format: ObjectFormat,
) -> Result<TreeId, GitError> {
    if !is_lower_hex(commit_id_hex, format.hex_len()) {
        return Err(GitError::BadCommitId {
            id: commit_id_hex.into(),
            len: format.hex_len(),
            format,
        });
    }
    let computed = commit_id(raw, format)?;
    if computed != commit_id_hex {
        return Err(GitError::CommitIdMismatch {
            expected: commit_id_hex.into(),
            computed,
        });
    }
    // A commit object always starts with exactly one `tree <id>` header line.
    let line_end = raw
        .iter()
        .position(|&b| b == b'\n')
        .ok_or_else(|| GitError::MalformedCommit("no header line".into()))?;
    let first = std::str::from_utf8(&raw[..line_end])
        .map_err(|_| GitError::MalformedCommit("first header line is not UTF-8".into()))?;
    let tree = first.strip_prefix("tree ").ok_or_else(|| {
        GitError::MalformedCommit(format!("first header is {first:?}, expected `tree <id>`"))
    })?;
    if !is_lower_hex(tree, format.hex_len()) {
        return Err(GitError::MalformedCommit(format!(
            "tree id {tree:?} is not {} lowercase hex digits",
            format.hex_len()
        )));
    }
    Ok(TreeId(tree.to_string()))
}

fn is_lower_hex(s: &str, len: usize) -> bool {
    s.len() == len && s.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::ffi::OsStr;
    use std::os::unix::fs::symlink;
    use std::process::Command;

    /// Runs git in `dir` with no user/system config, so results depend only on the files.
    fn git(dir: &Path, args: &[&str]) -> Vec<u8> {
        let out = Command::new("git")
            .args(args)
            .current_dir(dir)
            .env("GIT_CONFIG_NOSYSTEM", "1")
            .env("GIT_CONFIG_GLOBAL", "/dev/null")
            .env("HOME", dir)
            .env("GIT_AUTHOR_NAME", "Kettle Test")
            .env("GIT_AUTHOR_EMAIL", "test@kettle.invalid")
            .env("GIT_AUTHOR_DATE", "1700000000 +0000")
            .env("GIT_COMMITTER_NAME", "Kettle Test")
            .env("GIT_COMMITTER_EMAIL", "test@kettle.invalid")
            .env("GIT_COMMITTER_DATE", "1700000000 +0000")
            .output()
            .expect("git must be installed to run these tests");
        assert!(
            out.status.success(),
            "git {args:?} failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        out.stdout
    }

    fn git_line(dir: &Path, args: &[&str]) -> String {
        String::from_utf8(git(dir, args))
            .unwrap()
            .trim()
            .to_string()
    }

    fn write(path: &Path, data: &[u8], mode: u32) {
        fs::create_dir_all(path.parent().unwrap()).unwrap();
        fs::write(path, data).unwrap();
        fs::set_permissions(path, fs::Permissions::from_mode(mode)).unwrap();
    }

    /// A tree exercising git's modes, sort order and skipping rules.
    fn populate(root: &Path) {
        write(&root.join("a/inside"), b"dir named a\n", 0o644);
        write(&root.join("a.b"), b"dot\n", 0o644);
        write(&root.join("a-b"), b"dash\n", 0o644);
        write(&root.join("a0"), b"zero\n", 0o644);
        write(&root.join("sub/a"), b"file named a\n", 0o644);
        write(&root.join("sub/a.b"), b"", 0o644);
        write(&root.join("sub/a-b"), b"x", 0o644);
        write(&root.join("run.sh"), b"#!/bin/sh\necho hi\n", 0o755);
        write(&root.join("owner-exec-only"), b"u+x\n", 0o744);
        write(&root.join("group-exec-only"), b"g+x\n", 0o654);
        write(
            &root.join("h\u{e9}llo.txt"),
            "non-ASCII \u{1f600}\n".as_bytes(),
            0o644,
        );
        write(&root.join("\u{65e5}\u{672c}/\u{8a9e}"), b"nihongo\n", 0o644);
        write(
            &root.join(OsStr::from_bytes(b"raw-\xff\xfe")),
            b"not UTF-8 name\n",
            0o644,
        );
        write(&root.join("d1/d2/d3/deep"), b"deep\n", 0o600);
        write(
            &root.join("big.bin"),
            &(0..200_000u32)
                .map(|i| (i * 7 % 251) as u8)
                .collect::<Vec<_>>(),
            0o644,
        );
        fs::create_dir_all(root.join("empty")).unwrap();
        fs::create_dir_all(root.join("e1/e2/e3")).unwrap();
        symlink("run.sh", root.join("link-to-file")).unwrap();
        symlink("does/not/exist", root.join("dangling")).unwrap();
        symlink("../a", root.join("sub/link-to-dir")).unwrap();
    }

    fn check_against_git(format: ObjectFormat, flag: &str) {
        let tmp = tempfile::tempdir().unwrap();
        let root = tmp.path();
        git(root, &["init", "-q", flag]);
        populate(root);
        git(root, &["add", "-A"]);
        let expected = git_line(root, &["write-tree"]);
        assert_eq!(expected.len(), format.hex_len());
        assert_eq!(
            tree_id(root, format).unwrap(),
            expected.as_str(),
            "tree id differs from git write-tree"
        );

        // Commit and verify the commit object against rev-parse.
        git(root, &["commit", "-q", "-m", "test commit\n\nwith a body"]);
        let head = git_line(root, &["rev-parse", "HEAD"]);
        let raw = git(root, &["cat-file", "commit", "HEAD"]);
        assert_eq!(
            verify_commit(&raw, &head, format).unwrap(),
            expected.as_str()
        );

        // Tampering with any byte breaks it.
        let mut tampered = raw.clone();
        let last = tampered.len() - 2;
        tampered[last] ^= 0x20;
        assert!(matches!(
            verify_commit(&tampered, &head, format),
            Err(GitError::CommitIdMismatch { .. })
        ));

        // A blob id agrees with git hash-object.
        let blob = git_line(root, &["hash-object", "big.bin"]);
        assert_eq!(
            blob_id(format, &fs::read(root.join("big.bin")).unwrap()).unwrap(),
            blob
        );

        // Changing a mode bit or content changes the id the way git sees it.
        fs::set_permissions(root.join("a.b"), fs::Permissions::from_mode(0o755)).unwrap();
        git(root, &["add", "-A"]);
        let changed = git_line(root, &["write-tree"]);
        assert_ne!(changed, expected);
        assert_eq!(tree_id(root, format).unwrap(), changed.as_str());
    }

    #[test]
    fn tree_and_commit_match_git_sha1() {
        check_against_git(ObjectFormat::Sha1, "--object-format=sha1");
    }

    #[test]
    fn tree_and_commit_match_git_sha256() {
        check_against_git(ObjectFormat::Sha256, "--object-format=sha256");
    }

    #[test]
    fn well_known_ids() {
        // `git hash-object -t tree /dev/null` and `git hash-object /dev/null` in each format.
        let tmp = tempfile::tempdir().unwrap();
        assert_eq!(
            tree_id(tmp.path(), ObjectFormat::Sha1).unwrap(),
            "4b825dc642cb6eb9a060e54bf8d69288fbee4904"
        );
        assert_eq!(
            tree_id(tmp.path(), ObjectFormat::Sha256).unwrap(),
            "6ef19b41225c5369f1c104d45d8d85efa9b057b53b14b4b9b939dd74decc5321"
        );
        assert_eq!(
            blob_id(ObjectFormat::Sha1, b"").unwrap(),
            "e69de29bb2d1d6434b8b29ae775ad8c2e48c5391"
        );
        assert_eq!(
            blob_id(ObjectFormat::Sha256, b"").unwrap(),
            "473a0f4c3be8a93681a267e3b1e9a7dcda1185436fe141f7749120a303721813"
        );
    }

    #[test]
    fn nested_dot_git_and_special_files_are_refused() {
        let tmp = tempfile::tempdir().unwrap();
        write(&tmp.path().join("x/.git/config"), b"", 0o644);
        assert!(matches!(
            tree_id(tmp.path(), ObjectFormat::Sha1),
            Err(GitError::NestedGitDir(_))
        ));

        let tmp = tempfile::tempdir().unwrap();
        let fifo = tmp.path().join("fifo");
        let ok = Command::new("mkfifo")
            .arg(&fifo)
            .status()
            .map(|s| s.success())
            .unwrap_or(false);
        if ok {
            assert!(matches!(
                tree_id(tmp.path(), ObjectFormat::Sha1),
                Err(GitError::UnsupportedFileType(_))
            ));
        }
    }

    #[test]
    fn commit_verification_rejects_bad_input() {
        let raw = b"tree 4b825dc642cb6eb9a060e54bf8d69288fbee4904\nauthor A <a@b> 0 +0000\ncommitter A <a@b> 0 +0000\n\nm\n";
        let id = commit_id(raw, ObjectFormat::Sha1).unwrap();
        assert_eq!(
            verify_commit(raw, &id, ObjectFormat::Sha1).unwrap(),
            "4b825dc642cb6eb9a060e54bf8d69288fbee4904"
        );
        // Wrong length for the format, uppercase, wrong id.
        assert!(matches!(
            verify_commit(raw, &id, ObjectFormat::Sha256),
            Err(GitError::BadCommitId { .. })
        ));
        assert!(matches!(
            verify_commit(raw, &id.to_uppercase(), ObjectFormat::Sha1),
            Err(GitError::BadCommitId { .. })
        ));
        assert!(matches!(
            verify_commit(raw, &"0".repeat(40), ObjectFormat::Sha1),
            Err(GitError::CommitIdMismatch { .. })
        ));
        // Bytes that hash correctly but are not a commit with a tree header.
        for body in [
            &b"parent 4b825dc642cb6eb9a060e54bf8d69288fbee4904\n"[..],
            b"tree xyz\n",
            b"no newline",
        ] {
            let id = commit_id(body, ObjectFormat::Sha1).unwrap();
            assert!(
                matches!(
                    verify_commit(body, &id, ObjectFormat::Sha1),
                    Err(GitError::MalformedCommit(_))
                ),
                "{body:?}"
            );
        }
    }

    /// The SHAttered collision (Stevens et al., 2017): the first 320 bytes of its two PDFs,
    /// different bytes with one SHA-1 (taken from the sha1-checked crate's test data).
    const SHATTERED: [&[u8]; 2] = [
        include_bytes!("../tests/data/shattered-1-prefix.bin"),
        include_bytes!("../tests/data/shattered-2-prefix.bin"),
    ];

    #[test]
    fn a_real_sha1_collision_is_refused_with_a_named_error() {
        // Plain SHA-1 cannot tell the two apart.
        assert_ne!(SHATTERED[0], SHATTERED[1]);
        let plain = |data: &[u8]| {
            let mut h = sha1_checked::Sha1::builder()
                .detect_collision(false)
                .build();
            Digest::update(&mut h, data);
            hex::encode(h.finalize())
        };
        assert_eq!(
            plain(SHATTERED[0]),
            "f92d74e3874587aaf443d1db961d4e26dde13e9c"
        );
        assert_eq!(plain(SHATTERED[0]), plain(SHATTERED[1]));
        // The object hasher refuses each half, naming the object. (The collision is of the raw
        // SHA-1 stream; behind a git object header its blocks no longer line up, as in git's
        // own SHA-1DC test, so it is fed to the object hasher without one.)
        for half in SHATTERED {
            let mut h = ObjectFormat::Sha1.hasher();
            h.update(half);
            match finish(h, "blob", || "of the file shattered.pdf".into()) {
                Err(GitError::Sha1Collision { kind, object }) => {
                    assert_eq!(
                        (kind.as_str(), object.as_str()),
                        ("blob", "of the file shattered.pdf")
                    )
                }
                other => panic!("the collision was not detected: {other:?}"),
            }
        }
        // SHA-256 objects have no such check to make, and the same bytes are fine there.
        let mut h = ObjectFormat::Sha256.hasher();
        h.update(SHATTERED[0]);
        assert!(finish(h, "blob", String::new).is_ok());
        // An ordinary object passes detection and keeps git's id.
        let mut h = ObjectFormat::Sha1.hasher();
        h.update(b"blob 0\0");
        assert_eq!(
            hex::encode(finish(h, "blob", String::new).unwrap()),
            "e69de29bb2d1d6434b8b29ae775ad8c2e48c5391"
        );
    }
}
