//! The library behind the `kettle` CLI: QEMU's command line, the verifier of
//! build evidence, the input cache and the build pipeline's host-side steps.
//! The binary (`src/main.rs`) is a thin clap layer over these modules.

pub mod qemu;
pub mod verifier;
pub mod store;
pub mod download;
pub mod kds;
pub mod manifest;
pub mod source;
pub mod console;
pub mod vm;
pub mod outdir;
pub mod inputs;
pub mod psp_host;
