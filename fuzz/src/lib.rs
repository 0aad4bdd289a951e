//! Helpers shared by the fuzz targets and the seed generator (`seeds.rs`): the
//! byte framing the `verify_bundle` target splits its input with, and an
//! in-memory duplex stream for the simulated PSP server.

use std::io::{self, Cursor, Read, Write};

use kettle_attest::CertChain;
use kettle_verify::{Artifact, Bundle, Expectations, SourcePin};

/// The launch digest the `verify_bundle` target expects (the seeds' simulated PSP reports it).
pub const MEASUREMENT: [u8; 48] = [0xAB; 48];
/// The commit the `verify_bundle` seeds' provenance names.
pub const COMMIT: &str = "0123456789abcdef0123456789abcdef01234567";
/// The repository the `verify_bundle` seeds' provenance names.
pub const REPOSITORY: &str = "https://example.com/hello.git";
/// The ref the `verify_bundle` seeds' provenance names.
pub const GIT_REF: &str = "refs/heads/main";

/// A length field with this value means "absent" (no chain, no provenance).
pub const ABSENT: u32 = u32::MAX;
/// Most artifacts one fuzz input may carry.
pub const MAX_ARTIFACTS: usize = 32;

/// `flags` bit: the artifacts are a whole output directory.
pub const FLAG_COMPLETE_OUTPUT: u8 = 1;
/// `flags` bit: pin the source to [`COMMIT`] (otherwise any source is accepted).
pub const FLAG_PIN_COMMIT: u8 = 2;
/// `flags` bit: expect [`REPOSITORY`] and [`GIT_REF`].
pub const FLAG_EXPECT_SOURCE: u8 = 4;
/// `flags` bit: accept simulated evidence.
pub const FLAG_ALLOW_SIMULATED: u8 = 8;

/// One `verify_bundle` input, as split from the fuzzer's bytes.
///
/// ```text
/// flags u8 | report: len u32 LE + bytes | chain: len u32 LE (ABSENT = none) + PEM
///          | provenance: len u32 LE (ABSENT = none) + bytes
///          | artifacts: (name len u16 LE + name + data len u32 LE + data)*
/// ```
/// Lengths longer than what remains are cut to what remains, so every byte
/// string is some input.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct BundleInput {
    /// `FLAG_*` bits.
    pub flags: u8,
    /// The raw report.
    pub report: Vec<u8>,
    /// The PEM chain, when present.
    pub chain: Option<Vec<u8>>,
    /// provenance.json, when present.
    pub provenance: Option<Vec<u8>>,
    /// (subject name, bytes) of each artifact.
    pub artifacts: Vec<(Vec<u8>, Vec<u8>)>,
}

struct Taker<'a>(&'a [u8]);

impl<'a> Taker<'a> {
    fn take(&mut self, n: usize) -> &'a [u8] {
        let n = n.min(self.0.len());
        let (head, tail) = self.0.split_at(n);
        self.0 = tail;
        head
    }
    fn u32(&mut self) -> u32 {
        let mut b = [0u8; 4];
        let got = self.take(4);
        b[..got.len()].copy_from_slice(got);
        u32::from_le_bytes(b)
    }
    fn u16(&mut self) -> u16 {
        let mut b = [0u8; 2];
        let got = self.take(2);
        b[..got.len()].copy_from_slice(got);
        u16::from_le_bytes(b)
    }
    fn chunk(&mut self) -> Option<&'a [u8]> {
        match self.u32() {
            ABSENT => None,
            n => Some(self.take(n as usize)),
        }
    }
}

impl BundleInput {
    /// Splits fuzzer bytes into a bundle (never fails).
    pub fn decode(data: &[u8]) -> BundleInput {
        let mut t = Taker(data);
        let flags = t.take(1).first().copied().unwrap_or(0);
        let report = t.chunk().unwrap_or_default().to_vec();
        let chain = t.chunk().map(<[u8]>::to_vec);
        let provenance = t.chunk().map(<[u8]>::to_vec);
        let mut artifacts = Vec::new();
        while !t.0.is_empty() && artifacts.len() < MAX_ARTIFACTS {
            let n = t.u16() as usize;
            let name = t.take(n).to_vec();
            let len = t.u32() as usize;
            artifacts.push((name, t.take(len).to_vec()));
        }
        BundleInput {
            flags,
            report,
            chain,
            provenance,
            artifacts,
        }
    }

