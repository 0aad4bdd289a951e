//! The one SHA-256 digest type every Kettle crate uses: 32 bytes, shown and
//! parsed as 64 lowercase hex digits, computed from bytes, readers or files
//! (streamed, never loaded whole).

use std::fmt;
use std::fs::File;
use std::io::{self, Read};
use std::path::Path;
use std::str::FromStr;

use sha2::{Digest, Sha256};

/// A SHA-256 digest.
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Sha256Digest(pub [u8; 32]);

/// Why text is not a SHA-256 digest.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0:?} is not a SHA-256 digest (64 lowercase hex digits)")]
pub struct BadDigest(pub String);

impl Sha256Digest {
    /// The digest of `bytes`.
    pub fn of_bytes(bytes: &[u8]) -> Sha256Digest {
        Sha256Digest(Sha256::digest(bytes).into())
    }

    /// The digest of everything `reader` yields, and how many bytes that was.
    pub fn of_reader(reader: impl Read) -> io::Result<(Sha256Digest, u64)> {
        // 1 MiB reads, not io::copy's 8 KiB: with SHA-NI the per-read cost was a
        // quarter of the time (`make bench`: 1.34x the hashing limit, 1.11x).
        let mut hashing = HashingReader::new(reader);
        let mut buf = vec![0u8; 1 << 20];
        loop {
            match hashing.read(&mut buf) {
                Ok(0) => return Ok(hashing.finish()),
                Ok(_) => {}
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return Err(e),
            }
        }
    }

    /// The digest of the file at `path`.
    pub fn of_file(path: &Path) -> io::Result<Sha256Digest> {
        Sha256Digest::of_reader(File::open(path)?).map(|(d, _)| d)
    }

    /// Parses exactly 64 lowercase hex digits (the form pins are written in).
    pub fn from_hex(text: &str) -> Result<Sha256Digest, BadDigest> {
        let lower_hex = text.len() == 64
            && text
                .bytes()
                .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b));
        let mut out = [0u8; 32];
        if !lower_hex || hex::decode_to_slice(text, &mut out).is_err() {
            return Err(BadDigest(text.chars().take(80).collect()));
        }
        Ok(Sha256Digest(out))
    }

    /// 64 lowercase hex digits.
    pub fn to_hex(&self) -> String {
        hex::encode(self.0)
    }

    /// The raw 32 bytes.
    pub fn as_bytes(&self) -> &[u8; 32] {
        &self.0
    }
}

/// A reader that hashes every byte read through it (hash while copying, one pass).
pub struct HashingReader<R> {
    inner: R,
    hasher: Sha256,
    len: u64,
}

impl<R: Read> HashingReader<R> {
    /// Wraps `inner`.
    pub fn new(inner: R) -> Self {
        HashingReader {
            inner,
            hasher: Sha256::new(),
            len: 0,
        }
    }

    /// Bytes read so far.
    pub fn len(&self) -> u64 {
        self.len
    }

    /// Whether nothing was read yet.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// The digest of everything read, and its length.
    pub fn finish(self) -> (Sha256Digest, u64) {
        (Sha256Digest(self.hasher.finalize().into()), self.len)
    }
}

impl<R: Read> Read for HashingReader<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.hasher.update(&buf[..n]);
        self.len += n as u64;
        Ok(n)
    }
}

impl fmt::Display for Sha256Digest {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.to_hex())
    }
}

impl fmt::Debug for Sha256Digest {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "sha256:{}", self.to_hex())
    }
}

impl FromStr for Sha256Digest {
    type Err = BadDigest;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Sha256Digest::from_hex(s)
    }
}

impl serde::Serialize for Sha256Digest {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&self.to_hex())
    }
}

impl<'de> serde::Deserialize<'de> for Sha256Digest {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        Sha256Digest::from_hex(&s).map_err(serde::de::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const ABC: &str = "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad";

    #[test]
    fn bytes_reader_and_file_agree_with_the_fips_vector() {
        assert_eq!(Sha256Digest::of_bytes(b"abc").to_hex(), ABC);
        let (d, n) = Sha256Digest::of_reader(&b"abc"[..]).unwrap();
        assert_eq!((d.to_hex().as_str(), n), (ABC, 3));
        let tmp = tempfile::NamedTempFile::new().unwrap();
        std::fs::write(tmp.path(), vec![7u8; 600 * 1024]).unwrap();
        assert_eq!(
            Sha256Digest::of_file(tmp.path()).unwrap(),
            Sha256Digest::of_bytes(&vec![7u8; 600 * 1024])
        );
    }

    #[test]
    fn parses_only_lowercase_64_hex() {
        assert_eq!(Sha256Digest::from_hex(ABC).unwrap().to_hex(), ABC);
        for bad in [
            "",
            "abc",
            &ABC.to_uppercase(),
            &format!("{ABC}0"),
            &ABC.replace('b', "g"),
        ] {
            assert!(Sha256Digest::from_hex(bad).is_err(), "{bad}");
        }
        let json = serde_json::to_string(&Sha256Digest::of_bytes(b"abc")).unwrap();
        assert_eq!(json, format!("\"{ABC}\""));
        let back: Sha256Digest = serde_json::from_str(&json).unwrap();
        assert_eq!(back.to_hex(), ABC);
    }
}
