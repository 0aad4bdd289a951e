//! The ARK -> ASK -> VCEK certificate chain: loading it from a PEM bundle, a
//! directory or the host's certificate table, the pinned roots, and the checks
//! (signatures via the `sev` crate, pinning, and the VCEK's AMD extensions).

use std::fmt;
use std::path::Path;

use serde::Serialize;
use sev::certs::snp::{ca, Certificate as SevCert, Chain as SevChain, Verifiable};
use x509_cert::der::asn1::Ia5String;
use x509_cert::der::{Decode, Encode};
use x509_cert::spki::ObjectIdentifier;
use x509_cert::Certificate;

use crate::report::Tcb;

mod cert_table;
mod check;
mod endorsement;

pub use cert_table::chain_from_cert_table;
pub use check::{check_chain, ChainOutcome, ChainVerifyError, RootError};
use endorsement::*;
pub use endorsement::{
    compare_vcek_with_report, subject_cn, vcek_extensions, EndorsementKey, VcekExtensions,
};

/// AMD's VCEK extension OIDs (VCEK certificate and KDS interface specification).
pub mod oids {
    use x509_cert::spki::ObjectIdentifier;

    /// structVersion.
    pub const STRUCT_VERSION: ObjectIdentifier =
        ObjectIdentifier::new_unwrap("1.3.6.1.4.1.3704.1.1");
    /// productName (IA5String, e.g. "Milan-B0").
    pub const PRODUCT_NAME: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.3.6.1.4.1.3704.1.2");
    /// blSPL: PSP bootloader SVN.
    pub const TCB_BOOTLOADER: ObjectIdentifier =
        ObjectIdentifier::new_unwrap("1.3.6.1.4.1.3704.1.3.1");
    /// teeSPL: PSP OS SVN.
    pub const TCB_TEE: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.3.6.1.4.1.3704.1.3.2");
    /// snpSPL: SNP firmware SVN.
    pub const TCB_SNP: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.3.6.1.4.1.3704.1.3.3");
    /// ucodeSPL: microcode patch level.
    pub const TCB_MICROCODE: ObjectIdentifier =
        ObjectIdentifier::new_unwrap("1.3.6.1.4.1.3704.1.3.8");
    /// fmcSPL: FMC SVN (Turin and later).
    pub const TCB_FMC: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.3.6.1.4.1.3704.1.3.9");
    /// hwID: the chip id (raw bytes).
    pub const HW_ID: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.3.6.1.4.1.3704.1.4");

    /// `1.3.6.1.4.1.3704.1.3.<arc>` (TCB component arcs, incl. reserved ones).
    pub fn tcb_arc(arc: u32) -> ObjectIdentifier {
        ObjectIdentifier::new(&format!("1.3.6.1.4.1.3704.1.3.{arc}")).expect("valid OID")
    }
}

/// The processor product a root of trust belongs to.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, serde::Deserialize,
)]
#[serde(rename_all = "lowercase")]
pub enum Product {
    /// AMD EPYC 7003 (Milan).
    Milan,
    /// AMD EPYC 9004 (Genoa).
    Genoa,
    /// AMD EPYC 9005 (Turin).
    Turin,
    /// The Kettle simulated PSP (test keys).
    Simulated,
}

impl fmt::Display for Product {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Product::Milan => "Milan",
            Product::Genoa => "Genoa",
            Product::Turin => "Turin",
            Product::Simulated => "SIMULATED",
        })
    }
}

impl Product {
    /// Every product with a pinned root, AMD's first.
    pub const ALL: [Product; 4] = [
        Product::Milan,
        Product::Genoa,
        Product::Turin,
        Product::Simulated,
    ];

    /// The pinned ARK and ASK certificates (PEM) for this product.
    pub fn pinned_pem(self) -> (&'static [u8], &'static [u8]) {
        use sev::certs::snp::builtin::{genoa, milan, turin};
        match self {
            Product::Milan => (milan::ARK, milan::ASK),
            Product::Genoa => (genoa::ARK, genoa::ASK),
            Product::Turin => (turin::ARK, turin::ASK),
            Product::Simulated => (
                crate::simulated::keys::ARK_PEM,
                crate::simulated::keys::ASK_PEM,
            ),
        }
    }

    /// The pinned ARK and ASK as DER.
    pub fn pinned_der(self) -> Result<(Vec<u8>, Vec<u8>), ChainError> {
        let (ark, ask) = self.pinned_pem();
        Ok((pem_to_der(ark)?, pem_to_der(ask)?))
    }
}

