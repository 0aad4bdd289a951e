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

use kettle_provenance::ids;
use serde::Deserialize;
use thiserror::Error;

/// File name of the recipe at the root of the source tree.
pub const MANIFEST_FILE: &str = "kettle.toml";
/// Largest kettle.toml accepted.
pub const MAX_MANIFEST_BYTES: u64 = 64 * 1024;
/// Most outputs one build may declare.
pub const MAX_OUTPUTS: usize = 256;

/// The parsed and checked kettle.toml.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Manifest {
    /// What to build and what it produces.
    pub build: BuildSection,
    /// The Rust toolchain bundle (tar or tar.gz of a toolchain root: bin/cargo, bin/rustc, lib/...).
    #[serde(default)]
    pub toolchain: Option<Pinned>,
    /// The root filesystem the build runs in (tar or tar.gz).
    pub rootfs: Pinned,
}

/// `[build]`.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BuildSection {
    /// Recipe name: `cargo-build/v1` or `script/v1`.
    #[serde(rename = "type")]
    pub build_type: String,
    /// Output paths relative to the source dir; each becomes a subject.
    pub outputs: Vec<String>,
    /// argv of the script/v1 recipe, run with cwd = the source dir.
    #[serde(default)]
    pub command: Option<Vec<String>>,
}

/// A download pinned by SHA-256.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Pinned {
    /// Where to download it in upstream mode.
    pub url: String,
    /// Lowercase hex SHA-256 of the file.
    pub sha256: String,
}

/// The recipes this guest runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Recipe {
    /// `cargo build --locked --offline --release` with vendored crates.
    CargoBuild,
    /// A command from kettle.toml.
    Script,
}

impl Recipe {
    /// The buildType URI recorded in provenance.
    pub fn build_type_uri(self) -> &'static str {
        match self {
            Recipe::CargoBuild => ids::BUILD_TYPE_CARGO,
            Recipe::Script => ids::BUILD_TYPE_SCRIPT,
        }
    }
}

