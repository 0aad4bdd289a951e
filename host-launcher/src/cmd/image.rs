//! `kettle image`: build the initramfs around the static kettle-init, copy the
//! kernel and firmware beside it and write `manifest.json` with the launch
//! digest; all into one directory that appears complete or not at all.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::process::ExitCode;

use kettle_image::bundle::{self, ExtraFile, ImageSpec, DEFAULT_CMDLINE};
use kettle_image::measure::{GuestFeatures, VcpuConfig, VcpuType, VmmType};

use kettle_wire::devices::GUEST_CA_ROOTS;

/// Debian's system CA bundle.
const HOST_CA_BUNDLE: &str = kettle::download::SYSTEM_CA_BUNDLE;

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
    /// Number of vCPUs the image is measured for.
    #[arg(long, value_name = "N", default_value_t = 2)]
    vcpus: u32,
    /// vCPU model (EPYC-v4, EPYC-Milan, EPYC-Genoa, ..., or family=F,model=M,stepping=S).
    #[arg(long, value_name = "CPUTYPE", default_value = "EPYC-v4")]
    vcpu_type: VcpuType,
    /// VMM type: QEMU, ec2 or gce.
    #[arg(long, value_name = "VMMTYPE", default_value = "QEMU")]
    vmm_type: VmmType,
    /// Guest features (VMSA SEV_FEATURES).
    #[arg(long, value_name = "VALUE", default_value = "0x1")]
    guest_features: GuestFeatures,
    /// PEM bundle of CA roots for upstream HTTPS, installed as /etc/kettle/ca-roots.pem
    /// (default: the host's bundle; it is part of the measured initrd, and the
    /// manifest lists its SHA-256, so rebuild with the same file to reproduce).
    #[arg(long, value_name = "PEM", default_value = HOST_CA_BUNDLE, conflicts_with = "no_ca_roots")]
    ca_roots: PathBuf,
    /// Build without CA roots (upstream HTTPS mode will not work in the guest).
    #[arg(long)]
    no_ca_roots: bool,
    /// Extra data file for the initramfs, GUEST_PATH=HOST_PATH (mode 0644); repeatable.
    #[arg(long = "add", value_name = "GUEST=HOST", value_parser = parse_pair)]
    add: Vec<(String, String)>,
    /// Version or pin to record in the manifest, KEY=VALUE (e.g. rustc=..., kernel-source=...); repeatable.
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

/// Runs `kettle image`.
pub fn run(args: ImageArgs) -> ExitCode {
    let mut extra_files: Vec<ExtraFile> = args
        .add
        .iter()
        .map(|(guest, host)| ExtraFile {
            guest_path: guest.clone(),
            source: host.into(),
            mode: 0o644,
        })
        .collect();
    if !args.no_ca_roots {
        log::info!("CA roots for the guest: {}", args.ca_roots.display());
        extra_files.push(ExtraFile {
            // initramfs entries are relative to its root
            guest_path: GUEST_CA_ROOTS.trim_start_matches('/').into(),
            source: args.ca_roots.clone(),
            mode: 0o644,
        });
    }
    let mut versions: BTreeMap<String, String> = args.meta.iter().cloned().collect();
    versions.insert("kettle".into(), env!("CARGO_PKG_VERSION").into());
    let spec = ImageSpec {
        init: args.init,
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
    };
    match bundle::write_image(&spec, &args.out) {
        Ok(manifest) => {
            println!("{}", manifest.launch_digest);
            ExitCode::SUCCESS
        }
        Err(e) => {
            log::error!("{e}");
            ExitCode::from(crate::EXIT_CANNOT_RUN)
        }
    }
}
