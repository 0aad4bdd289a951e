//! What a hostile host slips into a source archive beside the verified tree, shared by
//! the hostile-host tests of the guest's pipeline in-process and in the VM.

use crate::tarball::entry;

/// The file the hook of [`git_dir_with_fsmonitor`] creates if git ever obeys it.
pub const FSMONITOR_PWNED: &str = "/tmp/pwned";

/// Tar entries of a `.git/` directory whose config sets `core.fsmonitor` (a command git
/// runs: `touch` [`FSMONITOR_PWNED`]); the tree hash skips a top-level `.git`.
pub fn git_dir_with_fsmonitor() -> Vec<Vec<u8>> {
    let config = format!("[core]\n\tfsmonitor = touch {FSMONITOR_PWNED}\n");
    vec![
        entry(".git/", b'5', "", b""),
        entry(".git/config", b'0', "", config.as_bytes()),
    ]
}

/// The I/O port of QEMU's `isa-debug-exit` device in the hostile-ACPI tests.
pub const DEBUG_EXIT_PORT: u16 = 0xf4;
/// The byte [`ssdt_writing_io_port`]'s AML stores; QEMU then exits with `(0x21 << 1) | 1`.
pub const DEBUG_EXIT_VALUE: u8 = 0x21;
/// QEMU's exit status if the guest ran the hostile AML: `isa-debug-exit` exits
/// with `(value << 1) | 1`.
pub const AML_RAN_EXIT_STATUS: i32 = ((DEBUG_EXIT_VALUE as i32) << 1) | 1;

/// The QEMU arguments a hostile host adds to hand the guest `ssdt` (a file
/// written by the caller) beside an `isa-debug-exit` device at [`DEBUG_EXIT_PORT`]:
/// if the guest kernel interprets the table's AML, QEMU exits with
/// [`AML_RAN_EXIT_STATUS`] during boot.
pub fn hostile_acpi_args(ssdt: &std::path::Path) -> Vec<String> {
    vec![
        "-acpitable".into(),
        format!("file={}", ssdt.display()),
        "-device".into(),
        format!("isa-debug-exit,iobase={DEBUG_EXIT_PORT:#x},iosize=0x01"),
    ]
}

/// A whole ACPI SSDT (header and AML) whose module-level code stores `value`
/// into a one-byte `SystemIO` operation region at `port`, the "BadAML" shape:
/// a kernel that loads the table runs the store at boot. Equivalent ASL:
///
/// ```text
/// DefinitionBlock ("", "SSDT", 2, "KETTLE", "BADAML", 1) {
///     OperationRegion (KTLR, SystemIO, port, 1)
///     Field (KTLR, ByteAcc, NoLock, Preserve) { KTLB, 8 }
///     Store (value, KTLB)
/// }
/// ```
pub fn ssdt_writing_io_port(port: u16, value: u8) -> Vec<u8> {
    let [port_lo, port_hi] = port.to_le_bytes();
    let mut aml = Vec::new();
    // OperationRegion (KTLR, SystemIO, WordConst port, One)
    aml.extend_from_slice(&[0x5b, 0x80]);
    aml.extend_from_slice(b"KTLR");
    aml.extend_from_slice(&[0x01, 0x0b, port_lo, port_hi, 0x01]);
    // Field (KTLR, ByteAcc) { KTLB, 8 }: PkgLength 11 covers itself and 10 bytes.
    aml.extend_from_slice(&[0x5b, 0x81, 0x0b]);
    aml.extend_from_slice(b"KTLR");
    aml.push(0x01);
    aml.extend_from_slice(b"KTLB");
    aml.push(0x08);
    // Store (ByteConst value, KTLB)
    aml.extend_from_slice(&[0x70, 0x0a, value]);
    aml.extend_from_slice(b"KTLB");

    let len = u32::try_from(36 + aml.len()).expect("a few dozen bytes");
    let mut table = Vec::with_capacity(36 + aml.len());
    table.extend_from_slice(b"SSDT");
    table.extend_from_slice(&len.to_le_bytes());
    table.push(2); // revision
    table.push(0); // checksum, set below
    table.extend_from_slice(b"KETTLE");
    table.extend_from_slice(b"BADAML  ");
    table.extend_from_slice(&1u32.to_le_bytes()); // OEM revision
    table.extend_from_slice(b"KTTL"); // creator id
    table.extend_from_slice(&1u32.to_le_bytes()); // creator revision
    table.extend_from_slice(&aml);
    let sum = table.iter().fold(0u8, |acc, b| acc.wrapping_add(*b));
    table[9] = 0u8.wrapping_sub(sum);
    table
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_hostile_ssdt_is_a_well_formed_table() {
        let t = ssdt_writing_io_port(DEBUG_EXIT_PORT, DEBUG_EXIT_VALUE);
        assert_eq!(&t[..4], b"SSDT");
        assert_eq!(
            u32::from_le_bytes(t[4..8].try_into().unwrap()) as usize,
            t.len()
        );
        // ACPI: all bytes of a table, checksum included, sum to zero.
        assert_eq!(t.iter().fold(0u8, |a, b| a.wrapping_add(*b)), 0);
        // The region is SystemIO (1) at the port, and the store writes the value.
        let aml = &t[36..];
        assert_eq!(&aml[..6], &[0x5b, 0x80, b'K', b'T', b'L', b'R']);
        assert_eq!(&aml[6..9], &[0x01, 0x0b, 0xf4]);
        assert!(aml.windows(3).any(|w| w == [0x70, 0x0a, 0x21]));
        assert_eq!(AML_RAN_EXIT_STATUS, 67);
    }
}
