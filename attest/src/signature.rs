//! The report's signature: the VCEK's ECDSA P-384/SHA-384 signature over
//! bytes 0x0..0x2A0, r and s stored little-endian and zero-padded to 72 bytes.

use p384::ecdsa::signature::DigestVerifier;
use sha2::{Digest, Sha384};
use x509_cert::Certificate;

use crate::report::{self, offsets};

/// Why a report's signature block is malformed or its signature does not verify.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum SignatureError {
    /// The report is too short to hold a signature block.
    #[error(
        "report is {actual} bytes, shorter than its signature block (which ends at byte {needed})"
    )]
    TooShortForSignature {
        /// The report's length.
        actual: usize,
        /// The length the signature block needs.
        needed: usize,
    },
    /// A reserved byte after r and s is not zero.
    #[error("reserved byte 0x{offset:x} after the signature is 0x{value:02x}, not zero")]
    ReservedByteNotZero {
        /// Its offset in the report.
        offset: usize,
        /// Its value.
        value: u8,
    },
    /// The report is not the one length a signed report has.
    #[error("report is {actual} bytes, not {expected}")]
    WrongLength {
        /// The report's length.
        actual: usize,
        /// The length of an SNP report.
        expected: usize,
    },
    /// `sig_algo` names an algorithm other than ECDSA P-384 with SHA-384.
    #[error("sig_algo is {actual}, expected {expected} (ECDSA P-384 with SHA-384)")]
    Algorithm {
        /// The report's `sig_algo`.
        actual: u32,
        /// ECDSA P-384 with SHA-384.
        expected: u32,
    },
    /// key_info names no signing key (7) or one this crate does not know.
    #[error("report names signing key {0} (0 = VCEK, 1 = VLEK, 7 = none): no key signed it")]
    NoSigningKey(u32),
    /// r or s carries non-zero bytes in its padding beyond the 48-byte scalar.
    #[error("signature {component} has a non-zero byte at offset 0x{offset:x}, beyond the 48-byte P-384 scalar")]
    ScalarPadding {
        /// "r" or "s".
        component: &'static str,
        /// The offending byte's offset in the report.
        offset: usize,
    },
    /// r or s is zero or not below the P-384 group order.
    #[error("signature r or s is zero or not below the P-384 group order")]
    ScalarRange,
    /// The certificate's key is not an ECDSA P-384 key.
    #[error("the VCEK's public key is not an ECDSA P-384 key: {0}")]
    NotP384Key(String),
    /// The signature does not verify with the certificate's key.
    #[error(
        "the VCEK's ECDSA P-384 signature over report bytes 0x0..0x{signed_len:X} does not verify"
    )]
    DoesNotVerify {
        /// How many leading bytes the signature covers.
        signed_len: usize,
    },
}

/// The unsigned tail of the signature block is reserved and must be zero.
pub fn check_reserved_signature_bytes(bytes: &[u8]) -> Result<(), SignatureError> {
    let start = report::SIGNATURE_OFFSET + 2 * report::SIG_COMPONENT_LEN;
    let Some(reserved) = bytes.get(start..) else {
        return Err(SignatureError::TooShortForSignature {
            actual: bytes.len(),
            needed: start,
        });
    };
    match reserved.iter().position(|b| *b != 0) {
        None => Ok(()),
        Some(i) => Err(SignatureError::ReservedByteNotZero {
            offset: start + i,
            value: reserved[i],
        }),
    }
}

/// The signing key a report names in key_info bits 2..4 (0 VCEK, 1 VLEK, 7 none).
pub fn signing_key_field(bytes: &[u8]) -> u32 {
    (report::read_u32(bytes, offsets::KEY_INFO) >> 2) & 0x7
}

/// key_info's signing key: the VCEK.
pub const SIGNING_KEY_VCEK: u32 = 0;
/// key_info's signing key: a VLEK (a key the CSP loaded, AWS EC2).
pub const SIGNING_KEY_VLEK: u32 = 1;
/// key_info's signing key: none (the report is unsigned).
pub const SIGNING_KEY_NONE: u32 = 7;

