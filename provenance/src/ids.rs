//! The one place Kettle's builder.id and buildType URIs (and the in-toto /
//! SLSA type URIs) are defined; producers and verifier defaults both use these.

/// Declares `BASE` once and derives every Kettle URI from it at compile time.
macro_rules! kettle_uris {
    ($base:literal) => {
        /// Base URI under which every Kettle builder id and build type lives.
        pub const BASE: &str = $base;
        /// `builder.id` of a build in the measured image under AMD SEV-SNP: the
        /// only builder a verifier accepts by default.
        pub const BUILDER_ID_SEV_SNP: &str = concat!($base, "/tee-builder/v1");
        /// `builder.id` of a build in the image under the simulated PSP (test keys: no hardware isolation).
        pub const BUILDER_ID_SIMULATED: &str = concat!($base, "/simulated-builder/v1");
        /// `builder.id` of `kettle build --local` (no VM, no TEE, no evidence).
        pub const BUILDER_ID_LOCAL: &str = concat!($base, "/local-builder/v1");
        /// `buildType` of the cargo recipe (`cargo build --locked --offline`).
        pub const BUILD_TYPE_CARGO: &str = concat!($base, "/cargo-build/v1");
        /// `buildType` of the generic script recipe.
        pub const BUILD_TYPE_SCRIPT: &str = concat!($base, "/script/v1");
        /// `buildType` of the guest image build (`make image`: pinned kernel and edk2
        /// sources, kettle-init from Cargo.lock, CA roots; provenance.json of `kettle image`).
        pub const BUILD_TYPE_IMAGE: &str = concat!($base, "/image-build/v1");
        /// `builder.id` of `kettle image` on the platform team's own machine: not a TEE
        /// builder (nothing attests it; the image is trusted because it rebuilds bit for bit).
        pub const BUILDER_ID_IMAGE: &str = concat!($base, "/image-builder/v1");
    };
}

kettle_uris!("https://kettle.confidential.ai");

/// `_type` of an in-toto Statement v1.
pub const STATEMENT_TYPE: &str = "https://in-toto.io/Statement/v1";
/// `predicateType` of SLSA build provenance v1 (covers SLSA 1.0 through 1.2).
pub const PREDICATE_TYPE_SLSA: &str = "https://slsa.dev/provenance/v1";
/// `name` of the builderDependencies entry that is the image the build ran in
/// (digests: `sha256` of its manifest.json, `sha384` its SNP launch digest).
pub const IMAGE_DEPENDENCY: &str = "kettle-image";
/// `name` of the resolvedDependencies entry that is the built source commit.
pub const SOURCE_DEPENDENCY: &str = "source";

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn uris_hang_off_one_base() {
        for uri in [
            BUILDER_ID_SEV_SNP,
            BUILDER_ID_SIMULATED,
            BUILDER_ID_LOCAL,
            BUILD_TYPE_CARGO,
            BUILD_TYPE_SCRIPT,
        ] {
            assert!(uri.starts_with(BASE), "{uri} is not under {BASE}");
            assert!(uri.ends_with("/v1"), "{uri} is not versioned");
        }
        assert_eq!(
            BUILDER_ID_SEV_SNP,
            "https://kettle.confidential.ai/tee-builder/v1"
        );
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
