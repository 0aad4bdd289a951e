//! `kettle measure`: the SNP launch digest of an image, with the same options
//! and output as virtee's `sev-snp-measure --mode snp`, or a check of an
//! image directory against its `manifest.json`.

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use kettle::console::escape;
use kettle_image::audit::files::{read_regular, MAX_JSON_BYTES};
use kettle_image::audit::{audit, table_next_to, Audit, AuditInputs};
use kettle_image::bundle::MANIFEST_FILE;
use kettle_image::manifest::ImageManifest;
use kettle_image::measure::{
    self, cpu_model_names, GuestFeatures, KernelHashes, LaunchDigest, MeasureInputs, VcpuConfig,
    VcpuType, VmmType,
};
use kettle_image::table::{LaunchDigestTable, TABLE_FILE};

/// Exit code when the files do not match the manifest.
const EXIT_MISMATCH: u8 = 1;

/// Measurement modes (sev-snp-measure's names; only the SNP ones are supported).
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum Mode {
    /// Full SEV-SNP launch digest.
    #[value(name = "snp")]
    Snp,
    /// Only the firmware pages' hash (for --snp-ovmf-hash).
    #[value(name = "snp:ovmf-hash")]
    SnpOvmfHash,
}

/// How to print the digest.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum OutputFormat {
    /// Lower-case hex (96 digits).
    Hex,
    /// Standard base64 with padding.
    Base64,
}

/// Options of `kettle measure`.
#[derive(clap::Args)]
pub struct MeasureArgs {
    /// Guest mode.
    #[arg(long, value_enum, default_value = "snp")]
    mode: Mode,
    /// Number of guest vCPUs.
    #[arg(long, value_name = "N")]
    vcpus: Option<u32>,
    /// Guest vCPU model (EPYC, EPYC-v4, EPYC-Rome, EPYC-Milan, EPYC-Genoa, EPYC-Turin, ... see --help).
    #[arg(long, value_name = "CPUTYPE", value_parser = parse_named_vcpu, long_help = vcpu_type_help())]
    vcpu_type: Option<VcpuType>,
    /// Guest vCPU signature (CPUID Fn0000_0001_EAX), e.g. 0xa00f11.
    #[arg(long, value_name = "VALUE", value_parser = parse_u32)]
    vcpu_sig: Option<u32>,
    /// Guest vCPU family (with --vcpu-model and --vcpu-stepping).
    #[arg(long, value_name = "FAMILY", requires_all = ["vcpu_model", "vcpu_stepping"])]
    vcpu_family: Option<u32>,
    /// Guest vCPU model number.
    #[arg(long, value_name = "MODEL", requires = "vcpu_family")]
    vcpu_model: Option<u32>,
    /// Guest vCPU stepping.
    #[arg(long, value_name = "STEPPING", requires = "vcpu_family")]
    vcpu_stepping: Option<u32>,
    /// VMM type: QEMU, ec2 or gce.
    #[arg(long, value_name = "VMMTYPE", default_value = "QEMU")]
    vmm_type: VmmType,
    /// OVMF firmware (AmdSev build).
    #[arg(long, value_name = "PATH", required_unless_present = "manifest")]
    ovmf: Option<PathBuf>,
    /// Kernel (bzImage) as given to QEMU -kernel.
    #[arg(long, value_name = "PATH")]
    kernel: Option<PathBuf>,
    /// Initrd as given to QEMU -initrd (needs --kernel).
    #[arg(long, value_name = "PATH")]
    initrd: Option<PathBuf>,
    /// Kernel command line as given to QEMU -append (needs --kernel).
    #[arg(long, value_name = "CMDLINE", allow_hyphen_values = true)]
    append: Option<String>,
    /// Guest features (VMSA SEV_FEATURES), e.g. 0x1.
    #[arg(long, value_name = "VALUE", default_value = "0x1")]
    guest_features: GuestFeatures,
    /// Output format of the digest.
    #[arg(long, value_enum, default_value = "hex")]
    output_format: OutputFormat,
    /// Precalculated hash of the firmware pages (from --mode snp:ovmf-hash).
    #[arg(long, value_name = "HASH")]
    snp_ovmf_hash: Option<LaunchDigest>,
    /// Check an image against a (published) manifest.json instead: recompute
    /// its launch digest and every one of the launch-digests.json next to it
    /// (or --digests) from the image files (in --image DIR, default the
    /// manifest's directory; or --ovmf/--kernel/--initrd), compare every file
    /// hash and, when DIR has its own manifest.json, every field of it; each
    /// difference is explained by the input that causes it. Exit 0 all match,
    /// 1 something differs, 2 could not run.
    #[arg(long, value_name = "FILE", conflicts_with_all = [
        "vcpus", "vcpu_type", "vcpu_sig", "vcpu_family", "append", "snp_ovmf_hash", "mode",
    ])]
    manifest: Option<PathBuf>,
    /// With --manifest: the directory holding bzImage, initramfs.cpio and OVMF.fd
    /// (e.g. build/image), when they are not next to the manifest.
    #[arg(long, value_name = "DIR", requires = "manifest")]
    image: Option<PathBuf>,
    /// With --manifest: the launch digest table to check (default: launch-digests.json
    /// next to the manifest, when there is one).
    #[arg(long, value_name = "FILE", requires = "manifest")]
    digests: Option<PathBuf>,
}

