//! The host's certificate table (GHCB MSG_REPORT_REQ / SNP_GET_EXT_REPORT):
//! the ARK, ASK and VCEK it carries, by GUID.

use super::*;

/// A GUID from the GHCB certificate table, as 16 bytes in table order.
pub(super) const CERT_TABLE_ENTRY_LEN: usize = 24;

/// Certificate-table GUIDs (GHCB spec, MSG_REPORT_REQ cert_table).
pub(super) const GUID_ARK: &str = "c0b406a4-a803-4952-9743-3fb6014cd0ae";
pub(super) const GUID_ASK: &str = "4ab7b379-bbac-4fe4-a02f-05aef327c782";
pub(super) const GUID_VCEK: &str = "63da758d-e664-4564-adc5-f4b93be8accd";

pub(super) fn guid_strings(b: &[u8]) -> (String, String) {
    let dashed = |bytes: &[u8]| {
        let h = hex::encode(bytes);
        format!(
            "{}-{}-{}-{}-{}",
            &h[0..8],
            &h[8..12],
            &h[12..16],
            &h[16..20],
            &h[20..32]
        )
    };
    // Mixed-endian (EFI_GUID in memory) form, in case a host wrote it that way.
    let mut le = b.to_vec();
    le[0..4].reverse();
    le[4..6].reverse();
    le[6..8].reverse();
    (dashed(b), dashed(&le))
}

/// Parses the host's certificate table (GUID, offset, length entries ending in a
/// zero GUID) into a chain. Bounds are checked against `table.len()`.
pub fn chain_from_cert_table(table: &[u8]) -> Result<CertChain, ChainError> {
    let bad = |m: String| ChainError::CertTable(m);
    let (mut ark, mut ask, mut vcek) = (None, None, None);
    let mut at = 0usize;
    loop {
        let entry = table.get(at..at + CERT_TABLE_ENTRY_LEN).ok_or_else(|| {
            bad(format!(
                "no terminating zero entry before byte {}",
                table.len()
            ))
        })?;
        let guid = &entry[..16];
        if guid.iter().all(|b| *b == 0) {
            break;
        }
        let offset = u32::from_le_bytes(entry[16..20].try_into().expect("4 bytes")) as usize;
        let length = u32::from_le_bytes(entry[20..24].try_into().expect("4 bytes")) as usize;
        let data = offset
            .checked_add(length)
            .and_then(|end| table.get(offset..end))
            .ok_or_else(|| {
                bad(format!(
                    "entry at {at} points outside the table ({offset}+{length} > {})",
                    table.len()
                ))
            })?;
        let (rfc, mixed) = guid_strings(guid);
        let slot = [
            (GUID_ARK, &mut ark),
            (GUID_ASK, &mut ask),
            (GUID_VCEK, &mut vcek),
        ]
        .into_iter()
        .find(|(g, _)| *g == rfc || *g == mixed)
        .map(|(_, s)| s);
        if let Some(slot) = slot {
            let der = der_from_file_bytes(data, &format!("certificate table entry {rfc}"))?;
            *slot = Some(der);
        }
        at += CERT_TABLE_ENTRY_LEN;
    }
    let vcek = vcek.ok_or_else(|| ChainError::NoVcek("the host's certificate table".into()))?;
    Ok(CertChain { ark, ask, vcek })
}