/// Verifies the endorsement key's (VCEK or VLEK) ECDSA P-384/SHA-384 signature over a whole (1184-byte) report.
pub fn verify_report_signature(bytes: &[u8], vcek: &Certificate) -> Result<(), SignatureError> {
    if bytes.len() != report::REPORT_LEN {
        return Err(SignatureError::WrongLength {
            actual: bytes.len(),
            expected: report::REPORT_LEN,
        });
    }
    let sig_algo = report::read_u32(bytes, offsets::SIG_ALGO);
    if sig_algo != report::SIG_ALGO_ECDSA_P384_SHA384 {
        return Err(SignatureError::Algorithm {
            actual: sig_algo,
            expected: report::SIG_ALGO_ECDSA_P384_SHA384,
        });
    }
    let signing_key = signing_key_field(bytes);
    if signing_key != SIGNING_KEY_VCEK && signing_key != SIGNING_KEY_VLEK {
        return Err(SignatureError::NoSigningKey(signing_key));
    }
    let sig = signature_from_report(bytes)?;
    let key = p384::ecdsa::VerifyingKey::from_sec1_bytes(
        vcek.tbs_certificate
            .subject_public_key_info
            .subject_public_key
            .raw_bytes(),
    )
    .map_err(|e| SignatureError::NotP384Key(e.to_string()))?;
    key.verify_digest(Sha384::new_with_prefix(&bytes[..report::SIGNED_LEN]), &sig)
        .map_err(|_| SignatureError::DoesNotVerify {
            signed_len: report::SIGNED_LEN,
        })
}

/// The length of a P-384 scalar; r and s are padded to 72 bytes beyond it.
const SCALAR_LEN: usize = 48;

/// Reads r and s (little-endian, zero-padded to 72 bytes each) into a P-384 signature.
pub fn signature_from_report(bytes: &[u8]) -> Result<p384::ecdsa::Signature, SignatureError> {
    let block =
        &bytes[report::SIGNATURE_OFFSET..report::SIGNATURE_OFFSET + 2 * report::SIG_COMPONENT_LEN];
    let (r, s) = block.split_at(report::SIG_COMPONENT_LEN);
    // The padding is outside the scalar; require zeros so the encoding is unique.
    for (component, start, value) in [("r", 0, r), ("s", report::SIG_COMPONENT_LEN, s)] {
        if let Some(i) = value[SCALAR_LEN..].iter().position(|b| *b != 0) {
            return Err(SignatureError::ScalarPadding {
                component,
                offset: report::SIGNATURE_OFFSET + start + SCALAR_LEN + i,
            });
        }
    }
    let be = |le: &[u8]| -> p384::FieldBytes {
        let mut out = p384::FieldBytes::default();
        for (o, b) in out.iter_mut().zip(le[..SCALAR_LEN].iter().rev()) {
            *o = *b;
        }
        out
    };
    p384::ecdsa::Signature::from_scalars(be(r), be(s)).map_err(|_| SignatureError::ScalarRange)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testdata;
    use x509_cert::der::Decode;

    fn milan() -> (Vec<u8>, Certificate) {
        let vcek = Certificate::from_der(&testdata::milan_vcek_der()).unwrap();
        (testdata::milan_report(), vcek)
    }

    #[test]
    fn real_milan_report_verifies_and_its_reserved_bytes_are_zero() {
        let (report, vcek) = milan();
        assert_eq!(check_reserved_signature_bytes(&report), Ok(()));
        assert_eq!(verify_report_signature(&report, &vcek), Ok(()));
    }

    #[test]
    fn failures_carry_the_values_compared() {
        let (report, vcek) = milan();
        let reserved = report::SIGNATURE_OFFSET + 2 * report::SIG_COMPONENT_LEN + 3;
        let mut bad = report.clone();
        bad[reserved] = 0x5a;
        assert_eq!(
            check_reserved_signature_bytes(&bad),
            Err(SignatureError::ReservedByteNotZero {
                offset: reserved,
                value: 0x5a
            })
        );
        let short = report::SIGNATURE_OFFSET + 10;
        assert_eq!(
            check_reserved_signature_bytes(&report[..short]),
            Err(SignatureError::TooShortForSignature {
                actual: short,
                needed: reserved - 3
            })
        );

        let mut bad = report.clone();
        bad[offsets::SIG_ALGO] = 2;
        let err = verify_report_signature(&bad, &vcek).unwrap_err();
        assert_eq!(
            err,
            SignatureError::Algorithm {
                actual: 2,
                expected: 1
            }
        );
        assert!(
            err.to_string().contains("sig_algo is 2, expected 1"),
            "{err}"
        );

        let mut bad = report.clone();
        let s_padding = report::SIGNATURE_OFFSET + report::SIG_COMPONENT_LEN + SCALAR_LEN;
        bad[s_padding + 1] = 1;
        assert_eq!(
            verify_report_signature(&bad, &vcek),
            Err(SignatureError::ScalarPadding {
                component: "s",
                offset: s_padding + 1
            })
        );

        let mut bad = report.clone();
        bad[offsets::REPORT_DATA] ^= 1;
        let err = verify_report_signature(&bad, &vcek).unwrap_err();
        assert_eq!(err, SignatureError::DoesNotVerify { signed_len: 0x2A0 });
        assert!(
            err.to_string().contains("0x0..0x2A0 does not verify"),
            "{err}"
        );
    }
}
