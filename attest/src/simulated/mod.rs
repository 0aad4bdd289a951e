//! The simulated PSP: a software stand-in for machines without SEV-SNP. It signs
//! reports in AMD's exact format with a TEST ARK -> ASK -> VCEK chain; everything
//! it produces says SIMULATED and `verify` rejects it unless explicitly allowed.

pub mod certs;
mod client;
pub mod keys;
pub mod protocol;
mod psp;
#[cfg(test)]
mod roundtrip_tests;

pub use client::{find_port, PspClient, VIRTIO_PORTS_DIR};
pub use psp::{SimulatedPsp, DEFAULT_GUEST_POLICY, DEFAULT_TCB};

/// The virtio-serial port name Kettle uses for the simulated PSP.
pub const PORT_NAME: &str = "kettle.psp";

/// The simulated chip id: ASCII "KETTLE-SIMULATED-PSP", zero-padded to 64 bytes.
pub const CHIP_ID: [u8; 64] = {
    let text = *b"KETTLE-SIMULATED-PSP";
    let mut out = [0u8; 64];
    let mut i = 0;
    while i < text.len() {
        out[i] = text[i];
        i += 1;
    }
    out
};

/// Errors of the simulated PSP itself (key loading, certificate building, signing).
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum SimulatedError {
    /// DER encoding/decoding failed.
    #[error("simulated PSP: DER: {0}")]
    Der(#[from] x509_cert::der::Error),
    /// A PKCS#8 key could not be loaded.
    #[error("simulated PSP: test key: {0}")]
    Pkcs8(#[from] rsa::pkcs8::Error),
    /// A public key could not be encoded.
    #[error("simulated PSP: public key: {0}")]
    Spki(#[from] x509_cert::spki::Error),
    /// RSA signing failed.
    #[error("simulated PSP: RSA: {0}")]
    Rsa(#[from] rsa::signature::Error),
    /// A requested setting is not something the simulated PSP can produce.
    #[error("simulated PSP: {0}")]
    Unsupported(String),
}
