//! The end-to-end tests that boot the image under QEMU (TCG), as one test
//! binary (one link, not one per file): each file here is a module, as
//! ripgrep and rustls fold theirs.
//!
//! The tests of one binary run in parallel threads, and a VM under TCG takes
//! whole cores and (for a cargo build) 6 GiB, so every test that boots one
//! first takes [`small_vm`] or [`big_vm`]: at most as many VMs run at once as
//! when each file was its own binary (two small ones side by side, as the two
//! tests of hostile.rs always ran; a cargo build alone).

use std::path::PathBuf;
use std::sync::{PoisonError, RwLock, RwLockReadGuard, RwLockWriteGuard};

use kettle_testkit::{require_artifact, Requirement};

mod boot;
mod build_verify;
mod cargo;
mod cargo_derive;
mod hostile;
mod init;
mod kernel_config;

/// The built image directory (`build/image`), or None when it is absent and the
/// environment lets the test skip (it fails in CI).
pub fn built_image() -> Option<PathBuf> {
    let manifest = require_artifact("image/manifest.json", "image", Requirement::from_env())?;
    Some(manifest.parent()?.to_path_buf())
}

/// [`built_image`] and [`small_vm`] held, for a test that boots one small VM of it.
pub fn image_and_small_vm() -> Option<(PathBuf, RwLockReadGuard<'static, ()>)> {
    let image = built_image()?;
    Some((image, small_vm()))
}

/// The VMs this process boots: shared by small VMs, held alone by big ones.
static VMS: RwLock<()> = RwLock::new(());

/// Held while a small VM (up to 1 GiB, one or two vCPUs) runs: one may run beside it.
pub fn small_vm() -> RwLockReadGuard<'static, ()> {
    // A test that failed holding the lock says so itself; the next one may still boot.
    VMS.read().unwrap_or_else(PoisonError::into_inner)
}

/// Held while a big VM (a cargo build: 6 GiB, tens of minutes under TCG) runs, alone.
pub fn big_vm() -> RwLockWriteGuard<'static, ()> {
    VMS.write().unwrap_or_else(PoisonError::into_inner)
}
