//! `kettle build`: resolve the inputs, fill the cache disk, boot the measured
//! image under QEMU (SNP, or the simulated PSP), stream the console, collect
//! the outputs and verify them with the same code as `kettle verify`.
//!
//! Steps: check QEMU -> resolve the source -> resolve inputs (cached mode) ->
//! write the disks -> run the VM -> collect out/ -> verify -> publish out/
//! ([`cvm`]); `--local` runs the guest's own binary instead ([`local`]).

mod cvm;
mod local;

use std::fs::{self, File};
use std::io::{IsTerminal, Read};
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use clap::{Args, ValueEnum};
use kettle::console::Progress;
use kettle::download::{Downloader, RetryPolicy};
use kettle::inputs::{self, InputError};
use kettle::outdir::{OutDirError, Staging};
use kettle::psp_host::PspServer;
use kettle::qemu::{self, Accel, Disks, Isolation, VmConfig};
use kettle::source::{self, ResolvedSource, SourceError};
use kettle::store::{Store, StoreError};
use kettle::vm::{self, VmEnd};
use kettle_attest::simulated::SimulatedPsp;
use kettle_image::ImageManifest;
use kettle_verify::{Expectations, ProvenanceExpectations, SourcePin};
use kettle_wire::cache::CacheWriter;
use kettle_wire::devices::SECTOR_BYTES;
use kettle_wire::output::{self, CHAIN_FILE, ERROR_FILE, EVIDENCE_FILE, STATUS_FILE};
use kettle_wire::request::{
    ImageRef,
    write_request_disk, BuildRequest, FetchMode, Limits, Upstream, DEFAULT_CRATES_URL,
    REQUEST_SCHEMA,
};
use kettle_wire::Tee;

/// Exit code of a build that ran and failed (guest error, or outputs that do not verify).
const EXIT_FAILED: u8 = 1;
/// Exit code after Ctrl-C (128 + SIGINT, as shells report it).
const EXIT_INTERRUPTED: u8 = 130;

/// Where inputs come from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum ModeArg {
    /// The host resolves every input into a read-only cache disk (no network in the guest).
    Cached,
    /// The guest fetches over HTTPS with the CA roots baked into the image.
    Upstream,
}

/// QEMU accelerator choice.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum AccelArg {
    /// KVM when /dev/kvm is usable, TCG otherwise (SNP always needs KVM).
    Auto,
    /// Hardware virtualization.
    Kvm,
    /// Software emulation.
    Tcg,
}

