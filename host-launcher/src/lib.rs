//! The library behind the `kettle` CLI: QEMU's command line, the input cache
//! and the build pipeline's host-side steps. The formats it shares with the
//! guest are `kettle-wire`'s; the verifier is `kettle-verify`. The binary
//! (`src/main.rs`) is a thin clap layer over these modules.
// Unit tests build fixtures with small casts; the lint guards the formats themselves.
#![cfg_attr(test, allow(clippy::cast_possible_truncation))]

/// Exit code when a command could not run at all (bad input, missing tools).
pub const EXIT_CANNOT_RUN: u8 = 2;

pub mod build_pipeline;
pub mod bundles;
pub mod console;
pub mod download;
pub mod inputs;
pub mod interrupt;
pub mod kds;
pub mod outdir;
pub mod project;
pub mod psp_host;
pub mod qemu;
pub mod source;
pub mod store;
pub mod vm;
