//! `kettle verify`.

use std::process::ExitCode;

/// Options of `kettle verify`.
#[derive(clap::Args)]
pub struct VerifyArgs {}

/// Runs `kettle verify`.
pub fn run(_args: VerifyArgs) -> ExitCode {
    log::error!("kettle verify is not implemented yet");
    ExitCode::from(crate::EXIT_CANNOT_RUN)
}
