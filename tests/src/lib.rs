//! Helpers shared by the end-to-end tests in `tests/tests/`: where the built
//! guest artifacts are, how to make a throwaway initramfs, and how to boot a
//! kernel under QEMU (TCG) while watching its serial console.

pub mod artifacts;
pub mod cli;
pub mod error;
pub mod initramfs;
pub mod qemu;

pub use artifacts::{build_dir, repo_root, require_artifact, Requirement};
pub use cli::{commit_sample, kettle_binary, run, sha256_hex, text};
pub use error::TestError;
pub use initramfs::{compile_static_rust, pack_newc_with_system_cpio};
pub use qemu::{Qemu, QemuConfig};
