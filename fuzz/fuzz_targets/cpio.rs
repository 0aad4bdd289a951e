//! The newc reader the host runs on a published initramfs: `read_file` (to take
//! /init for local mode) and `list` (to compare it with its manifest).
#![no_main]

use kettle_image::cpio::{list, read_file};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    for path in ["init", "/init", "etc/kettle/roots.pem"] {
        if let Ok(Some(bytes)) = read_file(data, path) {
            assert!(bytes.len() <= data.len());
        }
    }
    if let Ok(entries) = list(data) {
        let total: usize = entries.iter().map(|e| e.data.len()).sum();
        assert!(total <= data.len());
        // What list shows, read_file finds (the first regular file of that name).
        if let Some(e) = entries.iter().find(|e| e.is_file() && e.path == "init") {
            assert_eq!(
                read_file(data, "init").expect("listed"),
                Some(e.data.clone())
            );
        }
    }
});
