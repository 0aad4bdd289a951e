//! The image manifest as the host reads it: the expected launch digest and
//! the files and parameters QEMU must boot with.

use std::path::Path;

/// The launch digest published in the manifest at `path`.
pub fn launch_digest_of(path: &Path) -> Result<[u8; 48], String> {
    let bytes = std::fs::read(path).map_err(|e| format!("cannot read: {e}"))?;
    let v: serde_json::Value =
        serde_json::from_slice(&bytes).map_err(|e| format!("not JSON: {e}"))?;
    let hex = v
        .get("launch_digest")
        .and_then(|d| d.as_str())
        .ok_or("no launch_digest field: is this a Kettle image manifest (`kettle image`)?")?;
    crate::verifier::parse_measurement(hex)
}
