//! The guest's steps, one module each, named and ordered as in DESIGN.md and
//! [`Step`]: boot -> request -> fetch -> verify -> unpack -> build -> hash ->
//! provenance -> attest -> emit. Each module owns its step's error type and
//! functions; [`crate::pipeline`] is the one place that runs them in order.
//!
//! A step function returns its value and a one-line summary; [`timed`] turns
//! that into the step's console line (the format is `kettle_wire::console`'s,
//! which the host's progress display reads back).

pub mod attest;
pub mod boot;
pub mod build;
pub mod emit;
pub mod fetch;
pub mod hash;
pub mod provenance;
pub mod request;
pub mod unpack;
pub mod verify;

use std::fs;
use std::path::{Path, PathBuf};
use std::time::Instant;

use kettle_wire::console;
use kettle_wire::inputs::BuildTools;

use crate::error::{Step, StepError};

/// Where the build's root filesystem and toolchain come from.
#[derive(Debug, Clone)]
pub enum Tools {
    /// The toolchain and rootfs pinned in kettle.toml, fetched and verified (always, in the guest).
    Pinned,
    /// Local mode only: the host's own /usr, /bin, /lib, /lib64, /sbin and /etc (read-only) and
    /// the host's Rust toolchain at `toolchain_root`. These are NOT verified against kettle.toml's
    /// pins (the pin is, in effect, whatever the host has), and the provenance says so:
    /// `kettle_hermetic: false`, `kettle_hostTools: true`, and the toolchain/rootfs descriptors name host paths.
    Host {
        /// A toolchain root (holding bin/cargo and bin/rustc), e.g. `rustc --print sysroot`.
        toolchain_root: PathBuf,
    },
}

impl Tools {
    /// Whether the toolchain and rootfs are pinned inputs (the wire's view of this choice).
    pub fn build_tools(&self) -> BuildTools {
        match self {
            Tools::Pinned => BuildTools::Pinned,
            Tools::Host { .. } => BuildTools::Host,
        }
    }
}

/// One run's scratch directory: what each step puts where, named once.
#[derive(Debug, Clone)]
pub struct WorkDir {
    root: PathBuf,
    discard_consumed_inputs: bool,
}

impl WorkDir {
    /// The scratch directory `root`; with `discard_consumed_inputs`, input files are deleted once unpacked.
    pub fn new(root: PathBuf, discard_consumed_inputs: bool) -> WorkDir {
        WorkDir {
            root,
            discard_consumed_inputs,
        }
    }

    /// The scratch directory itself.
    pub fn root(&self) -> &Path {
        &self.root
    }

    /// The verified source tree (the build's working directory).
    pub fn src(&self) -> PathBuf {
        self.root.join("src")
    }

    /// Where the source archive is extracted before its tree is verified.
    pub fn src_archive(&self) -> PathBuf {
        self.root.join("src-archive")
    }

    /// Upstream mode's downloads.
    pub fn downloads(&self) -> PathBuf {
        self.root.join("downloads")
    }

    /// The vendored crates.
    pub fn vendor(&self) -> PathBuf {
        self.root.join("vendor")
    }

    /// The unpacked pinned root filesystem.
    pub fn rootfs(&self) -> PathBuf {
        self.root.join("rootfs")
    }

    /// The empty root that host tools are bound into (local mode with host tools).
    pub fn host_root(&self) -> PathBuf {
        self.root.join("root")
    }

    /// The unpacked pinned toolchain bundle.
    pub fn toolchain(&self) -> PathBuf {
        self.root.join("toolchain")
    }

    /// The build's writable home (CARGO_HOME lives under it).
    pub fn home(&self) -> PathBuf {
        self.root.join("home")
    }

    /// Frees an input file that has been unpacked, when it is ours to free: downloads
    /// always are; a caller's inputs dir only when the run owns it (the guest's RAM copy).
    pub fn consumed(&self, path: &Path) {
        if self.discard_consumed_inputs || path.starts_with(self.downloads()) {
            let _ = fs::remove_file(path);
        }
    }
}

/// Runs `f` as `step`, logging one console line with its duration and outcome.
pub fn timed<T>(
    step: Step,
    what: &str,
    f: impl FnOnce() -> Result<(T, String), StepError>,
) -> Result<T, StepError> {
    let start = Instant::now();
    let r = f();
    let secs = start.elapsed().as_secs_f64();
    match r {
        Ok((v, summary)) => {
            log::info!("{}", console::step_ok(step, secs, what, &summary));
            Ok(v)
        }
        Err(e) => {
            log::error!(
                "{}",
                console::step_failed(step, secs, what, &e.message(), e.input.as_deref())
            );
            Err(e)
        }
    }
}
