//! Recipes: what each build type decides, behind one interface ([`BuildRecipe`]),
//! one module per build type ([`cargo`], [`script`]), registered once in
//! [`BuildType`]; and `kettle.toml`, the build recipe in the source tree. The
//! commit covers kettle.toml, so the recipe, the declared outputs and the
//! toolchain/rootfs pins are all as trustworthy as the commit id in the request.
//!
//! ```toml
//! [build]
//! type = "cargo-build/v1"            # or "script/v1"
//! outputs = ["target/release/hello"] # paths relative to the source dir
//! command = ["sh", "-c", "make"]     # script/v1 only
//!
//! [toolchain]                        # required for cargo-build/v1, optional for script/v1
//! url = "https://example.org/rust-1.85.0-x86_64-unknown-linux-gnu.tar.gz"
//! sha256 = "<64 hex>"
//!
//! [rootfs]                           # the build's root filesystem (sh, cc, libc...)
//! url = "https://example.org/rootfs.tar.gz"
//! sha256 = "<64 hex>"
//!
//! [cargo]                            # the recipe's own options section (optional; see cargo.rs)
//! bins = ["hello"]
//! ```
//!
//! Adding a build type is a module here implementing [`BuildRecipe`] and one arm in
//! [`BuildType`] (its variant, [`BuildType::ALL`], [`BuildType::recipe`]): the host's
//! input resolution, the guest's verify/unpack/build/provenance steps and the
//! verifier's accepted build types all go through the registry.

pub mod cargo;
pub mod script;

use std::collections::BTreeMap;
use std::path::{Component, Path, PathBuf};

use kettle_provenance::{purl::PurlError, Sha256Digest};
use serde::Deserialize;
use thiserror::Error;

use crate::unpack::UnpackError;

/// File name of the recipe at the root of the source tree.
pub const RECIPE_FILE: &str = "kettle.toml";
/// Largest kettle.toml accepted.
pub const MAX_RECIPE_BYTES: u64 = 64 * 1024;
/// Most outputs one build may declare.
pub const MAX_OUTPUTS: usize = 256;

/// The parsed and checked kettle.toml.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Recipe {
    /// Which recipe runs (`[build] type`).
    pub build_type: BuildType,
    /// Output paths relative to the source dir; each becomes a subject.
    pub outputs: Vec<String>,
    /// argv of the script/v1 recipe, run with cwd = the source dir.
    pub command: Option<Vec<String>>,
    /// The Rust toolchain bundle (tar or tar.gz of a toolchain root: bin/cargo, bin/rustc, lib/...).
    pub toolchain: Option<Pin>,
    /// The root filesystem the build runs in (tar or tar.gz).
    pub rootfs: Pin,
    /// The recipe's own options (its kettle.toml section, checked).
    pub options: RecipeOptions,
}

/// A recipe's own options, from its kettle.toml section.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub enum RecipeOptions {
    /// The recipe has no options section, or it was absent.
    #[default]
    None,
    /// `[cargo]` of cargo-build/v1.
    Cargo(cargo::CargoOptions),
}

/// A download pinned by SHA-256.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Pin {
    /// Where to download it in upstream mode (and where the host fetches it from in cached mode).
    pub url: String,
    /// SHA-256 of the file.
    pub sha256: Sha256Digest,
}

/// The recipes this guest runs: the one registry of build types.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum BuildType {
    /// `cargo build --locked --offline --release` with vendored crates ([`cargo`]).
    CargoBuild,
    /// A command from kettle.toml ([`script`]).
    Script,
}

impl BuildType {
    /// Every recipe, the one registry kettle.toml's `type`, the verifier's accepted
    /// buildTypes and `kettle policy init` read.
    pub const ALL: [BuildType; 2] = [BuildType::CargoBuild, BuildType::Script];

