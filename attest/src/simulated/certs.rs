//! X.509 certificates for the simulated PSP, in AMD's layout: RSASSA-PSS/SHA-384
//! (salt 48, explicit trailer field) signatures, the same name attributes in the
//! same order, and on the VCEK the same AMD extensions (structVersion,
//! productName, TCB SVNs, hwID) so the verifier exercises one code path.

use rsa::pkcs8::{DecodePrivateKey, EncodePublicKey};
use rsa::signature::{RandomizedSigner, SignatureEncoding};
use x509_cert::attr::AttributeTypeAndValue;
use x509_cert::certificate::{TbsCertificate, Version};
use x509_cert::der::asn1::{Any, BitString, Ia5String, OctetString, SetOfVec, UtcTime};
use x509_cert::der::oid::AssociatedOid;
use x509_cert::der::{Decode, Encode, Tag};
use x509_cert::ext::pkix::crl::dp::DistributionPoint;
use x509_cert::ext::pkix::name::{DistributionPointName, GeneralName};
use x509_cert::ext::pkix::{
    BasicConstraints, CrlDistributionPoints, KeyUsage, KeyUsages, SubjectKeyIdentifier,
};
use x509_cert::ext::Extension;
use x509_cert::name::{Name, RdnSequence, RelativeDistinguishedName};
use x509_cert::serial_number::SerialNumber;
use x509_cert::spki::{AlgorithmIdentifierOwned, ObjectIdentifier, SubjectPublicKeyInfoOwned};
use x509_cert::time::{Time, Validity};
use x509_cert::Certificate;

use crate::chain::oids;
use crate::report::Tcb;

use super::keys;
use super::SimulatedError;

/// OID of RSASSA-PSS (PKCS #1).
const RSASSA_PSS: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.2.840.113549.1.1.10");

/// DER of the RSASSA-PSS parameters AMD uses: SHA-384, MGF1(SHA-384), salt 48,
/// trailer field 1 written out explicitly (as in AMD's ARK/ASK/VCEK).
const PSS_SHA384_PARAMS: [u8; 59] = [
    0x30, 0x39, // SEQUENCE
    0xa0, 0x0f, 0x30, 0x0d, 0x06, 0x09, 0x60, 0x86, 0x48, 0x01, 0x65, 0x03, 0x04, 0x02, 0x02, 0x05,
    0x00, // [0] sha384
    0xa1, 0x1c, 0x30, 0x1a, 0x06, 0x09, 0x2a, 0x86, 0x48, 0x86, 0xf7, 0x0d, 0x01, 0x01,
    0x08, // [1] mgf1
    0x30, 0x0d, 0x06, 0x09, 0x60, 0x86, 0x48, 0x01, 0x65, 0x03, 0x04, 0x02, 0x02, 0x05,
    0x00, //     sha384
    0xa2, 0x03, 0x02, 0x01, 0x30, // [2] saltLength 48
    0xa3, 0x03, 0x02, 0x01, 0x01, // [3] trailerField 1
];

/// Common name of the simulated ARK.
pub const ARK_CN: &str = "ARK-KETTLE-SIMULATED";
/// Common name of the simulated ASK.
pub const ASK_CN: &str = "SEV-KETTLE-SIMULATED";
/// Common name of the simulated VCEK.
pub const VCEK_CN: &str = "SEV-VCEK-KETTLE-SIMULATED";
/// productName the simulated VCEK carries.
pub const PRODUCT_NAME: &str = "KETTLE-SIMULATED";

fn pss_algorithm() -> Result<AlgorithmIdentifierOwned, SimulatedError> {
    Ok(AlgorithmIdentifierOwned {
        oid: RSASSA_PSS,
        parameters: Some(Any::from_der(&PSS_SHA384_PARAMS)?),
    })
}

