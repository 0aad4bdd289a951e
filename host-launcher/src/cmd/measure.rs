//! `kettle measure`.

use std::process::ExitCode;

/// Options of `kettle measure`.
#[derive(clap::Args)]
pub struct MeasureArgs {}

/// Runs `kettle measure`.
pub fn run(_args: MeasureArgs) -> ExitCode {
    log::error!("kettle measure is not implemented yet");
    ExitCode::from(crate::EXIT_CANNOT_RUN)
}
