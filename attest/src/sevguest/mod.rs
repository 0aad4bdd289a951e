//! Hardware report providers for an SEV-SNP guest: configfs-tsm where present,
//! else the SNP_GET_EXT_REPORT / SNP_GET_REPORT ioctls on /dev/sev-guest.

mod device;
mod firmware_error;
mod tsm;
pub mod uapi;

pub use device::{SevGuestDevice, SEV_GUEST_DEVICE};
pub use firmware_error::FirmwareError;
pub use tsm::{ConfigfsTsm, TSM_REPORT_DIR};

use std::path::Path;

use crate::provider::ReportProvider;

/// The hardware provider: configfs-tsm if its report directory exists, else
/// /dev/sev-guest if it exists; None when this is not an SEV-SNP guest.
pub fn detect() -> Option<Box<dyn ReportProvider>> {
    if Path::new(TSM_REPORT_DIR).is_dir() {
        log::info!("attestation provider: configfs-tsm ({TSM_REPORT_DIR})");
        return Some(Box::new(ConfigfsTsm::new()));
    }
    if Path::new(SEV_GUEST_DEVICE).exists() {
        log::info!("attestation provider: {SEV_GUEST_DEVICE} ioctl");
        return Some(Box::new(SevGuestDevice::new()));
    }
    None
}

/// Converts the host's certificate table (GHCB cert_table) into a PEM bundle,
/// or None if the host supplied no (usable) certificates. The table is host
/// input: it is only used as a hint for the verifier, never trusted here.
pub(crate) fn cert_table_to_pem(table: &[u8]) -> Option<Vec<u8>> {
    if table.iter().all(|b| *b == 0) {
        return None;
    }
    match crate::chain::chain_from_cert_table(table) {
        Ok(chain) => Some(chain.to_pem_bundle()),
        Err(e) => {
            log::warn!("ignoring the host's certificate table: {e}");
            None
        }
    }
}
