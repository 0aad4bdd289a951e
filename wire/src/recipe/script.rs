//! `script/v1`: the argv of kettle.toml's `[build] command`, run in the source
//! tree. It reads no lockfile: its inputs are the commit, the rootfs and, when
//! pinned, a Rust toolchain, which it sees set up as cargo-build/v1 does
//! (CARGO_HOME offline, over an empty vendor directory).

use kettle_provenance::ids;

use super::cargo::{cargo_config, cargo_environment, CARGO_CONFIG_FILE, RUST_TOOLCHAIN_PROGRAMS};
use super::{
    bad, BuildRecipe, PackageEcosystem, Pin, Recipe, RecipeError, RecipeOptions, SourceCheckError,
    SourceTree,
};

/// The `script/v1` recipe.
pub struct Script;

impl BuildRecipe for Script {
    fn name(&self) -> &'static str {
        "script/v1"
    }

    fn uri(&self) -> &'static str {
        ids::BUILD_TYPE_SCRIPT
    }

    fn check(
        &self,
        command: Option<&[String]>,
        _toolchain: Option<&Pin>,
    ) -> Result<(), RecipeError> {
        match command {
            None => Err(bad(
                "build.command",
                "script/v1 needs a command (argv list)",
            )),
            Some(c) if c.is_empty() || c.iter().any(|a| a.contains('\0')) => Err(bad(
                "build.command",
                "must be a non-empty argv without NUL bytes",
            )),
            Some(_) => Ok(()),
        }
    }

    fn ecosystem(&self) -> Option<&'static dyn PackageEcosystem> {
        None
    }

    fn options_section(&self) -> Option<&'static str> {
        None
    }

    fn parse_options(&self, section: Option<toml::Table>) -> Result<RecipeOptions, RecipeError> {
        match section {
            None => Ok(RecipeOptions::None),
            // Recipe::parse never hands one over (script/v1 names no section); refused here
            // too, so the recipe itself holds the rule.
            Some(_) => Err(bad("(section)", "script/v1 reads no options section")),
        }
    }

    fn check_source(
        &self,
        _recipe: &Recipe,
        _tree: &dyn SourceTree,
    ) -> Result<(), SourceCheckError> {
        // The command is the project's own: nothing here says what it makes or needs.
        Ok(())
    }

    fn toolchain_programs(&self) -> &'static [&'static str] {
        RUST_TOOLCHAIN_PROGRAMS
    }

    fn command(&self, recipe: &Recipe) -> Vec<String> {
        recipe.command.clone().unwrap_or_default()
    }

    fn environment(&self, _recipe: &Recipe, home: &str) -> Vec<(String, String)> {
        cargo_environment(home)
    }

    fn home_files(&self, dependencies_dir: &str) -> Vec<(&'static str, String)> {
        vec![(CARGO_CONFIG_FILE, cargo_config(dependencies_dir))]
    }
}
