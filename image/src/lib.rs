//! The measured guest image: a reproducible initramfs, the image manifest and
//! the SNP launch digest.
//!
//! * [`cpio`]: a deterministic newc writer for the initramfs.
//! * [`measure`]: the SNP launch digest, identical to sev-snp-measure's.
//! * [`manifest`]: `manifest.json`, what is published and recomputed.
//! * [`table`]: `launch-digests.json`, the digests for every offered vCPU type and count.
//! * [`audit`]: image files against the published manifest and table, each
//!   difference explained by the input that causes it.
//! * [`bundle`]: assembling an image directory from init, kernel and firmware.
//! * [`provenance`]: the image's own `provenance.json` (in-toto + SLSA), what it
//!   was built from and by which tools.
//! * [`verity`]: dm-verity hash trees appended to a disk, as `veritysetup format` writes them.
// Unit tests build fixtures with small casts; the lint guards the formats themselves.
#![cfg_attr(test, allow(clippy::cast_possible_truncation))]

pub mod audit;
pub mod bundle;
pub mod cpio;
pub mod manifest;
pub mod measure;
pub mod provenance;
pub mod table;
pub mod verity;

pub use bundle::{
    assemble, write_image, AssembledImage, ExtraFile, ExtraSource, ImageSpec, DEFAULT_CMDLINE,
};
pub use cpio::Initramfs;
pub use manifest::{ImageFiles, ImageManifest, ManifestCheck, Mismatch};
pub use measure::{GuestFeatures, LaunchDigest, MeasureInputs, VcpuConfig, VcpuType, VmmType};
pub use table::{LaunchDigestTable, TABLE_FILE};
