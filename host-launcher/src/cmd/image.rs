//! `kettle image`: build the initramfs around the static kettle-init, copy the
//! kernel and firmware beside it and write `manifest.json` with the launch
//! digest, `launch-digests.json` (the digests for every offered vCPU type and
//! count) and `provenance.json` (what the image was built from); all into one
//! directory that appears complete or not at all.

mod roots;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use kettle_image::bundle::{self, BundleError, ExtraFile, ExtraSource, ImageSpec, DEFAULT_CMDLINE};
use kettle_image::manifest::{
    VERSION_CA_ROOTS, VERSION_KERNEL_SOURCE, VERSION_KERNEL_TOOLS, VERSION_OVMF_SOURCE,
    VERSION_OVMF_TOOLS, VERSION_RUSTC,
};
use kettle_image::measure::{GuestFeatures, VcpuConfig, VcpuType, VmmType};
use kettle_image::table::{DEFAULT_VCPU_COUNTS, DEFAULT_VCPU_TYPES};
use kettle_wire::devices::GUEST_CA_ROOTS;

use kettle_image::provenance::{
    self, crates_from_tree, ImageProvenance, PinFile, RustcVersion, SourceCommit, ToolRecord,
    PROVENANCE_FILE,
};
use roots::{CaRoots, CaRootsSource};

/// Options of `kettle image`.
#[derive(clap::Args)]
pub struct ImageArgs {
    /// The static kettle-init binary (scripts/build-init.sh); becomes /init.
    #[arg(long, value_name = "PATH")]
    init: PathBuf,
    /// The guest kernel, a bzImage with an EFI stub (make kernel).
    #[arg(long, value_name = "PATH")]
    kernel: PathBuf,
    /// The AmdSev OVMF firmware (make ovmf).
    #[arg(long, value_name = "PATH")]
    ovmf: PathBuf,
    /// Kernel command line; it is measured, so keep it free of per-build data.
    #[arg(long, value_name = "CMDLINE", default_value = DEFAULT_CMDLINE, allow_hyphen_values = true)]
    cmdline: String,
    /// Number of vCPUs the manifest's launch digest is for.
    #[arg(long, value_name = "N", default_value_t = 2)]
    vcpus: u32,
    /// vCPU model of the manifest's digest (EPYC-v4, EPYC-Milan, EPYC-Genoa, ..., or family=F,model=M,stepping=S).
    #[arg(long, value_name = "CPUTYPE", default_value = "EPYC-v4")]
    vcpu_type: VcpuType,
    /// VMM type: QEMU, ec2 or gce.
    #[arg(long, value_name = "VMMTYPE", default_value = "QEMU")]
    vmm_type: VmmType,
    /// Guest features (VMSA SEV_FEATURES).
    #[arg(long, value_name = "VALUE", default_value = "0x1")]
    guest_features: GuestFeatures,
    /// vCPU types of launch-digests.json, comma-separated.
    #[arg(long, value_name = "TYPES", value_delimiter = ',', default_values = DEFAULT_VCPU_TYPES)]
    table_vcpu_types: Vec<VcpuType>,
    /// vCPU counts of launch-digests.json, comma-separated.
    #[arg(long, value_name = "COUNTS", value_delimiter = ',', default_values_t = DEFAULT_VCPU_COUNTS.to_vec())]
    table_vcpus: Vec<u32>,
    /// PEM bundle of CA roots for upstream HTTPS, installed as /etc/kettle/ca-roots.pem
    /// instead of the default: Mozilla's root set from the pinned webpki-root-certs crate
    /// (the roots are measured; the manifest and provenance say which went in).
    #[arg(long, value_name = "PEM", conflicts_with = "no_ca_roots")]
    ca_roots: Option<PathBuf>,
    /// Build without CA roots (upstream HTTPS mode will not work in the guest).
    #[arg(long)]
    no_ca_roots: bool,
    /// The kernel's tool record (default: <kernel>.tools when it exists; make kernel writes it).
    #[arg(long, value_name = "FILE")]
    kernel_tools: Option<PathBuf>,
    /// The firmware's tool record (default: <ovmf>.tools when it exists; make ovmf writes it).
    #[arg(long, value_name = "FILE")]
    ovmf_tools: Option<PathBuf>,
    /// The kernel source pin (kernel-config/source.pin): versions and provenance.
    #[arg(long, value_name = "FILE")]
    kernel_pin: Option<PathBuf>,
    /// The firmware source pin (kernel-config/ovmf.pin): versions and provenance.
    #[arg(long, value_name = "FILE")]
    ovmf_pin: Option<PathBuf>,
    /// The workspace's Cargo.lock (checksums of the crates kettle-init links).
    #[arg(long, value_name = "FILE", requires = "init_crates")]
    lockfile: Option<PathBuf>,
    /// The crates kettle-init links: the output of `cargo tree -p kettle-init -e normal
    /// --target x86_64-unknown-linux-gnu --prefix none --format '{p}'`.
    #[arg(long, value_name = "FILE", requires = "lockfile")]
    init_crates: Option<PathBuf>,
    /// The output of `rustc -vV` for the compiler that built kettle-init.
    #[arg(long, value_name = "TEXT")]
    rustc_vv: Option<String>,
    /// The kettle commit the image is built from (provenance `source`).
    #[arg(long, value_name = "SHA")]
    source_commit: Option<String>,
    /// The work tree had uncommitted changes (recorded with the commit).
    #[arg(long, requires = "source_commit")]
    source_modified: bool,
    /// Repository of --source-commit.
    #[arg(long, value_name = "URL", default_value = env!("CARGO_PKG_REPOSITORY"))]
    source_repo: String,
    /// Extra data file for the initramfs, GUEST_PATH=HOST_PATH (mode 0644); repeatable.
    #[arg(long = "add", value_name = "GUEST=HOST", value_parser = parse_pair)]
    add: Vec<(String, String)>,
    /// Version or pin to record in the manifest, KEY=VALUE; repeatable (overrides derived ones).
    #[arg(long = "meta", value_name = "KEY=VALUE", value_parser = parse_pair)]
    meta: Vec<(String, String)>,
    /// Output directory (replaced atomically).
    #[arg(long, value_name = "DIR")]
    out: PathBuf,
}

