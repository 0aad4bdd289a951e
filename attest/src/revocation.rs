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

/// A CRL as read, with the times it covers.
#[derive(Debug, Clone)]
pub struct Crl {
    list: CertificateList,
}

impl Crl {
    /// Parses a DER CRL.
    pub fn from_der(der: &[u8]) -> Result<Crl, String> {
        CertificateList::from_der(der)
            .map(|list| Crl { list })
            .map_err(|e| format!("not an X.509 CRL (DER): {e}"))
    }

    /// Checks that `ark` issued and signed this CRL (RSASSA-PSS with SHA-384).
    pub fn verify_signed_by(&self, ark: &Certificate) -> Result<(), String> {
        let tbs = &self.list.tbs_cert_list;
        if tbs.issuer != ark.tbs_certificate.subject {
            return Err(format!(
                "the CRL is issued by {}, not by {}",
                tbs.issuer, ark.tbs_certificate.subject
            ));
        }
        let key = rsa::RsaPublicKey::from_pkcs1_der(
            ark.tbs_certificate
                .subject_public_key_info
                .subject_public_key
                .raw_bytes(),
        )
        .map_err(|e| format!("the ARK's key is not RSA: {e}"))?;
        let verifier = rsa::pss::VerifyingKey::<sha2::Sha384>::new(key);
        let sig = rsa::pss::Signature::try_from(self.list.signature.raw_bytes())
            .map_err(|e| format!("the CRL's signature is malformed: {e}"))?;
        let msg = tbs
            .to_der()
            .map_err(|e| format!("the CRL's TBS part does not re-encode: {e}"))?;
        verifier.verify(&msg, &sig).map_err(|_| {
            "the ARK's RSASSA-PSS/SHA-384 signature over the CRL does not verify".to_string()
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