/// Options of `kettle build`.
#[derive(Args, Debug)]
#[command(
    after_long_help = "Examples:\n  kettle build . --tee simulated --out out/hello\n  \
kettle build https://example.com/r.git --ref v1.2.0 --tee snp\n  kettle build . --local --out out/local\n\n\
Exit status: 0 built and verified, 1 the build failed or its outputs did not verify, 2 could not run, \
130 interrupted."
)]
pub struct BuildArgs {
    /// A local git checkout (HEAD is built), or a repository URL (with --ref).
    #[arg(value_name = "SOURCE")]
    pub source: String,
    /// The ref to build (default for a checkout: its current branch).
    #[arg(long = "ref", value_name = "REF")]
    pub git_ref: Option<String>,
    /// The image directory (bzImage, initramfs.cpio, OVMF.fd, manifest.json).
    #[arg(long, value_name = "DIR", default_value = "build/image")]
    pub image: PathBuf,
    /// Where the outputs go (created whole at the end, never half-written).
    #[arg(long, value_name = "DIR", default_value = "out")]
    pub out: PathBuf,
    /// Replace --out if it exists.
    #[arg(long)]
    pub force: bool,
    /// Where the guest gets its inputs.
    #[arg(long, value_enum, default_value = "cached")]
    pub mode: ModeArg,
    /// Which TEE signs the evidence: snp (AMD SEV-SNP hardware, needs an SNP host and
    /// QEMU >= 9.1) or simulated (the host's software PSP: test keys, nothing
    /// hardware-attested; CI, laptops).
    #[arg(long, default_value = "snp", value_name = "snp|simulated")]
    pub tee: Tee,
    /// QEMU accelerator.
    #[arg(long, value_enum, default_value = "auto")]
    pub accel: AccelArg,
    /// vCPUs (default: the manifest's; under SNP it is measured and must match).
    #[arg(long)]
    pub vcpus: Option<u32>,
    /// Guest memory in MiB (the build runs in RAM: toolchain, rootfs and sources).
    #[arg(long, default_value_t = 4096, value_name = "MIB")]
    pub memory: u64,
    /// Kill the VM after this many seconds.
    #[arg(long, default_value_t = 3600, value_name = "SECONDS")]
    pub timeout: u64,
    /// Size of the output disk in MiB (sparse).
    #[arg(long, default_value_t = 2048, value_name = "MIB")]
    pub output_size: u64,
    /// Run the pipeline on this host with no VM and no TEE (nothing is hardware-attested).
    #[arg(long)]
    pub local: bool,
    /// Add a local file to the input cache (e.g. a toolchain or rootfs bundle that kettle.toml pins).
    #[arg(long = "input", value_name = "FILE")]
    pub inputs: Vec<PathBuf>,
    /// The content-addressed input cache (default $KETTLE_CACHE_DIR, ~/.cache/kettle).
    #[arg(long, value_name = "DIR")]
    pub cache_dir: Option<PathBuf>,
    /// Build a checkout even if it has uncommitted changes (they are not built).
    #[arg(long)]
    pub allow_dirty: bool,
    /// Upstream mode: HTTPS URL of a tar(.gz) of the commit's tree.
    #[arg(long, value_name = "URL")]
    pub source_archive_url: Option<String>,
    /// Upstream mode: HTTPS URL of the raw commit object.
    #[arg(long, value_name = "URL")]
    pub commit_object_url: Option<String>,
    /// The QEMU binary.
    #[arg(long, value_name = "PATH", default_value = qemu::DEFAULT_QEMU)]
    pub qemu: String,
    /// With --local: the kettle-init binary to run (default: /init of the image's
    /// initramfs, checked against its manifest, so local mode runs the measured code).
    #[arg(long, value_name = "PATH", requires = "local")]
    pub init: Option<PathBuf>,
}

