//! `cargo-build/v1`: `cargo build --locked --offline --release` in the source
//! tree, every crates.io package of Cargo.lock a pinned input ([`lockfile`]),
//! vendored for cargo's directory source replacement: each .crate is unpacked
//! to `<vendor>/<name>-<version>/` with a `.cargo-checksum.json` of
//! `{"files": {path: sha256}, "package": checksum}`.
//!
//! Its options section, every key optional:
//!
//! ```toml
//! [cargo]
//! package = "app"                         # -p: one package of a workspace
//! bins = ["app"]                          # --bin each (default: what `cargo build` builds)
//! features = ["tls"]                      # --features
//! no_default_features = true              # --no-default-features
//! target = "x86_64-unknown-linux-gnu"     # --target: outputs are then under target/<triple>/release/
//! rustflags = ["-C", "target-feature=+crt-static"]   # CARGO_ENCODED_RUSTFLAGS
//! ```

pub mod lockfile;
pub mod manifest;

use std::collections::BTreeMap;
use std::fs;
use std::io::Write;
use std::path::{Path, PathBuf};

use kettle_provenance::{ids, purl, purl::PurlError, Sha256Digest};
use serde::Deserialize;

use super::{
    bad, BuildRecipe, Dependency, DependencyError, LayoutError, Lockfile, PackageEcosystem, Pin,
    Recipe, RecipeError, RecipeOptions, SourceCheckError, SourceTree,
};
use crate::unpack::{maybe_gunzip, unpack, Beneath, BeneathError, UnpackLimits};

/// Largest .crate file accepted.
pub const MAX_CRATE_BYTES: u64 = 256 << 20;
/// The programs a Rust toolchain bundle holds (relative to its root).
pub const RUST_TOOLCHAIN_PROGRAMS: &[&str] = &["bin/cargo", "bin/rustc"];

/// The `cargo-build/v1` recipe.
pub struct CargoBuild;

impl BuildRecipe for CargoBuild {
    fn name(&self) -> &'static str {
        "cargo-build/v1"
    }

    fn uri(&self) -> &'static str {
        ids::BUILD_TYPE_CARGO
    }

    fn check(
        &self,
        command: Option<&[String]>,
        toolchain: Option<&Pin>,
    ) -> Result<(), RecipeError> {
        if command.is_some() {
            return Err(bad(
                "build.command",
                "cargo-build/v1 runs cargo itself; remove command",
            ));
        }
        if toolchain.is_none() {
            return Err(bad("toolchain", "cargo-build/v1 needs a pinned toolchain"));
        }
        Ok(())
    }

    fn options_section(&self) -> Option<&'static str> {
        Some("cargo")
    }

    fn parse_options(&self, section: Option<toml::Table>) -> Result<RecipeOptions, RecipeError> {
        let Some(section) = section else {
            return Ok(RecipeOptions::None);
        };
        let raw: RawCargoOptions = toml::Value::Table(section).try_into()?;
        Ok(RecipeOptions::Cargo(CargoOptions::check(raw)?))
    }

    fn ecosystem(&self) -> Option<&'static dyn PackageEcosystem> {
        Some(&CratesIo)
    }

    fn check_source(&self, recipe: &Recipe, tree: &dyn SourceTree) -> Result<(), SourceCheckError> {
        check_outputs(recipe, tree)?;
        manifest::check_path_dependencies(tree, "the commit")?;
        Ok(())
    }

    fn toolchain_programs(&self) -> &'static [&'static str] {
        RUST_TOOLCHAIN_PROGRAMS
    }

    fn command(&self, recipe: &Recipe) -> Vec<String> {
        let mut argv = ["cargo", "build", "--locked", "--offline", "--release"]
            .map(String::from)
            .to_vec();
        if let RecipeOptions::Cargo(o) = &recipe.options {
            argv.extend(o.arguments());
        }
        argv
    }

    fn environment(&self, recipe: &Recipe, home: &str) -> Vec<(String, String)> {
        let mut env = cargo_environment(home);
        if let RecipeOptions::Cargo(o) = &recipe.options {
            if !o.rustflags.is_empty() {
                // The one rustflags variable cargo reads that keeps spaces inside a flag.
                env.push(("CARGO_ENCODED_RUSTFLAGS".into(), o.rustflags.join("\x1f")));
            }
        }
        env
    }

    fn home_files(&self, dependencies_dir: &str) -> Vec<(&'static str, String)> {
        vec![(CARGO_CONFIG_FILE, cargo_config(dependencies_dir))]
    }
}

/// crates.io: Cargo.lock's registry packages, fetched as .crate files and vendored.
pub struct CratesIo;