/// Why a certificate chain could not be loaded.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ChainError {
    /// A file could not be read.
    #[error("cannot read {path}: {source}")]
    Read {
        /// The file.
        path: String,
        /// The I/O error.
        #[source]
        source: std::io::Error,
    },
    /// PEM or DER could not be decoded.
    #[error("{what} is not a valid X.509 certificate: {message}")]
    BadCertificate {
        /// Which certificate / file.
        what: String,
        /// The decoder's message.
        message: String,
    },
    /// The bundle contains no VCEK (no certificate with an EC P-384 key).
    #[error("no VCEK in {0}: expected a certificate with an EC P-384 public key (get it from AMD's KDS for this chip id and TCB)")]
    NoVcek(String),
    /// Two certificates claim the same role.
    #[error("{source_name} contains more than one {role} certificate")]
    Duplicate {
        /// Bundle or directory.
        source_name: String,
        /// ARK, ASK or VCEK.
        role: &'static str,
    },
    /// The host's certificate table is malformed.
    #[error("certificate table: {0}")]
    CertTable(String),
}

/// A certificate chain as supplied with evidence; kept as DER and only parsed
/// during verification, so a damaged certificate fails the `chain` check rather
/// than loading.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct CertChain {
    /// The AMD Root Key certificate, if supplied (else the pinned one is used).
    pub ark: Option<Vec<u8>>,
    /// The AMD SEV Key certificate, if supplied (else the pinned one is used).
    pub ask: Option<Vec<u8>>,
    /// The VCEK certificate that should have signed the report.
    pub vcek: Vec<u8>,
}

/// The DER of the first certificate in `pem`.
pub fn pem_to_der(pem: &[u8]) -> Result<Vec<u8>, ChainError> {
    let cert = Certificate::from_pem(pem).map_err(|e| ChainError::BadCertificate {
        what: "built-in root".into(),
        message: e.to_string(),
    })?;
    cert.to_der().map_err(|e| ChainError::BadCertificate {
        what: "built-in root".into(),
        message: e.to_string(),
    })
}

use x509_cert::der::DecodePem;

/// OID of id-ecPublicKey.
const EC_PUBLIC_KEY: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.2.840.10045.2.1");

/// The role a certificate plays, judged from its content.
fn role_of(cert: &Certificate) -> &'static str {
    let tbs = &cert.tbs_certificate;
    if tbs.subject_public_key_info.algorithm.oid == EC_PUBLIC_KEY {
        "VCEK"
    } else if tbs.subject == tbs.issuer {
        "ARK"
    } else {
        "ASK"
    }
}

impl CertChain {
    /// A chain from DER parts (the VCEK is required; ARK/ASK default to the pinned ones).
    pub fn from_der_parts(ark: Option<Vec<u8>>, ask: Option<Vec<u8>>, vcek: Vec<u8>) -> CertChain {
        CertChain { ark, ask, vcek }
    }

    /// A chain from a PEM bundle holding the VCEK and optionally the ASK and ARK, in any order.
    pub fn from_pem_bundle(pem: &[u8]) -> Result<CertChain, ChainError> {
        Self::from_certs(load_pem_certs(pem, "PEM bundle")?, "PEM bundle")
    }

    /// A chain from a directory with `vcek.pem`/`vcek.der` and optionally `ask.*` and `ark.*`.
    pub fn from_dir(dir: &Path) -> Result<CertChain, ChainError> {
        let load = |stem: &str| -> Result<Option<Vec<u8>>, ChainError> {
            for ext in ["pem", "der", "crt", "cer"] {
                let path = dir.join(format!("{stem}.{ext}"));
                if !path.exists() {
                    continue;
                }
                let bytes = std::fs::read(&path).map_err(|source| ChainError::Read {
                    path: path.display().to_string(),
                    source,
                })?;
                return Ok(Some(der_from_file_bytes(
                    &bytes,
                    &path.display().to_string(),
                )?));
            }
            Ok(None)
        };
        let vcek = load("vcek")?.ok_or_else(|| ChainError::NoVcek(dir.display().to_string()))?;
        Ok(CertChain {
            ark: load("ark")?,
            ask: load("ask")?,
            vcek,
        })
    }