    /// The module that decides everything about this build type.
    pub fn recipe(self) -> &'static dyn BuildRecipe {
        match self {
            BuildType::CargoBuild => &cargo::CargoBuild,
            BuildType::Script => &script::Script,
        }
    }

    /// The name used in kettle.toml's `[build] type`.
    pub fn name(self) -> &'static str {
        self.recipe().name()
    }

    /// The buildType URI recorded in provenance.
    pub fn uri(self) -> &'static str {
        self.recipe().uri()
    }

    /// The recipe named `name` in kettle.toml.
    pub fn from_name(name: &str) -> Option<BuildType> {
        BuildType::ALL.into_iter().find(|t| t.name() == name)
    }

    /// Every recipe's name, for messages: `cargo-build/v1, script/v1`.
    pub fn names() -> String {
        BuildType::ALL.map(BuildType::name).join(", ")
    }
}

/// Everything one build type decides, from kettle.toml to provenance. One
/// implementation per module of `recipe/`; what every build shares (fetching
/// and verifying pins, the sandbox's isolation, hashing outputs, the
/// statement) is not here.
pub trait BuildRecipe: Sync {
    /// kettle.toml's `[build] type`, e.g. `cargo-build/v1`.
    fn name(&self) -> &'static str;
    /// The buildType URI recorded in provenance.
    fn uri(&self) -> &'static str;
    /// Checks kettle.toml's fields this recipe gives meaning to (`command`, `[toolchain]`).
    fn check(&self, command: Option<&[String]>, toolchain: Option<&Pin>)
        -> Result<(), RecipeError>;
    /// The name of its own kettle.toml section (`cargo` for `[cargo]`), if it reads one.
    fn options_section(&self) -> Option<&'static str>;
    /// Checks its section (absent: `None`) and returns the options it holds.
    fn parse_options(&self, section: Option<toml::Table>) -> Result<RecipeOptions, RecipeError>;

    /// Its locked dependencies (a lockfile and a registry), if it has any.
    fn ecosystem(&self) -> Option<&'static dyn PackageEcosystem>;

    /// Checks the committed source on the host, before any VM boots: what the guest
    /// could never build (an output it cannot make, a dependency outside the tree) is
    /// said now, not minutes later in the VM.
    fn check_source(&self, recipe: &Recipe, tree: &dyn SourceTree) -> Result<(), SourceCheckError>;

    /// The programs a toolchain bundle must hold (relative to its root).
    fn toolchain_programs(&self) -> &'static [&'static str];
    /// The build's argv (cwd is the source tree).
    fn command(&self, recipe: &Recipe) -> Vec<String>;
    /// What this recipe adds to the environment every build sees, given the build's
    /// home directory (a sandbox path).
    fn environment(&self, recipe: &Recipe, home: &str) -> Vec<(String, String)>;
    /// Files written into the build's home before the build runs: (path relative to the
    /// home, contents), given where the dependency directory is mounted.
    fn home_files(&self, dependencies_dir: &str) -> Vec<(&'static str, String)>;
}

/// How a recipe's dependencies are pinned, fetched and laid out: its lockfile,
/// its registry's naming, its package format.
pub trait PackageEcosystem: Sync {
    /// The lockfile whose packages become pinned inputs.
    fn lockfile(&self) -> Lockfile;
    /// The lockfile's packages as pinned dependencies, sorted, without repeats.
    fn parse_dependencies(&self, lockfile: &str) -> Result<Vec<Dependency>, DependencyError>;
    /// What one of its packages is called in messages (`crate`).
    fn package_noun(&self) -> &'static str;
    /// The Package URL of a dependency (resolvedDependencies' `uri`).
    fn purl(&self, dep: &Dependency) -> Result<String, PurlError>;
    /// Where a dependency is downloaded from, under the registry's base URL (a hint only:
    /// the digest decides).
    fn download_url(&self, registry: &str, dep: &Dependency) -> String;
    /// Largest package file accepted.
    fn max_package_bytes(&self) -> u64;
    /// Lays out one verified package (its bytes, already checked against the pin) in the
    /// build's dependency directory; returns where it went.
    fn lay_out(&self, dep: &Dependency, bytes: &[u8], dir: &Path) -> Result<PathBuf, LayoutError>;
}

