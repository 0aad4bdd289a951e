//! Parsing of an OVMF firmware image's footer table and SEV metadata: the
//! parts of the firmware that decide which pages the VMM measures and how.
//!
//! Layout (edk2 `OvmfPkg/ResetVector`): the GUIDed footer table ends 32 bytes
//! before the end of the image. It is read backwards: each entry is its data
//! followed by a `u16` total size and a 16-byte little-endian GUID; the last
//! entry (the footer) covers the whole table. The SEV metadata entry points
//! (as an offset from the end of the image) at an `ASEV` header followed by
//! `(gpa, size, type)` section descriptors.

use std::collections::HashMap;

/// Size of a footer table entry header: `u16` size + GUID.
const ENTRY_HEADER_LEN: usize = 2 + 16;
/// Bytes between the end of the footer table and the end of the image.
const FOOTER_GAP: usize = 32;
/// The firmware is mapped so that it ends at 4 GiB.
const FOUR_GB: u64 = 0x1_0000_0000;
/// Size of the `ASEV` metadata header: signature, size, version, item count.
const METADATA_HEADER_LEN: usize = 16;
/// Size of one metadata section descriptor: gpa, size, type.
const METADATA_ITEM_LEN: usize = 12;
/// Page size of the launch-update commands.
pub(crate) const PAGE_SIZE: usize = 4096;

/// GUIDs as their little-endian byte encoding (how they sit in the image).
const OVMF_TABLE_FOOTER_GUID: [u8; 16] = guid("96b582de-1fb2-45f7-baea-a366c55a082d");
const SEV_HASH_TABLE_RV_GUID: [u8; 16] = guid("7255371f-3a3b-4b04-927b-1da6efa8d454");
const SEV_ES_RESET_BLOCK_GUID: [u8; 16] = guid("00f771de-1a7e-4fcb-890e-68c77e2fb44e");
const OVMF_SEV_METADATA_GUID: [u8; 16] = guid("dc886566-984a-4798-a75e-5585a7bf67cc");

/// A GUID from its text form (as edk2 and QEMU write it) in the byte order UEFI stores it:
/// the first three fields little-endian. A malformed literal fails the build.
pub(crate) const fn guid(text: &str) -> [u8; 16] {
    let t = text.as_bytes();
    assert!(
        t.len() == 36 && t[8] == b'-' && t[13] == b'-' && t[18] == b'-' && t[23] == b'-',
        "a GUID is written xxxxxxxx-xxxx-xxxx-xxxx-xxxxxxxxxxxx"
    );
    // The bytes in reading order, then the first three fields byte-swapped.
    let mut be = [0u8; 16];
    let (mut i, mut at) = (0, 0);
    while i < 16 {
        if t[at] == b'-' {
            at += 1;
        }
        be[i] = (hex_digit(t[at]) << 4) | hex_digit(t[at + 1]);
        at += 2;
        i += 1;
    }
    [
        be[3], be[2], be[1], be[0], be[5], be[4], be[7], be[6], be[8], be[9], be[10], be[11],
        be[12], be[13], be[14], be[15],
    ]
}

const fn hex_digit(c: u8) -> u8 {
    match c {
        b'0'..=b'9' => c - b'0',
        b'a'..=b'f' => c - b'a' + 10,
        b'A'..=b'F' => c - b'A' + 10,
        _ => panic!("a GUID is written in hex digits"),
    }
}

/// Why a firmware image cannot be measured.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum OvmfError {
    /// The image is too small or not a whole number of 4 KiB pages.
    #[error(
        "firmware is {0} bytes; an OVMF image is a non-empty multiple of 4096 bytes below 4 GiB"
    )]
    BadSize(usize),
    /// No OVMF footer table GUID 32 bytes before the end.
    #[error("firmware has no OVMF footer table (GUID 96b582de-...); use an OVMF built from edk2's AmdSev package")]
    NoFooterTable,
    /// An entry of the footer table has an impossible size.
    #[error("firmware footer table is malformed: {0}")]
    MalformedTable(&'static str),
    /// A required footer table entry is absent.
    #[error("firmware footer table has no {0} entry; this OVMF does not support SEV-SNP (build edk2's AmdSev package)")]
    MissingEntry(&'static str),
    /// The SEV metadata block is malformed.
    #[error("firmware SEV metadata is malformed: {0}")]
    MalformedMetadata(String),
    /// The SEV metadata names a section type this measurer does not know.
    #[error("firmware SEV metadata has unknown section type {0:#x}")]
    UnknownSectionType(u32),
}

/// Kinds of SEV metadata sections (edk2 `OvmfSevMetadata.asm`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SectionType {
    /// Memory the firmware needs pre-validated (measured as zero pages).
    SnpSecMem,
    /// The SNP secrets page.
    SnpSecrets,
    /// The CPUID page filled by the PSP.
    Cpuid,
    /// The SVSM calling area (zero pages).
    SvsmCaa,
    /// The page holding QEMU's kernel/initrd/cmdline hashes table.
    SnpKernelHashes,
}

