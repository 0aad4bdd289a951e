//! The kettle CLI's integration tests as one test binary (one link, not one per
//! file): each file here is a module, as ripgrep and rustls fold theirs. Nothing
//! here boots a VM (those tests are the kettle-tests crate's, `tests/tests/`):
//! `kettle build` runs the testkit's stand-in for QEMU.

/// `kettle build`: errors, `--local`, signals, the stand-in guest, hostile output disks.
mod build;
/// `kettle verify`: simulated and real AMD evidence, hostile output directories, escaping.
mod verify;

/// `kettle generate` and the CI recipe's scripts (scripts/ci-build.sh, ci-verify.sh).
mod dist;
mod image_publish;
mod init_toolchain;
mod source_archive;
