//! Finding the host's virtio disks by serial (`-drive ...,serial=<serial>`, the
//! serials being [`kettle_wire::devices`]'): `/sys/block/vd*/serial` names each
//! one, and devtmpfs provides `/dev/vd*`.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

/// The /dev node of the virtio disk whose serial is `serial`, looking under `sys_block`.
pub fn find_in(sys_block: &Path, dev: &Path, serial: &str) -> Option<PathBuf> {
    let mut names: Vec<String> = std::fs::read_dir(sys_block)
        .ok()?
        .filter_map(Result::ok)
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .filter(|n| n.starts_with("vd"))
        .collect();
    names.sort();
    names.into_iter().find_map(|n| {
        let s = std::fs::read_to_string(sys_block.join(&n).join("serial")).ok()?;
        (s.trim() == serial).then(|| dev.join(&n))
    })
}

/// Waits up to `timeout` for the disk with `serial` to appear (virtio probing is asynchronous).
pub fn wait_for_disk(serial: &str, timeout: Duration) -> Option<PathBuf> {
    let start = Instant::now();
    loop {
        if let Some(p) = find_in(Path::new("/sys/block"), Path::new("/dev"), serial) {
            if p.exists() {
                return Some(p);
            }
        }
        if start.elapsed() >= timeout {
            return None;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use kettle_wire::devices::{CACHE_DISK_SERIAL, OUTPUT_DISK_SERIAL, REQUEST_DISK_SERIAL};

    /// A stand-in for /sys/block: one directory per disk holding its `serial` file.
    fn fake_sys_block(disks: &[(&str, String)]) -> tempfile::TempDir {
        let sys = tempfile::tempdir().unwrap();
        for (name, serial) in disks {
            std::fs::create_dir_all(sys.path().join(name)).unwrap();
            std::fs::write(sys.path().join(name).join("serial"), serial).unwrap();
        }
        sys
    }

    #[test]
    fn finds_by_serial_not_by_order() {
        let sys = fake_sys_block(&[
            ("vda", format!("{OUTPUT_DISK_SERIAL}\n")),
            ("vdb", format!("{REQUEST_DISK_SERIAL}\n")),
            ("sda", CACHE_DISK_SERIAL.to_string()),
        ]);
        let sys = sys.path();
        let dev = Path::new("/dev");
        assert_eq!(
            find_in(sys, dev, REQUEST_DISK_SERIAL),
            Some(PathBuf::from("/dev/vdb"))
        );
        assert_eq!(
            find_in(sys, dev, OUTPUT_DISK_SERIAL),
            Some(PathBuf::from("/dev/vda"))
        );
        // Only virtio disks count.
        assert_eq!(find_in(sys, dev, CACHE_DISK_SERIAL), None);
    }
}