impl SectionType {
    fn from_raw(raw: u32) -> Result<Self, OvmfError> {
        Ok(match raw {
            1 => Self::SnpSecMem,
            2 => Self::SnpSecrets,
            3 => Self::Cpuid,
            4 => Self::SvsmCaa,
            0x10 => Self::SnpKernelHashes,
            other => return Err(OvmfError::UnknownSectionType(other)),
        })
    }
}

/// One SEV metadata section: a guest-physical range and what goes there.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct MetadataSection {
    /// Guest-physical address of the section.
    pub gpa: u32,
    /// Length in bytes.
    pub size: u32,
    /// What the VMM puts there.
    pub section_type: SectionType,
}

/// A parsed OVMF image.
#[derive(Debug, Clone)]
pub struct Ovmf {
    data: Vec<u8>,
    table: HashMap<[u8; 16], Vec<u8>>,
    sections: Vec<MetadataSection>,
}

impl Ovmf {
    /// Parses the footer table and SEV metadata of a firmware image.
    pub fn parse(data: Vec<u8>) -> Result<Self, OvmfError> {
        if data.is_empty() || data.len() % PAGE_SIZE != 0 || data.len() as u64 > FOUR_GB {
            return Err(OvmfError::BadSize(data.len()));
        }
        let table = parse_footer_table(&data)?;
        let sections = parse_metadata(&data, &table)?;
        Ok(Self {
            data,
            table,
            sections,
        })
    }

    /// The raw image.
    pub fn data(&self) -> &[u8] {
        &self.data
    }

    /// Guest-physical address the image is mapped at (it ends at 4 GiB).
    pub fn gpa(&self) -> u64 {
        FOUR_GB - self.data.len() as u64
    }

    /// The SEV metadata sections in firmware order.
    pub fn sections(&self) -> &[MetadataSection] {
        &self.sections
    }

    /// Whether the firmware has a page reserved for the kernel hashes table.
    pub fn has_kernel_hashes_section(&self) -> bool {
        self.sections
            .iter()
            .any(|s| s.section_type == SectionType::SnpKernelHashes)
    }

    /// Guest-physical address where QEMU places the kernel hashes table.
    pub fn sev_hashes_table_gpa(&self) -> Result<u64, OvmfError> {
        self.entry_u32(&SEV_HASH_TABLE_RV_GUID, "SEV_HASH_TABLE_RV_GUID")
            .map(u64::from)
    }

    /// The application processors' reset EIP (from the SEV-ES reset block).
    pub fn sev_es_reset_eip(&self) -> Result<u32, OvmfError> {
        self.entry_u32(&SEV_ES_RESET_BLOCK_GUID, "SEV_ES_RESET_BLOCK_GUID")
    }

    fn entry_u32(&self, guid: &[u8; 16], name: &'static str) -> Result<u32, OvmfError> {
        let entry = self.table.get(guid).ok_or(OvmfError::MissingEntry(name))?;
        let bytes: [u8; 4] = entry
            .get(..4)
            .and_then(|b| b.try_into().ok())
            .ok_or(OvmfError::MalformedTable("entry shorter than 4 bytes"))?;
        Ok(u32::from_le_bytes(bytes))
    }
}

