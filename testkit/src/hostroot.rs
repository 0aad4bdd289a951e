//! Host-side helper (never used in the guest): a deterministic root filesystem
//! tar made from the host's own binaries and the shared libraries they load,
//! for the samples, the demo and the tests. Its SHA-256 is what a sample's
//! kettle.toml pins; the guest verifies it like any other rootfs.

use std::fs;
use std::io;
use std::path::PathBuf;
use std::process::Command;

/// Paths of the dynamic libraries `ldd` reports for `binary` (including the loader).
fn shared_libraries(binary: &PathBuf) -> io::Result<Vec<String>> {
    let out = Command::new("ldd").arg(binary).output()?;
    let text = String::from_utf8_lossy(&out.stdout);
    let mut libs = Vec::new();
    for line in text.lines() {
        let lib = match line.split("=>").nth(1) {
            Some(rest) => rest.split_whitespace().next(),
            None => line.split_whitespace().next(),
        };
        if let Some(lib) = lib.filter(|l| l.starts_with('/')) {
            libs.push(lib.to_string());
        }
    }
    Ok(libs)
}

/// A tar holding `/bin/<name>` for each of `binaries` (looked up in /usr/bin, then /bin),
/// `/bin/sh` (the host's dash or bash), and every shared library they need at the path
/// the loader looks for it. Entries are sorted, mtime 0, uid/gid 0, mode 0755, so the
/// same host gives the same bytes.
pub fn host_binaries_tar(binaries: &[&str]) -> io::Result<Vec<u8>> {
    let find = |name: &str| -> io::Result<PathBuf> {
        ["/usr/bin", "/bin"]
            .iter()
            .map(|d| PathBuf::from(d).join(name))
            .find(|p| p.is_file())
            .ok_or_else(|| {
                io::Error::new(
                    io::ErrorKind::NotFound,
                    format!("{name} is not in /usr/bin or /bin"),
                )
            })
    };
    let mut files: Vec<(String, PathBuf)> = Vec::new();
    let sh = find("dash").or_else(|_| find("bash"))?;
    let mut wanted: Vec<(String, PathBuf)> = vec![("bin/sh".into(), sh)];
    for name in binaries {
        wanted.push((format!("bin/{name}"), find(name)?));
    }
    for (name, host) in wanted {
        for lib in shared_libraries(&host)? {
            files.push((lib.trim_start_matches('/').to_string(), PathBuf::from(&lib)));
        }
        files.push((name, host));
    }
    files.sort();
    files.dedup_by(|a, b| a.0 == b.0);
    let mut b = tar::Builder::new(Vec::new());
    for (name, src) in files {
        let data = fs::read(&src)?;
        let mut h = tar::Header::new_gnu();
        h.set_size(data.len() as u64);
        h.set_mode(0o755);
        h.set_mtime(0);
        h.set_uid(0);
        h.set_gid(0);
        h.set_entry_type(tar::EntryType::Regular);
        b.append_data(&mut h, name, data.as_slice())?;
    }
    b.into_inner()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn deterministic_and_complete() {
        let a = host_binaries_tar(&["cat"]).unwrap();
        assert_eq!(a, host_binaries_tar(&["cat"]).unwrap());
        let names = crate::tarball::entry_names(&a);
        assert!(
            names.contains(&"bin/sh".to_string()) && names.contains(&"bin/cat".to_string()),
            "{names:?}"
        );
        assert!(names.iter().any(|n| n.contains("libc.so")), "{names:?}");
        assert!(host_binaries_tar(&["no-such-binary-here"]).is_err());
    }
}
