//! The measured guest image: a reproducible initramfs, the image manifest and
//! the SNP launch digest.

pub mod cpio;
pub mod measure;