impl PackageEcosystem for CratesIo {
    fn lockfile(&self) -> Lockfile {
        Lockfile {
            file: "Cargo.lock",
            create_with: "cargo generate-lockfile",
            max_bytes: lockfile::MAX_LOCKFILE_BYTES,
        }
    }

    fn parse_dependencies(&self, text: &str) -> Result<Vec<Dependency>, DependencyError> {
        Ok(lockfile::parse(text)?)
    }

    fn package_noun(&self) -> &'static str {
        "crate"
    }

    fn purl(&self, dep: &Dependency) -> Result<String, PurlError> {
        purl::cargo(&dep.name, &dep.version)
    }

    fn download_url(&self, registry: &str, dep: &Dependency) -> String {
        crate_url(registry, dep)
    }

    fn max_package_bytes(&self) -> u64 {
        MAX_CRATE_BYTES
    }

    fn lay_out(&self, dep: &Dependency, bytes: &[u8], dir: &Path) -> Result<PathBuf, LayoutError> {
        vendor_crate(dep, bytes, dir)
    }
}

/// `[cargo]` as written.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawCargoOptions {
    #[serde(default)]
    package: Option<String>,
    #[serde(default)]
    bins: Vec<String>,
    #[serde(default)]
    features: Vec<String>,
    #[serde(default)]
    no_default_features: bool,
    #[serde(default)]
    target: Option<String>,
    #[serde(default)]
    rustflags: Vec<String>,
}

/// Most entries in one of `[cargo]`'s lists.
const MAX_CARGO_LIST: usize = 64;

/// cargo-build/v1's options (`[cargo]`), checked: every value is a plain name
/// cargo reads as one argument, never an option of its own.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct CargoOptions {
    /// `-p`: the workspace package to build.
    pub package: Option<String>,
    /// `--bin` each: the binaries to build.
    pub bins: Vec<String>,
    /// `--features`.
    pub features: Vec<String>,
    /// `--no-default-features`.
    pub no_default_features: bool,
    /// `--target`: the target triple.
    pub target: Option<String>,
    /// rustc flags, as CARGO_ENCODED_RUSTFLAGS: they replace any `rustflags` of the tree's
    /// `.cargo/config.toml`, and with a `target` they reach the target's crates only, not
    /// build scripts or proc-macros (cargo's rule).
    pub rustflags: Vec<String>,
}

impl CargoOptions {
    fn check(raw: RawCargoOptions) -> Result<CargoOptions, RecipeError> {
        let name = |c: char| c.is_ascii_alphanumeric() || c == '-' || c == '_';
        let plain = |field: &'static str, value: &str, ok: &dyn Fn(char) -> bool| {
            if value.is_empty()
                || value.len() > 128
                || value.starts_with('-')
                || !value.chars().all(ok)
            {
                Err(bad(
                    field,
                    format!("{value:?} is not a plain name (letters, digits, '-', '_'; not starting with '-')"),
                ))
            } else {
                Ok(())
            }
        };
        let list = |field: &'static str, values: &[String]| {
            if values.len() > MAX_CARGO_LIST {
                return Err(bad(
                    field,
                    format!("lists more than {MAX_CARGO_LIST} entries"),
                ));
            }
            Ok(())
        };
        if let Some(p) = &raw.package {
            plain("cargo.package", p, &name)?;
        }
        list("cargo.bins", &raw.bins)?;
        for b in &raw.bins {
            plain("cargo.bins", b, &name)?;
        }
        list("cargo.features", &raw.features)?;
        for f in &raw.features {
            // `dep/feature` and `dep?/feature` name a dependency's feature.
            plain("cargo.features", f, &|c| {
                name(c) || c == '/' || c == '?' || c == '.'
            })?;
        }
        if let Some(t) = &raw.target {
            plain("cargo.target", t, &|c| name(c) || c == '.')?;
            // A `.json` target is a spec file in the tree, whose output directory cargo
            // names by its stem: only built-in triples, so the outputs' place is known.
            if t.starts_with('.') || t.ends_with(".json") {
                return Err(bad(
                    "cargo.target",
                    format!(
                        "{t:?} is not a target triple (custom target spec files are not supported)"
                    ),
                ));
            }
        }
        list("cargo.rustflags", &raw.rustflags)?;
        for f in &raw.rustflags {
            if f.is_empty() || f.chars().any(char::is_control) {
                return Err(bad(
                    "cargo.rustflags",
                    format!("{f:?}: each flag must be non-empty, without control characters"),
                ));
            }
        }
        Ok(CargoOptions {
            package: raw.package,
            bins: raw.bins,
            features: raw.features,
            no_default_features: raw.no_default_features,
            target: raw.target,
            rustflags: raw.rustflags,
        })
    }

    /// What the options add to `cargo build --locked --offline --release`.
    pub fn arguments(&self) -> Vec<String> {
        let mut args = Vec::new();
        if let Some(p) = &self.package {
            args.extend(["-p".to_string(), p.clone()]);
        }
        for b in &self.bins {
            args.extend(["--bin".to_string(), b.clone()]);
        }
        if !self.features.is_empty() {
            args.extend(["--features".to_string(), self.features.join(",")]);
        }
        if self.no_default_features {
            args.push("--no-default-features".into());
        }
        if let Some(t) = &self.target {
            args.extend(["--target".to_string(), t.clone()]);
        }
        args
    }
}

