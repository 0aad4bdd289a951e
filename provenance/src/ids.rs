//! The one place Kettle's builder.id and buildType URIs (and the in-toto /
//! SLSA type URIs) are defined; producers and verifier defaults both use these.

/// Declares `BASE` once and derives every Kettle URI from it at compile time.
macro_rules! kettle_uris {
    ($base:literal) => {
        /// Base URI under which every Kettle builder id and build type lives.
        pub const BASE: &str = $base;
        /// `builder.id` of the Kettle TEE builder (the measured guest image).
        pub const BUILDER_ID: &str = concat!($base, "/tee-builder/v1");
        /// `buildType` of the cargo recipe (`cargo build --locked --offline`).
        pub const BUILD_TYPE_CARGO: &str = concat!($base, "/cargo-build/v1");
        /// `buildType` of the generic script recipe.
        pub const BUILD_TYPE_SCRIPT: &str = concat!($base, "/script/v1");
    };
}

kettle_uris!("https://kettle.confidential.ai");

/// `_type` of an in-toto Statement v1.
pub const STATEMENT_TYPE: &str = "https://in-toto.io/Statement/v1";
/// `predicateType` of SLSA build provenance v1 (covers SLSA 1.0 through 1.2).
pub const PREDICATE_TYPE_SLSA: &str = "https://slsa.dev/provenance/v1";

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn uris_hang_off_one_base() {
        for uri in [BUILDER_ID, BUILD_TYPE_CARGO, BUILD_TYPE_SCRIPT] {
            assert!(uri.starts_with(BASE), "{uri} is not under {BASE}");
            assert!(uri.ends_with("/v1"), "{uri} is not versioned");
        }
        assert_eq!(BUILDER_ID, "https://kettle.confidential.ai/tee-builder/v1");
        assert_eq!(
            BUILD_TYPE_CARGO,
            "https://kettle.confidential.ai/cargo-build/v1"
        );
        assert_eq!(
            BUILD_TYPE_SCRIPT,
            "https://kettle.confidential.ai/script/v1"
        );
    }
}
