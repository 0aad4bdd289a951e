//! The unpack step: the build root (the pinned rootfs, or an empty root for
//! host tools), the pinned toolchain, and the vendored crates, each archive
//! through the safe unpacker (no path escapes, size limits).
//!
//! Crates are vendored for cargo's directory source replacement: each .crate
//! is unpacked to `<vendor>/<name>-<version>/` with a `.cargo-checksum.json` of
//! `{"files": {path: sha256}, "package": checksum}`. The bytes unpacked are the
//! bytes hashed again here, so a file swapped after the verify step cannot slip in.

use std::collections::BTreeMap;
use std::fs;
use std::io::Write;
use std::path::{Path, PathBuf};

use kettle_provenance::Sha256Digest;
use kettle_wire::bundle_manifest::{BundleKind, BundleManifest, BundleManifestError};
use kettle_wire::inputs::InputKind;
use kettle_wire::lockfile::LockedCrate;
use kettle_wire::unpack::{
    maybe_gunzip, open_archive, unpack, Beneath, BeneathError, UnpackError, UnpackLimits,
};
use kettle_wire::{BuildType, Recipe};
use thiserror::Error;

use super::fetch::{read_bounded, FetchError, FetchedInput};
use super::{Tools, WorkDir};
use crate::error::{InStep, Step, StepError};

