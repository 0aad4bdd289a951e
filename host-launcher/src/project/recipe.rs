//! The commented `kettle.toml` that `kettle init` writes, and writing it without
//! replacing a recipe by accident.

use std::fmt::Write as _;
use std::path::{Path, PathBuf};

use kettle_wire::recipe::{BuildType, Recipe, RECIPE_FILE};

use super::{CargoProject, ProjectError, RELEASE_DIR};
use crate::bundles::{BundlePin, BundlePins};

/// The commented kettle.toml `kettle init` writes for `project`, pinned to `pins`
/// (the image's `bundles.json`). It parses with [`Recipe::parse`]. Nothing of the host's
/// (no path) is written: the file is committed into every user's repository.
pub fn render_recipe(project: &CargoProject, pins: &BundlePins) -> String {
    let mut t = String::new();
    let w = &mut t;
    let _ = writeln!(
        w,
        "# kettle.toml: how Kettle builds this project in its confidential VM,"
    );
    let _ = writeln!(
        w,
        "# written by `kettle init`. The commit covers this file, so the recipe and"
    );
    let _ = writeln!(
        w,
        "# its pins are exactly as trustworthy as the commit id: commit it, then"
    );
    let _ = writeln!(
        w,
        "# `kettle build . --tee snp` (or `--tee simulated` on a machine without SEV-SNP)."
    );
    let _ = writeln!(w, "#");
    let _ = writeln!(
        w,
        "# cargo-build/v1 runs `cargo build --locked --offline --release` in the"
    );
    let _ = writeln!(
        w,
        "# source root, in the pinned root filesystem with the pinned toolchain and"
    );
    let _ = writeln!(
        w,
        "# every crate of Cargo.lock checked against its checksum and vendored; no network."
    );
    if let Some(c) = &project.channel {
        let _ = writeln!(w, "#");
        let _ = writeln!(
            w,
            "# rust-toolchain.toml asks for channel {c:?}. It is not used: the toolchain"
        );
        let _ = writeln!(
            w,
            "# bundle pinned below decides the compiler ({}).",
            pins.toolchain.summary
        );
    }
    let _ = writeln!(w);
    let _ = writeln!(w, "[build]");
    let _ = writeln!(w, "type = \"{}\"", BuildType::CargoBuild.name());
    let _ = writeln!(
        w,
        "# One provenance subject per output: the binaries `cargo build --release`"
    );
    let _ = writeln!(w, "# makes here (found by {}).", project.found_by);
    for (bin, why) in &project.skipped {
        let _ = writeln!(w, "# Not listed: {bin} ({why}).");
    }
    let outputs: Vec<String> = project
        .bins
        .iter()
        .map(|b| format!("\"{RELEASE_DIR}{b}\""))
        .collect();
    let _ = writeln!(w, "outputs = [{}]", outputs.join(", "));
    let _ = writeln!(w);
    if project.named_bins {
        let _ = writeln!(w, "[cargo]");
        let _ = writeln!(
            w,
            "# `kettle init --bin`: cargo builds only these binaries (`cargo build --bin NAME`)."
        );
        let bins: Vec<String> = project.bins.iter().map(|b| format!("\"{b}\"")).collect();
        let _ = writeln!(w, "bins = [{}]", bins.join(", "));
        let _ = writeln!(w);
    }
    let pin = |w: &mut String, section: &str, what: &str, p: &BundlePin| {
        let _ = writeln!(w, "[{section}]");
        let _ = writeln!(w, "# {what}: {}", p.summary);
        match &p.manifest {
            Some(m) => {
                let _ = writeln!(w, "# Its manifest: {} (sha256 {}),", m.file, m.sha256);
                let _ = writeln!(w, "# also inside the bundle as /{}.", m.inside);
            }
            None => {
                let _ = writeln!(w, "# (This bundle was made without a manifest.)");
            }
        }
        if crate::bundles::is_marker_url(&p.url) {
            let _ = writeln!(
                w,
                "# The URL is a marker, never downloaded: `.invalid` never resolves. The"
            );
            let _ = writeln!(
                w,
                "# bundle is delivered with the build: `kettle build` finds {} beside",
                p.file
            );
            let _ = writeln!(
                w,
                "# the image, or takes it with `--input FILE`; its sha256 alone identifies it."
            );
        }
        let _ = writeln!(w, "url = \"{}\"", p.url);
        let _ = writeln!(w, "sha256 = \"{}\"", p.sha256);
    };
    pin(w, "toolchain", "The Rust toolchain", &pins.toolchain);
    let _ = writeln!(w);
    pin(w, "rootfs", "The build's root filesystem", &pins.rootfs);
    let _ = writeln!(w);
    let _ = writeln!(
        w,
        "# Pins from the bundles.json of the image kettle init read (--image or $KETTLE_IMAGE)."
    );
    t
}

/// Writes `dir/kettle.toml` (refusing to replace one unless `force`) and returns its path.
pub fn write_recipe(dir: &Path, text: &str, force: bool) -> Result<PathBuf, ProjectError> {
    debug_assert!(
        Recipe::parse(text).is_ok(),
        "kettle init writes a valid recipe"
    );
    let path = dir.join(RECIPE_FILE);
    let io = |source| ProjectError::Io {
        path: path.clone(),
        source,
    };
    let mut opts = std::fs::OpenOptions::new();
    opts.write(true);
    if force {
        opts.create(true).truncate(true);
    } else {
        opts.create_new(true);
    }
    let mut f = match opts.open(&path) {
        Ok(f) => f,
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {
            return Err(ProjectError::Exists(path))
        }
        Err(e) => return Err(io(e)),
    };
    std::io::Write::write_all(&mut f, text.as_bytes()).map_err(io)?;
    Ok(path)
}
