//! Before anything boots: the image, the source commit (which must carry a
//! recipe) and the input store.

use std::path::{Path, PathBuf};

use kettle_image::ImageManifest;
use kettle_wire::output;

use super::{BuildError, BuildOptions};
use crate::bundles::{self, BundlePins};
use crate::inputs::Delivered;
use crate::source::{self, ResolvedSource, SourceError};
use crate::store::Store;

/// The image to boot: its manifest and files.
pub(super) struct Image {
    pub(super) manifest: ImageManifest,
    pub(super) manifest_path: PathBuf,
    pub(super) files: kettle_image::ImageFiles,
}

pub(super) fn load_image(dir: &Path) -> Result<Image, BuildError> {
    let manifest_path = dir.join(output::MANIFEST_FILE);
    let err = |message: String| BuildError::Image {
        dir: dir.into(),
        message,
    };
    let manifest = ImageManifest::load(&manifest_path).map_err(|e| err(e.to_string()))?;
    let files = manifest.files_in(dir).map_err(|e| err(e.to_string()))?;
    for p in [&files.kernel, &files.initrd, &files.ovmf] {
        if !p.is_file() {
            return Err(err(format!("{} is missing", p.display())));
        }
    }
    Ok(Image {
        manifest,
        manifest_path,
        files,
    })
}

pub(super) fn resolve_source(
    opts: &BuildOptions,
    work: &Path,
) -> Result<ResolvedSource, BuildError> {
    let src = if source::is_url(&opts.source) {
        let r = opts
            .git_ref
            .as_deref()
            .ok_or_else(|| SourceError::UrlNeedsRef(opts.source.clone()))?;
        source::resolve_url(&opts.source, r, opts.repo.as_deref(), work)?
    } else {
        source::resolve_checkout_as(
            Path::new(&opts.source),
            opts.git_ref.as_deref(),
            opts.repo.as_deref(),
            opts.allow_dirty,
        )?
    };
    log::info!(
        "repository {} (from {})",
        src.repository,
        src.repository_from
    );
    if let Some(wanted) = &opts.commit {
        if !wanted.eq_ignore_ascii_case(&src.commit) {
            return Err(BuildError::CommitMismatch {
                wanted: wanted.clone(),
                git_ref: src.git_ref.clone(),
                found: src.commit.clone(),
            });
        }
    }
    check_recipe(&src)?;
    Ok(src)
}

/// Before anything is downloaded: the commit must have a recipe. A checkout with an
/// uncommitted kettle.toml is told to commit it; a cargo project without one is told
/// exactly what `kettle init` would write.
fn check_recipe(src: &ResolvedSource) -> Result<(), BuildError> {
    use kettle_wire::recipe::RECIPE_FILE;
    if src.read_file(RECIPE_FILE)?.is_some() {
        return Ok(());
    }
    let Some(dir) = &src.worktree else {
        return Ok(()); // inputs::resolve says the commit has no recipe
    };
    let recipe = dir.join(RECIPE_FILE);
    if recipe.exists() {
        return Err(BuildError::RecipeNotCommitted {
            path: recipe,
            commit: src.commit.clone(),
        });
    }
    if src.read_file("Cargo.toml")?.is_none() && !dir.join("Cargo.toml").is_file() {
        return Ok(());
    }
    Err(BuildError::NoRecipe {
        dir: dir.clone(),
        commit: src.commit.clone(),
    })
}

/// What the host can hand the guest besides its store: the --input files and the
/// bundles beside the image that bundles.json names.
fn delivered(opts: &BuildOptions, store: &Store) -> Result<Delivered, BuildError> {
    let mut given = Vec::new();
    for input in &opts.inputs {
        // Said as what it is, before the store's own (cache) error could be mistaken for it.
        let reason = match std::fs::metadata(input) {
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Some("no such file".to_string()),
            Err(e) => Some(e.to_string()),
            Ok(m) if !m.is_file() => Some("not a regular file".to_string()),
            Ok(_) => None,
        };
        if let Some(reason) = reason {
            return Err(BuildError::InputFile {
                path: input.clone(),
                reason,
            });
        }
        let d = store.insert_file(input, None)?;
        log::info!("input {} = sha256 {d}", input.display());
        given.push((input.clone(), d));
    }
    let bundle_dirs = match BundlePins::load(&opts.image) {
        Ok(_) => bundles::search_dirs(&opts.image),
        Err(_) => Vec::new(),
    };
    Ok(Delivered { given, bundle_dirs })
}

pub(super) fn open_store(opts: &BuildOptions) -> Result<(Store, Delivered), BuildError> {
    let root = match &opts.cache_dir {
        Some(d) => d.clone(),
        None => Store::default_root()?,
    };
    let store = Store::open(root)?;
    let delivered = delivered(opts, &store)?;
    Ok((store, delivered))
}