/// Refuses an output `cargo build --release` cannot make here: not under the release
/// directory, or a binary the manifests (or `[cargo] bins`, each of which must be one)
/// do not build. Manifests that cannot be read leave the binaries unknown: the build
/// says what is wrong with them.
fn check_outputs(recipe: &Recipe, tree: &dyn SourceTree) -> Result<(), SourceCheckError> {
    let found = manifest::bins_from_manifests(tree).ok();
    let mut bins = found.as_ref().map(|b| b.0.clone());
    if let RecipeOptions::Cargo(options) = &recipe.options {
        // Another package than the default members, or other features, build other
        // binaries than the manifests' defaults: only the release directory is checked.
        if options.package.is_some() || !options.features.is_empty() || options.no_default_features
        {
            bins = None;
        }
        if !options.bins.is_empty() {
            // A binary behind required features may be named along with those features.
            let known: Option<Vec<String>> = found.as_ref().map(|(b, skipped)| {
                b.iter()
                    .cloned()
                    .chain(skipped.iter().map(|(s, _)| s.clone()))
                    .collect()
            });
            if let (Some(known), None) = (&known, &options.package) {
                if let Some(missing) = options.bins.iter().find(|b| !known.contains(b)) {
                    return Err(SourceCheckError::Output {
                        output: missing.clone(),
                        reason: format!(
                            "[cargo] bins names {missing:?}, which is not a binary target here (binaries: {})",
                            known.join(", ")
                        ),
                    });
                }
            }
            bins = Some(options.bins.clone());
        }
    }
    let release_dir = release_dir(&recipe.options);
    for output in &recipe.outputs {
        manifest::check_cargo_output(output, &release_dir, bins.as_deref()).map_err(|reason| {
            SourceCheckError::Output {
                output: output.clone(),
                reason,
            }
        })?;
    }
    Ok(())
}

/// Where `cargo build --release` writes binaries without a `--target`.
pub const RELEASE_DIR: &str = "target/release/";

/// The directory `cargo build --release` writes binaries to under `options`:
/// [`RELEASE_DIR`], or `target/<triple>/release/` with a target.
pub fn release_dir(options: &RecipeOptions) -> String {
    match options {
        RecipeOptions::Cargo(CargoOptions {
            target: Some(t), ..
        }) => format!("target/{t}/release/"),
        _ => RELEASE_DIR.into(),
    }
}

/// Where cargo's config goes in the build's home (CARGO_HOME is its `cargo/`).
pub const CARGO_CONFIG_FILE: &str = "cargo/config.toml";

/// CARGO_HOME under the build's home and no colour codes in the log.
pub fn cargo_environment(home: &str) -> Vec<(String, String)> {
    vec![
        ("CARGO_HOME".into(), format!("{home}/cargo")),
        ("CARGO_TERM_COLOR".into(), "never".into()),
    ]
}

/// The cargo config that replaces crates.io with the vendor directory at `vendor_path` (sandbox path).
pub fn cargo_config(vendor_path: &str) -> String {
    format!(
        "[source.crates-io]\nreplace-with = \"vendored-sources\"\n\n[source.vendored-sources]\ndirectory = \"{vendor_path}\"\n\n[net]\noffline = true\n"
    )
}

/// The crates.io-style download URL of a locked crate under `base`.
pub fn crate_url(base: &str, krate: &Dependency) -> String {
    format!(
        "{}/{}/{}-{}.crate",
        base.trim_end_matches('/'),
        krate.name,
        krate.name,
        krate.version
    )
}

/// The directory a crate is vendored into, `<name>-<version>`.
pub fn dir_name(krate: &Dependency) -> String {
    format!("{}-{}", krate.name, krate.version)
}

/// The checksum file cargo's directory source reads in each vendored crate.
pub const CARGO_CHECKSUM_FILE: &str = ".cargo-checksum.json";