/// Reads the GUIDed footer table into a GUID -> data map.
fn parse_footer_table(data: &[u8]) -> Result<HashMap<[u8; 16], Vec<u8>>, OvmfError> {
    let footer_start = data
        .len()
        .checked_sub(FOOTER_GAP + ENTRY_HEADER_LEN)
        .ok_or(OvmfError::NoFooterTable)?;
    let (footer_size, footer_guid) =
        entry_header(&data[footer_start..footer_start + ENTRY_HEADER_LEN]);
    if footer_guid != OVMF_TABLE_FOOTER_GUID {
        return Err(OvmfError::NoFooterTable);
    }
    let table_len = footer_size
        .checked_sub(ENTRY_HEADER_LEN)
        .ok_or(OvmfError::MalformedTable(
            "footer entry smaller than its header",
        ))?;
    let table_start = footer_start
        .checked_sub(table_len)
        .ok_or(OvmfError::MalformedTable("table larger than the image"))?;
    let mut rest = &data[table_start..footer_start];
    let mut table = HashMap::new();
    while rest.len() >= ENTRY_HEADER_LEN {
        let (size, guid) = entry_header(&rest[rest.len() - ENTRY_HEADER_LEN..]);
        if size < ENTRY_HEADER_LEN {
            return Err(OvmfError::MalformedTable("entry smaller than its header"));
        }
        if size > rest.len() {
            return Err(OvmfError::MalformedTable(
                "entry larger than the rest of the table",
            ));
        }
        let body = &rest[rest.len() - size..rest.len() - ENTRY_HEADER_LEN];
        table.insert(guid, body.to_vec());
        rest = &rest[..rest.len() - size];
    }
    Ok(table)
}

/// Splits an 18-byte entry header into (size, guid).
fn entry_header(bytes: &[u8]) -> (usize, [u8; 16]) {
    let size = usize::from(u16::from_le_bytes([bytes[0], bytes[1]]));
    let mut guid = [0u8; 16];
    guid.copy_from_slice(&bytes[2..18]);
    (size, guid)
}