/// A name with AMD's attribute order (OU, C, L, ST, O, CN), marked SIMULATED.
pub fn simulated_name(cn: &str) -> Result<Name, SimulatedError> {
    const OU: &str = "2.5.4.11";
    const C: &str = "2.5.4.6";
    const L: &str = "2.5.4.7";
    const ST: &str = "2.5.4.8";
    const O: &str = "2.5.4.10";
    const CN: &str = "2.5.4.3";
    let attrs: [(&str, Tag, &str); 6] = [
        (OU, Tag::Utf8String, "SIMULATED"),
        (C, Tag::PrintableString, "US"),
        (L, Tag::Utf8String, "Nowhere"),
        (ST, Tag::Utf8String, "NA"),
        (
            O,
            Tag::Utf8String,
            "Kettle SIMULATED PSP - test keys, not AMD",
        ),
        (CN, Tag::Utf8String, cn),
    ];
    let mut rdns = Vec::new();
    for (oid, tag, value) in attrs {
        let atv = AttributeTypeAndValue {
            oid: ObjectIdentifier::new_unwrap(oid),
            value: Any::new(tag, value.as_bytes())?,
        };
        rdns.push(RelativeDistinguishedName(SetOfVec::try_from(vec![atv])?));
    }
    Ok(RdnSequence(rdns))
}

fn validity(years: u64) -> Result<Validity, SimulatedError> {
    // Fixed dates keep the certificates reproducible; 2024-01-01T00:00:00Z.
    let start = std::time::Duration::from_secs(1_704_067_200);
    let end = start + std::time::Duration::from_secs(years * 365 * 24 * 3600);
    Ok(Validity {
        not_before: Time::UtcTime(UtcTime::from_unix_duration(start)?),
        not_after: Time::UtcTime(UtcTime::from_unix_duration(end)?),
    })
}

fn ext(
    oid: ObjectIdentifier,
    critical: bool,
    value_der: Vec<u8>,
) -> Result<Extension, SimulatedError> {
    Ok(Extension {
        extn_id: oid,
        critical,
        extn_value: OctetString::new(value_der)?,
    })
}

/// CA extensions as on AMD's ARK and ASK.
fn ca_extensions(spki_der: &[u8]) -> Result<Vec<Extension>, SimulatedError> {
    use sha2::{Digest, Sha256};
    let ku = KeyUsage(KeyUsages::KeyCertSign | KeyUsages::CRLSign);
    let ski = SubjectKeyIdentifier(OctetString::new(Sha256::digest(spki_der)[..20].to_vec())?);
    let bc = BasicConstraints {
        ca: true,
        path_len_constraint: None,
    };
    let crl_uri = Ia5String::new("https://kettle.invalid/simulated/crl")?;
    let dp = CrlDistributionPoints(vec![DistributionPoint {
        distribution_point: Some(DistributionPointName::FullName(vec![
            GeneralName::UniformResourceIdentifier(crl_uri),
        ])),
        reasons: None,
        crl_issuer: None,
    }]);
    Ok(vec![
        ext(KeyUsage::OID, true, ku.to_der()?)?,
        ext(SubjectKeyIdentifier::OID, false, ski.to_der()?)?,
        ext(BasicConstraints::OID, true, bc.to_der()?)?,
        ext(CrlDistributionPoints::OID, false, dp.to_der()?)?,
    ])
}

/// The AMD VCEK extensions for a TCB and chip id, in AMD's order.
fn vcek_extensions(tcb: &Tcb, hw_id: &[u8]) -> Result<Vec<Extension>, SimulatedError> {
    let int = |v: u8| v.to_der();
    let mut out = vec![
        ext(oids::STRUCT_VERSION, false, 0u8.to_der()?)?,
        ext(
            oids::PRODUCT_NAME,
            false,
            Ia5String::new(PRODUCT_NAME)?.to_der()?,
        )?,
        ext(oids::TCB_BOOTLOADER, false, int(tcb.bootloader)?)?,
        ext(oids::TCB_TEE, false, int(tcb.tee)?)?,
    ];
    // Reserved TCB bytes 2..5 of the legacy layout, zero as on real Milan/Genoa VCEKs.
    for arc in [4u32, 5, 6, 7] {
        out.push(ext(oids::tcb_arc(arc), false, 0u8.to_der()?)?);
    }
    out.push(ext(oids::TCB_SNP, false, int(tcb.snp)?)?);
    out.push(ext(oids::TCB_MICROCODE, false, int(tcb.microcode)?)?);
    // hwID is the raw chip id, not DER-wrapped, exactly as AMD encodes it.
    out.push(ext(oids::HW_ID, false, hw_id.to_vec())?);
    Ok(out)
}

