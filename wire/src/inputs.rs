//! Which inputs a build needs: the one answer both sides use. The host
//! resolves these into the cache disk (cached mode); the guest fetches and
//! verifies exactly these (and the source commit, which [`crate::cache`]
//! and [`crate::request`] locate separately).

use kettle_provenance::Sha256Digest;

use crate::recipe::{Dependency, Recipe};

/// What a pinned input is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum InputKind {
    /// A package the recipe's lockfile pins (a crate of Cargo.lock).
    Dependency(Dependency),
    /// The Rust toolchain bundle of kettle.toml `[toolchain]`.
    Toolchain,
    /// The build root filesystem of kettle.toml `[rootfs]`.
    Rootfs,
}

/// Where an input's pin is written (both are inside the verified commit).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PinSource {
    /// The recipe's lockfile (Cargo.lock's `checksum`).
    Lockfile(&'static str),
    /// kettle.toml `[toolchain] sha256`.
    RecipeToolchain,
    /// kettle.toml `[rootfs] sha256`.
    RecipeRootfs,
}

impl PinSource {
    /// How the pin's location is named in messages.
    pub fn describe(self) -> &'static str {
        match self {
            PinSource::Lockfile(file) => file,
            PinSource::RecipeToolchain => "kettle.toml [toolchain]",
            PinSource::RecipeRootfs => "kettle.toml [rootfs]",
        }
    }
}

/// One input pinned by digest: what it is, the digest it must have, where it can be fetched.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InputPin {
    /// What the input is.
    pub kind: InputKind,
    /// The SHA-256 its bytes must have.
    pub sha256: Sha256Digest,
    /// Where it is downloaded from (a hint only: the digest decides).
    pub url: String,
}

impl InputPin {
    /// How the input is named in logs and errors: `crate hex 0.4.3`, `toolchain`, `rootfs`.
    pub fn label(&self) -> String {
        match &self.kind {
            InputKind::Dependency(d) => d.label(),
            InputKind::Toolchain => "toolchain".into(),
            InputKind::Rootfs => "rootfs".into(),
        }
    }

    /// Where the pin is written.
    pub fn source(&self) -> PinSource {
        match &self.kind {
            InputKind::Dependency(d) => PinSource::Lockfile(d.ecosystem().lockfile().file),
            InputKind::Toolchain => PinSource::RecipeToolchain,
            InputKind::Rootfs => PinSource::RecipeRootfs,
        }
    }
}

/// Whether the build's toolchain and root filesystem are pinned inputs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BuildTools {
    /// The toolchain and rootfs of kettle.toml (always, in the guest).
    Pinned,
    /// Local mode with the host's own tools: they are not inputs (and not verified).
    Host,
}

/// Every pinned input of a build, in a fixed order: the lockfile's dependencies
/// (sorted, as the recipe's lockfile parsing returns them), then the toolchain, then
/// the rootfs. `registry` is the base URL dependencies are downloaded from.
pub fn required_inputs(
    recipe: &Recipe,
    dependencies: &[Dependency],
    registry: &str,
    tools: BuildTools,
) -> Vec<InputPin> {
    let mut pins: Vec<InputPin> = dependencies
        .iter()
        .map(|d| InputPin {
            kind: InputKind::Dependency(d.clone()),
            sha256: d.sha256,
            url: d.ecosystem().download_url(registry, d),
        })
        .collect();
    if tools == BuildTools::Pinned {
        if let Some(t) = &recipe.toolchain {
            pins.push(InputPin {
                kind: InputKind::Toolchain,
                sha256: t.sha256,
                url: t.url.clone(),
            });
        }
        pins.push(InputPin {
            kind: InputKind::Rootfs,
            sha256: recipe.rootfs.sha256,
            url: recipe.rootfs.url.clone(),
        });
    }
    pins
}

#[cfg(test)]
mod tests {
    use super::*;

    fn recipe(toolchain: bool) -> Recipe {
        let t = if toolchain {
            format!(
                "[toolchain]\nurl = \"https://h/t.tar\"\nsha256 = \"{}\"\n",
                "11".repeat(32)
            )
        } else {
            String::new()
        };
        let (ty, cmd) = if toolchain {
            ("cargo-build/v1", "")
        } else {
            ("script/v1", "command = [\"true\"]\n")
        };
        Recipe::parse(&format!(
            "[build]\ntype = \"{ty}\"\noutputs = [\"a\"]\n{cmd}{t}[rootfs]\nurl = \"https://h/r.tar\"\nsha256 = \"{}\"\n",
            "22".repeat(32)
        ))
        .unwrap()
    }

    #[test]
    fn crates_then_toolchain_then_rootfs_each_with_its_pin_source() {
        let hex = Dependency {
            build_type: crate::recipe::BuildType::CargoBuild,
            name: "hex".into(),
            version: "0.4.3".into(),
            sha256: Sha256Digest::of_bytes(b"hex"),
        };
        let pins = required_inputs(
            &recipe(true),
            std::slice::from_ref(&hex),
            "https://c/crates/",
            BuildTools::Pinned,
        );
        let labels: Vec<_> = pins
            .iter()
            .map(|p| (p.label(), p.source().describe()))
            .collect();
        assert_eq!(
            labels,
            [
                ("crate hex 0.4.3".to_string(), "Cargo.lock"),
                ("toolchain".to_string(), "kettle.toml [toolchain]"),
                ("rootfs".to_string(), "kettle.toml [rootfs]"),
            ]
        );
        assert_eq!(pins[0].url, "https://c/crates/hex/hex-0.4.3.crate");
        assert_eq!(pins[0].sha256, hex.sha256);
        assert_eq!(pins[2].sha256.to_hex(), "22".repeat(32));
        let host = required_inputs(&recipe(true), &[hex], "https://c", BuildTools::Host);
        assert_eq!(host.len(), 1, "host tools are not inputs");
        assert_eq!(
            required_inputs(&recipe(false), &[], "https://c", BuildTools::Pinned).len(),
            1
        );
    }
}
