//! How the host wires the guest, by name: QEMU sets these disk serials and
//! port names and `kettle image` puts the CA roots at their path; kettle-init
//! looks them up.

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
