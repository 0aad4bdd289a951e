//! The SNP attestation report: size/version checks, parsing via the `sev` crate,
//! and the fixed byte offsets the signature and the simulated PSP rely on.

use serde::Serialize;
use sev::firmware::guest::AttestationReport;
use sev::parser::ByteParser;

/// Size of an attestation report in bytes (versions 2, 3 and 5).
pub const REPORT_LEN: usize = 1184;
/// The report signature covers bytes `0..SIGNED_LEN`.
pub const SIGNED_LEN: usize = 0x2A0;
/// Offset of the signature block (r, s, reserved).
pub const SIGNATURE_OFFSET: usize = 0x2A0;
/// Length of one little-endian signature component (r or s) in the report.
pub const SIG_COMPONENT_LEN: usize = 72;
/// Report versions this crate understands (the ones the `sev` crate knows).
pub const KNOWN_VERSIONS: [u32; 3] = [2, 3, 5];
/// `sig_algo` value for ECDSA P-384 with SHA-384.
pub const SIG_ALGO_ECDSA_P384_SHA384: u32 = 1;
/// Guest policy bit that allows debugging (SNP ABI, GUEST_POLICY bit 19).
pub const POLICY_DEBUG_BIT: u64 = 1 << 19;

/// Byte offsets of report fields that are the same in every known version.
pub mod offsets {
    /// `version` (u32).
    pub const VERSION: usize = 0x00;
    /// `guest_svn` (u32).
    pub const GUEST_SVN: usize = 0x04;
    /// `policy` (u64).
    pub const POLICY: usize = 0x08;
    /// `vmpl` (u32).
    pub const VMPL: usize = 0x30;
    /// `sig_algo` (u32).
    pub const SIG_ALGO: usize = 0x34;
    /// `current_tcb` (u64).
    pub const CURRENT_TCB: usize = 0x38;
    /// `platform_info` (u64).
    pub const PLATFORM_INFO: usize = 0x40;
    /// `key_info` (u32): author key, mask chip key, signing key.
    pub const KEY_INFO: usize = 0x48;
    /// `report_data` (64 bytes).
    pub const REPORT_DATA: usize = 0x50;
    /// `measurement` (48 bytes).
    pub const MEASUREMENT: usize = 0x90;
    /// `host_data` (32 bytes).
    pub const HOST_DATA: usize = 0xC0;
    /// `report_id` (32 bytes).
    pub const REPORT_ID: usize = 0x140;
    /// `reported_tcb` (u64).
    pub const REPORTED_TCB: usize = 0x180;
    /// CPUID family / model / stepping (version 3 and later).
    pub const CPUID_FAM_ID: usize = 0x188;
    /// `chip_id` (64 bytes).
    pub const CHIP_ID: usize = 0x1A0;
    /// `committed_tcb` (u64).
    pub const COMMITTED_TCB: usize = 0x1E0;
    /// `current` build/minor/major.
    pub const CURRENT_VERSION: usize = 0x1E8;
    /// `committed` build/minor/major.
    pub const COMMITTED_VERSION: usize = 0x1EC;
    /// `launch_tcb` (u64).
    pub const LAUNCH_TCB: usize = 0x1F0;
    /// `launch_mit_vector` (u64, version 5).
    pub const LAUNCH_MIT_VECTOR: usize = 0x1F8;
    /// `current_mit_vector` (u64, version 5).
    pub const CURRENT_MIT_VECTOR: usize = 0x200;
}

/// Why a report could not be parsed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ReportError {
    /// The report is not 1184 bytes long.
    #[error("attestation report is {actual} bytes; an SNP report is exactly {REPORT_LEN} bytes")]
    WrongSize {
        /// The size that was given.
        actual: usize,
    },
    /// The report's version field is not one this verifier knows.
    #[error("attestation report version {0} is not supported (known versions: 2, 3, 5): its layout is not one this verifier parses (a newer SNP ABI's, e.g. version 6), so it is refused rather than misread")]
    UnknownVersion(u32),
    /// The `sev` crate rejected the report body.
    #[error("attestation report version {version} could not be parsed: {message}")]
    Malformed {
        /// The report version.
        version: u32,
        /// What the parser said.
        message: String,
    },
}

