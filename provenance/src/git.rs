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
//!
//! The parts: object hashing in either format (`git/object.rs`), the tree of a
//! directory on disk (`git/tree.rs`) and the commit object (`git/commit.rs`).

use std::fmt;
use std::io;
use std::path::PathBuf;

use thiserror::Error;

mod commit;
mod object;
mod tree;

pub use commit::{commit_id, verify_commit};
pub use object::{blob_id, object_id, ObjectFormat};
pub use tree::tree_id;

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

#[cfg(test)]
mod tests;
