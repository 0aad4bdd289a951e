//! `kettle init [DIR]`: a commented kettle.toml for a cargo project, pinned to
//! the toolchain and root filesystem bundles that go with the image
//! (`<image>/bundles.json`), so nobody invents a URL or copies a digest.
//! Refuses to overwrite a recipe; the file parses with `Recipe::parse`.

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use clap::Args;
use kettle::bundles::{BundlePins, BundlesError, BUNDLES_FILE};
use kettle::project::{self, ProjectError};

/// Options of `kettle init`.
#[derive(Args, Debug)]
#[command(
    after_long_help = "Detects the recipe (a Cargo.lock: cargo-build/v1; without one it refuses: run \
`cargo generate-lockfile`), the binary targets (`cargo metadata --no-deps`, else Cargo.toml), and \
rust-toolchain.toml's channel (recorded as a comment: the pinned toolchain bundle decides), and writes \
DIR/kettle.toml pinned to the bundles in the image's bundles.json.\n\nThen:\n  git add kettle.toml \
&& git commit -m 'kettle recipe'\n  kettle build DIR --tee simulated\n\nExit status: 0 written, 2 could not \
(nothing is written)."
)]
pub struct InitArgs {
    /// The project directory (default: the current one).
    #[arg(value_name = "DIR", default_value = ".")]
    pub dir: PathBuf,
    /// The image directory whose bundles.json pins the bundles (default $KETTLE_IMAGE, else build/image).
    #[arg(long, value_name = "DIR", env = "KETTLE_IMAGE", default_value = super::build::DEFAULT_IMAGE_DIR)]
    pub image: PathBuf,
    /// Print the recipe instead of writing it.
    #[arg(long)]
    pub print: bool,
    /// Replace an existing kettle.toml.
    #[arg(long)]
    pub force: bool,
}

/// Why `kettle init` could not write a recipe.
#[derive(Debug, thiserror::Error)]
pub enum InitError {
    /// The project cannot get a recipe.
    #[error(transparent)]
    Project(#[from] ProjectError),
    /// The image's bundle pins are missing or unreadable.
    #[error(transparent)]
    Bundles(#[from] BundlesError),
}

/// The recipe `kettle init` writes for the project in `dir` with the pins of `image`, and its path.
pub fn recipe_for(dir: &Path, image: &Path) -> Result<(String, PathBuf), InitError> {
    let existing = dir.join(kettle_wire::recipe::RECIPE_FILE);
    let project = project::detect(dir)?;
    let pins = BundlePins::load(image)?;
    Ok((
        project::render_recipe(&project, &pins, &image.join(BUNDLES_FILE)),
        existing,
    ))
}

/// Runs `kettle init`.
pub fn run(args: InitArgs) -> ExitCode {
    crate::exit_code("kettle init", init(&args))
}

fn init(args: &InitArgs) -> Result<(), InitError> {
    let target = args.dir.join(kettle_wire::recipe::RECIPE_FILE);
    if !args.print && !args.force && target.exists() {
        return Err(ProjectError::Exists(target).into());
    }
    let (text, path) = recipe_for(&args.dir, &args.image)?;
    if args.print {
        crate::print_stdout(text.trim_end());
        return Ok(());
    }
    let path = project::write_recipe(&args.dir, &text, args.force).map(|_| path)?;
    let dir = args.dir.display();
    eprintln!("wrote {}; next:", path.display());
    eprintln!("  git -C {dir} add kettle.toml && git -C {dir} commit -m 'kettle recipe'");
    eprintln!("  kettle build {dir} --tee simulated   # or --tee snp on an SEV-SNP host");
    Ok(())
}
