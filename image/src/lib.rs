//! The measured guest image: a reproducible initramfs, the image manifest and
//! the SNP launch digest.
//!
//! * [`cpio`]: a deterministic newc writer for the initramfs.
//! * [`measure`]: the SNP launch digest, identical to sev-snp-measure's.
//! * [`manifest`]: `manifest.json`, what is published and recomputed.
//! * [`bundle`]: assembling an image directory from init, kernel and firmware.

pub mod bundle;
pub mod cpio;
pub mod manifest;
pub mod measure;

pub use bundle::{write_image, ExtraFile, ImageSpec, DEFAULT_CMDLINE};
pub use cpio::Initramfs;
pub use manifest::{ImageFiles, ImageManifest, ManifestCheck, Mismatch};
pub use measure::{GuestFeatures, LaunchDigest, MeasureInputs, VcpuConfig, VcpuType, VmmType};
