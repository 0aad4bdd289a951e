//! Hand-written tar streams for hostile-input tests: entries the `tar` crate
//! would refuse to write (`..`, absolute names, links out, devices) so they
//! reach the unpacker under test; and the entry names of a tar stream, for
//! tests that check what an archive holds.

/// A raw ustar entry: `kind` '0' file, '2' symlink, '1' hard link, '3' char device, '5' directory.
/// Written by hand so names and links the tar crate would refuse reach the unpacker.
pub fn entry(name: &str, kind: u8, link: &str, data: &[u8]) -> Vec<u8> {
    let mut h = [0u8; 512];
    h[..name.len()].copy_from_slice(name.as_bytes());
    let octal = |field: &mut [u8], v: u64| {
        let s = format!("{:0w$o}\0", v, w = field.len() - 1);
        field.copy_from_slice(s.as_bytes());
    };
    octal(&mut h[100..108], if kind == b'5' { 0o755 } else { 0o644 });
    octal(&mut h[108..116], 0);
    octal(&mut h[116..124], 0);
    octal(&mut h[124..136], data.len() as u64);
    octal(&mut h[136..148], 0);
    h[156] = kind;
    h[157..157 + link.len()].copy_from_slice(link.as_bytes());
    h[257..263].copy_from_slice(b"ustar\0");
    h[263..265].copy_from_slice(b"00");
    h[148..156].copy_from_slice(b"        ");
    let sum: u32 = h.iter().map(|b| *b as u32).sum();
    h[148..156].copy_from_slice(format!("{sum:06o}\0 ").as_bytes());
    let mut out = h.to_vec();
    out.extend_from_slice(data);
    out.resize(out.len().div_ceil(512) * 512, 0);
    out
}

/// `archive` (a tar stream) with `extra` entries added before its end.
pub fn with_entries(archive: &[u8], extra: &[Vec<u8>]) -> Vec<u8> {
    // Entries end where the two zero blocks of the end-of-archive marker begin.
    let mut end = 0;
    while end + 512 <= archive.len() && archive[end..end + 512].iter().any(|b| *b != 0) {
        let size = usize::from_str_radix(
            std::str::from_utf8(&archive[end + 124..end + 135])
                .unwrap()
                .trim_matches(|c: char| c == '\0' || c == ' '),
            8,
        )
        .unwrap_or(0);
        end += 512 + size.div_ceil(512) * 512;
    }
    let mut out = archive[..end].to_vec();
    for e in extra {
        out.extend_from_slice(e);
    }
    out.extend_from_slice(&[0u8; 1024]);
    out
}

/// The entry names of the tar stream `archive`, in order (panics on a malformed one).
pub fn entry_names(archive: &[u8]) -> Vec<String> {
    tar::Archive::new(archive)
        .entries()
        .unwrap()
        .map(|e| e.unwrap().path().unwrap().to_string_lossy().into_owned())
        .collect()
}