    /// A chain from certificates in any order, classified by content.
    fn from_certs(certs: Vec<Certificate>, source_name: &str) -> Result<CertChain, ChainError> {
        let (mut ark, mut ask, mut vcek) = (None, None, None);
        for cert in certs {
            let role = role_of(&cert);
            let slot = match role {
                "VCEK" => &mut vcek,
                "ARK" => &mut ark,
                _ => &mut ask,
            };
            if slot.is_some() {
                return Err(ChainError::Duplicate {
                    source_name: source_name.into(),
                    role,
                });
            }
            let der = cert.to_der().map_err(|e| ChainError::BadCertificate {
                what: role.into(),
                message: e.to_string(),
            })?;
            *slot = Some(der);
        }
        let vcek = vcek.ok_or_else(|| ChainError::NoVcek(source_name.into()))?;
        Ok(CertChain { ark, ask, vcek })
    }

    /// The chain as one PEM bundle (ARK, ASK, VCEK; absent parts omitted).
    pub fn to_pem_bundle(&self) -> Vec<u8> {
        let mut out = String::new();
        for der in [self.ark.as_ref(), self.ask.as_ref(), Some(&self.vcek)]
            .into_iter()
            .flatten()
        {
            out.push_str(&der_to_pem(der));
        }
        out.into_bytes()
    }
}

/// PEM-encodes one DER certificate.
pub fn der_to_pem(der: &[u8]) -> String {
    x509_cert::der::pem::encode_string("CERTIFICATE", x509_cert::der::pem::LineEnding::LF, der)
        .expect("PEM encoding of a byte string cannot fail")
}

fn load_pem_certs(pem: &[u8], what: &str) -> Result<Vec<Certificate>, ChainError> {
    let certs = Certificate::load_pem_chain(pem).map_err(|e| ChainError::BadCertificate {
        what: what.into(),
        message: e.to_string(),
    })?;
    if certs.is_empty() {
        return Err(ChainError::NoVcek(what.into()));
    }
    Ok(certs)
}

fn der_from_file_bytes(bytes: &[u8], what: &str) -> Result<Vec<u8>, ChainError> {
    if bytes.starts_with(b"-----BEGIN") || bytes.windows(10).any(|w| w == b"-----BEGIN") {
        let certs = load_pem_certs(bytes, what)?;
        if certs.len() != 1 {
            return Err(ChainError::BadCertificate {
                what: what.into(),
                message: format!("expected one certificate, found {}", certs.len()),
            });
        }
        certs[0].to_der().map_err(|e| ChainError::BadCertificate {
            what: what.into(),
            message: e.to_string(),
        })
    } else {
        // Validate now so a wrong file gives a loading error, not a verdict.
        Certificate::from_der(bytes).map_err(|e| ChainError::BadCertificate {
            what: what.into(),
            message: e.to_string(),
        })?;
        Ok(bytes.to_vec())
    }
}

#[cfg(test)]
mod tests {
    use super::cert_table::{CERT_TABLE_ENTRY_LEN, GUID_ARK, GUID_ASK, GUID_VCEK};
    use super::*;
    use crate::testdata;

    #[test]
    fn real_milan_vcek_chains_to_pinned_milan_root() {
        let chain = CertChain::from_der_parts(None, None, testdata::milan_vcek_der());
        let out = check_chain(&chain, false);
        assert_eq!(out.product, Some(Product::Milan));
        assert!(out.result.is_ok(), "{:?}", out.result);
    }

    #[test]
    fn real_turin_vcek_chains_via_amd_bundle() {
        let mut bundle = testdata::turin_ca_bundle();
        bundle.extend_from_slice(der_to_pem(&testdata::turin_vcek_der()).as_bytes());
        let chain = CertChain::from_pem_bundle(&bundle).unwrap();
        assert!(chain.ark.is_some() && chain.ask.is_some());
        let out = check_chain(&chain, false);
        assert_eq!(out.product, Some(Product::Turin));
        assert!(out.result.is_ok(), "{:?}", out.result);
        let ext = vcek_extensions(out.vcek.as_ref().unwrap()).unwrap();
        assert_eq!(ext.product_name.as_deref(), Some("Turin"));
        assert_eq!(ext.hw_id.as_ref().map(Vec::len), Some(8));
        assert_eq!(ext.fmc, Some(0));
    }

