//! The one place `report_data` is bound to the provenance.

use sha2::{Digest, Sha256};

/// report_data = SHA-256(provenance bytes) || 32 zero bytes (second half reserved for a verifier nonce).
pub fn report_data_for(provenance_bytes: &[u8]) -> [u8; 64] {
    let mut out = [0u8; 64];
    out[..32].copy_from_slice(&Sha256::digest(provenance_bytes));
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn binds_sha256_then_zeros() {
        let rd = report_data_for(b"abc");
        assert_eq!(
            hex::encode(&rd[..32]),
            "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
        );
        assert_eq!(&rd[32..], &[0u8; 32]);
    }
}