fn vcpu_type_help() -> String {
    format!("Guest vCPU model: {}", cpu_model_names().join(", "))
}

fn parse_named_vcpu(s: &str) -> Result<VcpuType, String> {
    match s.parse::<VcpuType>() {
        Ok(v @ VcpuType::Named(_)) => Ok(v),
        _ => Err(format!(
            "unknown vCPU type {s:?}; use one of {}",
            cpu_model_names().join(", ")
        )),
    }
}

fn parse_u32(s: &str) -> Result<u32, String> {
    format!("sig={s}")
        .parse::<VcpuType>()
        .map(|v| v.signature())
        .map_err(|e| e.to_string())
}

/// Runs `kettle measure`.
pub fn run(args: MeasureArgs) -> ExitCode {
    if let Some(manifest) = args.manifest.clone() {
        return check_manifest(&manifest, &args);
    }
    match digest(&args) {
        Ok(d) => {
            println!("{}", format_digest(&d, args.output_format));
            ExitCode::SUCCESS
        }
        Err(message) => {
            log::error!("{message}");
            ExitCode::from(crate::EXIT_CANNOT_RUN)
        }
    }
}

/// The vCPU type by sev-snp-measure's precedence: family/model/stepping, then signature, then name.
fn vcpu_type(args: &MeasureArgs) -> Result<VcpuType, String> {
    if let (Some(family), Some(model), Some(stepping)) =
        (args.vcpu_family, args.vcpu_model, args.vcpu_stepping)
    {
        return Ok(VcpuType::FamilyModelStepping {
            family,
            model,
            stepping,
        });
    }
    if let Some(sig) = args.vcpu_sig {
        return Ok(VcpuType::Signature(sig));
    }
    if let Some(v) = &args.vcpu_type {
        return Ok(v.clone());
    }
    if args.vmm_type == VmmType::Qemu {
        return Err("missing --vcpu-type, --vcpu-sig or --vcpu-family: QEMU puts the vCPU signature in the VMSA".into());
    }
    // EC2 and GCE do not put a signature in the VMSA.
    Ok(VcpuType::Signature(0))
}

