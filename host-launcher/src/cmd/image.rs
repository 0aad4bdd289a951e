//! `kettle image`.

use std::process::ExitCode;

/// Options of `kettle image`.
#[derive(clap::Args)]
pub struct ImageArgs {}

/// Runs `kettle image`.
pub fn run(_args: ImageArgs) -> ExitCode {
    log::error!("kettle image is not implemented yet");
    ExitCode::from(crate::EXIT_CANNOT_RUN)
}
