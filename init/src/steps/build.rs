//! The build step: run the recipe in the sandbox. What the build sees (binds,
//! environment, limits) is [`crate::sandbox::spec_for`]'s to define (with the
//! recipe's command, environment and home files); this step
//! only readies the directories, asks for the spec and runs it.

use kettle_wire::{Limits, Recipe};
use thiserror::Error;

use super::unpack::BuildRoot;
use super::{Tools, WorkDir};
use crate::error::{InStep, Step, StepError};
use crate::sandbox::{self, BuildDirs, SandboxError};

/// Errors of the build step.
#[derive(Debug, Error)]
pub enum BuildError {
    /// The sandbox could not be prepared or started, or the command failed.
    #[error(transparent)]
    Sandbox(#[from] SandboxError),
}

/// Runs `recipe` on `root` in the sandbox, in the verified source tree.
pub fn run(
    recipe: &Recipe,
    root: &BuildRoot,
    commit: &str,
    commit_raw: &[u8],
    limits: &Limits,
    tools: &Tools,
    work: &WorkDir,
) -> Result<((), String), StepError> {
    let dirs = BuildDirs {
        root: root.root.clone(),
        src: work.src(),
        home: work.home(),
        vendor: work.vendor(),
        toolchain: root.toolchain.clone(),
        host_tools: matches!(tools, Tools::Host { .. }),
    };
    sandbox::prepare_dirs(recipe, &dirs)
        .map_err(BuildError::from)
        .in_step(Step::Build)?;
    let spec = sandbox::spec_for(recipe, &dirs, commit, commit_raw, limits);
    sandbox::run(&spec)
        .map_err(BuildError::from)
        .in_step(Step::Build)?;
    Ok(((), String::new()))
}
