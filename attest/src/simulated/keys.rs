//! The simulated PSP's TEST keys and CA certificates (public, committed under
//! attest/simulated/; see the README there). Never trusted by default.

/// Simulated ARK private key (RSA-4096, PKCS#8 PEM). PUBLIC TEST KEY.
pub const ARK_KEY_PEM: &str = include_str!("../../simulated/ark-key.pem");
/// Simulated ASK private key (RSA-4096, PKCS#8 PEM). PUBLIC TEST KEY.
pub const ASK_KEY_PEM: &str = include_str!("../../simulated/ask-key.pem");
/// Simulated VCEK private key (ECDSA P-384, PKCS#8 PEM). PUBLIC TEST KEY.
pub const VCEK_KEY_PEM: &str = include_str!("../../simulated/vcek-key.pem");
/// Simulated ARK certificate (self-signed, RSASSA-PSS/SHA-384).
pub const ARK_PEM: &[u8] = include_bytes!("../../simulated/ark.pem");
/// Simulated ASK certificate (signed by the simulated ARK).
pub const ASK_PEM: &[u8] = include_bytes!("../../simulated/ask.pem");