/// Unpacks one verified .crate (its bytes) into `vendor_dir` and writes its checksum file.
///
/// The crate is hostile until proven otherwise: every step after unpacking goes through
/// directory fds resolved by the kernel beneath `vendor_dir` ([`Beneath`]), never through a
/// path that a symlink in the crate could redirect. Its directory must be a real directory
/// holding a real Cargo.toml; any `.cargo-checksum.json` it ships is replaced (unlinked, not
/// followed) by ours.
pub fn vendor_crate(
    krate: &Dependency,
    crate_bytes: &[u8],
    vendor_dir: &Path,
) -> Result<PathBuf, LayoutError> {
    let label = krate.label();
    let io = |source| LayoutError::Io {
        label: label.clone(),
        source,
    };
    let beneath = |source: BeneathError| LayoutError::Io {
        label: label.clone(),
        source: source.into_io(),
    };
    let dir_name = dir_name(krate);
    let staging_name = format!(".unpack-{dir_name}");
    let staging = vendor_dir.join(&staging_name);
    let reader = maybe_gunzip(crate_bytes).map_err(io)?;
    unpack(reader, &staging, &UnpackLimits::CRATE).map_err(|source| LayoutError::Unpack {
        label: label.clone(),
        source,
    })?;
    let vendor = Beneath::open(vendor_dir).map_err(io)?;
    let layout = || LayoutError::Layout {
        label: label.clone(),
        expected: format!("{dir_name}/Cargo.toml"),
    };
    let entries: Vec<_> = fs::read_dir(&staging)
        .map_err(io)?
        .collect::<Result<_, _>>()
        .map_err(io)?;
    if entries.len() != 1 || entries[0].file_name() != dir_name.as_str() {
        return Err(layout());
    }
    // The crate directory and its Cargo.toml must be what they claim, not links to elsewhere.
    let inner_rel = Path::new(&staging_name).join(&dir_name);
    let inner = match vendor.open_dir(&inner_rel) {
        Ok(fd) => fd,
        Err(BeneathError::Symlink(_)) => return Err(layout()),
        Err(e) => return Err(beneath(e)),
    };
    match rustix::fs::statat(&inner, "Cargo.toml", rustix::fs::AtFlags::SYMLINK_NOFOLLOW) {
        Ok(st)
            if rustix::fs::FileType::from_raw_mode(st.st_mode)
                == rustix::fs::FileType::RegularFile => {}
        _ => return Err(layout()),
    }
    // Both names are single components in directories we opened: rename never follows them.
    let staging_fd = vendor.open_dir(Path::new(&staging_name)).map_err(beneath)?;
    let vendor_fd = vendor.open_dir(Path::new("")).map_err(beneath)?;
    rustix::fs::renameat_with(
        &staging_fd,
        dir_name.as_str(),
        &vendor_fd,
        dir_name.as_str(),
        rustix::fs::RenameFlags::NOREPLACE,
    )
    .map_err(|e| io(e.into()))?;
    rustix::fs::unlinkat(
        &vendor_fd,
        staging_name.as_str(),
        rustix::fs::AtFlags::REMOVEDIR,
    )
    .map_err(|e| io(e.into()))?;
    let dest = vendor_dir.join(&dir_name);
    let mut files = BTreeMap::new();
    hash_files(&dest, &dest, &mut files).map_err(io)?;
    files.remove(CARGO_CHECKSUM_FILE);
    let doc = serde_json::json!({ "files": files, "package": krate.sha256 });
    let checksum_rel = Path::new(&dir_name).join(CARGO_CHECKSUM_FILE);
    vendor.remove_file(&checksum_rel).map_err(beneath)?;
    let mut f = vendor.create_file(&checksum_rel, 0o644).map_err(beneath)?;
    f.write_all(&serde_json::to_vec(&doc).expect("json"))
        .map_err(io)?;
    Ok(dest)
}

/// Hashes every regular file under `dir` (symlinks are cargo's to check: they are not followed).
fn hash_files(
    base: &Path,
    dir: &Path,
    out: &mut BTreeMap<String, Sha256Digest>,
) -> std::io::Result<()> {
    for e in fs::read_dir(dir)? {
        let e = e?;
        let ft = e.file_type()?;
        let p = e.path();
        if ft.is_dir() {
            hash_files(base, &p, out)?;
        } else if ft.is_file() {
            let rel = p
                .strip_prefix(base)
                .expect("under base")
                .to_string_lossy()
                .into_owned();
            out.insert(rel, Sha256Digest::of_file(&p)?);
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests;