/// A project's files as a recipe reads them on the host: a directory (`kettle init`)
/// or a commit's tree (`kettle build`).
pub trait SourceTree {
    /// The bytes of the file at `path` (relative, `/`-separated), None if absent.
    fn read(&self, path: &str) -> Option<Vec<u8>>;
    /// The files directly or deeper under directory `dir`, relative to the root.
    fn list(&self, dir: &str) -> Vec<String>;
}

/// What the host found in a committed source that its recipe could never build.
#[derive(Debug, Error)]
pub enum SourceCheckError {
    /// An output the build cannot make.
    #[error("output {output:?}: {reason}")]
    Output {
        /// The output as kettle.toml names it.
        output: String,
        /// Why the build cannot make it.
        reason: String,
    },
    /// A cargo path dependency the guest could never see.
    #[error(transparent)]
    CargoPathDependency(#[from] cargo::manifest::PathDependencyError),
}

/// A lockfile a recipe reads from the root of the verified source tree.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Lockfile {
    /// Its file name (`Cargo.lock`).
    pub file: &'static str,
    /// The command that creates it, for messages (`cargo generate-lockfile`).
    pub create_with: &'static str,
    /// Largest lockfile accepted.
    pub max_bytes: u64,
}

/// A package a lockfile pins: one input of the build, named, fetched and laid out by
/// its recipe's [`PackageEcosystem`].
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct Dependency {
    /// The recipe whose lockfile pinned it (it names, fetches and lays it out).
    pub build_type: BuildType,
    /// The package's name in its registry.
    pub name: String,
    /// Its exact version.
    pub version: String,
    /// SHA-256 of the package file, as the lockfile pins it.
    pub sha256: Sha256Digest,
}

impl Dependency {
    /// The ecosystem of the recipe that pinned it.
    pub fn ecosystem(&self) -> &'static dyn PackageEcosystem {
        self.build_type
            .recipe()
            .ecosystem()
            .expect("only a recipe with an ecosystem pins dependencies")
    }

    /// How it is named in logs and errors, e.g. `crate hex 0.4.3`.
    pub fn label(&self) -> String {
        format!(
            "{} {} {}",
            self.ecosystem().package_noun(),
            self.name,
            self.version
        )
    }

    /// Its Package URL, as resolvedDependencies records it.
    pub fn purl(&self) -> Result<String, PurlError> {
        self.ecosystem().purl(self)
    }
}

