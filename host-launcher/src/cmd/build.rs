//! `kettle build`: resolve the inputs, fill the cache disk, boot the measured
//! image under QEMU (SNP, or the simulated PSP), stream the console, collect
//! the outputs and verify them with the same code as `kettle verify`.
//!
//! Steps: check QEMU -> resolve the source -> resolve inputs (cached mode) ->
//! write the disks -> run the VM -> collect out/ -> verify -> publish out/.

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
        build_local(&args)
    } else {
        build_vm(&args)
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

fn make_request(
    args: &BuildArgs,
    src: &ResolvedSource,
    tee: Tee,
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

fn build_vm(args: &BuildArgs) -> Result<ExitCode, BuildError> {
    // Check QEMU, KVM and the image before anything is downloaded.
    let image = load_image(&args.image)?;
    let (tee_kind, accel) = match args.tee {
        Tee::SevSnp => {
            let v = qemu::check_snp(&args.qemu)?;
            log::info!("QEMU {v} with SEV-SNP, KVM");
            if matches!(args.accel, AccelArg::Tcg) {
                return Err(BuildError::Args(
                    "SEV-SNP guests need KVM: drop --accel tcg, or use --tee simulated".into(),
                ));
            }
            (Tee::SevSnp, Accel::Kvm)
        }
        Tee::Simulated => {
            let v = qemu::version(&args.qemu)?;
            let accel = match args.accel {
                AccelArg::Kvm => {
                    qemu::kvm_usable().map_err(qemu::ProbeError::NoKvm)?;
                    Accel::Kvm
                }
                AccelArg::Tcg => Accel::Tcg,
                AccelArg::Auto => match qemu::kvm_usable() {
                    Ok(()) => Accel::Kvm,
                    Err(why) => {
                        log::info!("KVM not usable ({why}): using TCG (slow)");
                        Accel::Tcg
                    }
                },
            };
            log::warn!("--tee simulated: the report is signed with TEST keys; nothing is hardware-attested");
            log::info!("QEMU {v}, {}", accel.name());
            (Tee::Simulated, accel)
        }
    };
    let vcpus = args.vcpus.unwrap_or(image.manifest.vcpus);
    if tee_kind == Tee::SevSnp && vcpus != image.manifest.vcpus {
        return Err(BuildError::Args(format!(
            "--vcpus {vcpus}: the image's launch digest is for {} vCPUs (the vCPU count is measured)",
            image.manifest.vcpus
        )));
    }

    let staging = Staging::new(&args.out, args.force)?;
    let work = work_dir(&args.out)?;
    let src = resolve_source(args, work.path())?;
    check_interrupted()?;
    let request = make_request(args, &src, tee_kind)?;
    eprintln!(
        "building {} {} @ {} ({:?} mode, tee {})",
        src.repository,
        src.git_ref,
        src.commit,
        args.mode,
        tee_kind.platform_name()
    );

    // Disks.
    let req_disk = work.path().join("request.img");
    write_request_disk(&req_disk, &request).map_err(|e| BuildError::Request(e.to_string()))?;
    pad_to_sector(&req_disk)?;
    let cache_disk = match args.mode {
        ModeArg::Cached => {
            let store = open_store(args)?;
            let downloader = Downloader::new(RetryPolicy::default());
            let resolved = inputs::resolve(&src, &store, &downloader, work.path())?;
            let path = work.path().join("cache.img");
            let writer =
                CacheWriter::create_disk(&path).map_err(io_err(path.display().to_string()))?;
            inputs::write_cache(&resolved, &src.commit, &store, writer, &path)?;
            pad_to_sector(&path)?;
            log::info!(
                "cache disk: {} inputs, {} bytes",
                resolved.blobs.len() + 2,
                fs::metadata(&path).map(|m| m.len()).unwrap_or(0)
            );
            Some(path)
        }
        ModeArg::Upstream => None,
    };
    check_interrupted()?;
    let out_disk = work.path().join("output.img");
    File::create(&out_disk)
        .and_then(|f| f.set_len(args.output_size << 20))
        .map_err(io_err(out_disk.display().to_string()))?;

    // The simulated PSP listens before QEMU starts (QEMU connects at startup).
    let sock_dir = tempfile::Builder::new()
        .prefix("kettle-psp-")
        .tempdir()
        .map_err(io_err("temp dir"))?;
    let (isolation, psp) = match tee_kind {
        Tee::SevSnp => (
            Isolation::Snp {
                cbitpos: 51,
                reduced_phys_bits: 1,
            },
            None,
        ),
        Tee::Simulated => {
            let sock = sock_dir.path().join("psp.sock");
            let server = PspServer::start(&sock, SimulatedPsp::new(image.manifest.launch_digest.0))
                .map_err(io_err(format!("simulated PSP socket {}", sock.display())))?;
            (Isolation::Simulated { psp_socket: sock }, Some(server))
        }
    };
    let cfg = VmConfig {
        cpu: qemu::cpu_model(&isolation, accel, &image.manifest.vcpu_type.to_string()),
        isolation,
        accel,
        vcpus,
        memory_mib: args.memory,
        ovmf: image.files.ovmf.clone(),
        kernel: image.files.kernel.clone(),
        initrd: image.files.initrd.clone(),
        cmdline: image.manifest.cmdline.clone(),
        disks: Disks {
            request: req_disk,
            cache: cache_disk,
            output: out_disk.clone(),
        },
        network: args.mode == ModeArg::Upstream,
    };
    let log_path = staging.path().join(output::BUILD_LOG_FILE);
    let progress = Progress::new(std::io::stderr().is_terminal());
    let run = vm::run(
        &args.qemu,
        &qemu::argv(&cfg),
        &log_path,
        Duration::from_secs(args.timeout),
        &INTERRUPTED,
        progress,
    )?;
    if let Some(p) = psp {
        p.stop();
    }

    match &run.end {
        VmEnd::Interrupted => {
            eprintln!(
                "kettle build: interrupted; QEMU stopped, nothing written to {}",
                args.out.display()
            );
            return Ok(ExitCode::from(EXIT_INTERRUPTED));
        }
        VmEnd::TimedOut(t) => eprintln!(
            "kettle build: the VM did not finish within {}s and was killed (raise --timeout)",
            t.as_secs()
        ),
        VmEnd::Exited(status) if !status.success() => {
            eprintln!("kettle build: QEMU exited with {status}");
        }
        VmEnd::Exited(_) => {}
    }
    if !run.qemu_stderr.trim().is_empty() {
        eprintln!("QEMU said:\n{}", run.qemu_stderr.trim_end());
    }

    // Collect what the guest wrote (an all-zero disk is an empty archive).
    if let Err(e) = output::read_output_disk(&out_disk, staging.path()) {
        eprintln!("kettle build: the output disk could not be read: {e}");
    }
    copy_manifest(&image.manifest_path, staging.path())?;
    drop(work); // disks are no longer needed

    let status_path = staging.path().join(STATUS_FILE);
    let error_path = staging.path().join(ERROR_FILE);
    if !status_path.is_file() {
        if let Ok(text) = fs::read_to_string(&error_path) {
            eprintln!(
                "kettle build: the guest reported a failure:\n{}",
                text.trim_end()
            );
        } else if let Some((step, message)) = &run.console_failure {
            eprintln!("kettle build: the guest console reported step {step} failed: {message} (no error.json was written)");
        } else {
            eprintln!("kettle build: the guest wrote no result; see the console log");
            print_log_tail(&log_path);
        }
        let out = staging.publish()?;
        eprintln!(
            "the console log and any error report are in {}",
            out.display()
        );
        return Ok(ExitCode::from(EXIT_FAILED));
    }

    if tee_kind == Tee::SevSnp {
        supply_vcek(staging.path());
    }

    // Success claimed: verify exactly as an auditor would.
    // The host built this commit itself, so it pins it; an auditor pins it from their own clone.
    let mut expect = Expectations {
        provenance: ProvenanceExpectations {
            repository: Some(src.repository.clone()),
            git_ref: Some(src.git_ref.clone()),
            source: SourcePin::Commit(src.commit.clone()),
            ..Default::default()
        },
        ..Expectations::new(
            image.manifest.launch_digest.0,
            format!("manifest {}", image.manifest_path.display()),
        )
    };
    if tee_kind == Tee::Simulated {
        expect = expect.accepting_simulated();
    }
    let verdict = match kettle_verify::verify_output_dir(staging.path(), &expect) {
        Ok(v) => v,
        Err(why) => {
            eprintln!("kettle build: the outputs cannot be verified: {why}");
            let out = staging.publish()?;
            eprintln!("outputs (unverified) are in {}", out.display());
            return Ok(ExitCode::from(EXIT_FAILED));
        }
    };
    crate::print_stdout(&verdict.to_string());
    let out = staging.publish()?;
    if verdict.verified {
        eprintln!("outputs verified and written to {}", out.display());
        Ok(ExitCode::SUCCESS)
    } else {
        eprintln!(
            "kettle build: the outputs in {} do NOT verify (see the failed checks above)",
            out.display()
        );
        Ok(ExitCode::from(EXIT_FAILED))
    }
}

/// On SNP the guest gets no certificate chain unless the host configured one:
/// fetch the report's VCEK from AMD's KDS and write it as chain.pem (the ASK
/// and ARK are pinned in the verifier). The VCEK is checked like any other.
fn supply_vcek(dir: &Path) {
    let chain = dir.join(CHAIN_FILE);
    if fs::symlink_metadata(&chain).is_ok() {
        return;
    }
    let Ok(report) = kettle_verify::bundle::read_regular(
        "attestation report",
        &dir.join(EVIDENCE_FILE),
        kettle_verify::bundle::MAX_EVIDENCE_BYTES,
    ) else {
        return;
    };
    match kettle::kds::KdsClient::new(kettle::kds::AMD_KDS_URL).fetch_vcek_for_report(&report) {
        Ok(der) => {
            let pem = kettle_attest::chain::der_to_pem(&der);
            if let Err(e) = fs::write(&chain, pem) {
                log::warn!("cannot write {}: {e}", chain.display());
            }
        }
        Err(e) => log::warn!("no chain.pem from the guest, and the VCEK could not be fetched: {e}"),
    }
}

/// Copies the image manifest into the staging dir; refuses to write through
/// anything the output disk put there (a symlink named manifest.json).
fn copy_manifest(manifest: &Path, staging: &Path) -> Result<(), BuildError> {
    let dest = staging.join(output::MANIFEST_FILE);
    if fs::symlink_metadata(&dest).is_ok() {
        fs::remove_file(&dest).map_err(io_err(dest.display().to_string()))?;
    }
    let bytes = fs::read(manifest).map_err(io_err(manifest.display().to_string()))?;
    fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .open(&dest)
        .and_then(|mut f| std::io::Write::write_all(&mut f, &bytes))
        .map_err(io_err(format!(
            "copying manifest.json to {}",
            dest.display()
        )))
}

/// virtio-blk exposes whole 512-byte sectors: pad an image to a multiple.
fn pad_to_sector(path: &Path) -> Result<(), BuildError> {
    let len = fs::metadata(path)
        .map_err(io_err(path.display().to_string()))?
        .len();
    let padded = len.div_ceil(SECTOR_BYTES).max(1) * SECTOR_BYTES;
    if padded != len {
        fs::OpenOptions::new()
            .write(true)
            .open(path)
            .and_then(|f| f.set_len(padded))
            .map_err(io_err(path.display().to_string()))?;
    }
    Ok(())
}

fn print_log_tail(path: &Path) {
    if let Ok(text) = fs::read_to_string(path) {
        let lines: Vec<&str> = text.lines().collect();
        let start = lines.len().saturating_sub(20);
        eprintln!("--- last console lines ({}) ---", path.display());
        for l in &lines[start..] {
            eprintln!("{l}");
        }
    }
}

/// `kettle build --local`: the guest's pipeline as a host process, no VM, no TEE.
/// The pipeline is kettle-init's own (`kettle-init --local`), so local mode runs
/// the guest's code, not a host copy of it.
fn build_local(args: &BuildArgs) -> Result<ExitCode, BuildError> {
    eprintln!("kettle build --local: no VM and no TEE: the result is NOT hardware-attested (no evidence is produced)");
    let staging = Staging::new(&args.out, args.force)?;
    let work = work_dir(&args.out)?;
    let init = local_init(args, work.path())?;
    let src = resolve_source(args, work.path())?;
    // The request says "simulated" only because it must name a provider; local mode requests no report.
    let request = make_request(args, &src, Tee::Simulated)?;
    let inputs_dir = work.path().join("inputs");
    if args.mode == ModeArg::Cached {
        let store = open_store(args)?;
        let downloader = Downloader::new(RetryPolicy::default());
        let resolved = inputs::resolve(&src, &store, &downloader, work.path())?;
        check_interrupted()?;
        let writer = CacheWriter::create_dir(&inputs_dir)
            .map_err(io_err(inputs_dir.display().to_string()))?;
        inputs::write_cache(&resolved, &src.commit, &store, writer, &inputs_dir)?;
    }
    fs::create_dir_all(&inputs_dir).map_err(io_err(inputs_dir.display().to_string()))?;
    let request_path = inputs_dir.join(kettle_wire::request::REQUEST_ENTRY);
    fs::write(
        &request_path,
        serde_json::to_vec_pretty(&request).expect("a request serializes"),
    )
    .map_err(io_err(request_path.display().to_string()))?;

    let out_dir = staging.path().join("result");
    let status = std::process::Command::new(&init)
        .arg("--local")
        .arg(&inputs_dir)
        .arg("--out")
        .arg(&out_dir)
        .arg("--work")
        .arg(work.path().join("work"))
        .status()
        .map_err(io_err(format!("running {}", init.display())))?;
    if INTERRUPTED.load(Ordering::SeqCst) {
        eprintln!(
            "kettle build: interrupted; nothing written to {}",
            args.out.display()
        );
        return Ok(ExitCode::from(EXIT_INTERRUPTED));
    }
    let built = match status.code() {
        Some(0) => true,
        Some(1) => false,
        _ => {
            return Err(BuildError::Args(format!(
                "{} --local could not run ({status}); see its message above",
                init.display()
            )))
        }
    };
    // Move the result up so the output dir has the same layout as a VM build's.
    for entry in fs::read_dir(&out_dir).map_err(io_err(out_dir.display().to_string()))? {
        let entry = entry.map_err(io_err(out_dir.display().to_string()))?;
        fs::rename(entry.path(), staging.path().join(entry.file_name()))
            .map_err(io_err("moving the local result"))?;
    }
    fs::remove_dir(&out_dir).map_err(io_err(out_dir.display().to_string()))?;
    let out = staging.publish()?;
    if built {
        let artifacts = fs::read(out.join(STATUS_FILE))
            .ok()
            .and_then(|b| serde_json::from_slice::<kettle_wire::BuildStatus>(&b).ok())
            .map_or(0, |s| s.artifacts.len());
        eprintln!(
            "built {artifacts} artifact(s) into {}; provenance.json written; NOT hardware-attested (local mode has no evidence)",
            out.display()
        );
        Ok(ExitCode::SUCCESS)
    } else {
        if let Some(e) = fs::read(out.join(ERROR_FILE))
            .ok()
            .and_then(|b| serde_json::from_slice::<kettle_wire::ErrorReport>(&b).ok())
        {
            eprintln!(
                "kettle build --local: step {} failed: {}",
                e.step, e.message
            );
        }
        eprintln!("error.json is in {}", out.display());
        Ok(ExitCode::from(EXIT_FAILED))
    }
}

/// The kettle-init binary local mode runs: `--init`, else `/init` of the image's
/// initramfs (after checking the initramfs against the image manifest).
fn local_init(args: &BuildArgs, work: &Path) -> Result<PathBuf, BuildError> {
    if let Some(p) = &args.init {
        return Ok(p.clone());
    }
    let image = load_image(&args.image)?;
    let err = |message: String| BuildError::Image {
        dir: args.image.clone(),
        message,
    };
    let initrd =
        fs::read(&image.files.initrd).map_err(io_err(image.files.initrd.display().to_string()))?;
    let digest = kettle_provenance::Sha256Digest::of_bytes(&initrd).to_hex();
    if digest != image.manifest.initrd.sha256 {
        return Err(err(format!(
            "{} has sha256 {digest}, but the manifest says {}",
            image.files.initrd.display(),
            image.manifest.initrd.sha256
        )));
    }
    let init = kettle_image::cpio::read_file(&initrd, "init")
        .map_err(|e| err(e.to_string()))?
        .ok_or_else(|| err("the initramfs has no /init".into()))?;
    let path = work.join("kettle-init");
    fs::write(&path, init).map_err(io_err(path.display().to_string()))?;
    use std::os::unix::fs::PermissionsExt;
    fs::set_permissions(&path, fs::Permissions::from_mode(0o755))
        .map_err(io_err(path.display().to_string()))?;
    Ok(path)
}
