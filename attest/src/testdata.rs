//! Test-only access to the real AMD evidence shipped in the `sev` crate's test data.
//! It is read from the crate source in the cargo registry, never copied into this repo.

use std::path::PathBuf;

/// The `sev-8.0.0` source directory in the local cargo registry.
pub fn sev_crate_dir() -> PathBuf {
    let cargo_home = std::env::var_os("CARGO_HOME")
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".cargo")))
        .expect("neither CARGO_HOME nor HOME is set");
    let src = cargo_home.join("registry").join("src");
    let entries =
        std::fs::read_dir(&src).unwrap_or_else(|e| panic!("cannot list {}: {e}", src.display()));
    for entry in entries.flatten() {
        let candidate = entry.path().join("sev-8.0.0");
        if candidate.join("tests/certs_data").is_dir() {
            return candidate;
        }
    }
    panic!(
        "sev-8.0.0 source with tests/certs_data not found under {}",
        src.display()
    );
}

fn read(rel: &str) -> Vec<u8> {
    let path = sev_crate_dir().join(rel);
    std::fs::read(&path).unwrap_or_else(|e| panic!("cannot read {}: {e}", path.display()))
}

/// The real AMD-signed Milan report (version 2).
pub fn milan_report() -> Vec<u8> {
    let text = read("tests/certs_data/report_milan.hex");
    hex::decode(String::from_utf8(text).unwrap().trim()).expect("report_milan.hex is hex")
}

/// The real Milan VCEK (DER) that signed [`milan_report`].
pub fn milan_vcek_der() -> Vec<u8> {
    read("tests/certs_data/vcek_milan.der")
}

/// The real Turin VCEK (DER).
pub fn turin_vcek_der() -> Vec<u8> {
    read("tests/certs_data/vcek_turin.der")
}

/// AMD's Milan ASK+ARK bundle as served by the KDS (PEM).
pub fn milan_ca_bundle() -> Vec<u8> {
    read("tests/certs_data/cert_chain_milan")
}

/// AMD's Turin ASK+ARK bundle as served by the KDS (PEM).
pub fn turin_ca_bundle() -> Vec<u8> {
    read("tests/certs_data/cert_chain_turin")
}
