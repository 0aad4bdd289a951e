//! Kettle's one test kit, shared by the crates' own tests, the end-to-end
//! tests in `tests/tests/` and the demo: where the built guest artifacts are,
//! git repositories ([`GitRepo`]) and committed sample projects, root
//! filesystems made from the host's binaries, pipeline scenarios ([`Scenario`]:
//! a project, its request and its inputs), an HTTPS test server, fixtures,
//! throwaway initramfs images, and QEMU boots under TCG with the serial
//! console watched.
// Unit tests build fixtures with small casts; the lint guards the formats themselves.
#![cfg_attr(test, allow(clippy::cast_possible_truncation))]

pub mod artifacts;
pub mod cli;
pub mod error;
pub mod evidence;
pub mod fixtures;
pub mod git;
pub mod hostile;
pub mod hostroot;
pub mod https;
pub mod initramfs;
pub mod qemu;
pub mod scenario;
pub mod stand_in;
pub mod tarball;

pub use artifacts::{
    build_dir, repo_root, require_artifact, require_cargo_cvm, CargoCvm, Requirement,
};
pub use cli::{
    build_simulated, cargo_sample_verified_in_cvm, commit_sample, kettle_binary,
    kettle_init_binary, run, sha256_hex, text,
};
pub use error::TestError;
pub use fixtures::CountingProvider;
pub use git::GitRepo;
pub use https::HttpsServer;
pub use initramfs::{compile_static_rust, pack_newc_with_system_cpio};
pub use qemu::{Qemu, QemuConfig};
pub use scenario::Scenario;
