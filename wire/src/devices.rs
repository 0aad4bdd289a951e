//! How the host wires the guest, by name: QEMU sets these disk serials and
//! port names and `kettle image` puts the CA roots at their path; kettle-init
//! looks them up. Also how a path becomes a QEMU option value, for every
//! QEMU command line made from Rust (the host's and the test kit's).

use std::ffi::OsString;
use std::path::Path;

/// Serial of the request disk (`-drive ...,serial=kettle-request`; read-only).
pub const REQUEST_DISK_SERIAL: &str = "kettle-request";
/// Serial of the cache disk (cached mode; read-only).
pub const CACHE_DISK_SERIAL: &str = "kettle-cache";
/// Serial of the output disk (read-write).
pub const OUTPUT_DISK_SERIAL: &str = "kettle-output";
/// The virtio-serial port the simulated PSP answers on.
pub const PSP_PORT: &str = kettle_attest::simulated::PORT_NAME;
/// virtio-blk exposes whole sectors: disk images are padded to a multiple of this.
pub const SECTOR_BYTES: u64 = 512;
/// Where the image keeps the CA roots upstream mode trusts (a PEM bundle in the measured initramfs).
pub const GUEST_CA_ROOTS: &str = "/etc/kettle/ca-roots.pem";

/// A path as a QEMU option value: sub-options are separated by commas, so a literal
/// comma is doubled (`/a,b` -> `/a,,b`).
pub fn qemu_escape_commas(path: &Path) -> OsString {
    let s = path.as_os_str();
    match s.to_str() {
        Some(t) => OsString::from(t.replace(',', ",,")),
        // Non-UTF-8 paths cannot contain an ASCII comma that we could not see; pass through.
        None => s.to_os_string(),
    }
}

/// QEMU's `-drive` value for the raw disk image `path` as drive `id` (a virtio-blk
/// device then names it with `drive=id`), read-only when `readonly`.
pub fn qemu_drive(id: &str, path: &Path, readonly: bool) -> OsString {
    let mut drive = OsString::from("file=");
    drive.push(qemu_escape_commas(path));
    drive.push(format!(",if=none,id={id},format=raw"));
    if readonly {
        drive.push(",readonly=on");
    }
    drive
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths_in_qemu_options_keep_their_commas() {
        assert_eq!(
            qemu_escape_commas(Path::new("/w,x/a,b.img")),
            OsString::from("/w,,x/a,,b.img")
        );
        assert_eq!(
            qemu_drive("req", Path::new("/w,x/r.img"), true),
            OsString::from("file=/w,,x/r.img,if=none,id=req,format=raw,readonly=on")
        );
        assert_eq!(
            qemu_drive("disk0", Path::new("/d/a.img"), false),
            OsString::from("file=/d/a.img,if=none,id=disk0,format=raw")
        );
    }
}
