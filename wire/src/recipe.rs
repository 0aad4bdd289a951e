//! `kettle.toml`, the build recipe in the source tree. The commit covers it, so
//! the recipe, the declared outputs and the toolchain/rootfs pins are all as
//! trustworthy as the commit id in the request.
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
//! ```

use std::path::{Component, Path};

use kettle_provenance::{ids, Sha256Digest};
use serde::Deserialize;
use thiserror::Error;

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
}

/// A download pinned by SHA-256.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Pin {
    /// Where to download it in upstream mode (and where the host fetches it from in cached mode).
    pub url: String,
    /// SHA-256 of the file.
    pub sha256: Sha256Digest,
}

/// The recipes this guest runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BuildType {
    /// `cargo build --locked --offline --release` with vendored crates.
    CargoBuild,
    /// A command from kettle.toml.
    Script,
}

impl BuildType {
    /// Every recipe, the one registry kettle.toml's `type`, the verifier's accepted
    /// buildTypes and `kettle policy init` read.
    pub const ALL: [BuildType; 2] = [BuildType::CargoBuild, BuildType::Script];

    /// The name used in kettle.toml's `[build] type`.
    pub fn name(self) -> &'static str {
        match self {
            BuildType::CargoBuild => "cargo-build/v1",
            BuildType::Script => "script/v1",
        }
    }

    /// The buildType URI recorded in provenance.
    pub fn uri(self) -> &'static str {
        match self {
            BuildType::CargoBuild => ids::BUILD_TYPE_CARGO,
            BuildType::Script => ids::BUILD_TYPE_SCRIPT,
        }
    }

    /// The recipe named `name` in kettle.toml.
    pub fn from_name(name: &str) -> Option<BuildType> {
        BuildType::ALL.into_iter().find(|t| t.name() == name)
    }
}

/// kettle.toml as written, before its values are checked.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawRecipe {
    build: RawBuild,
    #[serde(default)]
    toolchain: Option<RawPin>,
    rootfs: RawPin,
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
    /// A field has a bad value.
    #[error("{RECIPE_FILE} {field}: {reason}")]
    Field {
        /// Which field.
        field: &'static str,
        /// What is wrong.
        reason: String,
    },
}

fn bad(field: &'static str, reason: impl Into<String>) -> RecipeError {
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
                    "{:?} is not a recipe this builder runs (cargo-build/v1, script/v1)",
                    raw.build.build_type
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
        match (build_type, &raw.build.command) {
            (BuildType::Script, None) => {
                return Err(bad(
                    "build.command",
                    "script/v1 needs a command (argv list)",
                ))
            }
            (BuildType::Script, Some(c)) if c.is_empty() || c.iter().any(|a| a.contains('\0')) => {
                return Err(bad(
                    "build.command",
                    "must be a non-empty argv without NUL bytes",
                ))
            }
            (BuildType::CargoBuild, Some(_)) => {
                return Err(bad(
                    "build.command",
                    "cargo-build/v1 runs cargo itself; remove command",
                ))
            }
            (BuildType::CargoBuild, None) if raw.toolchain.is_none() => {
                return Err(bad("toolchain", "cargo-build/v1 needs a pinned toolchain"))
            }
            _ => {}
        }
        Ok(Recipe {
            build_type,
            outputs,
            command: raw.build.command,
            toolchain: raw
                .toolchain
                .map(|t| check_pin("toolchain", t))
                .transpose()?,
            rootfs: check_pin("rootfs", raw.rootfs)?,
        })
    }
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
mod tests {
    use super::*;

    #[test]
    fn every_recipe_is_registered_once_by_name_and_uri() {
        let names: Vec<&str> = BuildType::ALL.iter().map(|t| t.name()).collect();
        assert_eq!(names, ["cargo-build/v1", "script/v1"]);
        for t in BuildType::ALL {
            assert_eq!(BuildType::from_name(t.name()), Some(t));
            assert!(
                t.uri().ends_with(t.name()),
                "{} names {}",
                t.uri(),
                t.name()
            );
        }
        assert_eq!(BuildType::from_name("npm-build/v1"), None);
    }

    const PIN: &str = "0000000000000000000000000000000000000000000000000000000000000000";

    fn script(extra: &str) -> String {
        format!(
            "[build]\ntype = \"script/v1\"\noutputs = [\"out/a\"]\ncommand = [\"sh\", \"-c\", \"true\"]\n{extra}\n[rootfs]\nurl = \"https://h/r.tar\"\nsha256 = \"{PIN}\"\n"
        )
    }

    #[test]
    fn parses_both_recipes() {
        let m = Recipe::parse(&script("")).unwrap();
        assert_eq!(m.build_type, BuildType::Script);
        assert_eq!(m.build_type.uri(), ids::BUILD_TYPE_SCRIPT);
        let cargo = format!(
            "[build]\ntype = \"cargo-build/v1\"\noutputs = [\"target/release/x\"]\n[toolchain]\nurl = \"https://h/t.tar.gz\"\nsha256 = \"{PIN}\"\n[rootfs]\nurl = \"https://h/r.tar\"\nsha256 = \"{PIN}\"\n"
        );
        assert_eq!(
            Recipe::parse(&cargo).unwrap().build_type,
            BuildType::CargoBuild
        );
    }

    #[test]
    fn refuses_bad_recipes() {
        let cases = [
            (script("").replace("script/v1", "make/v1"), "build.type"),
            (script("").replace("out/a", "../a"), "build.outputs"),
            (script("").replace("out/a", "/etc/passwd"), "build.outputs"),
            (script("").replace("[\"out/a\"]", "[]"), "build.outputs"),
            (script("").replace(PIN, "abc"), "rootfs"),
            (
                script("").replace("command = [\"sh\", \"-c\", \"true\"]", ""),
                "build.command",
            ),
            (
                script("").replace("type = \"script/v1\"", "type = \"cargo-build/v1\""),
                "build.command",
            ),
        ];
        for (text, field) in cases {
            match Recipe::parse(&text) {
                Err(RecipeError::Field { field: f, .. }) => assert_eq!(f, field, "{text}"),
                other => panic!("{field}: expected field error, got {other:?}"),
            }
        }
        // Control characters (C0, DEL, C1) in an output name: escape sequences, line breaks.
        for name in [
            "out/\\u001b]52;c;ZXZpbA==\\u0007",
            "out/a\\nVERIFIED",
            "out/\\u009b2J",
            "out/\\u007f",
        ] {
            let text = script("").replace("out/a", name);
            match Recipe::parse(&text) {
                Err(RecipeError::Field { field, reason }) => {
                    assert_eq!(field, "build.outputs", "{name}");
                    assert!(reason.contains("control character"), "{name}: {reason}");
                }
                other => panic!("{name}: expected a build.outputs error, got {other:?}"),
            }
        }
        // And in a pinned URL, which download errors print.
        let text = script("").replace("https://h/r.tar", "https://h/r.tar\\u001b[2J");
        match Recipe::parse(&text) {
            Err(RecipeError::Field { field, reason }) => {
                assert_eq!(field, "rootfs");
                assert!(reason.contains("control character"), "{reason}");
            }
            other => panic!("expected a rootfs error, got {other:?}"),
        }
        let err = Recipe::parse(&script("surprise = 1")).unwrap_err();
        assert!(matches!(err, RecipeError::Toml(_)), "{err}");
    }
}