/// Signs a TBS certificate with an RSA key using RSASSA-PSS/SHA-384 (salt 48).
fn sign_rsa_pss(tbs: TbsCertificate, key_pem: &str) -> Result<Certificate, SimulatedError> {
    let key = rsa::RsaPrivateKey::from_pkcs8_pem(key_pem)?;
    let signer = rsa::pss::BlindedSigningKey::<sha2::Sha384>::new(key);
    let msg = tbs.to_der()?;
    let sig = signer.try_sign_with_rng(&mut rsa::rand_core::OsRng, &msg)?;
    Ok(Certificate {
        tbs_certificate: tbs,
        signature_algorithm: pss_algorithm()?,
        signature: BitString::from_bytes(&sig.to_vec())?,
    })
}

fn rsa_spki(key_pem: &str) -> Result<SubjectPublicKeyInfoOwned, SimulatedError> {
    let key = rsa::RsaPrivateKey::from_pkcs8_pem(key_pem)?;
    let der = key.to_public_key().to_public_key_der()?;
    Ok(SubjectPublicKeyInfoOwned::from_der(der.as_bytes())?)
}

/// Builds the self-signed simulated ARK (run once; the result is committed).
pub fn build_ark() -> Result<Certificate, SimulatedError> {
    let spki = rsa_spki(keys::ARK_KEY_PEM)?;
    let name = simulated_name(ARK_CN)?;
    let tbs = TbsCertificate {
        version: Version::V3,
        serial_number: SerialNumber::new(&[0x01, 0x00, 0x00])?,
        signature: pss_algorithm()?,
        issuer: name.clone(),
        validity: validity(25)?,
        subject: name,
        extensions: Some(ca_extensions(&spki.to_der()?)?),
        subject_public_key_info: spki,
        issuer_unique_id: None,
        subject_unique_id: None,
    };
    sign_rsa_pss(tbs, keys::ARK_KEY_PEM)
}

/// Builds the simulated ASK signed by the simulated ARK (run once; committed).
pub fn build_ask() -> Result<Certificate, SimulatedError> {
    let spki = rsa_spki(keys::ASK_KEY_PEM)?;
    let tbs = TbsCertificate {
        version: Version::V3,
        serial_number: SerialNumber::new(&[0x01, 0x00, 0x01])?,
        signature: pss_algorithm()?,
        issuer: simulated_name(ARK_CN)?,
        validity: validity(25)?,
        subject: simulated_name(ASK_CN)?,
        extensions: Some(ca_extensions(&spki.to_der()?)?),
        subject_public_key_info: spki,
        issuer_unique_id: None,
        subject_unique_id: None,
    };
    sign_rsa_pss(tbs, keys::ARK_KEY_PEM)
}

/// Builds the simulated VCEK for a TCB and chip (`hw_id`: 64 bytes, or Turin's 8): P-384
/// key, signed by the simulated ASK.
pub fn build_vcek(tcb: &Tcb, hw_id: &[u8]) -> Result<Certificate, SimulatedError> {
    let key = p384::SecretKey::from_pkcs8_pem(keys::VCEK_KEY_PEM)?;
    let spki_der = key.public_key().to_public_key_der()?;
    let tbs = TbsCertificate {
        version: Version::V3,
        serial_number: SerialNumber::new(VCEK_SERIAL)?,
        signature: pss_algorithm()?,
        issuer: simulated_name(ASK_CN)?,
        validity: validity(7)?,
        subject: simulated_name(VCEK_CN)?,
        subject_public_key_info: SubjectPublicKeyInfoOwned::from_der(spki_der.as_bytes())?,
        issuer_unique_id: None,
        subject_unique_id: None,
        extensions: Some(vcek_extensions(tcb, hw_id)?),
    };
    sign_rsa_pss(tbs, keys::ASK_KEY_PEM)
}