    /// The verifier's inputs and expectations this input stands for.
    pub fn to_bundle(&self) -> (Bundle, Expectations) {
        let chain = match &self.chain {
            // Known finding (attest/tests/fuzz_regressions.rs): x509-cert 0.2.5's
            // load_pem_chain subtracts with overflow on an empty or newline-only
            // bundle; kept out of the way so the rest of the chain gets fuzzed.
            Some(pem) if pem.iter().all(|b| matches!(b, b'\r' | b'\n')) => {
                Err("empty certificate chain".to_string())
            }
            Some(pem) => CertChain::from_pem_bundle(pem).map_err(|e| e.to_string()),
            None => Err("no certificate chain was given".to_string()),
        };
        let bundle = Bundle {
            report: self.report.clone(),
            chain,
            provenance: self.provenance.clone(),
            artifacts: self
                .artifacts
                .iter()
                .map(|(name, bytes)| {
                    let name = String::from_utf8_lossy(name).into_owned();
                    Artifact::from_bytes(name.clone(), Some(name), bytes)
                })
                .collect(),
            complete_output: self.flags & FLAG_COMPLETE_OUTPUT != 0,
        };
        let mut expect = Expectations::new(MEASUREMENT, "fuzz");
        if self.flags & FLAG_ALLOW_SIMULATED != 0 {
            expect = expect.accepting_simulated();
        }
        expect.provenance.source = if self.flags & FLAG_PIN_COMMIT != 0 {
            SourcePin::Commit(COMMIT.into())
        } else {
            SourcePin::Any
        };
        if self.flags & FLAG_EXPECT_SOURCE != 0 {
            expect.provenance.repository = Some(REPOSITORY.into());
            expect.provenance.git_ref = Some(GIT_REF.into());
        }
        (bundle, expect)
    }

    /// The bytes [`BundleInput::decode`] turns back into `self` (for seeds).
    pub fn encode(&self) -> Vec<u8> {
        let mut out = vec![self.flags];
        let chunk = |out: &mut Vec<u8>, c: Option<&[u8]>| match c {
            Some(c) => {
                out.extend_from_slice(&(c.len() as u32).to_le_bytes());
                out.extend_from_slice(c);
            }
            None => out.extend_from_slice(&ABSENT.to_le_bytes()),
        };
        chunk(&mut out, Some(&self.report));
        chunk(&mut out, self.chain.as_deref());
        chunk(&mut out, self.provenance.as_deref());
        for (name, data) in &self.artifacts {
            out.extend_from_slice(&(name.len() as u16).to_le_bytes());
            out.extend_from_slice(name);
            out.extend_from_slice(&(data.len() as u32).to_le_bytes());
            out.extend_from_slice(data);
        }
        out
    }
}

/// A stream that reads from fixed bytes and records what is written to it.
#[derive(Debug, Default)]
pub struct Duplex {
    /// What the peer sent.
    pub input: Cursor<Vec<u8>>,
    /// What was written back.
    pub output: Vec<u8>,
}

impl Duplex {
    /// A stream whose reads return `input`, then end.
    pub fn new(input: &[u8]) -> Duplex {
        Duplex {
            input: Cursor::new(input.to_vec()),
            output: Vec::new(),
        }
    }
}

impl Read for Duplex {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        self.input.read(buf)
    }
}

impl Write for Duplex {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.output.write(buf)
    }
    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

/// Reads at most `n` bytes per call: byte-at-a-time peers must decode the same.
pub struct Trickle<R>(pub R, pub usize);

impl<R: Read> Read for Trickle<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = buf.len().min(self.1.max(1));
        self.0.read(&mut buf[..n])
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bundle_framing_round_trips() {
        let b = BundleInput {
            flags: 5,
            report: vec![1; 10],
            chain: None,
            provenance: Some(b"{}".to_vec()),
            artifacts: vec![(b"a".to_vec(), b"x".to_vec()), (b"".to_vec(), b"".to_vec())],
        };
        assert_eq!(BundleInput::decode(&b.encode()), b);
        BundleInput::decode(&[]);
        BundleInput::decode(&[0xff; 3]);
    }
}
