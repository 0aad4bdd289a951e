//! `kettle build`'s pipeline: resolve the inputs, fill the cache disk, boot the
//! measured image under QEMU (SNP, or the simulated PSP), stream the console,
//! collect the outputs and verify them with the same code as `kettle verify`.
//!
//! Steps: check QEMU -> resolve the source ([`prepare`]) -> the request
//! ([`request`]) -> resolve inputs (cached mode) and write the disks -> run the VM
//! ([`cvm`]) -> collect out/ -> verify -> publish out/ ([`collect`]); `--local`
//! runs the guest's own binary instead ([`local`]). The CLI (`kettle build`) only
//! parses its flags into [`BuildOptions`] and calls [`run`].

mod collect;
mod cvm;
mod local;
mod prepare;
pub mod request;
pub mod result;

use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::OnceLock;
use std::time::Instant;

use kettle_wire::request::FetchMode;
use kettle_wire::Tee;

use crate::bundles::BundlesError;
use crate::console::{escape_lines, human_duration, print_stdout};
use crate::inputs::InputError;
use crate::interrupt::Interrupt;
use crate::outdir::OutDirError;
use crate::project::ProjectError;
use crate::qemu::{self, Accel};
use crate::source::SourceError;
use crate::store::StoreError;
use crate::vm;

pub use request::VM_ALLOWANCE_SECONDS;

/// Exit code of a build that ran and failed (guest error, or outputs that do not verify).
const EXIT_FAILED: u8 = 1;

/// The image directory when neither --image nor KETTLE_IMAGE says (a Kettle checkout's `make image`).
pub const DEFAULT_IMAGE_DIR: &str = "build/image";

/// What one `kettle build` is asked to do (its flags, parsed).
#[derive(Debug, Clone)]
pub struct BuildOptions {
    /// A local git checkout (HEAD is built), or a repository URL (with `git_ref`).
    pub source: String,
    /// The ref to build (default for a checkout: its current branch).
    pub git_ref: Option<String>,
    /// The repository URL to record (default: the checkout's origin remote, else its path).
    pub repo: Option<String>,
    /// The image directory (bzImage, initramfs.cpio, OVMF.fd, manifest.json, bundles.json).
    pub image: PathBuf,
    /// Where the outputs go (created whole at the end, never half-written).
    pub out: PathBuf,
    /// Replace `out` if it exists.
    pub force: bool,
    /// Where the guest gets its inputs.
    pub mode: FetchMode,
    /// Which TEE signs the evidence.
    pub tee: Tee,
    /// The QEMU accelerator; None: KVM when /dev/kvm is usable, TCG otherwise.
    pub accel: Option<Accel>,
    /// vCPUs (default: the manifest's; under SNP it is measured and must match).
    pub vcpus: Option<u32>,
    /// Guest memory in MiB.
    pub memory: u64,
    /// The build's time limit in seconds (carried in the request, enforced by the guest).
    pub timeout: u64,
    /// How much longer than `timeout` the VM may run before the host kills it.
    pub vm_allowance: u64,
    /// Size of the output disk in MiB (sparse).
    pub output_size: u64,
    /// Run the pipeline on this host with no VM and no TEE.
    pub local: bool,
    /// Local files to add to the input cache.
    pub inputs: Vec<PathBuf>,
    /// The content-addressed input cache (default $KETTLE_CACHE_DIR, ~/.cache/kettle).
    pub cache_dir: Option<PathBuf>,
    /// Build a checkout even if it has uncommitted changes (they are not built).
    pub allow_dirty: bool,
    /// Upstream mode: HTTPS URL of a tar(.gz) of the commit's tree.
    pub source_archive_url: Option<String>,
    /// Upstream mode: HTTPS URL of the raw commit object.
    pub commit_object_url: Option<String>,
    /// The QEMU binary.
    pub qemu: String,
    /// Without a terminal: say the build is alive after this many quiet seconds.
    pub heartbeat: u64,
    /// With `local`: the kettle-init binary to run (default: /init of the image's initramfs).
    pub init: Option<PathBuf>,
    /// Print result.json on stdout (the verdict goes to stderr).
    pub json: bool,
    /// The commit the ref must be at (as CI names it); anything else builds nothing.
    pub commit: Option<String>,
}

