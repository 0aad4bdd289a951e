//! The report's signature: the VCEK's ECDSA P-384/SHA-384 signature over
//! bytes 0x0..0x2A0, r and s stored little-endian and zero-padded to 72 bytes.

use p384::ecdsa::signature::DigestVerifier;
use sha2::{Digest, Sha384};
use x509_cert::Certificate;

use crate::report::{self, offsets};

/// The unsigned tail of the signature block is reserved and must be zero.
pub fn check_reserved_signature_bytes(bytes: &[u8]) -> Result<(), String> {
    let start = report::SIGNATURE_OFFSET + 2 * report::SIG_COMPONENT_LEN;
    let Some(reserved) = bytes.get(start..) else {
        return Err(format!(
            "report is {} bytes, shorter than its signature block",
            bytes.len()
        ));
    };
    match reserved.iter().position(|b| *b != 0) {
        None => Ok(()),
        Some(i) => Err(format!(
            "reserved byte 0x{:x} after the signature is not zero",
            start + i
        )),
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
pub fn verify_report_signature(bytes: &[u8], vcek: &Certificate) -> Result<(), String> {
    if bytes.len() != report::REPORT_LEN {
        return Err(format!(
            "report is {} bytes, not {}",
            bytes.len(),
            report::REPORT_LEN
        ));
    }
    let sig_algo = report::read_u32(bytes, offsets::SIG_ALGO);
    if sig_algo != report::SIG_ALGO_ECDSA_P384_SHA384 {
        return Err(format!(
            "sig_algo is {sig_algo}, expected 1 (ECDSA P-384 with SHA-384)"
        ));
    }
    let signing_key = signing_key_field(bytes);
    if signing_key != SIGNING_KEY_VCEK && signing_key != SIGNING_KEY_VLEK {
        return Err(format!(
            "report names signing key {signing_key} (0 = VCEK, 1 = VLEK, 7 = none): no key signed it"
        ));
    }
    let sig = signature_from_report(bytes)?;
    let key = p384::ecdsa::VerifyingKey::from_sec1_bytes(
        vcek.tbs_certificate
            .subject_public_key_info
            .subject_public_key
            .raw_bytes(),
    )
    .map_err(|e| format!("the VCEK's public key is not an ECDSA P-384 key: {e}"))?;
    key.verify_digest(Sha384::new_with_prefix(&bytes[..report::SIGNED_LEN]), &sig)
        .map_err(|_| {
            "the VCEK's ECDSA P-384 signature over report bytes 0x0..0x2A0 does not verify"
                .to_string()
        })
}

/// Reads r and s (little-endian, zero-padded to 72 bytes each) into a P-384 signature.
pub fn signature_from_report(bytes: &[u8]) -> Result<p384::ecdsa::Signature, String> {
    let block =
        &bytes[report::SIGNATURE_OFFSET..report::SIGNATURE_OFFSET + 2 * report::SIG_COMPONENT_LEN];
    let (r, s) = block.split_at(report::SIG_COMPONENT_LEN);
    // The padding is outside the scalar; require zeros so the encoding is unique.
    if r[48..].iter().chain(&s[48..]).any(|b| *b != 0) {
        return Err("signature r or s has non-zero bytes beyond the 48-byte P-384 scalar".into());
    }
    let be = |le: &[u8]| -> p384::FieldBytes {
        let mut out = p384::FieldBytes::default();
        for (o, b) in out.iter_mut().zip(le[..48].iter().rev()) {
            *o = *b;
        }
        out
    };
    p384::ecdsa::Signature::from_scalars(be(r), be(s))
        .map_err(|_| "signature r or s is zero or not below the P-384 group order".to_string())
}