/// Why `kettle build` could not run or failed.
#[derive(Debug, thiserror::Error)]
enum BuildError {
    #[error(transparent)]
    Probe(#[from] qemu::ProbeError),
    #[error(transparent)]
    Source(#[from] SourceError),
    #[error(transparent)]
    Inputs(#[from] InputError),
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error(transparent)]
    OutDir(#[from] OutDirError),
    #[error(transparent)]
    Vm(#[from] vm::VmError),
    #[error("image {dir}: {message} (build it with `make image`, or pass --image DIR)")]
    Image { dir: PathBuf, message: String },
    #[error("{0}")]
    Args(String),
    #[error("{what}: {source}")]
    Io {
        what: String,
        #[source]
        source: std::io::Error,
    },
    #[error("{0}")]
    Request(String),
    #[error("interrupted")]
    Interrupted,
}

/// Stops between steps once Ctrl-C was pressed (the VM loop handles it while QEMU runs).
fn check_interrupted() -> Result<(), BuildError> {
    if INTERRUPTED.load(Ordering::SeqCst) {
        Err(BuildError::Interrupted)
    } else {
        Ok(())
    }
}

fn io_err(what: impl Into<String>) -> impl FnOnce(std::io::Error) -> BuildError {
    let what = what.into();
    move |source| BuildError::Io { what, source }
}

/// Set by the Ctrl-C handler; the VM loop kills QEMU when it sees it.
static INTERRUPTED: AtomicBool = AtomicBool::new(false);

/// Runs `kettle build`.
pub fn run(args: BuildArgs) -> ExitCode {
    if let Err(e) = ctrlc::set_handler(|| INTERRUPTED.store(true, Ordering::SeqCst)) {
        log::warn!("cannot catch Ctrl-C ({e}); interrupting may leave QEMU running");
    }
    let result = if args.local {
        local::build_local(&args)
    } else {
        cvm::build_vm(&args)
    };
    match result {
        Ok(code) => code,
        Err(e) => {
            eprintln!("kettle build: {e}");
            ExitCode::from(crate::EXIT_CANNOT_RUN)
        }
    }
}

/// The image to boot: its manifest and files.
struct Image {
    manifest: ImageManifest,
    manifest_path: PathBuf,
    files: kettle_image::ImageFiles,
}

fn load_image(dir: &Path) -> Result<Image, BuildError> {
    let manifest_path = dir.join(output::MANIFEST_FILE);
    let err = |message: String| BuildError::Image {
        dir: dir.into(),
        message,
    };
    let manifest = ImageManifest::load(&manifest_path).map_err(|e| err(e.to_string()))?;
    let files = manifest.files_in(dir).map_err(|e| err(e.to_string()))?;
    for p in [&files.kernel, &files.initrd, &files.ovmf] {
        if !p.is_file() {
            return Err(err(format!("{} is missing", p.display())));
        }
    }
    Ok(Image {
        manifest,
        manifest_path,
        files,
    })
}

fn resolve_source(args: &BuildArgs, work: &Path) -> Result<ResolvedSource, BuildError> {
    if source::is_url(&args.source) {
        let r = args
            .git_ref
            .as_deref()
            .ok_or_else(|| SourceError::UrlNeedsRef(args.source.clone()))?;
        Ok(source::resolve_url(&args.source, r, work)?)
    } else {
        Ok(source::resolve_checkout(
            Path::new(&args.source),
            args.git_ref.as_deref(),
            args.allow_dirty,
        )?)
    }
}

fn open_store(args: &BuildArgs) -> Result<Store, BuildError> {
    let root = match &args.cache_dir {
        Some(d) => d.clone(),
        None => Store::default_root()?,
    };
    let store = Store::open(root)?;
    for input in &args.inputs {
        let d = store.insert_file(input, None)?;
        log::info!("input {} = sha256 {d}", input.display());
    }
    Ok(store)
}

/// 128 random bits, hex: unique per invocation.
fn invocation_id() -> Result<String, BuildError> {
    let mut bytes = [0u8; 16];
    File::open("/dev/urandom")
        .and_then(|mut f| f.read_exact(&mut bytes))
        .map_err(io_err("/dev/urandom"))?;
    Ok(hex::encode(bytes))
}

/// The image as the request names it (the guest records it; the verifier holds its
/// launch digest against the report's measurement).
fn image_ref(image: &Image) -> Result<ImageRef, BuildError> {
    Ok(ImageRef {
        manifest_sha256: kettle_provenance::Sha256Digest::of_file(&image.manifest_path)
            .map_err(io_err(image.manifest_path.display().to_string()))?,
        launch_digest: image.manifest.launch_digest.to_string(),
    })
}

fn make_request(
    args: &BuildArgs,
    src: &ResolvedSource,
    tee: Tee,
    image: Option<&Image>,
) -> Result<BuildRequest, BuildError> {
    let upstream = match args.mode {
        ModeArg::Cached => None,
        ModeArg::Upstream => Some(Upstream {
            source_archive_url: args.source_archive_url.clone().ok_or_else(|| {
                BuildError::Args("--mode upstream needs --source-archive-url (an HTTPS tar of the commit's tree)".into())
            })?,
            commit_object_url: args.commit_object_url.clone().ok_or_else(|| {
                BuildError::Args("--mode upstream needs --commit-object-url (an HTTPS URL of the raw commit object)".into())
            })?,
            crates_url: DEFAULT_CRATES_URL.to_string(),
            dns_resolver: None,
        }),
    };
    let request = BuildRequest {
        schema: REQUEST_SCHEMA.to_string(),
        repository: src.repository.clone(),
        git_ref: src.git_ref.clone(),
        commit: src.commit.clone(),
        object_format: src.object_format,
        mode: match args.mode {
            ModeArg::Cached => FetchMode::Cached,
            ModeArg::Upstream => FetchMode::Upstream,
        },
        tee,
        invocation_id: invocation_id()?,
        limits: Limits::default(),
        upstream,
        image: image.map(image_ref).transpose()?,
    };
    request
        .validate()
        .map_err(|e| BuildError::Request(format!("the build request is invalid: {e}")))?;
    Ok(request)
}

/// A scratch directory next to --out (same filesystem as the disks' final home, removed on drop).
fn work_dir(out: &Path) -> Result<tempfile::TempDir, BuildError> {
    let parent = out
        .parent()
        .filter(|p| !p.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    fs::create_dir_all(parent).map_err(io_err(parent.display().to_string()))?;
    tempfile::Builder::new()
        .prefix(".kettle-work-")
        .tempdir_in(parent)
        .map_err(io_err(parent.display().to_string()))
}
