//! Report providers: where a guest gets its SNP attestation report from.

use std::fmt;

/// What a report request returns.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Evidence {
    /// The raw attestation report (1184 bytes for report versions 2, 3 and 5).
    pub report: Vec<u8>,
    /// The ARK/ASK/VCEK chain as PEM, when the provider could supply it.
    pub cert_chain_pem: Option<Vec<u8>>,
    /// Which TEE produced the report.
    pub provider: Tee,
}

/// Which trusted execution environment signs a build's report: the one name
/// for this concept in the request, the guest's provider choice, the CLI's
/// `--tee` and the provenance's `kettle_teePlatform`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Tee {
    /// The real AMD Secure Processor, via configfs-tsm or /dev/sev-guest.
    SevSnp,
    /// The Kettle software PSP over a virtio-serial port (test keys; never trusted by default).
    Simulated,
}

impl Tee {
    /// The name recorded as internalParameters.kettle_teePlatform and in status.json.
    pub fn platform_name(self) -> &'static str {
        match self {
            Tee::SevSnp => "sev-snp",
            Tee::Simulated => "simulated",
        }
    }
}

impl fmt::Display for Tee {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.platform_name())
    }
}

/// Why text does not name a TEE.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0:?} is not a TEE: use snp (AMD SEV-SNP hardware) or simulated (Kettle's software PSP, test keys)")]
pub struct UnknownTee(pub String);

impl std::str::FromStr for Tee {
    type Err = UnknownTee;
    /// `snp` or `sev-snp`, `simulated`.
    fn from_str(s: &str) -> Result<Tee, UnknownTee> {
        match s {
            "snp" | "sev-snp" => Ok(Tee::SevSnp),
            "simulated" => Ok(Tee::Simulated),
            other => Err(UnknownTee(other.to_string())),
        }
    }
}

/// Why a report request failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum RequestError {
    /// An I/O error on a named path or channel.
    #[error("{what}: {source}")]
    Io {
        /// What was being done (path or channel).
        what: String,
        /// The underlying error.
        #[source]
        source: std::io::Error,
    },
    /// No virtio-serial port with the wanted name exists.
    #[error("no virtio-serial port named {name:?} (ports seen: {seen:?}); start the VM with the simulated PSP port (kettle build --tee simulated)")]
    PortNotFound {
        /// The wanted name.
        name: String,
        /// The names that were found.
        seen: Vec<String>,
    },
    /// The simulated PSP channel broke or spoke garbage.
    #[error(transparent)]
    Protocol(#[from] crate::simulated::protocol::ProtocolError),
    /// The simulated PSP refused the request.
    #[error("simulated PSP error {code}: {message}")]
    Simulated {
        /// Error code from the error frame.
        code: u32,
        /// Its message.
        message: String,
    },
    /// The AMD Secure Processor or the hypervisor refused the request.
    #[error("{what}: {error}")]
    Firmware {
        /// Which request.
        what: &'static str,
        /// The decoded exitinfo2 / status.
        error: crate::sevguest::FirmwareError,
    },
    /// configfs-tsm is backed by something other than sev_guest.
    #[error("configfs-tsm provider is {0:?}, expected \"sev_guest\" (is this an SEV-SNP guest?)")]
    WrongTsmProvider(String),
    /// Another writer changed the configfs-tsm request between our write and read.
    #[error("configfs-tsm report generation changed from {expected} to {found} while reading (another process used the same entry); retried {attempts} times")]
    GenerationChanged {
        /// Generation after our write.
        expected: u64,
        /// Generation seen when reading.
        found: u64,
        /// Attempts made.
        attempts: u32,
    },
    /// The returned report is not a report.
    #[error("bad report from the provider: {0}")]
    BadReport(String),
}

/// Something that can produce an SNP report for 64 bytes of report_data at VMPL 0.
pub trait ReportProvider {
    /// Requests one report binding `report_data`.
    fn request_report(&mut self, report_data: &[u8; 64]) -> Result<Evidence, RequestError>;
}

/// Picks the hardware provider: configfs-tsm if present, else /dev/sev-guest; None if neither exists.
pub fn detect_hardware() -> Option<Box<dyn ReportProvider>> {
    crate::sevguest::detect()
}
