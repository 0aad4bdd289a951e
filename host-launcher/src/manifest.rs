//! The image manifest as the host reads it: the published launch digest, and
//! the files and parameters QEMU must boot with.

use std::path::Path;

use kettle_image::ImageManifest;

/// Loads the manifest at `path`, saying what it is in errors.
pub fn load(path: &Path) -> Result<ImageManifest, String> {
    ImageManifest::load(path)
        .map_err(|e| format!("{e} (is this a manifest.json written by `kettle image`?)"))
}

/// The launch digest published in the manifest at `path`.
pub fn launch_digest_of(path: &Path) -> Result<[u8; 48], String> {
    Ok(load(path)?.launch_digest.0)
}