/// Reads the `ASEV` metadata block the footer table points to.
fn parse_metadata(
    data: &[u8],
    table: &HashMap<[u8; 16], Vec<u8>>,
) -> Result<Vec<MetadataSection>, OvmfError> {
    let entry = table
        .get(&OVMF_SEV_METADATA_GUID)
        .ok_or(OvmfError::MissingEntry("OVMF_SEV_METADATA_GUID"))?;
    let offset_from_end = entry
        .get(..4)
        .map(|b| u32::from_le_bytes([b[0], b[1], b[2], b[3]]) as usize)
        .ok_or_else(|| {
            OvmfError::MalformedMetadata("metadata entry shorter than 4 bytes".into())
        })?;
    let start = data.len().checked_sub(offset_from_end).ok_or_else(|| {
        OvmfError::MalformedMetadata(format!(
            "offset {offset_from_end} is beyond the image start"
        ))
    })?;
    let header = data
        .get(start..start + METADATA_HEADER_LEN)
        .ok_or_else(|| OvmfError::MalformedMetadata("header runs past the image end".into()))?;
    let le32 = |b: &[u8], at: usize| u32::from_le_bytes([b[at], b[at + 1], b[at + 2], b[at + 3]]);
    if &header[..4] != b"ASEV" {
        return Err(OvmfError::MalformedMetadata("signature is not ASEV".into()));
    }
    let version = le32(header, 8);
    if version != 1 {
        return Err(OvmfError::MalformedMetadata(format!(
            "version {version}, expected 1"
        )));
    }
    let count = le32(header, 12) as usize;
    let items_len = count
        .checked_mul(METADATA_ITEM_LEN)
        .filter(|len| METADATA_HEADER_LEN + len <= le32(header, 4) as usize)
        .ok_or_else(|| {
            OvmfError::MalformedMetadata(format!("{count} sections do not fit the declared size"))
        })?;
    let items = data
        .get(start + METADATA_HEADER_LEN..start + METADATA_HEADER_LEN + items_len)
        .ok_or_else(|| OvmfError::MalformedMetadata("sections run past the image end".into()))?;
    items
        .chunks_exact(METADATA_ITEM_LEN)
        .map(|item| {
            let section = MetadataSection {
                gpa: le32(item, 0),
                size: le32(item, 4),
                section_type: SectionType::from_raw(le32(item, 8))?,
            };
            if section.gpa as usize % PAGE_SIZE != 0 || section.size as usize % PAGE_SIZE != 0 {
                return Err(OvmfError::MalformedMetadata(format!(
                    "section at {:#x} (+{:#x}) is not page aligned",
                    section.gpa, section.size
                )));
            }
            Ok(section)
        })
        .collect()
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    /// Builds a minimal, valid AmdSev-shaped image for unit tests: `pages`
    /// pages with a footer table holding the reset block, the hashes table
    /// GPA and a metadata block.
    pub(crate) fn synthetic_ovmf(pages: usize, sections: &[(u32, u32, u32)]) -> Vec<u8> {
        let len = pages * PAGE_SIZE;
        let mut data: Vec<u8> = (0..len).map(|i| (i % 251) as u8).collect();
        // Metadata block 2 pages before the end.
        let meta_start = len - 2 * PAGE_SIZE;
        let mut meta = b"ASEV".to_vec();
        let meta_size = (METADATA_HEADER_LEN + sections.len() * METADATA_ITEM_LEN) as u32;
        meta.extend_from_slice(&meta_size.to_le_bytes());
        meta.extend_from_slice(&1u32.to_le_bytes());
        meta.extend_from_slice(&(sections.len() as u32).to_le_bytes());
        for (gpa, size, kind) in sections {
            for v in [gpa, size, kind] {
                meta.extend_from_slice(&v.to_le_bytes());
            }
        }
        data[meta_start..meta_start + meta.len()].copy_from_slice(&meta);
        // Footer table, built back to front.
        let mut table = Vec::new();
        let mut push = |guid: [u8; 16], body: &[u8]| {
            table.extend_from_slice(body);
            table.extend_from_slice(&((body.len() + ENTRY_HEADER_LEN) as u16).to_le_bytes());
            table.extend_from_slice(&guid);
        };
        push(SEV_ES_RESET_BLOCK_GUID, &0xffff_f000u32.to_le_bytes());
        let mut hashes = 0x80_f000u32.to_le_bytes().to_vec();
        hashes.extend_from_slice(&0x400u32.to_le_bytes());
        push(SEV_HASH_TABLE_RV_GUID, &hashes);
        push(
            OVMF_SEV_METADATA_GUID,
            &((len - meta_start) as u32).to_le_bytes(),
        );
        let table_len = table.len() + ENTRY_HEADER_LEN;
        table.extend_from_slice(&(table_len as u16).to_le_bytes());
        table.extend_from_slice(&OVMF_TABLE_FOOTER_GUID);
        let end = len - FOOTER_GAP;
        data[end - table.len()..end].copy_from_slice(&table);
        data
    }

    #[test]
    fn guid_text_is_stored_with_the_first_three_fields_swapped() {
        assert_eq!(
            guid("00112233-4455-6677-8899-aAbBcCdDeEfF"),
            [
                0x33, 0x22, 0x11, 0x00, 0x55, 0x44, 0x77, 0x66, 0x88, 0x99, 0xaa, 0xbb, 0xcc, 0xdd,
                0xee, 0xff
            ]
        );
    }

    #[test]
    fn parses_synthetic_image() {
        let img = synthetic_ovmf(
            16,
            &[
                (0x80_0000, 0x9000, 1),
                (0x80_9000, 0x1000, 2),
                (0x80_f000, 0x1000, 0x10),
            ],
        );
        let ovmf = Ovmf::parse(img).unwrap();
        assert_eq!(ovmf.gpa(), FOUR_GB - 16 * 4096);
        assert_eq!(ovmf.sev_es_reset_eip().unwrap(), 0xffff_f000);
        assert_eq!(ovmf.sev_hashes_table_gpa().unwrap(), 0x80_f000);
        assert_eq!(ovmf.sections().len(), 3);
        assert_eq!(ovmf.sections()[1].section_type, SectionType::SnpSecrets);
        assert!(ovmf.has_kernel_hashes_section());
    }

    #[test]
    fn rejects_broken_images() {
        assert_eq!(Ovmf::parse(vec![]).unwrap_err(), OvmfError::BadSize(0));
        assert_eq!(
            Ovmf::parse(vec![0; 4097]).unwrap_err(),
            OvmfError::BadSize(4097)
        );
        assert_eq!(
            Ovmf::parse(vec![0; 8192]).unwrap_err(),
            OvmfError::NoFooterTable
        );
        let mut img = synthetic_ovmf(4, &[(0x1000, 0x1000, 7)]);
        assert_eq!(
            Ovmf::parse(img.clone()).unwrap_err(),
            OvmfError::UnknownSectionType(7)
        );
        // Corrupt the ASEV signature.
        let meta = img.len() - 2 * PAGE_SIZE;
        img[meta] = b'X';
        assert!(matches!(
            Ovmf::parse(img).unwrap_err(),
            OvmfError::MalformedMetadata(_)
        ));
        // Footer claims a table longer than the image.
        let mut img = synthetic_ovmf(4, &[]);
        let at = img.len() - FOOTER_GAP - ENTRY_HEADER_LEN;
        img[at..at + 2].copy_from_slice(&0xfff0u16.to_le_bytes());
        assert!(matches!(
            Ovmf::parse(img).unwrap_err(),
            OvmfError::MalformedTable(_)
        ));
    }
}