/// A TCB version as the VCEK certificate and the report's `reported_tcb` carry it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default, Serialize, serde::Deserialize)]
pub struct Tcb {
    /// FMC SVN (Turin and later only).
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub fmc: Option<u8>,
    /// PSP bootloader SVN.
    pub bootloader: u8,
    /// PSP OS (TEE) SVN.
    pub tee: u8,
    /// SNP firmware SVN.
    pub snp: u8,
    /// Lowest microcode patch level of all cores.
    pub microcode: u8,
}

impl Tcb {
    /// Encodes the TCB in the Milan/Genoa layout (bootloader, tee, 4 reserved, snp, microcode).
    pub fn to_legacy_bytes(&self) -> [u8; 8] {
        [
            self.bootloader,
            self.tee,
            0,
            0,
            0,
            0,
            self.snp,
            self.microcode,
        ]
    }
}

impl std::fmt::Display for Tcb {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        if let Some(fmc) = self.fmc {
            write!(f, "fmc={fmc} ")?;
        }
        write!(
            f,
            "bootloader={} tee={} snp={} microcode={}",
            self.bootloader, self.tee, self.snp, self.microcode
        )
    }
}

impl From<sev::firmware::host::TcbVersion> for Tcb {
    fn from(t: sev::firmware::host::TcbVersion) -> Self {
        Tcb {
            fmc: t.fmc,
            bootloader: t.bootloader,
            tee: t.tee,
            snp: t.snp,
            microcode: t.microcode,
        }
    }
}

/// How a processor generation lays out TCB_VERSION's 8 bytes (SNP ABI): Milan and Genoa
/// `bootloader, tee, 4 reserved, snp, microcode`; Turin (and Venice after it) `fmc,
/// bootloader, tee, snp, 3 reserved, microcode`. A verifier takes the layout from the AMD
/// root the chain verified under, never from a guess over the report's own bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TcbLayout {
    /// Milan and Genoa (and the simulated PSP, which signs in Genoa's layout).
    Legacy,
    /// Turin and later: an FMC SVN first.
    Turin,
}

impl TcbLayout {
    /// The layout of `product`'s reports.
    pub fn of(product: crate::chain::Product) -> TcbLayout {
        match product {
            crate::chain::Product::Turin => TcbLayout::Turin,
            _ => TcbLayout::Legacy,
        }
    }

    /// Reads the 8 TCB bytes in this layout.
    pub fn decode(self, b: [u8; 8]) -> Tcb {
        match self {
            TcbLayout::Legacy => Tcb {
                fmc: None,
                bootloader: b[0],
                tee: b[1],
                snp: b[6],
                microcode: b[7],
            },
            TcbLayout::Turin => Tcb {
                fmc: Some(b[0]),
                bootloader: b[1],
                tee: b[2],
                snp: b[3],
                microcode: b[7],
            },
        }
    }
}

/// The four TCBs a report carries, read in one layout.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ReportTcbs {
    /// The TCB the signing key was derived for (reported_tcb).
    pub reported: Tcb,
    /// The TCB the firmware runs now (current_tcb).
    pub current: Tcb,
    /// The TCB the firmware committed to (committed_tcb).
    pub committed: Tcb,
    /// The TCB at the guest's launch (launch_tcb).
    pub launch: Tcb,
}

/// A parsed attestation report together with its raw bytes.
#[derive(Debug, Clone)]
pub struct Report {
    raw: Vec<u8>,
    parsed: AttestationReport,
}

impl Report {
    /// Parses a report, rejecting wrong sizes and versions other than 2, 3 and 5.
    pub fn parse(bytes: &[u8]) -> Result<Report, ReportError> {
        check_size_and_version(bytes)?;
        let version = read_u32(bytes, offsets::VERSION);
        let parsed = AttestationReport::from_bytes(bytes).map_err(|e| ReportError::Malformed {
            version,
            message: e.to_string(),
        })?;
        Ok(Report {
            raw: bytes.to_vec(),
            parsed,
        })
    }

    /// The raw report bytes.
    pub fn bytes(&self) -> &[u8] {
        &self.raw
    }

    /// The `sev` crate's view of the report.
    pub fn fields(&self) -> &AttestationReport {
        &self.parsed
    }

    /// Report format version.
    pub fn version(&self) -> u32 {
        self.parsed.version
    }

    /// The launch measurement.
    pub fn measurement(&self) -> [u8; 48] {
        self.parsed.measurement
    }

