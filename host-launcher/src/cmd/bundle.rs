//! `kettle bundle`: the manifests and pins of the toolchain and root filesystem
//! bundles (`scripts/toolchain-bundle.sh`, `make bundles`, call it), so the
//! PURL encoding and the file formats live in one place (`kettle::bundles`).

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Args, Subcommand};
use kettle::bundles::{self, BundlePins, BundlesError, MARKER_URL_BASE};

/// `kettle bundle ...`.
#[derive(Subcommand, Debug)]
pub enum BundleCommand {
    /// Write a bundle's manifest (what is in it).
    #[command(subcommand)]
    Manifest(ManifestCommand),
    /// Write the bundles' pins (bundles.json) for an image directory.
    Pins(PinsArgs),
    /// Make a bundle's read-only disk: its tree as EROFS with a dm-verity hash tree
    /// (deterministic; the pin goes beside it as DISK.json, and into bundles.json).
    Disk(DiskArgs),
}

/// Options of `kettle bundle disk`.
#[derive(Args, Debug)]
pub struct DiskArgs {
    /// The bundle tarball.
    #[arg(long, value_name = "FILE")]
    pub bundle: PathBuf,
    /// Where to write the disk (default: beside the bundle, `<name>.erofs`).
    #[arg(long, value_name = "FILE")]
    pub out: Option<PathBuf>,
    /// The mkfs.erofs to run (erofs-utils).
    #[arg(long, value_name = "PATH", default_value = "mkfs.erofs")]
    pub mkfs: String,
}

/// `kettle bundle manifest ...`.
#[derive(Subcommand, Debug)]
pub enum ManifestCommand {
    /// A Debian root filesystem, from `dpkg-query -W -f '${Package}\t${Version}\t${Architecture}\n'` run inside it.
    Rootfs {
        /// The dpkg-query output.
        #[arg(long, value_name = "FILE")]
        packages: PathBuf,
        /// The distribution's release name (e.g. bookworm).
        #[arg(long, default_value = "bookworm")]
        suite: String,
        /// Where to write the manifest.
        #[arg(long, value_name = "FILE")]
        out: PathBuf,
    },
    /// A Rust toolchain root (bin/rustc, bin/cargo, lib/rustlib/<target>/).
    Toolchain {
        /// The toolchain root.
        #[arg(long, value_name = "DIR")]
        root: PathBuf,
        /// Where to write the manifest.
        #[arg(long, value_name = "FILE")]
        out: PathBuf,
    },
}

/// Options of `kettle bundle pins`.
#[derive(Args, Debug)]
pub struct PinsArgs {
    /// The toolchain bundle (its manifest, if any, is FILE.manifest.json).
    #[arg(long, value_name = "FILE")]
    pub toolchain: PathBuf,
    /// The root filesystem bundle (its manifest, if any, is FILE.manifest.json).
    #[arg(long, value_name = "FILE")]
    pub rootfs: PathBuf,
    /// Where the bundles are published; the default is the marker of bundles delivered
    /// with the build (never downloaded).
    #[arg(long, value_name = "URL", default_value = MARKER_URL_BASE)]
    pub url_base: String,
    /// Where to write bundles.json (an image directory's, normally).
    #[arg(long, value_name = "FILE")]
    pub out: PathBuf,
}

/// Runs `kettle bundle`.
pub fn run(cmd: BundleCommand) -> ExitCode {
    crate::exit_code("kettle bundle", bundle(cmd))
}

fn write(path: &PathBuf, bytes: &[u8]) -> Result<(), BundlesError> {
    // Written whole or not at all: a half-written pins file would pin nothing.
    let tmp = PathBuf::from(format!("{}.tmp", path.display()));
    std::fs::write(&tmp, bytes)
        .and_then(|()| std::fs::rename(&tmp, path))
        .map_err(|source| BundlesError::Io {
            path: path.clone(),
            source,
        })
}

fn bundle(cmd: BundleCommand) -> Result<(), BundlesError> {
    match cmd {
        BundleCommand::Manifest(ManifestCommand::Rootfs {
            packages,
            suite,
            out,
        }) => {
            let text = std::fs::read_to_string(&packages).map_err(|source| BundlesError::Io {
                path: packages.clone(),
                source,
            })?;
            let m = bundles::rootfs_manifest(&text, &suite)?;
            write(&out, &m.to_bytes())?;
            eprintln!("{}: {}", out.display(), m.summary);
        }
        BundleCommand::Manifest(ManifestCommand::Toolchain { root, out }) => {
            let m = bundles::toolchain_manifest(&root)?;
            write(&out, &m.to_bytes())?;
            eprintln!("{}: {}", out.display(), m.summary);
        }
        BundleCommand::Disk(a) => {
            let out = match a.out {
                Some(out) => out,
                None => {
                    let name = a
                        .bundle
                        .file_name()
                        .map(|n| n.to_string_lossy().into_owned())
                        .unwrap_or_default();
                    a.bundle
                        .with_file_name(bundles::disk::disk_file_name(&name))
                }
            };
            let pin = bundles::disk::make_disk(&a.bundle, &out, &a.mkfs)?;
            write(&bundles::disk::pin_path(&out), &pin.to_bytes())?;
            eprintln!(
                "{}: {} bytes, verity root {}, sha256 {}",
                out.display(),
                pin.size,
                pin.verity_root,
                pin.sha256
            );
        }
        BundleCommand::Pins(a) => {
            let pins = BundlePins::for_files(&a.toolchain, &a.rootfs, &a.url_base)?;
            write(&a.out, &pins.to_bytes())?;
            eprintln!(
                "{}: toolchain sha256 {}, rootfs sha256 {}",
                a.out.display(),
                pins.toolchain.sha256,
                pins.rootfs.sha256
            );
        }
    }
    Ok(())
}