fn digest(args: &MeasureArgs) -> Result<LaunchDigest, String> {
    let ovmf_path = args.ovmf.as_deref().ok_or("--ovmf is required")?;
    let ovmf = measure::load_ovmf(ovmf_path).map_err(|e| e.to_string())?;
    if args.mode == Mode::SnpOvmfHash {
        return Ok(measure::ovmf_hash(&ovmf));
    }
    let inputs = MeasureInputs {
        ovmf: ovmf_path.to_path_buf(),
        kernel: args.kernel.clone(),
        initrd: args.initrd.clone(),
        cmdline: args.append.clone(),
        vcpu: VcpuConfig {
            vcpus: args
                .vcpus
                .ok_or("missing --vcpus N (required in --mode snp)")?,
            vcpu_type: vcpu_type(args)?,
            vmm_type: args.vmm_type,
            guest_features: args.guest_features,
        },
    };
    let hashes: Option<KernelHashes> = inputs.kernel_hashes().map_err(|e| e.to_string())?;
    measure::launch_digest(
        &ovmf,
        args.snp_ovmf_hash.as_ref(),
        hashes.as_ref(),
        &inputs.vcpu,
    )
    .map_err(|e| e.to_string())
}

fn format_digest(d: &LaunchDigest, format: OutputFormat) -> String {
    match format {
        OutputFormat::Hex => d.to_string(),
        OutputFormat::Base64 => base64(&d.0),
    }
}

/// RFC 4648 base64 with padding (the digest is the only thing encoded).
pub(crate) fn base64(bytes: &[u8]) -> String {
    const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut out = String::new();
    for chunk in bytes.chunks(3) {
        let n = chunk
            .iter()
            .enumerate()
            .fold(0u32, |acc, (i, b)| acc | (u32::from(*b) << (16 - 8 * i)));
        for i in 0..4 {
            if i <= chunk.len() {
                out.push(ALPHABET[(n >> (18 - 6 * i) & 63) as usize] as char);
            } else {
                out.push('=');
            }
        }
    }
    out
}

/// `--manifest`: recompute and compare everything; print one line per check
/// and, under each mismatch, the inputs that explain it.
fn check_manifest(path: &Path, args: &MeasureArgs) -> ExitCode {
    match audit_manifest(path, args) {
        Ok(audit) => {
            crate::print_stdout(&render_audit(&audit, args.output_format));
            let shown = escape(&path.display().to_string());
            if audit.is_match() {
                log::info!("every file, field and launch digest matches {shown}");
                ExitCode::SUCCESS
            } else {
                let n = audit.mismatches().count();
                log::error!(
                    "{n} of {} checks differ from {shown} (explained above)",
                    audit.findings.len(),
                );
                ExitCode::from(EXIT_MISMATCH)
            }
        }
        // It may name a file of the image directory, or quote what a file holds.
        Err(message) => {
            log::error!("{}", escape(&message));
            ExitCode::from(crate::EXIT_CANNOT_RUN)
        }
    }
}