/// Who chose the image directory `dir`, for messages about it: `$KETTLE_IMAGE`, the
/// default, or (saying nothing) `--image`.
pub fn image_origin(dir: &std::path::Path) -> String {
    if std::env::var_os("KETTLE_IMAGE").is_some_and(|v| std::path::Path::new(&v) == dir) {
        " (from $KETTLE_IMAGE)".into()
    } else if dir == std::path::Path::new(DEFAULT_IMAGE_DIR) {
        " (the default: build/image under the current directory)".into()
    } else {
        String::new()
    }
}

/// Why `kettle build` could not run or failed.
#[derive(Debug, thiserror::Error)]
pub enum BuildError {
    /// QEMU, KVM or SNP support is missing.
    #[error(transparent)]
    Probe(#[from] qemu::ProbeError),
    /// The source could not be resolved to a commit.
    #[error(transparent)]
    Source(#[from] SourceError),
    /// An input could not be resolved or written to the cache.
    #[error(transparent)]
    Inputs(#[from] InputError),
    /// The input store could not be opened or written.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// The output directory could not be staged or published.
    #[error(transparent)]
    OutDir(#[from] OutDirError),
    /// QEMU could not be run.
    #[error(transparent)]
    Vm(#[from] vm::VmError),
    /// The image directory is incomplete or does not match its manifest.
    #[error("image {dir}{}: {message} (build it with `make image`, or pass --image DIR)", image_origin(.dir))]
    Image {
        /// The image directory.
        dir: PathBuf,
        /// What is wrong with it.
        message: String,
    },
    /// `--commit` names another commit than the ref resolved to.
    #[error("--commit {wanted}: {git_ref} is at {found}, not {wanted}: the ref moved (or names another commit); nothing was built")]
    CommitMismatch {
        /// The commit asked for.
        wanted: String,
        /// The ref that was resolved.
        git_ref: String,
        /// The commit it resolved to.
        found: String,
    },
    /// An `--input FILE` that is not there, or not a regular file.
    #[error("--input {}: {reason}", .path.display())]
    InputFile {
        /// The file as given.
        path: PathBuf,
        /// What is wrong with it.
        reason: String,
    },
    /// The options contradict each other or the image.
    #[error("{0}")]
    Args(String),
    /// A host file operation failed.
    #[error("{what}: {source}")]
    Io {
        /// What was being read or written.
        what: String,
        /// The operating system's error.
        #[source]
        source: std::io::Error,
    },
    /// The build request could not be made or written.
    #[error("{0}")]
    Request(String),
    /// The project's recipe could not be read.
    #[error(transparent)]
    Project(#[from] ProjectError),
    /// The image's bundle pins could not be read.
    #[error(transparent)]
    Bundles(#[from] BundlesError),
    /// The checkout has kettle.toml, but the commit being built does not.
    #[error("{path} exists but commit {commit} does not have it, and the build reads the committed recipe: commit it (`git add kettle.toml && git commit`)")]
    RecipeNotCommitted {
        /// The uncommitted kettle.toml.
        path: PathBuf,
        /// The commit being built.
        commit: String,
    },
    /// A cargo project without a recipe ([`run`] prints what `kettle init` would write).
    #[error("commit {commit} of {dir} has no kettle.toml")]
    NoRecipe {
        /// The checkout.
        dir: PathBuf,
        /// The commit being built.
        commit: String,
    },
    /// A signal stopped the build.
    #[error("interrupted")]
    Interrupted,
}

/// Set by SIGINT, SIGTERM and SIGHUP ([`Interrupt::install`]); the VM loop kills QEMU when it sees it.
static INTERRUPT: OnceLock<Interrupt> = OnceLock::new();

fn interrupt() -> &'static Interrupt {
    INTERRUPT.get_or_init(|| {
        Interrupt::install().unwrap_or_else(|e| {
            log::warn!(
                "cannot catch SIGINT/SIGTERM/SIGHUP ({e}); interrupting may leave QEMU running"
            );
            Interrupt::new()
        })
    })
}

/// Stops between steps once a signal arrived (the VM loop handles it while QEMU runs).
fn check_interrupted() -> Result<(), BuildError> {
    if interrupt().is_set() {
        Err(BuildError::Interrupted)
    } else {
        Ok(())
    }
}

fn io_err(what: impl Into<String>) -> impl FnOnce(std::io::Error) -> BuildError {
    let what = what.into();
    move |source| BuildError::Io { what, source }
}

/// Says the build was interrupted and returns 128 + the signal's number.
fn interrupted(out: &Path, stopped: &str) -> ExitCode {
    let i = interrupt();
    eprintln!(
        "kettle build: interrupted by {}; {stopped}, work files removed, nothing written to {}",
        i.signal_name(),
        out.display()
    );
    ExitCode::from(i.exit_code())
}

/// Runs one host step, printing its duration (CI logs show where the time went).
fn host_step<T>(name: &str, f: impl FnOnce() -> Result<T, BuildError>) -> Result<T, BuildError> {
    let start = Instant::now();
    let r = f();
    let took = human_duration(start.elapsed());
    match &r {
        Ok(_) => eprintln!("  [host: {name}] ok in {took}"),
        Err(_) => eprintln!("  [host: {name}] FAILED after {took}"),
    }
    r
}

/// Logs how long a host-side step took (`kettle build -v`; scripts/bench.sh reads these).
fn timed(step: &str, since: Instant) {
    log::debug!("timing: {step} {:.3}s", since.elapsed().as_secs_f64());
}

/// A scratch directory next to --out (same filesystem as the disks' final home, removed on drop).
fn work_dir(out: &Path) -> Result<tempfile::TempDir, BuildError> {
    let parent = out
        .parent()
        .filter(|p| !p.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    std::fs::create_dir_all(parent).map_err(io_err(parent.display().to_string()))?;
    tempfile::Builder::new()
        .prefix(".kettle-work-")
        .tempdir_in(parent)
        .map_err(io_err(parent.display().to_string()))
}

/// Runs `kettle build` and says how it went; the exit code is the CLI's.
/// `suggest_recipe(dir)` is what `kettle init dir` would write, shown when the
/// commit of a cargo project has no kettle.toml.
pub fn run(
    opts: &BuildOptions,
    suggest_recipe: impl FnOnce(&Path) -> Result<String, String>,
) -> ExitCode {
    let _ = interrupt();
    let result = if opts.local {
        local::build_local(opts)
    } else {
        cvm::build_vm(opts)
    };
    match result {
        Ok(code) => code,
        // A child (git, QEMU) that the signal also reached may fail first: the signal is the news.
        Err(_) if interrupt().is_set() => interrupted(&opts.out, "stopped"),
        Err(BuildError::NoRecipe { dir, commit }) => {
            let shown = dir.display();
            match suggest_recipe(&dir) {
                Ok(text) => {
                    eprintln!("kettle build: commit {commit} of {shown} has no kettle.toml. `kettle init {shown}` would write this {}:", dir.join("kettle.toml").display());
                    print_stdout(text.trim_end());
                    eprintln!("run `kettle init {shown}`, commit kettle.toml (`git add kettle.toml && git commit`), and build again");
                }
                Err(why) => eprintln!("kettle build: commit {commit} of {shown} has no kettle.toml, and `kettle init` cannot write one: {why}"),
            }
            ExitCode::from(crate::EXIT_CANNOT_RUN)
        }
        // The error may quote the recipe, git or a download (their words: escaped, lines kept).
        Err(e) => {
            eprintln!("kettle build: {}", escape_lines(&e.to_string()));
            ExitCode::from(crate::EXIT_CANNOT_RUN)
        }
    }
}