/// The serial number of every simulated VCEK.
pub const VCEK_SERIAL: &[u8] = &[0x00];

/// A CRL of the simulated ARK revoking the simulated VCEK (for tests that have no x509 types).
pub fn test_crl_revoking_vcek(
    this_update: u64,
    next_update: u64,
) -> Result<Vec<u8>, SimulatedError> {
    test_crl(&[SerialNumber::new(VCEK_SERIAL)?], this_update, next_update)
}

/// A CRL of the simulated ARK revoking `serials` (for tests of revocation checking),
/// valid from `this_update` to `next_update` (Unix seconds), DER.
pub fn test_crl(
    serials: &[SerialNumber],
    this_update: u64,
    next_update: u64,
) -> Result<Vec<u8>, SimulatedError> {
    use x509_cert::crl::{CertificateList, RevokedCert, TbsCertList};
    use x509_cert::time::Time;
    let time = |t: u64| -> Result<Time, SimulatedError> {
        Ok(Time::UtcTime(
            x509_cert::der::asn1::UtcTime::from_unix_duration(std::time::Duration::from_secs(t))?,
        ))
    };
    let revoked = serials
        .iter()
        .map(|s| {
            Ok(RevokedCert {
                serial_number: s.clone(),
                revocation_date: time(this_update)?,
                crl_entry_extensions: None,
            })
        })
        .collect::<Result<Vec<_>, SimulatedError>>()?;
    let tbs = TbsCertList {
        version: Version::V2,
        signature: pss_algorithm()?,
        issuer: simulated_name(ARK_CN)?,
        this_update: time(this_update)?,
        next_update: Some(time(next_update)?),
        revoked_certificates: (!revoked.is_empty()).then_some(revoked),
        crl_extensions: None,
    };
    let key = rsa::RsaPrivateKey::from_pkcs8_pem(keys::ARK_KEY_PEM)?;
    let signer = rsa::pss::BlindedSigningKey::<sha2::Sha384>::new(key);
    let sig = signer.try_sign_with_rng(&mut rsa::rand_core::OsRng, &tbs.to_der()?)?;
    Ok(CertificateList {
        tbs_cert_list: tbs,
        signature_algorithm: pss_algorithm()?,
        signature: BitString::from_bytes(&sig.to_vec())?,
    }
    .to_der()?)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn committed_ca_matches_committed_keys() {
        use sev::certs::snp::{Certificate as SevCert, Verifiable};
        let ark = SevCert::from_pem(keys::ARK_PEM).unwrap();
        let ask = SevCert::from_pem(keys::ASK_PEM).unwrap();
        // The committed ARK is self-signed and signs the ASK (sev crate's own checks).
        (&ark, &ark).verify().unwrap();
        (&ark, &ask).verify().unwrap();
        let ark_x: Certificate = ark.into();
        assert_eq!(
            ark_x.tbs_certificate.subject_public_key_info,
            rsa_spki(keys::ARK_KEY_PEM).unwrap()
        );
        let ask_x: Certificate = ask.into();
        assert_eq!(
            ask_x.tbs_certificate.subject_public_key_info,
            rsa_spki(keys::ASK_KEY_PEM).unwrap()
        );
        assert!(ask_x
            .tbs_certificate
            .subject
            .to_string()
            .contains("SIMULATED"));
    }

    #[test]
    fn algorithm_identifier_is_amds() {
        // The signatureAlgorithm of a real Milan VCEK, byte for byte.
        let real = crate::testdata::milan_vcek_der();
        let real = Certificate::from_der(&real).unwrap();
        assert_eq!(real.signature_algorithm, pss_algorithm().unwrap());
        assert_eq!(real.tbs_certificate.signature, pss_algorithm().unwrap());
    }
}