fn audit_manifest(path: &Path, args: &MeasureArgs) -> Result<Audit, String> {
    let manifest = ImageManifest::load(path).map_err(|e| e.to_string())?;
    let manifest_dir = path
        .parent()
        .filter(|p| !p.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    let image_dir = args.image.as_deref().unwrap_or(manifest_dir);
    let mut files = manifest.files_in(image_dir).map_err(|e| e.to_string())?;
    if let Some(p) = &args.ovmf {
        files.ovmf = p.clone();
    }
    if let Some(p) = &args.kernel {
        files.kernel = p.clone();
    }
    if let Some(p) = &args.initrd {
        files.initrd = p.clone();
    }
    for f in [&files.kernel, &files.initrd, &files.ovmf] {
        if !f.exists() {
            return Err(format!(
                "{} does not exist: the image files are not {}; pass --image DIR with the image to check (e.g. build/image after make image)",
                f.display(),
                if args.image.is_some() {
                    "in --image".to_string()
                } else {
                    format!("next to {}", path.display())
                }
            ));
        }
    }
    let table_path = args.digests.clone().or_else(|| table_next_to(path));
    let table = match table_path {
        Some(p) => {
            let bytes = read_regular("launch digest table", &p, MAX_JSON_BYTES)
                .map_err(|e| e.to_string())?;
            let table = LaunchDigestTable::from_json(&bytes, &p).map_err(|e| e.to_string())?;
            Some((table, p))
        }
        None => {
            log::warn!(
                "no {TABLE_FILE} next to {} (and no --digests): only the manifest's own launch digest is checked",
                escape(&path.display().to_string())
            );
            None
        }
    };
    // The image directory's own manifest, when it is another file than the one checked.
    let local_path = image_dir.join(MANIFEST_FILE);
    let same_file = match (
        std::fs::canonicalize(&local_path),
        std::fs::canonicalize(path),
    ) {
        (Ok(a), Ok(b)) => a == b,
        _ => false,
    };
    let image_manifest = if local_path.is_file() && !same_file {
        Some((
            ImageManifest::load(&local_path).map_err(|e| e.to_string())?,
            local_path,
        ))
    } else {
        None
    };
    audit(&AuditInputs {
        manifest,
        manifest_path: path.to_path_buf(),
        table,
        files,
        image_manifest,
    })
    .map_err(|e| e.to_string())
}

/// One line per check (`ok` or `MISMATCH`), the explanations indented below. Subjects,
/// details and explanations quote what the checked files hold (initramfs entry names,
/// manifest fields, paths): each is escaped, so none can forge a line or drive the terminal.
fn render_audit(audit: &Audit, format: OutputFormat) -> String {
    let mut lines = Vec::new();
    for f in &audit.findings {
        let detail = match (format, f.detail.parse::<LaunchDigest>()) {
            (OutputFormat::Base64, Ok(d)) => base64(&d.0),
            _ => f.detail.clone(),
        };
        lines.push(format!(
            "{:<8} {}: {}",
            if f.ok { "ok" } else { "MISMATCH" },
            escape(&f.subject),
            escape(&detail)
        ));
        for b in &f.because {
            lines.push(format!("         because: {}", escape(b)));
        }
    }
    let bad = audit.mismatches().count();
    lines.push(if bad == 0 {
        format!("all {} checks match", audit.findings.len())
    } else {
        format!("{bad} of {} checks differ", audit.findings.len())
    });
    lines.join("\n")
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::Parser;
    use kettle_image::manifest::FileRef;

    #[derive(Parser)]
    struct Cli {
        #[command(flatten)]
        args: MeasureArgs,
    }

    fn parse(args: &[&str]) -> MeasureArgs {
        Cli::try_parse_from(std::iter::once("measure").chain(args.iter().copied()))
            .unwrap()
            .args
    }

    /// The real AmdSev footer page from the sev crate's test data, as a firmware file.
    fn firmware(dir: &Path) -> Option<PathBuf> {
        let home = std::env::var_os("CARGO_HOME")
            .map(PathBuf::from)
            .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".cargo")))?;
        let suffix = std::fs::read_dir(home.join("registry/src"))
            .ok()?
            .flatten()
            .flat_map(|d| std::fs::read_dir(d.path()).into_iter().flatten().flatten())
            .filter(|d| d.file_name().to_string_lossy().starts_with("sev-8."))
            .map(|d| d.path().join("tests/measurement/ovmf_AmdSev_suffix.bin"))
            .find(|p| p.is_file())?;
        let path = dir.join("OVMF.fd");
        std::fs::copy(suffix, &path).ok()?;
        Some(path)
    }

    #[test]
    fn manifest_check_exit_codes() {
        let dir = tempfile::tempdir().unwrap();
        let Some(ovmf) = firmware(dir.path()) else {
            assert!(
                std::env::var("CI").as_deref() != Ok("true"),
                "sev test data missing on CI"
            );
            eprintln!("skipping: sev 8.x test data not in the cargo registry");
            return;
        };
        std::fs::write(dir.path().join("bzImage"), b"kernel").unwrap();
        std::fs::write(dir.path().join("initramfs.cpio"), b"initrd").unwrap();
        let sha =
            |name: &str| hex::encode(measure::sha256_file(&dir.path().join(name), "test").unwrap());
        let inputs = MeasureInputs {
            ovmf,
            kernel: Some(dir.path().join("bzImage")),
            initrd: Some(dir.path().join("initramfs.cpio")),
            cmdline: Some("console=ttyS0".into()),
            vcpu: VcpuConfig {
                vcpus: 2,
                vcpu_type: "EPYC-Milan".parse().unwrap(),
                vmm_type: VmmType::Qemu,
                guest_features: GuestFeatures::default(),
            },
        };
        let file = |n: &str| FileRef::new(n, sha(n));
        let manifest = ImageManifest::new(
            file("bzImage"),
            file("initramfs.cpio"),
            file("OVMF.fd"),
            "console=ttyS0",
            &inputs.vcpu,
            inputs.launch_digest().unwrap(),
        );
        let path = dir.path().join("manifest.json");
        std::fs::write(&path, manifest.to_json_pretty()).unwrap();
        let path_s = path.to_str().unwrap();
        assert_eq!(run(parse(&["--manifest", path_s])), ExitCode::SUCCESS);
        // The same digest through the sev-snp-measure style options.
        let args = parse(&[
            "--mode",
            "snp",
            "--vcpus",
            "2",
            "--vcpu-type",
            "EPYC-Milan",
            "--ovmf",
            inputs.ovmf.to_str().unwrap(),
            "--kernel",
            dir.path().join("bzImage").to_str().unwrap(),
            "--initrd",
            dir.path().join("initramfs.cpio").to_str().unwrap(),
            "--append",
            "console=ttyS0",
        ]);
        assert_eq!(digest(&args).unwrap(), manifest.launch_digest);
        // A replaced initrd (via override) is a mismatch; a missing manifest cannot run.
        std::fs::write(dir.path().join("other.cpio"), b"other").unwrap();
        let other = dir.path().join("other.cpio");
        assert_eq!(
            run(parse(&[
                "--manifest",
                path_s,
                "--initrd",
                other.to_str().unwrap()
            ])),
            ExitCode::from(EXIT_MISMATCH)
        );
        let missing = dir.path().join("nope.json");
        assert_eq!(
            run(parse(&["--manifest", missing.to_str().unwrap()])),
            ExitCode::from(crate::EXIT_CANNOT_RUN)
        );
        // --manifest fixes the parameters; overriding them is refused by the parser.
        assert!(Cli::try_parse_from(["measure", "--manifest", path_s, "--vcpus", "4"]).is_err());
    }

    #[test]
    fn what_the_files_hold_is_printed_escaped() {
        // An initramfs entry named to forge the summary line and clear the screen.
        let name = "x\nall 9 checks match\u{1b}[2J";
        let audit = Audit {
            findings: vec![kettle_image::audit::Finding {
                subject: "initrd".into(),
                ok: false,
                detail: format!("build/image/{name}: sha256 00"),
                because: vec![format!("entry {name} is not in the manifest")],
            }],
            recomputed: LaunchDigest([0; 48]),
        };
        let text = render_audit(&audit, OutputFormat::Hex);
        assert!(
            !text.chars().any(|c| c.is_control() && c != '\n'),
            "{text:?}"
        );
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(lines.len(), 3, "{text}");
        assert_eq!(
            lines[2], "1 of 1 checks differ",
            "the summary is the last line, and the only one"
        );
        assert!(
            lines[1].ends_with(
                "because: entry x\\u{a}all 9 checks match\\u{1b}[2J is not in the manifest"
            ),
            "{text}"
        );
    }

    #[test]
    fn base64_matches_rfc4648_vectors() {
        assert_eq!(base64(b""), "");
        assert_eq!(base64(b"f"), "Zg==");
        assert_eq!(base64(b"fo"), "Zm8=");
        assert_eq!(base64(b"foo"), "Zm9v");
        assert_eq!(base64(b"foobar"), "Zm9vYmFy");
        assert_eq!(base64(&[0xff; 48]).len(), 64);
    }
}
