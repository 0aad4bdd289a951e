//! `kettle build`.

use std::process::ExitCode;

/// Options of `kettle build`.
#[derive(clap::Args)]
pub struct BuildArgs {}

/// Runs `kettle build`.
pub fn run(_args: BuildArgs) -> ExitCode {
    log::error!("kettle build is not implemented yet");
    ExitCode::from(crate::EXIT_CANNOT_RUN)
}