fn parse_pair(s: &str) -> Result<(String, String), String> {
    match s.split_once('=') {
        Some((k, v)) if !k.is_empty() => Ok((k.to_string(), v.to_string())),
        _ => Err(format!("expected KEY=VALUE, got {s:?}")),
    }
}

/// Why `kettle image` could not build the image.
#[derive(Debug, thiserror::Error)]
pub enum ImageError {
    /// A record, pin or list could not be read or understood.
    #[error("{what} {path}: {reason}")]
    Input {
        /// Which input.
        what: &'static str,
        /// Its path.
        path: PathBuf,
        /// What is wrong.
        reason: String,
    },
    /// A value given on the command line is unusable.
    #[error("{0}")]
    Argument(String),
    /// The CA roots.
    #[error(transparent)]
    CaRoots(#[from] roots::CaRootsError),
    /// Assembling or writing the image.
    #[error(transparent)]
    Bundle(#[from] BundleError),
    /// The provenance could not be made (a pin value is unusable).
    #[error("provenance.json: {0}")]
    Provenance(String),
}

fn read_text(what: &'static str, path: &Path) -> Result<String, ImageError> {
    std::fs::read_to_string(path).map_err(|e| ImageError::Input {
        what,
        path: path.to_path_buf(),
        reason: e.to_string(),
    })
}

fn parsed<T>(what: &'static str, path: &Path, r: Result<T, String>) -> Result<T, ImageError> {
    r.map_err(|reason| ImageError::Input {
        what,
        path: path.to_path_buf(),
        reason,
    })
}

/// `--kernel-tools`, else `<kernel>.tools` when it exists.
fn tool_record(
    what: &'static str,
    given: Option<&Path>,
    artifact: &Path,
) -> Result<Option<ToolRecord>, ImageError> {
    let path = match given {
        Some(p) => p.to_path_buf(),
        None => {
            let mut name = artifact.as_os_str().to_owned();
            name.push(".tools");
            let p = PathBuf::from(name);
            if !p.is_file() {
                log::warn!(
                    "no {what} ({} is missing): the manifest will not say which tools built {}",
                    p.display(),
                    artifact.display()
                );
                return Ok(None);
            }
            p
        }
    };
    let text = read_text(what, &path)?;
    parsed(what, &path, ToolRecord::parse(&text)).map(Some)
}

fn pin(what: &'static str, path: Option<&Path>) -> Result<Option<PinFile>, ImageError> {
    let Some(path) = path else { return Ok(None) };
    let text = read_text(what, path)?;
    parsed(what, path, PinFile::parse(path, &text)).map(Some)
}

/// Runs `kettle image`.
pub fn run(args: ImageArgs) -> ExitCode {
    match build(args) {
        Ok(digest) => {
            crate::print_stdout(&digest);
            ExitCode::SUCCESS
        }
        Err(e) => {
            log::error!("{e}");
            ExitCode::from(crate::EXIT_CANNOT_RUN)
        }
    }
}

fn build(args: ImageArgs) -> Result<String, ImageError> {
    if args.table_vcpus.contains(&0) {
        return Err(ImageError::Argument(
            "--table-vcpus: a vCPU count must be at least 1".into(),
        ));
    }
    let source = match (&args.ca_roots, args.no_ca_roots) {
        (_, true) => CaRootsSource::None,
        (Some(p), false) => CaRootsSource::File(p.clone()),
        (None, false) => CaRootsSource::Pinned,
    };
    let ca_roots = CaRoots::load(&source, GUEST_CA_ROOTS)?;
    log::info!("CA roots for the guest: {}", ca_roots.description);

    let mut extra_files: Vec<ExtraFile> = args
        .add
        .iter()
        .map(|(guest, host)| ExtraFile {
            guest_path: guest.clone(),
            source: ExtraSource::File(host.into()),
            mode: 0o644,
        })
        .collect();
    if let Some(pem) = &ca_roots.pem {
        extra_files.push(ExtraFile {
            // initramfs entries are relative to its root
            guest_path: GUEST_CA_ROOTS.trim_start_matches('/').into(),
            source: ExtraSource::Bytes(pem.clone()),
            mode: 0o644,
        });
    }

    let kernel_tools = tool_record(
        "kernel tool record",
        args.kernel_tools.as_deref(),
        &args.kernel,
    )?;
    let ovmf_tools = tool_record(
        "firmware tool record",
        args.ovmf_tools.as_deref(),
        &args.ovmf,
    )?;
    let kernel_pin = pin("kernel source pin", args.kernel_pin.as_deref())?;
    let ovmf_pin = pin("firmware source pin", args.ovmf_pin.as_deref())?;
    let rustc = args
        .rustc_vv
        .as_deref()
        .map(RustcVersion::parse)
        .transpose()
        .map_err(|e| ImageError::Argument(format!("--rustc-vv: {e}")))?;
    let crates = match (&args.lockfile, &args.init_crates) {
        (Some(lock), Some(list)) => {
            let locked = parsed(
                "lock file",
                lock,
                kettle_wire::recipe::cargo::lockfile::parse(&read_text("lock file", lock)?)
                    .map_err(|e| e.to_string()),
            )?;
            parsed(
                "kettle-init crate list",
                list,
                crates_from_tree(&read_text("kettle-init crate list", list)?, &locked),
            )?
        }
        _ => {
            log::warn!("no --lockfile/--init-crates: provenance.json will not list the crates kettle-init links");
            Vec::new()
        }
    };
    let source_commit = args
        .source_commit
        .as_ref()
        .map(|c| {
            let c = c.trim();
            if args.source_repo.is_empty() {
                return Err(ImageError::Argument(
                    "--source-repo is empty: name the repository of --source-commit".into(),
                ));
            }
            if matches!(c.len(), 40 | 64) && c.bytes().all(|b| b.is_ascii_hexdigit()) {
                Ok(SourceCommit {
                    repository: args.source_repo.clone(),
                    commit: c.to_ascii_lowercase(),
                    modified: args.source_modified,
                })
            } else {
                Err(ImageError::Argument(format!(
                    "--source-commit {c:?} is not a full commit id (git rev-parse HEAD)"
                )))
            }
        })
        .transpose()?;
    if source_commit.as_ref().is_some_and(|s| s.modified) {
        log::warn!("the work tree has uncommitted changes: provenance.json says so, and check-reproducible (a clean clone) will not build this image");
    }

    // The manifest's versions: derived first, --meta overrides.
    let mut versions: BTreeMap<String, String> = BTreeMap::new();
    versions.insert("kettle".into(), env!("CARGO_PKG_VERSION").into());
    versions.insert(VERSION_CA_ROOTS.into(), ca_roots.description.clone());
    if let Some(t) = &kernel_tools {
        versions.insert(VERSION_KERNEL_TOOLS.into(), t.summary());
    }
    if let Some(t) = &ovmf_tools {
        versions.insert(VERSION_OVMF_TOOLS.into(), t.summary());
    }
    for (key, p) in [
        (VERSION_KERNEL_SOURCE, &kernel_pin),
        (VERSION_OVMF_SOURCE, &ovmf_pin),
    ] {
        if let Some(p) = p {
            versions.insert(key.into(), parsed("pin", &p.path, p.package_version())?);
        }
    }
    if let Some(r) = &rustc {
        versions.insert(VERSION_RUSTC.into(), r.line.clone());
    }
    versions.extend(args.meta.iter().cloned());

    let spec = ImageSpec {
        init: args.init.clone(),
        kernel: args.kernel,
        ovmf: args.ovmf,
        cmdline: args.cmdline,
        vm: VcpuConfig {
            vcpus: args.vcpus,
            vcpu_type: args.vcpu_type,
            vmm_type: args.vmm_type,
            guest_features: args.guest_features,
        },
        extra_files,
        versions,
        table_vcpu_types: args.table_vcpu_types,
        table_vcpu_counts: args.table_vcpus,
    };
    let image = bundle::assemble(&spec)?;
    let init = std::fs::read(&args.init).map_err(|source| BundleError::Read {
        what: "init".into(),
        path: args.init.clone(),
        source,
    })?;
    let statement = provenance::statement(&ImageProvenance {
        image: &image,
        init: &init,
        kernel_pin: kernel_pin.as_ref(),
        ovmf_pin: ovmf_pin.as_ref(),
        crates: &crates,
        rustc: rustc.as_ref(),
        ca_roots: ca_roots.dependency.as_ref(),
        source: source_commit.as_ref(),
        kernel_tools: kernel_tools.as_ref(),
        ovmf_tools: ovmf_tools.as_ref(),
    })
    .map_err(ImageError::Provenance)?;
    let provenance = provenance::to_bytes(&statement).map_err(ImageError::Provenance)?;
    image.write(&args.out, &[(PROVENANCE_FILE, &provenance)])?;
    log::info!(
        "{} launch digests in {}, provenance ({} resolved dependencies) in {}",
        image.table.launch_digests.len(),
        args.out.join(kettle_image::table::TABLE_FILE).display(),
        statement
            .predicate
            .build_definition
            .resolved_dependencies
            .len(),
        args.out.join(PROVENANCE_FILE).display()
    );
    Ok(image.manifest.launch_digest.to_string())
}