    /// The 64 bytes of guest-supplied report data.
    pub fn report_data(&self) -> [u8; 64] {
        self.parsed.report_data
    }

    /// The VMPL the report was requested at.
    pub fn vmpl(&self) -> u32 {
        self.parsed.vmpl
    }

    /// The raw 64-bit guest policy.
    pub fn guest_policy(&self) -> u64 {
        read_u64(&self.raw, offsets::POLICY)
    }

    /// Whether the guest policy allows debugging.
    pub fn debug_allowed(&self) -> bool {
        self.guest_policy() & POLICY_DEBUG_BIT != 0
    }

    /// The TCB the signing VCEK was derived for.
    pub fn reported_tcb(&self) -> Tcb {
        self.parsed.reported_tcb.into()
    }

    /// The TCB the firmware runs now.
    pub fn current_tcb(&self) -> Tcb {
        self.parsed.current_tcb.into()
    }

    /// The TCB the firmware has committed to (it refuses to roll back below it).
    pub fn committed_tcb(&self) -> Tcb {
        self.parsed.committed_tcb.into()
    }

    /// The TCB when the guest was launched.
    pub fn launch_tcb(&self) -> Tcb {
        self.parsed.launch_tcb.into()
    }

    /// The four TCBs read in `layout` (the one the chain's AMD root names): the `sev` crate
    /// guesses a version 2 report's layout from its chip_id, which a masked chip id misleads.
    pub fn tcbs_in(&self, layout: TcbLayout) -> ReportTcbs {
        let at = |offset: usize| {
            let bytes: [u8; 8] = self.raw[offset..offset + 8]
                .try_into()
                .expect("a parsed report is 1184 bytes");
            layout.decode(bytes)
        };
        ReportTcbs {
            reported: at(offsets::REPORTED_TCB),
            current: at(offsets::CURRENT_TCB),
            committed: at(offsets::COMMITTED_TCB),
            launch: at(offsets::LAUNCH_TCB),
        }
    }

    /// The key that signed the report (key_info bits 2..4: 0 VCEK, 1 VLEK, 7 none).
    pub fn signing_key(&self) -> u32 {
        crate::signature::signing_key_field(&self.raw)
    }

    /// The chip identifier (all zero when MaskChipId is set).
    pub fn chip_id(&self) -> [u8; 64] {
        self.parsed.chip_id
    }

    /// A serializable summary of the fields an auditor looks at.
    pub fn summary(&self) -> ReportSummary {
        let p = &self.parsed;
        ReportSummary {
            version: p.version,
            guest_svn: p.guest_svn,
            guest_policy: format!("0x{:x}", self.guest_policy()),
            debug_allowed: self.debug_allowed(),
            vmpl: p.vmpl,
            sig_algo: p.sig_algo,
            measurement: hex::encode(p.measurement),
            report_data: hex::encode(p.report_data),
            host_data: hex::encode(p.host_data),
            chip_id: hex::encode(p.chip_id),
            reported_tcb: self.reported_tcb(),
            current_tcb: p.current_tcb.into(),
            committed_tcb: p.committed_tcb.into(),
            launch_tcb: p.launch_tcb.into(),
            cpuid: p.cpuid_fam_id.map(|f| {
                format!(
                    "family 0x{:02x} model 0x{:02x} stepping 0x{:02x}",
                    f,
                    p.cpuid_mod_id.unwrap_or(0),
                    p.cpuid_step.unwrap_or(0)
                )
            }),
        }
    }
}

/// The report fields shown to a human or written as JSON.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ReportSummary {
    /// Report format version.
    pub version: u32,
    /// Guest SVN.
    pub guest_svn: u32,
    /// Guest policy, hex.
    pub guest_policy: String,
    /// Whether the guest policy allows debugging.
    pub debug_allowed: bool,
    /// Requesting VMPL.
    pub vmpl: u32,
    /// Signature algorithm (1 = ECDSA P-384 SHA-384).
    pub sig_algo: u32,
    /// Launch measurement, hex.
    pub measurement: String,
    /// Report data, hex.
    pub report_data: String,
    /// Host data, hex.
    pub host_data: String,
    /// Chip id, hex.
    pub chip_id: String,
    /// TCB the VCEK is for.
    pub reported_tcb: Tcb,
    /// Current TCB.
    pub current_tcb: Tcb,
    /// Committed TCB.
    pub committed_tcb: Tcb,
    /// TCB at launch.
    pub launch_tcb: Tcb,
    /// CPUID identification (version 3 and later).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub cpuid: Option<String>,
}