/// Why kettle.toml was refused.
#[derive(Debug, Error)]
pub enum ManifestError {
    /// The file is missing or unreadable.
    #[error("cannot read {MANIFEST_FILE} at the root of the source tree: {0}")]
    Io(#[from] std::io::Error),
    /// The file is over [`MAX_MANIFEST_BYTES`].
    #[error("{MANIFEST_FILE} is larger than {MAX_MANIFEST_BYTES} bytes")]
    TooLarge,
    /// Not valid TOML for [`Manifest`].
    #[error("{MANIFEST_FILE} is invalid: {0}")]
    Toml(#[from] toml::de::Error),
    /// A field has a bad value.
    #[error("{MANIFEST_FILE} {field}: {reason}")]
    Field {
        /// Which field.
        field: &'static str,
        /// What is wrong.
        reason: String,
    },
}

fn bad(field: &'static str, reason: impl Into<String>) -> ManifestError {
    ManifestError::Field {
        field,
        reason: reason.into(),
    }
}

impl Manifest {
    /// Reads and checks `<source_dir>/kettle.toml`.
    pub fn load(source_dir: &Path) -> Result<Manifest, ManifestError> {
        let path = source_dir.join(MANIFEST_FILE);
        let meta = std::fs::symlink_metadata(&path)?;
        if !meta.is_file() {
            return Err(bad("(file)", "must be a regular file"));
        }
        if meta.len() > MAX_MANIFEST_BYTES {
            return Err(ManifestError::TooLarge);
        }
        Manifest::parse(&std::fs::read_to_string(&path)?)
    }

    /// Parses and checks kettle.toml text.
    pub fn parse(text: &str) -> Result<Manifest, ManifestError> {
        let m: Manifest = toml::from_str(text)?;
        let recipe = m.recipe()?;
        if m.build.outputs.is_empty() || m.build.outputs.len() > MAX_OUTPUTS {
            return Err(bad(
                "build.outputs",
                format!("must list 1..={MAX_OUTPUTS} paths"),
            ));
        }
        for (i, out) in m.build.outputs.iter().enumerate() {
            check_relative(out)
                .map_err(|why| bad("build.outputs", format!("entry {i} {out:?}: {why}")))?;
            if m.build.outputs[..i].contains(out) {
                return Err(bad("build.outputs", format!("{out:?} is listed twice")));
            }
        }
        match (recipe, &m.build.command) {
            (Recipe::Script, None) => {
                return Err(bad(
                    "build.command",
                    "script/v1 needs a command (argv list)",
                ))
            }
            (Recipe::Script, Some(c)) if c.is_empty() || c.iter().any(|a| a.contains('\0')) => {
                return Err(bad(
                    "build.command",
                    "must be a non-empty argv without NUL bytes",
                ))
            }
            (Recipe::CargoBuild, Some(_)) => {
                return Err(bad(
                    "build.command",
                    "cargo-build/v1 runs cargo itself; remove command",
                ))
            }
            (Recipe::CargoBuild, None) if m.toolchain.is_none() => {
                return Err(bad("toolchain", "cargo-build/v1 needs a pinned toolchain"))
            }
            _ => {}
        }
        if let Some(t) = &m.toolchain {
            check_pin("toolchain", t)?;
        }
        check_pin("rootfs", &m.rootfs)?;
        Ok(m)
    }

    /// The recipe named by build.type.
    pub fn recipe(&self) -> Result<Recipe, ManifestError> {
        match self.build.build_type.as_str() {
            "cargo-build/v1" => Ok(Recipe::CargoBuild),
            "script/v1" => Ok(Recipe::Script),
            other => Err(bad(
                "build.type",
                format!("{other:?} is not a recipe this builder runs (cargo-build/v1, script/v1)"),
            )),
        }
    }
}

fn check_pin(name: &'static str, p: &Pinned) -> Result<(), ManifestError> {
    if !is_sha256_hex(&p.sha256) {
        return Err(bad(
            name,
            format!("sha256 {:?} is not 64 lowercase hex digits", p.sha256),
        ));
    }
    if !p.url.starts_with("https://") && !p.url.starts_with("http://") {
        return Err(bad(name, format!("url {:?} must be http(s)", p.url)));
    }
    Ok(())
}

/// True for 64 lowercase hex digits.
pub fn is_sha256_hex(s: &str) -> bool {
    s.len() == 64
        && s.bytes()
            .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
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

    const PIN: &str = "0000000000000000000000000000000000000000000000000000000000000000";

    fn script(extra: &str) -> String {
        format!(
            "[build]\ntype = \"script/v1\"\noutputs = [\"out/a\"]\ncommand = [\"sh\", \"-c\", \"true\"]\n{extra}\n[rootfs]\nurl = \"https://h/r.tar\"\nsha256 = \"{PIN}\"\n"
        )
    }

    #[test]
    fn parses_both_recipes() {
        let m = Manifest::parse(&script("")).unwrap();
        assert_eq!(m.recipe().unwrap(), Recipe::Script);
        assert_eq!(m.recipe().unwrap().build_type_uri(), ids::BUILD_TYPE_SCRIPT);
        let cargo = format!(
            "[build]\ntype = \"cargo-build/v1\"\noutputs = [\"target/release/x\"]\n[toolchain]\nurl = \"https://h/t.tar.gz\"\nsha256 = \"{PIN}\"\n[rootfs]\nurl = \"https://h/r.tar\"\nsha256 = \"{PIN}\"\n"
        );
        assert_eq!(
            Manifest::parse(&cargo).unwrap().recipe().unwrap(),
            Recipe::CargoBuild
        );
    }

    #[test]
    fn refuses_bad_manifests() {
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
            match Manifest::parse(&text) {
                Err(ManifestError::Field { field: f, .. }) => assert_eq!(f, field, "{text}"),
                other => panic!("{field}: expected field error, got {other:?}"),
            }
        }
        let err = Manifest::parse(&script("surprise = 1")).unwrap_err();
        assert!(matches!(err, ManifestError::Toml(_)), "{err}");
    }
}
