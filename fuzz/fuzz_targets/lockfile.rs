//! Cargo.lock, as read from the commit.
#![no_main]

use kettle_wire::recipe::cargo::{dir_name, lockfile};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    if let Ok(crates) = lockfile::parse(text) {
        assert!(crates.windows(2).all(|w| w[0] < w[1]), "sorted and unique");
        for c in &crates {
            // The names become vendor directory names: never a path.
            let dir = dir_name(c);
            assert!(!dir.contains('/') && !dir.contains('\0') && !dir.starts_with('.'));
            assert!(dir != ".." && !c.name.is_empty() && !c.version.is_empty());
        }
    }
});
