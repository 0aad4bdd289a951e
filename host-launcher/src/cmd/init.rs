//! `kettle init [DIR]`: a commented kettle.toml for a cargo project, pinned to
//! the toolchain and root filesystem bundles that go with the image
//! (`<image>/bundles.json`), so nobody invents a URL or copies a digest.
//! Refuses to overwrite a recipe; the file parses with `Recipe::parse`.

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use clap::Args;
use kettle::bundles::{BundlePins, BundlesError};
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
    #[arg(long, value_name = "DIR", env = "KETTLE_IMAGE", default_value = kettle::build_pipeline::DEFAULT_IMAGE_DIR)]
    pub image: PathBuf,
    /// Print the recipe instead of writing it.
    #[arg(long)]
    pub print: bool,
    /// Replace an existing kettle.toml.
    #[arg(long)]
    pub force: bool,
    /// List only this binary as an output (repeat for more; default: every binary but `xtask`).
    #[arg(long = "bin", value_name = "NAME")]
    pub bins: Vec<String>,
}

/// Why `kettle init` could not write a recipe.
#[derive(Debug, thiserror::Error)]
pub enum InitError {
    /// The project cannot get a recipe.
    #[error(transparent)]
    Project(#[from] ProjectError),
    /// The image's bundle pins are missing or unreadable.
    #[error("image {}{}: {source}", .image.display(), kettle::build_pipeline::image_origin(.image))]
    Bundles {
        /// What is wrong with them.
        source: BundlesError,
        /// The image directory, to say who chose it.
        image: PathBuf,
    },
}

/// The recipe `kettle init` would write for the project in `dir` with the pins of `image`,
/// and its path (what `kettle build` suggests when a project has none).
pub fn recipe_for(dir: &Path, image: &Path) -> Result<(String, PathBuf), InitError> {
    init_recipe(dir, image, &[]).map(|(text, path, _)| (text, path))
}

/// The recipe `kettle init` writes for the project in `dir` (its outputs the binaries
/// `bins` names, or all but build tooling) with the pins of `image`, its path, and the
/// warnings about what is not committed yet. Refuses what the guest could never build
/// (a git dependency, a path dependency outside the repository) before anything is written.
pub fn init_recipe(
    dir: &Path,
    image: &Path,
    bins: &[String],
) -> Result<(String, PathBuf, Vec<String>), InitError> {
    let existing = dir.join(kettle_wire::recipe::RECIPE_FILE);
    let tree = project::DirTree(dir);
    if dir.join("Cargo.toml").is_file() {
        // Before cargo reads the project: its own message for a missing path is less clear.
        project::check_lockfile(&tree)?;
        project::check_path_dependencies(&tree, "the directory").map_err(ProjectError::from)?;
    }
    let mut project = project::detect(dir)?;
    project::select_bins(&mut project, bins)?;
    let path_deps = project::path_dependencies(&tree).unwrap_or_default();
    let warnings = project::commit_warnings(dir, &path_deps);
    let pins = BundlePins::load(image).map_err(|source| InitError::Bundles {
        source,
        image: image.into(),
    })?;
    Ok((project::render_recipe(&project, &pins), existing, warnings))
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
    let (text, path, warnings) = init_recipe(&args.dir, &args.image, &args.bins)?;
    for w in &warnings {
        eprintln!("warning: {}", kettle::console::escape(w));
    }
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
