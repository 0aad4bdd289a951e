//! Test-only access to real AMD evidence: the `sev` crate's (read from its source in the
//! cargo registry, never copied into this repo) and other projects' public test data
//! in `attest/testdata/` (see its README for sources and licences).

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

/// A real report and the endorsement key certificate (DER) that signed it.
#[derive(Debug, Clone)]
pub struct RealEvidence {
    /// What it is, for messages.
    pub name: &'static str,
    /// The 1184-byte report.
    pub report: &'static [u8],
    /// The VCEK or VLEK, DER.
    pub key_der: &'static [u8],
    /// The intermediate when it is not the pinned ASK (a VLEK's ASVK), PEM.
    pub intermediate_pem: Option<&'static [u8]>,
}

/// Genoa, report version 5 (Project Oak's test data).
pub const GENOA_V5: RealEvidence = RealEvidence {
    name: "genoa-v5",
    report: include_bytes!("../testdata/genoa-v5.report"),
    key_der: include_bytes!("../testdata/genoa-v5.vcek.der"),
    intermediate_pem: None,
};

/// Turin, report version 5 (Project Oak's test data).
pub const TURIN_V5: RealEvidence = RealEvidence {
    name: "turin-v5",
    report: include_bytes!("../testdata/turin-v5.report"),
    key_der: include_bytes!("../testdata/turin-v5.vcek.der"),
    intermediate_pem: None,
};

/// Milan, signed by an AWS VLEK through AMD's ASVK (trustee's test data).
pub const MILAN_VLEK: RealEvidence = RealEvidence {
    name: "milan-vlek",
    report: include_bytes!("../testdata/milan-vlek.report"),
    key_der: include_bytes!("../testdata/milan-vlek.der"),
    intermediate_pem: Some(include_bytes!("../testdata/milan-asvk.pem")),
};

/// Milan, a guest policy that allows debugging (go-sev-guest's test data).
pub const MILAN_DEBUG: RealEvidence = RealEvidence {
    name: "milan-debug",
    report: include_bytes!("../testdata/milan-debug.report"),
    key_der: include_bytes!("../testdata/milan-debug.vcek.der"),
    intermediate_pem: None,
};

impl RealEvidence {
    /// The chain as a verifier gets it: the intermediate (if any) and the key.
    pub fn chain(&self) -> crate::CertChain {
        let ask = self
            .intermediate_pem
            .map(|pem| crate::chain::pem_to_der(pem).expect("the test intermediate is PEM"));
        crate::CertChain::from_der_parts(None, ask, self.key_der.to_vec())
    }
}
