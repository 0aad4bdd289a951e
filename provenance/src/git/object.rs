//! Git object ids: `"<kind> <len>\0" + body` through the format's hash, SHA-1
//! with collision detection (SHA-1DC).

use sha1_checked::Sha1;
use sha2::{Digest, Sha256};

use super::GitError;

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

    pub(super) fn hasher(self) -> ObjectHasher {
        match self {
            // Detection on, with SHA-1DC's "safe hash" for a detected block (the crate's default).
            ObjectFormat::Sha1 => ObjectHasher::Sha1(Box::new(Sha1::new())),
            ObjectFormat::Sha256 => ObjectHasher::Sha256(Sha256::new()),
        }
    }
}

/// SHA-1 collision detection fired while hashing (the caller names the object).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) struct CollisionDetected;

/// Streams `"<kind> <len>\0" + body` through the format's hash.
pub(super) enum ObjectHasher {
    /// Boxed: the detector's state is much larger than SHA-256's.
    Sha1(Box<Sha1>),
    Sha256(Sha256),
}

impl ObjectHasher {
    pub(super) fn update(&mut self, data: &[u8]) {
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

pub(super) fn start_object(format: ObjectFormat, kind: &str, len: u64) -> ObjectHasher {
    let mut h = format.hasher();
    h.update(format!("{kind} {len}\0").as_bytes());
    h
}

/// The id of `kind` with `body`; `object` names it in the error if detection fires.
pub(super) fn hash_object(
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
pub(super) fn finish(
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
