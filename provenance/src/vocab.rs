//! The one vocabulary of Kettle's extension fields in a provenance: every
//! `internalParameters` key and dependency annotation the guest (or `kettle image`)
//! writes and a verifier reads. SLSA names extension fields `<vendor>_<field>`; Kettle's
//! are `kettle_` followed by the field in lowerCamelCase, as the predicate's
//! own fields are spelled (`kettle_refResolvedBy`).

// internalParameters.

/// The TEE the build ran under: `sev-snp`, `simulated`, or `none` (local mode).
pub const TEE_PLATFORM: &str = "kettle_teePlatform";
/// Whether the toolchain and root filesystem were the pinned ones (`true`), or the
/// host's own unverified tools (`false`, local mode with host tools).
pub const HERMETIC: &str = "kettle_hermetic";
/// `true` when the build used the host's unverified tools (absent otherwise).
pub const HOST_TOOLS: &str = "kettle_hostTools";
/// Who resolved the ref to the built commit: [`RESOLVED_BY_HOST`] (cached mode:
/// repository and ref are the requester's claim) or [`RESOLVED_BY_GUEST`].
pub const REF_RESOLVED_BY: &str = "kettle_refResolvedBy";
/// [`REF_RESOLVED_BY`]'s value when the build host resolved the ref.
pub const RESOLVED_BY_HOST: &str = "host";
/// [`REF_RESOLVED_BY`]'s value when the guest resolved the ref itself (upstream mode).
pub const RESOLVED_BY_GUEST: &str = "guest";
/// The ref as the request named it, when the provenance records (in
/// externalParameters.ref) the full name the guest resolved it to instead.
pub const REQUESTED_REF: &str = "kettle_requestedRef";
/// Where startedOn and finishedOn come from (the host's clock, unverified).
pub const CLOCK: &str = "kettle_clock";
/// The version of the Kettle builder that wrote the provenance.
pub const VERSION: &str = "kettle_version";
/// The RFC 6962 Merkle root (lowercase hex) of resolvedDependencies (`crate::merkle`).
pub const INPUT_MERKLE_ROOT: &str = "kettle_inputMerkleRoot";

// Annotations on resolvedDependencies and builderDependencies entries.

/// On the toolchain entry: `rustc -vV`'s first line, as the toolchain bundle's manifest says.
pub const RUSTC_VERSION: &str = "kettle_rustcVersion";
/// On each entry a bundle's own manifest listed: which bundle (`rootfs`). The bundle
/// publisher's word about its contents, not something the guest measured.
pub const LISTED_BY_BUNDLE: &str = "kettle_listedByBundle";
/// `true` on a toolchain or rootfs entry that names a host path nobody verified.
pub const UNVERIFIED_HOST_TOOL: &str = "kettle_unverifiedHostTool";
/// Who claims an entry (`host`: the image the host says the build ran in).
pub const CLAIMED_BY: &str = "kettle_claimedBy";

// The image's own provenance (`kettle image`): internalParameters and annotations.

/// The tools that built the kernel (an object: compiler, binutils, ...).
pub const KERNEL_TOOLS: &str = "kettle_kernelTools";
/// The tools that built OVMF.
pub const OVMF_TOOLS: &str = "kettle_ovmfTools";
/// On the source entry: the work tree had uncommitted changes when the image was built.
pub const WORKTREE_MODIFIED: &str = "kettle_worktreeModified";
/// What an entry is for (`kernel source (Debian package tarball)`).
pub const ROLE: &str = "kettle_role";
/// The pinned build timestamp an entry was built with.
pub const BUILD_TIMESTAMP: &str = "kettle_buildTimestamp";
/// The host a tool reported (`rustc -vV`'s `host:`).
pub const HOST: &str = "kettle_host";
/// The LLVM version a tool reported.
pub const LLVM: &str = "kettle_llvm";
/// Where in the guest an entry is installed (`/init`, the CA roots path).
pub const GUEST_PATH: &str = "kettle_guestPath";
/// How many roots a CA bundle holds.
pub const ROOTS: &str = "kettle_roots";
/// Where a CA bundle came from (`file (--ca-roots)`).
pub const SOURCE: &str = "kettle_source";

/// Every internalParameters key above.
pub const INTERNAL_PARAMETERS: [&str; 10] = [
    KERNEL_TOOLS,
    OVMF_TOOLS,
    TEE_PLATFORM,
    HERMETIC,
    HOST_TOOLS,
    REF_RESOLVED_BY,
    REQUESTED_REF,
    CLOCK,
    VERSION,
    INPUT_MERKLE_ROOT,
];

/// Every annotation key above.
pub const ANNOTATIONS: [&str; 12] = [
    WORKTREE_MODIFIED,
    ROLE,
    BUILD_TIMESTAMP,
    HOST,
    LLVM,
    GUEST_PATH,
    ROOTS,
    SOURCE,
    RUSTC_VERSION,
    LISTED_BY_BUNDLE,
    UNVERIFIED_HOST_TOOL,
    CLAIMED_BY,
];

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_key_is_kettle_underscore_lower_camel_case_and_unique() {
        let all: Vec<&str> = INTERNAL_PARAMETERS.into_iter().chain(ANNOTATIONS).collect();
        for key in &all {
            let field = key
                .strip_prefix("kettle_")
                .unwrap_or_else(|| panic!("{key} lacks the kettle_ vendor prefix"));
            assert!(
                field.starts_with(|c: char| c.is_ascii_lowercase())
                    && field.chars().all(|c| c.is_ascii_alphanumeric()),
                "{key}: the field is not lowerCamelCase"
            );
        }
        let mut unique = all.clone();
        unique.sort_unstable();
        unique.dedup();
        assert_eq!(unique.len(), all.len(), "a key is defined twice: {all:?}");
    }
}