    #[test]
    fn milan_bundle_in_any_order_classifies_roles() {
        let mut bundle = der_to_pem(&testdata::milan_vcek_der()).into_bytes();
        bundle.extend_from_slice(&testdata::milan_ca_bundle());
        let chain = CertChain::from_pem_bundle(&bundle).unwrap();
        let (ark, ask) = Product::Milan.pinned_der().unwrap();
        assert_eq!(chain.ark.as_ref(), Some(&ark));
        assert_eq!(chain.ask.as_ref(), Some(&ask));
        assert!(check_chain(&chain, false).result.is_ok());
    }

    #[test]
    fn foreign_root_is_rejected_even_if_consistent() {
        // Turin's ARK with a Milan VCEK: the ARK is pinned, but it does not sign this chain.
        let (turin_ark, _) = Product::Turin.pinned_der().unwrap();
        let chain = CertChain::from_der_parts(Some(turin_ark), None, testdata::milan_vcek_der());
        let out = check_chain(&chain, false);
        assert!(out.result.is_err());
        // A self-signed non-pinned root (the simulated ASK is not self-signed, so use a
        // mutated copy of a root): any ARK that is not byte-identical is not pinned.
        let (mut ark, _) = Product::Milan.pinned_der().unwrap();
        let last = ark.len() - 1;
        ark[last] ^= 1;
        let chain = CertChain::from_der_parts(Some(ark), None, testdata::milan_vcek_der());
        let err = check_chain(&chain, false).result.unwrap_err();
        assert!(
            matches!(err, ChainVerifyError::ArkNotPinned { .. }),
            "{err:?}"
        );
        assert!(err.to_string().contains("not a pinned root"), "{err}");
    }

    #[test]
    fn vcek_extensions_of_real_milan_vcek() {
        let vcek = Certificate::from_der(&testdata::milan_vcek_der()).unwrap();
        let ext = vcek_extensions(&vcek).unwrap();
        assert_eq!(ext.product_name.as_deref(), Some("Milan-B0"));
        assert_eq!(
            (ext.bootloader, ext.tee, ext.snp, ext.microcode, ext.fmc),
            (Some(3), Some(0), Some(8), Some(0x73), None)
        );
        assert_eq!(ext.hw_id.as_ref().map(Vec::len), Some(64));
    }

    #[test]
    fn directory_with_der_and_pem_files() {
        let dir = std::env::temp_dir().join(format!("kettle-attest-chain-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::write(dir.join("vcek.der"), testdata::milan_vcek_der()).unwrap();
        std::fs::write(dir.join("ark.pem"), sev::certs::snp::builtin::milan::ARK).unwrap();
        let chain = CertChain::from_dir(&dir).unwrap();
        assert!(chain.ark.is_some() && chain.ask.is_none());
        assert!(check_chain(&chain, false).result.is_ok());
        std::fs::remove_file(dir.join("vcek.der")).unwrap();
        assert!(matches!(
            CertChain::from_dir(&dir),
            Err(ChainError::NoVcek(_))
        ));
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn cert_table_round_trip_and_bounds() {
        let vcek = testdata::milan_vcek_der();
        let (ark, ask) = Product::Milan.pinned_der().unwrap();
        let guid = |s: &str| hex::decode(s.replace('-', "")).unwrap();
        let mut table = Vec::new();
        let header_len = 4 * CERT_TABLE_ENTRY_LEN;
        let mut offset = header_len;
        let mut data = Vec::new();
        for (g, der) in [(GUID_ARK, &ark), (GUID_ASK, &ask), (GUID_VCEK, &vcek)] {
            table.extend_from_slice(&guid(g));
            table.extend_from_slice(&(offset as u32).to_le_bytes());
            table.extend_from_slice(&(der.len() as u32).to_le_bytes());
            data.extend_from_slice(der);
            offset += der.len();
        }
        table.extend_from_slice(&[0u8; CERT_TABLE_ENTRY_LEN]);
        table.extend_from_slice(&data);
        let chain = chain_from_cert_table(&table).unwrap();
        assert_eq!(
            chain,
            CertChain {
                ark: Some(ark),
                ask: Some(ask),
                vcek
            }
        );

        // Truncated: offsets now point past the end.
        let err = chain_from_cert_table(&table[..header_len + 10]).unwrap_err();
        assert!(err.to_string().contains("outside the table"), "{err}");
        // No terminator: one unknown-GUID entry with empty data, then the table ends.
        let mut unterminated = vec![0xAB; 16];
        unterminated.extend_from_slice(&[0u8; 8]);
        let err = chain_from_cert_table(&unterminated).unwrap_err();
        assert!(err.to_string().contains("terminating"), "{err}");
    }
}