/// Largest .crate file accepted.
pub const MAX_CRATE_BYTES: u64 = 256 << 20;

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
    /// Reading a crate into memory failed.
    #[error(transparent)]
    Read(#[from] FetchError),
    /// A crate's bytes no longer match the pin the verify step checked them against.
    #[error("{input} changed after it was verified: its sha256 is now {computed}, but Cargo.lock pins {expected}; something rewrote the inputs during the build")]
    ChangedAfterVerify {
        /// Which crate.
        input: String,
        /// The pin.
        expected: Sha256Digest,
        /// What the bytes hash to now.
        computed: Sha256Digest,
    },
    /// Vendoring a crate failed.
    #[error(transparent)]
    Vendor(#[from] VendorError),
    /// A bundle's own manifest (what it says it holds) is malformed or unsafe to read.
    #[error(transparent)]
    BundleManifest(#[from] BundleManifestError),
    /// The toolchain bundle has no bin/cargo.
    #[error("the toolchain bundle has no bin/cargo and bin/rustc (at its top or under a single top directory)")]
    ToolchainLayout,
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

/// Why a crate could not be vendored.
#[derive(Debug, Error)]
pub enum VendorError {
    /// The .crate archive was refused or could not be unpacked.
    #[error("unpacking {label}: {source}")]
    Unpack {
        /// Which crate.
        label: String,
        /// The cause.
        #[source]
        source: UnpackError,
    },
    /// The .crate does not hold a single `<name>-<version>/` directory with a Cargo.toml.
    #[error("{label}: the .crate does not contain {dir}/Cargo.toml")]
    Layout {
        /// Which crate.
        label: String,
        /// The expected directory.
        dir: String,
    },
    /// Filesystem error.
    #[error("vendoring {label}: {source}")]
    Io {
        /// Which crate.
        label: String,
        /// The cause.
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

/// Vendors every fetched crate, then unpacks the rootfs and toolchain (or takes the host's).
pub fn build_root(
    recipe: &Recipe,
    fetched: &[FetchedInput],
    tools: &Tools,
    work: &WorkDir,
) -> Result<(BuildRoot, String), StepError> {
    let vendor_dir = work.vendor();
    fs::create_dir_all(&vendor_dir).map_err(io_error("vendor dir"))?;
    let mut vendored = 0;
    for input in fetched {
        if let InputKind::Crate(k) = &input.pin.kind {
            vendor_crate_file(k, &input.path, &vendor_dir)?;
            work.consumed(&input.path);
            vendored += 1;
        }
    }
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
                        toolchain_root(&dir)
                            .ok_or(UnpackStepError::ToolchainLayout)
                            .in_step_for(Step::Unpack, "toolchain")?,
                    )
                }
            };
            if recipe.build_type == BuildType::CargoBuild && toolchain.is_none() {
                return Err(
                    StepError::new(Step::Unpack, UnpackStepError::ToolchainLayout)
                        .with_input("toolchain"),
                );
            }
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
    Ok((built, format!("{what}, {vendored} vendored crates")))
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

/// Reads the .crate at `path`, checks its bytes against the pin once more, and vendors them.
pub fn vendor_crate_file(
    krate: &LockedCrate,
    path: &Path,
    vendor_dir: &Path,
) -> Result<PathBuf, StepError> {
    let label = krate.label();
    let bytes = read_bounded(path, &label, MAX_CRATE_BYTES)
        .map_err(UnpackStepError::from)
        .in_step_for(Step::Unpack, &label)?;
    let computed = Sha256Digest::of_bytes(&bytes);
    if computed != krate.checksum {
        return Err(StepError::new(
            Step::Unpack,
            UnpackStepError::ChangedAfterVerify {
                input: label.clone(),
                expected: krate.checksum,
                computed,
            },
        )
        .with_input(label));
    }
    vendor_crate(krate, &bytes, vendor_dir)
        .map_err(UnpackStepError::from)
        .in_step_for(Step::Unpack, label)
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
    krate: &LockedCrate,
    crate_bytes: &[u8],
    vendor_dir: &Path,
) -> Result<PathBuf, VendorError> {
    let label = krate.label();
    let io = |source| VendorError::Io {
        label: label.clone(),
        source,
    };
    let beneath = |source: BeneathError| VendorError::Io {
        label: label.clone(),
        source: source.into_io(),
    };
    let dir_name = krate.dir_name();
    let staging_name = format!(".unpack-{dir_name}");
    let staging = vendor_dir.join(&staging_name);
    let reader = maybe_gunzip(crate_bytes).map_err(io)?;
    unpack(reader, &staging, &UnpackLimits::CRATE).map_err(|source| VendorError::Unpack {
        label: label.clone(),
        source,
    })?;
    let vendor = Beneath::open(vendor_dir).map_err(io)?;
    let layout = || VendorError::Layout {
        label: label.clone(),
        dir: dir_name.clone(),
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
    let doc = serde_json::json!({ "files": files, "package": krate.checksum });
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

/// The toolchain root inside an unpacked bundle: the top, or its single top directory.
fn toolchain_root(dir: &Path) -> Option<PathBuf> {
    let ok = |d: &Path| d.join("bin/cargo").is_file() && d.join("bin/rustc").is_file();
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

    fn locked(bytes: &[u8]) -> LockedCrate {
        LockedCrate {
            name: "x".into(),
            version: "1.0.0".into(),
            checksum: Sha256Digest::of_bytes(bytes),
        }
    }

    #[test]
    fn vendors_with_cargo_checksums() {
        let bytes = fake_crate("x-1.0.0");
        let k = locked(&bytes);
        let tmp = tempfile::tempdir().unwrap();
        let dest = vendor_crate(&k, &bytes, tmp.path()).unwrap();
        let sums: serde_json::Value =
            serde_json::from_slice(&fs::read(dest.join(".cargo-checksum.json")).unwrap()).unwrap();
        assert_eq!(sums["package"], k.checksum.to_hex());
        assert_eq!(
            sums["files"]["src/lib.rs"],
            Sha256Digest::of_bytes(b"pub fn f() {}\n").to_hex()
        );
        assert_eq!(sums["files"].as_object().unwrap().len(), 2);
    }

    /// A .crate tar (uncompressed) from (path, type, data-or-link-target) entries.
    fn hostile_crate(entries: &[(&str, tar::EntryType, &[u8])]) -> Vec<u8> {
        let mut b = tar::Builder::new(Vec::new());
        for (path, kind, data) in entries {
            let mut h = tar::Header::new_gnu();
            h.set_entry_type(*kind);
            h.set_mode(0o644);
            if *kind == tar::EntryType::Symlink {
                h.set_size(0);
                b.append_link(&mut h, path, std::str::from_utf8(data).unwrap())
                    .unwrap();
            } else {
                h.set_size(data.len() as u64);
                b.append_data(&mut h, path, *data).unwrap();
            }
        }
        b.into_inner().unwrap()
    }

    #[test]
    fn a_checksum_file_linked_out_of_the_vendor_dir_through_a_chain_is_refused() {
        // Lexically every link stays inside the crate; resolved, p/q/y is the vendor dir
        // (after the crate is moved into place) and p/q/x its parent, so the crate's own
        // .cargo-checksum.json link points at <tmp>/outside.json.
        use tar::EntryType as T;
        let bytes = hostile_crate(&[
            ("x-1.0.0/Cargo.toml", T::Regular, b"[package]\nname=\"x\"\n"),
            ("x-1.0.0/p/q/y", T::Symlink, b"../../.."),
            ("x-1.0.0/p/q/x", T::Symlink, b"y/.."),
            (
                "x-1.0.0/.cargo-checksum.json",
                T::Symlink,
                b"p/q/x/outside.json",
            ),
        ]);
        let tmp = tempfile::tempdir().unwrap();
        let vendor = tmp.path().join("vendor");
        fs::create_dir_all(&vendor).unwrap();
        let r = vendor_crate(&locked(&bytes), &bytes, &vendor);
        assert!(r.is_err(), "{r:?}");
        assert!(
            !tmp.path().join("outside.json").exists(),
            "kettle-init wrote .cargo-checksum.json outside the vendor dir"
        );
    }

    #[test]
    fn a_crate_shipping_its_own_checksum_file_gets_ours_written_in_place() {
        use tar::EntryType as T;
        let bytes = hostile_crate(&[
            ("x-1.0.0/Cargo.toml", T::Regular, b"[package]\nname=\"x\"\n"),
            ("x-1.0.0/.cargo-checksum.json", T::Symlink, b"Cargo.toml"),
        ]);
        let tmp = tempfile::tempdir().unwrap();
        let dest = vendor_crate(&locked(&bytes), &bytes, tmp.path()).unwrap();
        let sums = fs::symlink_metadata(dest.join(CARGO_CHECKSUM_FILE)).unwrap();
        assert!(
            sums.is_file(),
            "the crate's link was followed, not replaced"
        );
        assert_eq!(
            fs::read_to_string(dest.join("Cargo.toml")).unwrap(),
            "[package]\nname=\"x\"\n"
        );
    }

    #[test]
    fn a_crate_whose_directory_is_a_symlink_is_refused() {
        use tar::EntryType as T;
        let tmp = tempfile::tempdir().unwrap();
        // What the link would lead to: a directory that looks like a crate.
        let outside = tmp.path().join("outside");
        fs::create_dir_all(&outside).unwrap();
        fs::write(outside.join("Cargo.toml"), "[package]\n").unwrap();
        let vendor = tmp.path().join("vendor");
        fs::create_dir_all(&vendor).unwrap();
        for target in [&b"../../outside"[..], b"."] {
            let bytes = hostile_crate(&[("x-1.0.0", T::Symlink, target)]);
            let r = vendor_crate(&locked(&bytes), &bytes, &vendor);
            assert!(r.is_err(), "{r:?}");
            assert!(!outside.join(CARGO_CHECKSUM_FILE).exists());
            let _ = fs::remove_dir_all(vendor.join(".unpack-x-1.0.0"));
        }
    }

    #[test]
    fn refuses_a_crate_with_the_wrong_top_directory() {
        let bytes = fake_crate("other-9.9.9");
        let tmp = tempfile::tempdir().unwrap();
        assert!(matches!(
            vendor_crate(&locked(&bytes), &bytes, tmp.path()),
            Err(VendorError::Layout { .. })
        ));
    }

    #[test]
    fn a_crate_changed_after_verify_fails_the_unpack_step() {
        let verified = fake_crate("x-1.0.0");
        let k = locked(&verified);
        let tmp = tempfile::tempdir().unwrap();
        let path = tmp.path().join("x.crate");
        // The file on disk is no longer the one the verify step hashed.
        fs::write(&path, fake_crate("x-1.0.0-evil")).unwrap();
        let vendor = tmp.path().join("vendor");
        fs::create_dir_all(&vendor).unwrap();
        let err = vendor_crate_file(&k, &path, &vendor).unwrap_err();
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
        assert!(vendor_crate_file(&k, &path, &vendor).unwrap().is_dir());
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
        assert_eq!(toolchain_root(&top), Some(top.clone()));
        let nested = tmp.path().join("nested");
        make(&nested.join("rust-1.85.0"));
        assert_eq!(toolchain_root(&nested), Some(nested.join("rust-1.85.0")));
        fs::create_dir_all(nested.join("other")).unwrap();
        assert_eq!(
            toolchain_root(&nested),
            None,
            "two top directories are ambiguous"
        );
        assert_eq!(toolchain_root(tmp.path()), None);
    }
}