/// Why a recipe's lockfile gave no dependencies.
#[derive(Debug, Error)]
pub enum DependencyError {
    /// Missing or unreadable.
    #[error("cannot read {file} at the root of the source tree (the recipe needs a committed lock file): {source}")]
    Io {
        /// The lockfile.
        file: &'static str,
        /// The cause.
        #[source]
        source: std::io::Error,
    },
    /// Over the recipe's limit.
    #[error("{file} is larger than {limit} bytes")]
    TooLarge {
        /// The lockfile.
        file: &'static str,
        /// The limit.
        limit: u64,
    },
    /// Cargo.lock was refused ([`cargo::lockfile`]).
    #[error(transparent)]
    Cargo(#[from] cargo::lockfile::LockfileError),
}

/// Why a verified package could not be laid out for the build.
#[derive(Debug, Error)]
pub enum LayoutError {
    /// The package archive was refused or could not be unpacked.
    #[error("unpacking {label}: {source}")]
    Unpack {
        /// Which package.
        label: String,
        /// The cause.
        #[source]
        source: UnpackError,
    },
    /// The archive does not hold what its format promises.
    #[error("{label}: the package does not contain {expected}")]
    Layout {
        /// Which package.
        label: String,
        /// What it should hold.
        expected: String,
    },
    /// Filesystem error.
    #[error("laying out {label}: {source}")]
    Io {
        /// Which package.
        label: String,
        /// The cause.
        #[source]
        source: std::io::Error,
    },
}

/// kettle.toml as written, before its values are checked.
#[derive(Deserialize)]
struct RawRecipe {
    build: RawBuild,
    #[serde(default)]
    toolchain: Option<RawPin>,
    rootfs: RawPin,
    /// Every other top-level key by name: at most the recipe's own section (a table).
    #[serde(flatten)]
    sections: BTreeMap<String, toml::Value>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawBuild {
    #[serde(rename = "type")]
    build_type: String,
    outputs: Vec<String>,
    #[serde(default)]
    command: Option<Vec<String>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawPin {
    url: String,
    sha256: String,
}

/// Why kettle.toml was refused.
#[derive(Debug, Error)]
pub enum RecipeError {
    /// The file is missing or unreadable.
    #[error("cannot read {RECIPE_FILE} at the root of the source tree: {0}")]
    Io(#[from] std::io::Error),
    /// The file is over [`MAX_RECIPE_BYTES`].
    #[error("{RECIPE_FILE} is larger than {MAX_RECIPE_BYTES} bytes")]
    TooLarge,
    /// The file is not UTF-8.
    #[error("{RECIPE_FILE} is not UTF-8 text")]
    NotUtf8,
    /// Not valid TOML for a recipe.
    #[error("{RECIPE_FILE} is invalid: {0}")]
    Toml(#[from] toml::de::Error),
    /// A section the build type does not read (a typo, or another recipe's options).
    #[error("{RECIPE_FILE} has a [{section}] section, which {build_type} does not read (it reads {known}): remove it or fix its name")]
    UnknownSection {
        /// The section's name.
        section: String,
        /// The recipe.
        build_type: &'static str,
        /// The sections it reads.
        known: String,
    },
    /// A field has a bad value.
    #[error("{RECIPE_FILE} {field}: {reason}")]
    Field {
        /// Which field.
        field: &'static str,
        /// What is wrong.
        reason: String,
    },
}

pub(crate) fn bad(field: &'static str, reason: impl Into<String>) -> RecipeError {
    RecipeError::Field {
        field,
        reason: reason.into(),
    }
}

impl Recipe {
    /// Reads and checks `<source_dir>/kettle.toml` (a regular file, not a link).
    pub fn load(source_dir: &Path) -> Result<Recipe, RecipeError> {
        let path = source_dir.join(RECIPE_FILE);
        let meta = std::fs::symlink_metadata(&path)?;
        if !meta.is_file() {
            return Err(bad("(file)", "must be a regular file"));
        }
        if meta.len() > MAX_RECIPE_BYTES {
            return Err(RecipeError::TooLarge);
        }
        Recipe::parse_bytes(&std::fs::read(&path)?)
    }

    /// Parses and checks kettle.toml bytes (as read from a commit).
    pub fn parse_bytes(bytes: &[u8]) -> Result<Recipe, RecipeError> {
        if bytes.len() as u64 > MAX_RECIPE_BYTES {
            return Err(RecipeError::TooLarge);
        }
        Recipe::parse(std::str::from_utf8(bytes).map_err(|_| RecipeError::NotUtf8)?)
    }

    /// Parses and checks kettle.toml text.
    pub fn parse(text: &str) -> Result<Recipe, RecipeError> {
        let raw: RawRecipe = toml::from_str(text)?;
        let build_type = BuildType::from_name(&raw.build.build_type).ok_or_else(|| {
            bad(
                "build.type",
                format!(
                    "{:?} is not a recipe this builder runs ({})",
                    raw.build.build_type,
                    BuildType::names()
                ),
            )
        })?;
        let outputs = raw.build.outputs;
        if outputs.is_empty() || outputs.len() > MAX_OUTPUTS {
            return Err(bad(
                "build.outputs",
                format!("must list 1..={MAX_OUTPUTS} paths"),
            ));
        }
        for (i, out) in outputs.iter().enumerate() {
            check_relative(out)
                .map_err(|why| bad("build.outputs", format!("entry {i} {out:?}: {why}")))?;
            // Output names become subject names that hosts and verifiers print: an escape
            // sequence in one could write to the operator's terminal or forge a line.
            if let Some(c) = out.chars().find(|c| c.is_control()) {
                return Err(bad(
                    "build.outputs",
                    format!(
                        "entry {i} {out:?} contains the control character {c:?}: output names must be printable"
                    ),
                ));
            }
            if outputs[..i].contains(out) {
                return Err(bad("build.outputs", format!("{out:?} is listed twice")));
            }
        }
        let toolchain = raw
            .toolchain
            .map(|t| check_pin("toolchain", t))
            .transpose()?;
        let recipe = build_type.recipe();
        recipe.check(raw.build.command.as_deref(), toolchain.as_ref())?;
        let mut sections = raw.sections;
        let own = match recipe
            .options_section()
            .and_then(|name| sections.remove(name))
        {
            None => None,
            Some(toml::Value::Table(t)) => Some(t),
            Some(other) => {
                return Err(bad(
                    "(section)",
                    format!(
                        "[{}] must be a table, not a {}",
                        recipe.options_section().unwrap_or_default(),
                        other.type_str()
                    ),
                ))
            }
        };
        if let Some(section) = sections.into_keys().next() {
            let known = ["[build]", "[toolchain]", "[rootfs]"]
                .into_iter()
                .map(String::from)
                .chain(recipe.options_section().map(|s| format!("[{s}]")))
                .collect::<Vec<_>>()
                .join(", ");
            return Err(RecipeError::UnknownSection {
                section,
                build_type: recipe.name(),
                known,
            });
        }
        let options = recipe.parse_options(own)?;
        Ok(Recipe {
            build_type,
            outputs,
            command: raw.build.command,
            toolchain,
            options,
            rootfs: check_pin("rootfs", raw.rootfs)?,
        })
    }
}

impl Recipe {
    /// Reads the recipe's lockfile from `source_dir` (a regular file, within its size
    /// limit) and returns its pinned dependencies; none for a recipe without a lockfile.
    pub fn load_dependencies(&self, source_dir: &Path) -> Result<Vec<Dependency>, DependencyError> {
        let Some(ecosystem) = self.build_type.recipe().ecosystem() else {
            return Ok(Vec::new());
        };
        let lock = ecosystem.lockfile();
        let text = read_lockfile(&source_dir.join(lock.file), lock)?;
        ecosystem.parse_dependencies(&text)
    }
}

/// Reads a lockfile: a regular file (not a link) of at most `lock.max_bytes`.
fn read_lockfile(path: &Path, lock: Lockfile) -> Result<String, DependencyError> {
    let io = |source| DependencyError::Io {
        file: lock.file,
        source,
    };
    let meta = std::fs::symlink_metadata(path).map_err(io)?;
    if !meta.is_file() {
        return Err(io(std::io::Error::other(format!(
            "{} is not a regular file",
            lock.file
        ))));
    }
    if meta.len() > lock.max_bytes {
        return Err(DependencyError::TooLarge {
            file: lock.file,
            limit: lock.max_bytes,
        });
    }
    std::fs::read_to_string(path).map_err(io)
}

fn check_pin(name: &'static str, p: RawPin) -> Result<Pin, RecipeError> {
    let sha256 = Sha256Digest::from_hex(&p.sha256).map_err(|_| {
        bad(
            name,
            format!("sha256 {:?} is not 64 lowercase hex digits", p.sha256),
        )
    })?;
    if !p.url.starts_with("https://") && !p.url.starts_with("http://") {
        return Err(bad(name, format!("url {:?} must be http(s)", p.url)));
    }
    // The URL is printed in download errors and progress: no escape sequence, no line break.
    if let Some(c) = p.url.chars().find(|c| c.is_control()) {
        return Err(bad(
            name,
            format!("url {:?} contains the control character {c:?}", p.url),
        ));
    }
    Ok(Pin { url: p.url, sha256 })
}

/// A relative path with only normal components (no `..`, no root, no `.`).
pub fn check_relative(p: &str) -> Result<(), &'static str> {
    if p.is_empty() || p.contains('\0') {
        return Err("is empty or contains NUL");
    }
    for c in Path::new(p).components() {
        match c {
            Component::Normal(_) => {}
            _ => return Err("must be relative without '.', '..' or a leading '/'"),
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests;
