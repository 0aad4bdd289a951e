//! The commit object: its id, checked against the pinned one, and the tree it names.

use super::object::{hash_object, ObjectFormat};
use super::{GitError, TreeId};

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
