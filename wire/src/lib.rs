//! The contract between the Kettle host and its guest: everything one side
//! writes and the other reads. Both `kettle-init` (the guest) and `kettle`
//! (the host CLI) depend on this crate, so neither links the other and no
//! format is spelled twice.
//!
//! * [`request`]: the request disk (what to build; untrusted).
//! * [`cache`]: the cache disk / inputs dir layout (content-addressed inputs).
//! * [`output`]: the output disk / output dir layout, status.json.
//! * [`recipe`]: the recipes (one module per build type behind one interface)
//!   and `kettle.toml`; [`inputs`]: the one answer to "which inputs does this
//!   recipe need".
//! * [`steps`]: the guest's step names and `error.json`; [`console`]: the
//!   console line format the host's progress display reads.
//! * [`devices`]: the disk serials and the PSP port name.
//! * [`unpack`]: the safe tar unpacker both sides use on untrusted archives.
//! * [`bundle_manifest`]: what a toolchain or rootfs bundle says it holds.
//! * `https` (feature `https`): the one TLS set-up over pinned roots, host and guest.
// Unit tests build fixtures with small casts; the lint guards the formats themselves.
#![cfg_attr(test, allow(clippy::cast_possible_truncation))]

pub mod bundle_manifest;
pub mod cache;
pub mod console;
pub mod devices;
#[cfg(feature = "https")]
pub mod https;
pub mod inputs;
pub mod output;
pub mod recipe;
pub mod request;
pub mod source_url;
pub mod steps;
pub mod unpack;

pub use inputs::{InputPin, PinSource};
pub use kettle_attest::Tee;
pub use kettle_provenance::git::ObjectFormat;
pub use kettle_provenance::Sha256Digest;
pub use output::BuildStatus;
pub use recipe::{BuildRecipe, BuildType, Dependency, PackageEcosystem, Pin, Recipe};
pub use request::{BuildRequest, FetchMode, Limits, Upstream};
pub use steps::{ErrorReport, Step};