/// Checks only the size and the version field.
pub fn check_size_and_version(bytes: &[u8]) -> Result<u32, ReportError> {
    if bytes.len() != REPORT_LEN {
        return Err(ReportError::WrongSize {
            actual: bytes.len(),
        });
    }
    let version = read_u32(bytes, offsets::VERSION);
    if !KNOWN_VERSIONS.contains(&version) {
        return Err(ReportError::UnknownVersion(version));
    }
    Ok(version)
}

/// Reads a little-endian u32 at `at` (caller guarantees bounds).
pub(crate) fn read_u32(bytes: &[u8], at: usize) -> u32 {
    u32::from_le_bytes(bytes[at..at + 4].try_into().expect("4-byte slice"))
}

/// Reads a little-endian u64 at `at` (caller guarantees bounds).
pub(crate) fn read_u64(bytes: &[u8], at: usize) -> u64 {
    u64::from_le_bytes(bytes[at..at + 8].try_into().expect("8-byte slice"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testdata;

    #[test]
    fn parses_real_milan_report() {
        let bytes = testdata::milan_report();
        let r = Report::parse(&bytes).unwrap();
        assert_eq!(r.version(), 2);
        assert_eq!(r.vmpl(), 0);
        assert_eq!(
            r.reported_tcb(),
            Tcb {
                fmc: None,
                bootloader: 3,
                tee: 0,
                snp: 8,
                microcode: 0x73
            }
        );
        assert!(!r.debug_allowed());
        assert_eq!(r.guest_policy(), 0x30000);
        assert_eq!(
            r.measurement().to_vec(),
            bytes[offsets::MEASUREMENT..offsets::MEASUREMENT + 48].to_vec()
        );
    }

    #[test]
    fn rejects_wrong_sizes() {
        let bytes = testdata::milan_report();
        for len in [0, 1, 1183, 1185, 4000] {
            let mut b = bytes.clone();
            b.resize(len, 0);
            assert_eq!(
                Report::parse(&b).unwrap_err(),
                ReportError::WrongSize { actual: len }
            );
        }
    }

    #[test]
    fn rejects_unknown_versions() {
        let bytes = testdata::milan_report();
        for v in [0u32, 1, 4, 6, 0xffff_ffff] {
            let mut b = bytes.clone();
            b[0..4].copy_from_slice(&v.to_le_bytes());
            let err = Report::parse(&b).unwrap_err();
            assert_eq!(err, ReportError::UnknownVersion(v));
            assert!(err.to_string().contains("not supported"), "{err}");
            assert!(
                err.to_string()
                    .starts_with(&format!("attestation report version {v} ")),
                "the version is named: {err}"
            );
        }
    }

    #[test]
    fn tcb_layouts_read_the_real_reports_as_the_sev_crate_does() {
        let milan = Report::parse(&testdata::milan_report()).unwrap();
        let tcbs = milan.tcbs_in(TcbLayout::Legacy);
        assert_eq!(tcbs.reported, milan.reported_tcb());
        assert_eq!(tcbs.current, milan.current_tcb());
        assert_eq!(tcbs.committed, milan.committed_tcb());
        assert_eq!(tcbs.launch, milan.launch_tcb());
        let turin = Report::parse(testdata::TURIN_V5.report).unwrap();
        let tcbs = turin.tcbs_in(TcbLayout::Turin);
        assert_eq!(tcbs.reported, turin.reported_tcb());
        assert!(tcbs.reported.fmc.is_some());
        assert_eq!(
            TcbLayout::Turin.decode([1, 2, 3, 4, 0, 0, 0, 8]),
            Tcb {
                fmc: Some(1),
                bootloader: 2,
                tee: 3,
                snp: 4,
                microcode: 8
            }
        );
    }

    #[test]
    fn legacy_tcb_layout_matches_real_report() {
        let bytes = testdata::milan_report();
        let r = Report::parse(&bytes).unwrap();
        assert_eq!(
            r.reported_tcb().to_legacy_bytes().to_vec(),
            bytes[offsets::REPORTED_TCB..offsets::REPORTED_TCB + 8].to_vec()
        );
    }
}
