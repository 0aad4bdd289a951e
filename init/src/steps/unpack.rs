//! The unpack step: the build root (the pinned rootfs, or an empty root for
//! host tools), the pinned toolchain, and the lockfile's dependencies, each
//! archive through the safe unpacker (no path escapes, size limits).
//!
//! Each dependency is laid out as its recipe's ecosystem says (crates are
//! vendored for cargo's directory source replacement: `recipe/cargo.rs` in
//! kettle-wire). The bytes laid out are the bytes hashed again here, so a file
//! swapped after the verify step cannot slip in.

use std::fs;
use std::path::{Path, PathBuf};

use kettle_provenance::Sha256Digest;
use kettle_wire::bundle_manifest::{BundleKind, BundleManifest, BundleManifestError};
use kettle_wire::inputs::InputKind;
use kettle_wire::recipe::{Dependency, LayoutError};
use kettle_wire::unpack::{open_archive, unpack, UnpackError, UnpackLimits};
use kettle_wire::Recipe;
use thiserror::Error;

use super::fetch::{read_bounded, FetchError, FetchedInput};
use super::{Tools, WorkDir};
use crate::error::{InStep, Step, StepError};

/// Errors of the unpack step.
#[derive(Debug, Error)]
pub enum UnpackStepError {
    /// A root filesystem or toolchain archive was refused.
    #[error("{what}: {source}")]
    Archive {
        /// Which archive.
        what: String,
        /// The cause.
        #[source]
        source: UnpackError,
    },
    /// Reading a dependency into memory failed.
    #[error(transparent)]
    Read(#[from] FetchError),
    /// A dependency's bytes no longer match the pin the verify step checked them against.
    #[error("{input} changed after it was verified: its sha256 is now {computed}, but {pinned_by} pins {expected}; something rewrote the inputs during the build")]
    ChangedAfterVerify {
        /// Which dependency.
        input: String,
        /// The pin.
        expected: Sha256Digest,
        /// What the bytes hash to now.
        computed: Sha256Digest,
        /// The lockfile that pins it.
        pinned_by: &'static str,
    },
    /// Laying out a dependency for the build failed.
    #[error(transparent)]
    Layout(#[from] LayoutError),
    /// A bundle's own manifest (what it says it holds) is malformed or unsafe to read.
    #[error(transparent)]
    BundleManifest(#[from] BundleManifestError),
    /// The toolchain bundle lacks a program the recipe runs.
    #[error("the toolchain bundle has no {} (at its top or under a single top directory)", .programs.join(" and "))]
    ToolchainLayout {
        /// What the recipe needs in it (`bin/cargo`, `bin/rustc`).
        programs: &'static [&'static str],
    },
    /// Filesystem error.
    #[error("{what}: {source}")]
    Io {
        /// What was being done.
        what: String,
        /// Cause.
        #[source]
        source: std::io::Error,
    },
}

/// What the build runs on: its root directory and, when there is one, its toolchain root.
#[derive(Debug, Clone)]
pub struct BuildRoot {
    /// The directory that becomes the sandbox's `/`.
    pub root: PathBuf,
    /// The toolchain root (bin/cargo, bin/rustc, lib/...).
    pub toolchain: Option<PathBuf>,
    /// What the pinned bundles say they hold, read right after unpacking (before the
    /// build runs in them); empty for host tools.
    pub manifests: BundleManifests,
}

/// The manifests the pinned bundles carry (`None`: a bundle made without one).
#[derive(Debug, Clone, Default)]
pub struct BundleManifests {
    /// The rootfs bundle's ([`kettle_wire::bundle_manifest::ROOTFS_MANIFEST_PATH`]).
    pub rootfs: Option<BundleManifest>,
    /// The toolchain bundle's ([`kettle_wire::bundle_manifest::TOOLCHAIN_MANIFEST_PATH`]).
    pub toolchain: Option<BundleManifest>,
}

fn io_error(what: &str) -> impl FnOnce(std::io::Error) -> StepError + '_ {
    move |source| {
        StepError::new(
            Step::Unpack,
            UnpackStepError::Io {
                what: what.to_string(),
                source,
            },
        )
    }
}

/// Lays out every fetched dependency, then unpacks the rootfs and toolchain (or takes the host's).
pub fn build_root(
    recipe: &Recipe,
    fetched: &[FetchedInput],
    tools: &Tools,
    work: &WorkDir,
) -> Result<(BuildRoot, String), StepError> {
    let vendor_dir = work.vendor();
    fs::create_dir_all(&vendor_dir).map_err(io_error("vendor dir"))?;
    let mut laid_out = 0;
    for input in fetched {
        if let InputKind::Dependency(d) = &input.pin.kind {
            lay_out_file(d, &input.path, &vendor_dir)?;
            work.consumed(&input.path);
            laid_out += 1;
        }
    }
    let programs = recipe.build_type.recipe().toolchain_programs();
    let of_kind = |kind: InputKind| fetched.iter().find(|i| i.pin.kind == kind);
    let (built, what) = match tools {
        Tools::Host { toolchain_root } => {
            let root = work.host_root();
            fs::create_dir_all(&root).map_err(io_error("build root"))?;
            let built = BuildRoot {
                root,
                toolchain: Some(toolchain_root.clone()),
                manifests: BundleManifests::default(),
            };
            (built, "host tools (read-only binds)")
        }
        Tools::Pinned => {
            let rootfs = of_kind(InputKind::Rootfs).expect("pinned tools fetch a rootfs");
            let root = work.rootfs();
            unpack_archive("rootfs", &rootfs.path, &root)?;
            work.consumed(&rootfs.path);
            let toolchain = match of_kind(InputKind::Toolchain) {
                None => None,
                Some(t) => {
                    let dir = work.toolchain();
                    unpack_archive("toolchain", &t.path, &dir)?;
                    work.consumed(&t.path);
                    Some(
                        toolchain_root(&dir, programs)
                            .ok_or(UnpackStepError::ToolchainLayout { programs })
                            .in_step_for(Step::Unpack, "toolchain")?,
                    )
                }
            };
            let read = |dir: &Path, kind: BundleKind| {
                BundleManifest::read_unpacked(dir, kind)
                    .map_err(UnpackStepError::from)
                    .in_step_for(Step::Unpack, kind.as_str())
            };
            let manifests = BundleManifests {
                rootfs: read(&root, BundleKind::Rootfs)?,
                toolchain: match &toolchain {
                    Some(dir) => read(dir, BundleKind::Toolchain)?,
                    None => None,
                },
            };
            let what = if toolchain.is_some() {
                "rootfs and toolchain"
            } else {
                "rootfs"
            };
            (
                BuildRoot {
                    root,
                    toolchain,
                    manifests,
                },
                what,
            )
        }
    };
    let packages = match recipe.build_type.recipe().ecosystem() {
        Some(e) => format!(", {laid_out} {}s laid out", e.package_noun()),
        None => String::new(),
    };
    Ok((built, format!("{what}{packages}")))
}

fn unpack_archive(what: &str, archive: &Path, dir: &Path) -> Result<(), StepError> {
    let refused = |source| UnpackStepError::Archive {
        what: what.into(),
        source,
    };
    let reader = open_archive(archive)
        .map_err(refused)
        .in_step_for(Step::Unpack, what)?;
    unpack(reader, dir, &UnpackLimits::TREE)
        .map_err(refused)
        .in_step_for(Step::Unpack, what)?;
    Ok(())
}

/// Reads the package file at `path`, checks its bytes against the pin once more, and lays
/// them out in `vendor_dir` as its ecosystem says.
pub fn lay_out_file(
    dep: &Dependency,
    path: &Path,
    vendor_dir: &Path,
) -> Result<PathBuf, StepError> {
    let label = dep.label();
    let ecosystem = dep.ecosystem();
    let bytes = read_bounded(path, &label, ecosystem.max_package_bytes())
        .map_err(UnpackStepError::from)
        .in_step_for(Step::Unpack, &label)?;
    let computed = Sha256Digest::of_bytes(&bytes);
    if computed != dep.sha256 {
        return Err(StepError::new(
            Step::Unpack,
            UnpackStepError::ChangedAfterVerify {
                input: label.clone(),
                expected: dep.sha256,
                computed,
                pinned_by: ecosystem.lockfile().file,
            },
        )
        .with_input(label));
    }
    ecosystem
        .lay_out(dep, &bytes, vendor_dir)
        .map_err(UnpackStepError::from)
        .in_step_for(Step::Unpack, label)
}

/// The toolchain root inside an unpacked bundle: the top, or its single top directory,
/// whichever holds every one of `programs`.
fn toolchain_root(dir: &Path, programs: &[&str]) -> Option<PathBuf> {
    let ok = |d: &Path| programs.iter().all(|p| d.join(p).is_file());
    if ok(dir) {
        return Some(dir.to_path_buf());
    }
    let entries: Vec<_> = fs::read_dir(dir).ok()?.filter_map(Result::ok).collect();
    match entries.as_slice() {
        [one] if one.file_type().ok()?.is_dir() && ok(&one.path()) => Some(one.path()),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use kettle_wire::recipe::cargo::RUST_TOOLCHAIN_PROGRAMS as RUST;

    /// A gzipped .crate holding `<dir>/Cargo.toml` and `<dir>/src/lib.rs`.
    fn fake_crate(dir: &str) -> Vec<u8> {
        let mut b = tar::Builder::new(flate2::write::GzEncoder::new(
            Vec::new(),
            flate2::Compression::fast(),
        ));
        for (p, data) in [
            (format!("{dir}/Cargo.toml"), &b"[package]\nname=\"x\"\n"[..]),
            (format!("{dir}/src/lib.rs"), &b"pub fn f() {}\n"[..]),
        ] {
            let mut h = tar::Header::new_gnu();
            h.set_size(data.len() as u64);
            h.set_mode(0o644);
            b.append_data(&mut h, p, data).unwrap();
        }
        b.into_inner().unwrap().finish().unwrap()
    }

    #[test]
    fn a_crate_changed_after_verify_fails_the_unpack_step() {
        let verified = fake_crate("x-1.0.0");
        let k = Dependency {
            build_type: kettle_wire::BuildType::CargoBuild,
            name: "x".into(),
            version: "1.0.0".into(),
            sha256: Sha256Digest::of_bytes(&verified),
        };
        let tmp = tempfile::tempdir().unwrap();
        let path = tmp.path().join("x.crate");
        // The file on disk is no longer the one the verify step hashed.
        fs::write(&path, fake_crate("x-1.0.0-evil")).unwrap();
        let vendor = tmp.path().join("vendor");
        fs::create_dir_all(&vendor).unwrap();
        let err = lay_out_file(&k, &path, &vendor).unwrap_err();
        assert_eq!(err.step, Step::Unpack, "{}", err.message());
        assert_eq!(err.input.as_deref(), Some("crate x 1.0.0"));
        assert!(
            err.message()
                .contains("crate x 1.0.0 changed after it was verified"),
            "{}",
            err.message()
        );
        assert!(
            matches!(
                err.source.downcast_ref::<UnpackStepError>(),
                Some(UnpackStepError::ChangedAfterVerify { .. })
            ),
            "{err:?}"
        );
        assert_eq!(
            fs::read_dir(&vendor).unwrap().count(),
            0,
            "nothing vendored"
        );
        // The unchanged bytes vendor fine.
        fs::write(&path, &verified).unwrap();
        assert!(lay_out_file(&k, &path, &vendor).unwrap().is_dir());
    }

    #[test]
    fn toolchain_root_is_the_top_or_a_single_top_directory() {
        let tmp = tempfile::tempdir().unwrap();
        let make = |d: &Path| {
            fs::create_dir_all(d.join("bin")).unwrap();
            fs::write(d.join("bin/cargo"), b"").unwrap();
            fs::write(d.join("bin/rustc"), b"").unwrap();
        };
        let top = tmp.path().join("top");
        make(&top);
        assert_eq!(toolchain_root(&top, RUST), Some(top.clone()));
        let nested = tmp.path().join("nested");
        make(&nested.join("rust-1.85.0"));
        assert_eq!(
            toolchain_root(&nested, RUST),
            Some(nested.join("rust-1.85.0"))
        );
        fs::create_dir_all(nested.join("other")).unwrap();
        assert_eq!(
            toolchain_root(&nested, RUST),
            None,
            "two top directories are ambiguous"
        );
        assert_eq!(toolchain_root(tmp.path(), RUST), None);
    }
}
