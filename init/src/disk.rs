//! Finding the host's virtio disks by serial (`-drive ...,serial=kettle-request`):
//! `/sys/block/vd*/serial` names each one, and devtmpfs provides `/dev/vd*`.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

/// Serial of the request disk.
pub const REQUEST_SERIAL: &str = "kettle-request";
/// Serial of the cache disk (cached mode).
pub const CACHE_SERIAL: &str = "kettle-cache";
/// Serial of the output disk.
pub const OUTPUT_SERIAL: &str = "kettle-output";

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

    #[test]
    fn finds_by_serial_not_by_order() {
        let tmp = tempfile::tempdir().unwrap();
        let sys = tmp.path().join("sys");
        for (name, serial) in [
            ("vda", "kettle-output\n"),
            ("vdb", "kettle-request\n"),
            ("sda", "kettle-cache"),
        ] {
            std::fs::create_dir_all(sys.join(name)).unwrap();
            std::fs::write(sys.join(name).join("serial"), serial).unwrap();
        }
        let dev = Path::new("/dev");
        assert_eq!(
            find_in(&sys, dev, REQUEST_SERIAL),
            Some(PathBuf::from("/dev/vdb"))
        );
        assert_eq!(
            find_in(&sys, dev, OUTPUT_SERIAL),
            Some(PathBuf::from("/dev/vda"))
        );
        // Only virtio disks count.
        assert_eq!(find_in(&sys, dev, CACHE_SERIAL), None);
    }
}
