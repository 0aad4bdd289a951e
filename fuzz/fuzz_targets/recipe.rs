//! kettle.toml, as read from the commit (bytes, then text).
#![no_main]

use kettle_wire::recipe::{check_relative, BuildType, Recipe};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(r) = Recipe::parse_bytes(data) {
        assert!(!r.outputs.is_empty());
        for out in &r.outputs {
            check_relative(out).expect("an accepted output path is relative");
        }
        match r.build_type {
            BuildType::Script => assert!(r.command.as_ref().is_some_and(|c| !c.is_empty())),
            BuildType::CargoBuild => assert!(r.command.is_none() && r.toolchain.is_some()),
        }
        assert_eq!(
            BuildType::from_name(r.build_type.name()),
            Some(r.build_type)
        );
    }
});
