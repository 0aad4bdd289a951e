//! The endorsement key that signs a report (VCEK or VLEK): its AMD extensions
//! (product, TCB, hwID) and how they must agree with the report.

use super::*;

/// The AMD extensions of a VCEK certificate.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct VcekExtensions {
    /// productName, e.g. "Milan-B0".
    pub product_name: Option<String>,
    /// hwID: the chip id the VCEK was issued for.
    pub hw_id: Option<Vec<u8>>,
    /// blSPL.
    pub bootloader: Option<u8>,
    /// teeSPL.
    pub tee: Option<u8>,
    /// snpSPL.
    pub snp: Option<u8>,
    /// ucodeSPL.
    pub microcode: Option<u8>,
    /// fmcSPL (Turin and later).
    pub fmc: Option<u8>,
}

/// Reads the AMD extensions of a VCEK.
pub fn vcek_extensions(cert: &Certificate) -> Result<VcekExtensions, String> {
    let mut out = VcekExtensions::default();
    let exts = cert.tbs_certificate.extensions.as_deref().unwrap_or(&[]);
    for ext in exts {
        let value = ext.extn_value.as_bytes();
        let spl = |name: &str| -> Result<Option<u8>, String> {
            u8::from_der(value)
                .map(Some)
                .map_err(|e| format!("VCEK extension {name} is not a small INTEGER: {e}"))
        };
        match ext.extn_id {
            oid if oid == oids::PRODUCT_NAME => {
                out.product_name = Some(
                    Ia5String::from_der(value)
                        .map_err(|e| format!("VCEK productName is not an IA5String: {e}"))?
                        .to_string(),
                )
            }
            oid if oid == oids::HW_ID => out.hw_id = Some(value.to_vec()),
            oid if oid == oids::TCB_BOOTLOADER => out.bootloader = spl("blSPL")?,
            oid if oid == oids::TCB_TEE => out.tee = spl("teeSPL")?,
            oid if oid == oids::TCB_SNP => out.snp = spl("snpSPL")?,
            oid if oid == oids::TCB_MICROCODE => out.microcode = spl("ucodeSPL")?,
            oid if oid == oids::TCB_FMC => out.fmc = spl("fmcSPL")?,
            _ => {}
        }
    }
    Ok(out)
}

/// Which kind of endorsement key signed a report.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EndorsementKey {
    /// The chip's VCEK: its certificate names the chip (hwID).
    Vcek,
    /// A VLEK a cloud provider loaded: no hwID (reports from it mask the chip id).
    Vlek,
}

impl EndorsementKey {
    /// The subject CN AMD's KDS gives this kind of certificate.
    pub fn subject_cn(self) -> &'static str {
        match self {
            EndorsementKey::Vcek => "SEV-VCEK",
            EndorsementKey::Vlek => "SEV-VLEK",
        }
    }
}

/// The issuer's common name of a certificate, if it has one.
pub(super) fn subject_cn_of_issuer(cert: &Certificate) -> Option<String> {
    cn_of(&cert.tbs_certificate.issuer)
}

/// The subject common name of a certificate, if it has one.
pub fn subject_cn(cert: &Certificate) -> Option<String> {
    cn_of(&cert.tbs_certificate.subject)
}

pub(super) fn cn_of(name: &x509_cert::name::Name) -> Option<String> {
    name.0.iter().flat_map(|rdn| rdn.0.iter()).find_map(|atv| {
        (atv.oid == ObjectIdentifier::new_unwrap("2.5.4.3"))
            .then(|| {
                atv.value
                    .decode_as::<x509_cert::der::asn1::Utf8StringRef<'_>>()
                    .map(|s| s.as_str().to_string())
                    .or_else(|_| {
                        atv.value
                            .decode_as::<x509_cert::der::asn1::PrintableStringRef<'_>>()
                            .map(|s| s.as_str().to_string())
                    })
                    .ok()
            })
            .flatten()
    })
}

/// Compares an endorsement key certificate (VCEK or VLEK) with a report: its kind,
/// its hwID with the report's chip_id (VCEK only) and its TCB with reported_tcb.
pub fn compare_vcek_with_report(
    cert: &Certificate,
    ext: &VcekExtensions,
    key: EndorsementKey,
    chip_id: &[u8; 64],
    tcb: &Tcb,
) -> Result<String, String> {
    let mut problems = Vec::new();
    let cn = subject_cn(cert);
    // AMD's certificates say exactly "SEV-VCEK"/"SEV-VLEK"; Kettle's simulated one adds a suffix.
    let kind_matches = cn.as_deref().is_some_and(|cn| {
        cn == key.subject_cn()
            || cn
                .strip_prefix(key.subject_cn())
                .is_some_and(|rest| rest.starts_with('-'))
    });
    if !kind_matches {
        problems.push(format!(
            "the report is signed by a {key:?} but the certificate is {:?}, not {:?}",
            cn.unwrap_or_default(),
            key.subject_cn()
        ));
    }
    match &ext.hw_id {
        // A VLEK is not bound to one chip.
        _ if key == EndorsementKey::Vlek => {}
        None => problems.push("VCEK has no hwID extension".to_string()),
        Some(hw) if hw.is_empty() || hw.len() > 64 => {
            problems.push(format!("VCEK hwID has {} bytes", hw.len()))
        }
        // Turin VCEKs carry an 8-byte hwID; the report pads the chip id with zeros.
        Some(hw)
            if hw[..] != chip_id[..hw.len()] || chip_id[hw.len()..].iter().any(|b| *b != 0) =>
        {
            problems.push(format!(
                "VCEK hwID {} does not equal the report's chip_id {}",
                hex::encode(hw),
                hex::encode(chip_id)
            ))
        }
        Some(_) => {}
    }
    let mut compare = |name: &str, cert: Option<u8>, report: Option<u8>| match (cert, report) {
        (Some(c), Some(r)) if c == r => {}
        (None, None) => {}
        (c, r) => problems.push(format!(
            "{name}: VCEK says {}, report's reported_tcb says {}",
            c.map_or("absent".into(), |v| v.to_string()),
            r.map_or("absent".into(), |v| v.to_string())
        )),
    };
    compare("bootloader SVN", ext.bootloader, Some(tcb.bootloader));
    compare("TEE SVN", ext.tee, Some(tcb.tee));
    compare("SNP SVN", ext.snp, Some(tcb.snp));
    compare("microcode", ext.microcode, Some(tcb.microcode));
    compare("FMC SVN", ext.fmc, tcb.fmc);
    if problems.is_empty() {
        let product = ext
            .product_name
            .as_ref()
            .map(|p| format!("for {p}: "))
            .unwrap_or_default();
        Ok(match key {
            EndorsementKey::Vcek => {
                format!("VCEK {product}hwID equals chip_id and its TCB equals reported_tcb ({tcb})")
            }
            EndorsementKey::Vlek => format!("VLEK {product}TCB equals reported_tcb ({tcb})"),
        })
    } else {
        Err(problems.join("; "))
    }
}
