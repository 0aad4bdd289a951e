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
use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use clap::{Args, ValueEnum};
use kettle::bundles::{BundlePins, BundlesError};
use kettle::console::{escape, escape_lines, human_duration, Progress};
use kettle::download::{Downloader, RetryPolicy};
use kettle::inputs::{self, Delivered, InputError};
use kettle::interrupt::Interrupt;
use kettle::outdir::{OutDirError, Staging};
use kettle::project::ProjectError;
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
    write_request_disk, BuildRequest, FetchMode, ImageRef, Limits, Upstream, DEFAULT_BUILD_SECONDS,
    DEFAULT_CRATES_URL, MAX_BUILD_SECONDS, REQUEST_SCHEMA,
};
use kettle_wire::Tee;

/// Exit code of a build that ran and failed (guest error, or outputs that do not verify).
const EXIT_FAILED: u8 = 1;

/// The image directory when neither --image nor KETTLE_IMAGE says (a Kettle checkout's `make image`).
pub const DEFAULT_IMAGE_DIR: &str = "build/image";

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
The image directory is --image, else $KETTLE_IMAGE, else build/image (where `make image` puts it in a \
Kettle checkout): bzImage, initramfs.cpio, OVMF.fd, manifest.json and bundles.json; the bundles it names \
(toolchain.tar.gz, rootfs.tar.gz) are looked for there and in its parent directory.\n\n\
Exit status: 0 built and verified, 1 the build failed or its outputs did not verify, 2 could not run, \
128+N interrupted by signal N (130 SIGINT, 143 SIGTERM, 129 SIGHUP)."
)]
pub struct BuildArgs {
    /// A local git checkout (HEAD is built), or a repository URL (with --ref).
    #[arg(value_name = "SOURCE")]
    pub source: String,
    /// The ref to build (default for a checkout: its current branch).
    #[arg(long = "ref", value_name = "REF")]
    pub git_ref: Option<String>,
    /// The repository URL to record (default: the checkout's origin remote, else its
    /// file:// path; for a URL SOURCE, that URL), normalized as kettle_wire::source_url says.
    #[arg(long = "repo", value_name = "URL")]
    pub repo: Option<String>,
    /// The image directory (bzImage, initramfs.cpio, OVMF.fd, manifest.json, bundles.json).
    #[arg(long, value_name = "DIR", env = "KETTLE_IMAGE", default_value = DEFAULT_IMAGE_DIR)]
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
    /// The build's time limit: the guest kills the build command after this many seconds
    /// (the request carries it), and the host kills the VM --vm-allowance seconds after that.
    #[arg(long, default_value_t = DEFAULT_BUILD_SECONDS, value_name = "SECONDS")]
    pub timeout: u64,
    /// How much longer than --timeout the VM may run before the host kills it: booting,
    /// fetching, verifying, unpacking, hashing and attesting take time of their own.
    #[arg(long, default_value_t = VM_ALLOWANCE_SECONDS, value_name = "SECONDS")]
    pub vm_allowance: u64,
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
    /// Without a terminal: say the build is alive (step, elapsed time, last console line)
    /// when nothing was printed for this long.
    #[arg(long, default_value_t = 30, value_name = "SECONDS")]
    pub heartbeat: u64,
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
    #[error(transparent)]
    Project(#[from] ProjectError),
    #[error(transparent)]
    Bundles(#[from] BundlesError),
    /// The checkout has kettle.toml, but the commit being built does not.
    #[error("{path} exists but commit {commit} does not have it, and the build reads the committed recipe: commit it (`git add kettle.toml && git commit`)")]
    RecipeNotCommitted { path: PathBuf, commit: String },
    /// A cargo project without a recipe: `kettle init` would write `text` (printed by [`run`]).
    #[error("commit {commit} of {dir} has no kettle.toml")]
    NoRecipe {
        dir: PathBuf,
        commit: String,
        suggestion: Result<String, String>,
    },
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

/// Runs `kettle build`.
pub fn run(args: BuildArgs) -> ExitCode {
    let _ = interrupt();
    let result = if args.local {
        local::build_local(&args)
    } else {
        cvm::build_vm(&args)
    };
    match result {
        Ok(code) => code,
        // A child (git, QEMU) that the signal also reached may fail first: the signal is the news.
        Err(_) if interrupt().is_set() => interrupted(&args.out, "stopped"),
        Err(BuildError::NoRecipe {
            dir,
            commit,
            suggestion,
        }) => {
            let shown = dir.display();
            match suggestion {
                Ok(text) => {
                    eprintln!("kettle build: commit {commit} of {shown} has no kettle.toml. `kettle init {shown}` would write this {}:", dir.join("kettle.toml").display());
                    crate::print_stdout(text.trim_end());
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

/// Before anything is downloaded: the commit must have a recipe. A checkout with an
/// uncommitted kettle.toml is told to commit it; a cargo project without one is told
/// exactly what `kettle init` would write.
fn check_recipe(args: &BuildArgs, src: &ResolvedSource) -> Result<(), BuildError> {
    use kettle_wire::recipe::RECIPE_FILE;
    if src.read_file(RECIPE_FILE)?.is_some() {
        return Ok(());
    }
    let Some(dir) = &src.worktree else {
        return Ok(()); // inputs::resolve says the commit has no recipe
    };
    let recipe = dir.join(RECIPE_FILE);
    if recipe.exists() {
        return Err(BuildError::RecipeNotCommitted {
            path: recipe,
            commit: src.commit.clone(),
        });
    }
    if src.read_file("Cargo.toml")?.is_none() && !dir.join("Cargo.toml").is_file() {
        return Ok(());
    }
    let suggestion = crate::cmd::init::recipe_for(dir, &args.image)
        .map(|(text, _)| text)
        .map_err(|e| e.to_string());
    Err(BuildError::NoRecipe {
        dir: dir.clone(),
        commit: src.commit.clone(),
        suggestion,
    })
}

/// What the host can hand the guest besides its store: the --input files and the
/// bundles beside the image that bundles.json names.
fn delivered(args: &BuildArgs, store: &Store) -> Result<Delivered, BuildError> {
    let mut given = Vec::new();
    for input in &args.inputs {
        let d = store.insert_file(input, None)?;
        log::info!("input {} = sha256 {d}", input.display());
        given.push((input.clone(), d));
    }
    let bundle_dirs = match BundlePins::load(&args.image) {
        Ok(_) => kettle::bundles::search_dirs(&args.image),
        Err(_) => Vec::new(),
    };
    Ok(Delivered { given, bundle_dirs })
}

/// The `kettle verify` command an auditor would run on this build's output.
fn verify_command(args: &BuildArgs, image: &Image, src: &ResolvedSource, tee: Tee) -> String {
    let mut cmd = vec![
        "kettle".to_string(),
        "verify".into(),
        shell_quote(&args.out.display().to_string()),
        "--manifest".into(),
        shell_quote(&image.manifest_path.display().to_string()),
    ];
    if tee == Tee::Simulated {
        cmd.push("--allow-simulated".into());
    }
    cmd.extend(["--repo".into(), shell_quote(&src.repository)]);
    cmd.extend(["--ref".into(), shell_quote(&src.git_ref)]);
    match &src.worktree {
        Some(dir) => cmd.extend(["--source".into(), shell_quote(&dir.display().to_string())]),
        None => cmd.extend(["--commit".into(), src.commit.clone()]),
    }
    cmd.join(" ")
}

/// `s` as one POSIX shell word (quoted only when it needs to be).
fn shell_quote(s: &str) -> String {
    if !s.is_empty()
        && s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"/._-+:=@,%".contains(&b))
    {
        s.to_string()
    } else {
        format!("'{}'", s.replace('\'', "'\\''"))
    }
}

/// Largest status.json or error.json read from a build's output (the guest wrote them).
const MAX_REPORT_BYTES: u64 = 1 << 20;

/// The build's status.json, when it is one (a bounded read of a regular file).
fn read_status(out: &Path) -> Option<kettle_wire::BuildStatus> {
    let path = out.join(STATUS_FILE);
    let bytes = kettle_verify::bundle::read_regular("status.json", &path, MAX_REPORT_BYTES).ok()?;
    serde_json::from_slice(&bytes).ok()
}

/// The build's error.json, when it is one (a bounded read of a regular file).
fn read_error_report(out: &Path) -> Option<kettle_wire::ErrorReport> {
    let path = out.join(ERROR_FILE);
    let bytes = kettle_verify::bundle::read_regular("error.json", &path, MAX_REPORT_BYTES).ok()?;
    serde_json::from_slice(&bytes).ok()
}

/// The last lines of a build: total time, the artifacts, and how to verify them.
fn print_summary(started: Instant, out: &Path, verify: &str) {
    eprintln!("built in {}", human_duration(started.elapsed()));
    // The names are the guest's (status.json is not what was verified): escaped.
    for a in read_status(out).map(|s| s.artifacts).unwrap_or_default() {
        let path = out.join(output::ARTIFACTS_DIR).join(a);
        eprintln!("  artifact: {}", escape(&path.display().to_string()));
    }
    eprintln!("  provenance: {}", out.join("provenance.json").display());
    eprintln!("verify it with:\n  {verify}");
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
    let src = if source::is_url(&args.source) {
        let r = args
            .git_ref
            .as_deref()
            .ok_or_else(|| SourceError::UrlNeedsRef(args.source.clone()))?;
        source::resolve_url(&args.source, r, args.repo.as_deref(), work)?
    } else {
        source::resolve_checkout_as(
            Path::new(&args.source),
            args.git_ref.as_deref(),
            args.repo.as_deref(),
            args.allow_dirty,
        )?
    };
    log::info!(
        "repository {} (from {})",
        src.repository,
        src.repository_from
    );
    check_recipe(args, &src)?;
    Ok(src)
}

fn open_store(args: &BuildArgs) -> Result<(Store, Delivered), BuildError> {
    let root = match &args.cache_dir {
        Some(d) => d.clone(),
        None => Store::default_root()?,
    };
    let store = Store::open(root)?;
    let delivered = delivered(args, &store)?;
    Ok((store, delivered))
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

/// What the VM gets beyond `--timeout` by default (`--vm-allowance`) for the guest's other
/// steps (boot, fetch, verify, unpack, hash, attest, emit) before the host kills it, so that
/// a build over its limit is stopped by the guest, which says so in error.json, rather than
/// by the host, which cannot say which step was slow.
pub const VM_ALLOWANCE_SECONDS: u64 = 15 * 60;

/// The request's limits for `--timeout SECONDS`: the build's time limit is that one number,
/// in the guest (the sandbox's wall-clock and CPU limits) and on the host ([`vm_deadline`]).
fn build_limits(timeout: u64) -> Result<Limits, BuildError> {
    if timeout == 0 || timeout > MAX_BUILD_SECONDS {
        return Err(BuildError::Args(format!(
            "--timeout {timeout} is outside 1..={MAX_BUILD_SECONDS} seconds (the longest build a request may ask for is a week)"
        )));
    }
    Ok(Limits {
        max_build_seconds: Some(timeout),
        max_memory_bytes: None,
    })
}

/// When the host kills the VM: the build's own limit (`limits.max_build_seconds`, i.e.
/// `--timeout`) plus `allowance` (`--vm-allowance`) for the guest's other steps.
fn vm_deadline(limits: &Limits, allowance: u64) -> Duration {
    Duration::from_secs(limits.build_seconds().saturating_add(allowance))
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
        limits: build_limits(args.timeout)?,
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

#[cfg(test)]
mod tests {
    use super::*;
    use clap::Parser;

    #[derive(Parser)]
    struct Cli {
        #[command(flatten)]
        build: BuildArgs,
    }

    fn args(flags: &[&str]) -> BuildArgs {
        let argv = ["kettle", "."].iter().chain(flags);
        Cli::try_parse_from(argv).unwrap().build
    }

    fn source() -> ResolvedSource {
        ResolvedSource {
            repository: "https://example.com/r.git".into(),
            repository_from: source::RepoOrigin::Flag,
            worktree: None,
            git_ref: "refs/heads/main".into(),
            commit: "a".repeat(40),
            object_format: kettle_wire::ObjectFormat::Sha1,
            git_dir: PathBuf::from("/nonexistent"),
        }
    }

    #[test]
    fn the_timeout_is_the_guests_build_limit_and_the_vm_deadline_starts_from_it() {
        let cases: [(&[&str], u64); 3] = [
            (&[], DEFAULT_BUILD_SECONDS),
            (&["--timeout", "7200"], 7200),
            (&["--timeout", "60"], 60),
        ];
        for (flags, secs) in cases {
            let request = make_request(&args(flags), &source(), Tee::Simulated, None).unwrap();
            // What the guest reads back from the request disk is the one number.
            let disk = tempfile::NamedTempFile::new().unwrap();
            write_request_disk(disk.path(), &request).unwrap();
            let read =
                kettle_wire::request::read_request_disk(File::open(disk.path()).unwrap()).unwrap();
            assert_eq!(read.limits.max_build_seconds, Some(secs), "{flags:?}");
            assert_eq!(read.limits.build_seconds(), secs, "{flags:?}");
            assert_eq!(
                vm_deadline(&read.limits, VM_ALLOWANCE_SECONDS),
                Duration::from_secs(secs + VM_ALLOWANCE_SECONDS),
                "{flags:?}"
            );
        }
        let quick = args(&["--timeout", "5", "--vm-allowance", "0"]);
        assert_eq!(quick.vm_allowance, 0);
        let limits = build_limits(quick.timeout).unwrap();
        assert_eq!(
            vm_deadline(&limits, quick.vm_allowance),
            Duration::from_secs(5)
        );
        let too_long = (MAX_BUILD_SECONDS + 1).to_string();
        for bad in ["0", too_long.as_str()] {
            match make_request(&args(&["--timeout", bad]), &source(), Tee::Simulated, None) {
                Err(BuildError::Args(m)) => assert!(
                    m.starts_with(&format!(
                        "--timeout {bad} is outside 1..={MAX_BUILD_SECONDS}"
                    )),
                    "{m}"
                ),
                other => panic!("--timeout {bad}: expected an argument error, got {other:?}"),
            }
        }
    }
}
