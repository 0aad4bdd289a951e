//! Revocation and validity: AMD's certificate revocation list per product
//! (an X.509 CRL signed by the product's ARK with RSASSA-PSS/SHA-384, from the
//! KDS at `/vcek/v1/<product>/crl`), and the certificates' validity windows
//! against a time the verifier trusts (offline verification has no trusted
//! clock, so the time is the caller's).

use rsa::pkcs1::DecodeRsaPublicKey;
use rsa::signature::Verifier;
use x509_cert::crl::CertificateList;
use x509_cert::der::{Decode, Encode};
use x509_cert::serial_number::SerialNumber;
use x509_cert::Certificate;

/// Why a CRL could not be read, or is not the one the ARK signed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum CrlError {
    /// The bytes are not a DER X.509 CRL.
    #[error("not an X.509 CRL (DER): {0}")]
    NotACrl(String),
    /// The CRL names another issuer than the ARK's subject.
    #[error("the CRL is issued by {issuer}, not by {ark}")]
    WrongIssuer {
        /// The CRL's issuer.
        issuer: String,
        /// The ARK's subject.
        ark: String,
    },
    /// The ARK's key is not an RSA key.
    #[error("the ARK's key is not RSA: {0}")]
    ArkKeyNotRsa(String),
    /// The signature is not an RSASSA-PSS signature.
    #[error("the CRL's signature is malformed: {0}")]
    MalformedSignature(String),
    /// The CRL's to-be-signed part does not re-encode as DER.
    #[error("the CRL's TBS part does not re-encode: {0}")]
    TbsEncoding(String),
    /// The signature does not verify with the ARK's key.
    #[error("the ARK's ({ark}) RSASSA-PSS/SHA-384 signature over the CRL does not verify")]
    DoesNotVerify {
        /// The ARK's subject.
        ark: String,
    },
}

/// A CRL as read, with the times it covers.
#[derive(Debug, Clone)]
pub struct Crl {
    list: CertificateList,
}

impl Crl {
    /// Parses a DER CRL.
    pub fn from_der(der: &[u8]) -> Result<Crl, CrlError> {
        CertificateList::from_der(der)
            .map(|list| Crl { list })
            .map_err(|e| CrlError::NotACrl(e.to_string()))
    }

    /// Checks that `ark` issued and signed this CRL (RSASSA-PSS with SHA-384).
    pub fn verify_signed_by(&self, ark: &Certificate) -> Result<(), CrlError> {
        let tbs = &self.list.tbs_cert_list;
        if tbs.issuer != ark.tbs_certificate.subject {
            return Err(CrlError::WrongIssuer {
                issuer: tbs.issuer.to_string(),
                ark: ark.tbs_certificate.subject.to_string(),
            });
        }
        let key = rsa::RsaPublicKey::from_pkcs1_der(
            ark.tbs_certificate
                .subject_public_key_info
                .subject_public_key
                .raw_bytes(),
        )
        .map_err(|e| CrlError::ArkKeyNotRsa(e.to_string()))?;
        let verifier = rsa::pss::VerifyingKey::<sha2::Sha384>::new(key);
        let sig = rsa::pss::Signature::try_from(self.list.signature.raw_bytes())
            .map_err(|e| CrlError::MalformedSignature(e.to_string()))?;
        let msg = tbs
            .to_der()
            .map_err(|e| CrlError::TbsEncoding(e.to_string()))?;
        verifier
            .verify(&msg, &sig)
            .map_err(|_| CrlError::DoesNotVerify {
                ark: ark.tbs_certificate.subject.to_string(),
            })
    }

    /// When `serial` was revoked (Unix seconds), if it is listed.
    pub fn revoked(&self, serial: &SerialNumber) -> Option<u64> {
        self.list
            .tbs_cert_list
            .revoked_certificates
            .as_deref()
            .unwrap_or(&[])
            .iter()
            .find(|r| &r.serial_number == serial)
            .map(|r| r.revocation_date.to_unix_duration().as_secs())
    }

    /// thisUpdate and nextUpdate (Unix seconds).
    pub fn window(&self) -> (u64, Option<u64>) {
        let tbs = &self.list.tbs_cert_list;
        (
            tbs.this_update.to_unix_duration().as_secs(),
            tbs.next_update.map(|t| t.to_unix_duration().as_secs()),
        )
    }
}

/// A certificate's notBefore and notAfter (Unix seconds).
pub fn validity(cert: &Certificate) -> (u64, u64) {
    let v = &cert.tbs_certificate.validity;
    (
        v.not_before.to_unix_duration().as_secs(),
        v.not_after.to_unix_duration().as_secs(),
    )
}

/// Why `cert` is not valid at `at` (Unix seconds), if it is not.
pub fn invalid_at(what: &str, cert: &Certificate, at: u64) -> Option<String> {
    let (from, until) = validity(cert);
    let fmt = |t: u64| kettle_time(t);
    if at < from {
        Some(format!("the {what} is not valid before {}", fmt(from)))
    } else if at > until {
        Some(format!("the {what} expired at {}", fmt(until)))
    } else {
        None
    }
}

/// RFC 3339 UTC of Unix seconds, for messages.
pub fn kettle_time(unix: u64) -> String {
    let t = std::time::UNIX_EPOCH + std::time::Duration::from_secs(unix);
    let dt = x509_cert::der::DateTime::from_system_time(t);
    match dt {
        Ok(d) => format!(
            "{:04}-{:02}-{:02}T{:02}:{:02}:{:02}Z",
            d.year(),
            d.month(),
            d.day(),
            d.hour(),
            d.minutes(),
            d.seconds()
        ),
        Err(_) => format!("{unix} (Unix seconds)"),
    }
}
