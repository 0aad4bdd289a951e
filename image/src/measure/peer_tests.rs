//! Cross-checks of the launch digest against the two reference
//! implementations: virtee's sev-snp-measure (the CLI auditors use) and the
//! sev crate. Firmware: the real AmdSev OVMF footer shipped in sev's test data
//! (read from the cargo registry, never copied here) behind a filler, and the
//! real `build/OVMF.fd` when it has been built.

use std::path::{Path, PathBuf};
use std::process::Command;

use super::*;

/// Size of the synthetic firmware: the AmdSev footer page behind 2 MiB of filler.
const SYNTHETIC_FIRMWARE_LEN: usize = 2 * 1024 * 1024;

/// Whether missing peers must fail the test (CI) rather than skip it.
fn on_ci() -> bool {
    std::env::var("CI").as_deref() == Ok("true")
}

/// Skips (prints why) off CI, fails on CI.
fn skip_or_fail(reason: &str) {
    assert!(!on_ci(), "CI=true but {reason}");
    eprintln!("skipping: {reason}");
}

fn workspace_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("image/ has a parent")
        .to_path_buf()
}

/// The sev crate's `tests/measurement/<name>` in the local cargo registry.
fn sev_test_data(name: &str) -> Option<PathBuf> {
    let cargo_home = std::env::var_os("CARGO_HOME")
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".cargo")))?;
    let src = cargo_home.join("registry").join("src");
    let mut found: Vec<PathBuf> = std::fs::read_dir(src)
        .ok()?
        .flatten()
        .flat_map(|index| {
            std::fs::read_dir(index.path())
                .into_iter()
                .flatten()
                .flatten()
        })
        .filter(|d| d.file_name().to_string_lossy().starts_with("sev-8."))
        .map(|d| d.path().join("tests").join("measurement").join(name))
        .filter(|p| p.is_file())
        .collect();
    found.sort();
    found.pop()
}

/// sev-snp-measure from $KETTLE_VENV (default /opt/kettle-venv).
fn peer_cli() -> Option<PathBuf> {
    let venv = std::env::var_os("KETTLE_VENV").unwrap_or_else(|| "/opt/kettle-venv".into());
    let cli = PathBuf::from(venv).join("bin").join("sev-snp-measure");
    cli.is_file().then_some(cli)
}

/// Writes the synthetic firmware: deterministic filler + the real AmdSev footer page.
fn synthetic_firmware(dir: &Path) -> Option<PathBuf> {
    let suffix = std::fs::read(sev_test_data("ovmf_AmdSev_suffix.bin")?).ok()?;
    let mut data: Vec<u8> = (0..SYNTHETIC_FIRMWARE_LEN - suffix.len())
        .map(|i| (i * 7 % 253) as u8)
        .collect();
    data.extend_from_slice(&suffix);
    let path = dir.join("OVMF-synthetic.fd");
    std::fs::write(&path, data).unwrap();
    Some(path)
}

/// Kernel-ish and initrd-ish files; the real bzImage too when built.
fn kernel_inputs(dir: &Path) -> (Vec<PathBuf>, PathBuf) {
    let kernel = dir.join("vmlinuz");
    // sev-snp-measure and QEMU only hash the kernel file; any bytes will do here.
    std::fs::write(
        &kernel,
        (0..300_001u32).map(|i| (i % 241) as u8).collect::<Vec<_>>(),
    )
    .unwrap();
    let initrd = dir.join("initrd.cpio");
    std::fs::write(&initrd, b"070701 not really an initrd, only hashed").unwrap();
    let mut kernels = vec![kernel];
    let real = workspace_root().join("build").join("bzImage");
    if real.is_file() {
        kernels.push(real);
    } else {
        eprintln!("note: build/bzImage absent (make kernel); using the synthetic kernel only");
    }
    (kernels, initrd)
}

/// One measurement case, expressed both as our inputs and as peer CLI flags.
struct Case {
    inputs: MeasureInputs,
    /// `--vcpu-type X` or `--vcpu-family ...`
    vcpu_args: Vec<String>,
}

impl Case {
    fn peer_args(&self) -> Vec<String> {
        let i = &self.inputs;
        let mut a: Vec<String> = vec![
            "--mode".into(),
            "snp".into(),
            "--output-format".into(),
            "hex".into(),
        ];
        a.extend(["--vcpus".into(), i.vcpu.vcpus.to_string()]);
        a.extend(self.vcpu_args.iter().cloned());
        a.extend(["--vmm-type".into(), i.vcpu.vmm_type.to_string()]);
        a.extend(["--guest-features".into(), i.vcpu.guest_features.to_string()]);
        a.extend(["--ovmf".into(), i.ovmf.display().to_string()]);
        if let Some(k) = &i.kernel {
            a.extend(["--kernel".into(), k.display().to_string()]);
        }
        if let Some(r) = &i.initrd {
            a.extend(["--initrd".into(), r.display().to_string()]);
        }
        if let Some(c) = &i.cmdline {
            // `--append=...` so a command line starting with '-' is not taken for a flag.
            a.push(format!("--append={c}"));
        }
        a
    }
}

/// The matrix the brief asks for: 1/2/8 vCPUs x every named vCPU type x
/// with/without initrd x with/without cmdline, plus VMM/feature/signature variants.
fn cases(ovmf: &Path, kernels: &[PathBuf], initrd: &Path) -> Vec<Case> {
    let named = |vcpus: u32,
                 name: &str,
                 kernel: Option<&PathBuf>,
                 initrd: Option<&Path>,
                 cmdline: Option<&str>| Case {
        inputs: MeasureInputs {
            ovmf: ovmf.to_path_buf(),
            kernel: kernel.cloned(),
            initrd: initrd.map(Path::to_path_buf),
            cmdline: cmdline.map(str::to_string),
            vcpu: VcpuConfig {
                vcpus,
                vcpu_type: name.parse().unwrap(),
                vmm_type: VmmType::Qemu,
                guest_features: GuestFeatures::default(),
            },
        },
        vcpu_args: vec!["--vcpu-type".into(), name.into()],
    };
    let cmdline = "console=ttyS0 panic=-1 quiet";
    let mut out = Vec::new();
    for vcpus in [1, 2, 8] {
        for name in cpu_model_names() {
            for with_initrd in [false, true] {
                for with_cmdline in [false, true] {
                    out.push(named(
                        vcpus,
                        name,
                        Some(&kernels[0]),
                        with_initrd.then_some(initrd),
                        with_cmdline.then_some(cmdline),
                    ));
                }
            }
        }
    }
    for kernel in &kernels[1..] {
        out.push(named(
            2,
            "EPYC-v4",
            Some(kernel),
            Some(initrd),
            Some(cmdline),
        ));
    }
    // No kernel at all: the hashes page is measured as a zero page.
    out.push(named(2, "EPYC-Milan", None, None, None));
    // Whitespace and an empty string are hashed verbatim.
    out.push(named(
        2,
        "EPYC-v4",
        Some(&kernels[0]),
        None,
        Some("  spaced  out "),
    ));
    out.push(named(1, "EPYC-v4", Some(&kernels[0]), None, Some("")));
    for vmm in [VmmType::Ec2, VmmType::Gce] {
        for vcpus in [1, 2] {
            let mut c = named(
                vcpus,
                "EPYC-Milan",
                Some(&kernels[0]),
                Some(initrd),
                Some(cmdline),
            );
            c.inputs.vcpu.vmm_type = vmm;
            out.push(c);
        }
    }
    let mut c = named(
        2,
        "EPYC-Genoa",
        Some(&kernels[0]),
        Some(initrd),
        Some(cmdline),
    );
    c.inputs.vcpu.guest_features = GuestFeatures(0x21);
    out.push(c);
    // Explicit family/model/stepping (a Turin-dense signature no name covers).
    let mut c = named(4, "EPYC", Some(&kernels[0]), Some(initrd), Some(cmdline));
    c.inputs.vcpu.vcpu_type = VcpuType::FamilyModelStepping {
        family: 26,
        model: 17,
        stepping: 0,
    };
    c.vcpu_args = [
        "--vcpu-family",
        "26",
        "--vcpu-model",
        "17",
        "--vcpu-stepping",
        "0",
    ]
    .map(String::from)
    .to_vec();
    out.push(c);
    let mut c = named(2, "EPYC", Some(&kernels[0]), None, Some(cmdline));
    c.inputs.vcpu.vcpu_type = VcpuType::Signature(0x00a1_0f11);
    c.vcpu_args = vec!["--vcpu-sig".into(), "0xa10f11".into()];
    out.push(c);
    out
}

/// Runs every case through sev-snp-measure and the library; returns (equal, total).
///
/// The firmware is parsed and its pages hashed once (debug builds hash slowly);
/// each case then seeds the chain with that [`ovmf_hash`], and every 16th case
/// also runs the whole path from files to pin the seed shortcut to it.
fn compare_with_peer(cli: &Path, cases: &[Case]) -> usize {
    let ovmf = load_ovmf(&cases[0].inputs.ovmf).unwrap();
    let seed = ovmf_hash(&ovmf);
    let ours = |i: usize, inputs: &MeasureInputs| -> Result<LaunchDigest, MeasureError> {
        assert_eq!(inputs.ovmf, cases[0].inputs.ovmf);
        let hashes = inputs.kernel_hashes()?;
        let seeded = launch_digest(&ovmf, Some(&seed), hashes.as_ref(), &inputs.vcpu)?;
        if i % 16 == 0 {
            assert_eq!(
                inputs.launch_digest()?,
                seeded,
                "seeded and full digests differ"
            );
        }
        Ok(seeded)
    };
    let ours = &ours;
    let indexed: Vec<(usize, &Case)> = cases.iter().enumerate().collect();
    let results: Vec<Result<(), String>> = std::thread::scope(|s| {
        let handles: Vec<_> = indexed
            .chunks(indexed.len().div_ceil(2))
            .map(|chunk| {
                s.spawn(move || {
                    chunk
                        .iter()
                        .map(|(i, case)| {
                            let out = Command::new(cli).args(case.peer_args()).output().unwrap();
                            if !out.status.success() {
                                return Err(format!(
                                    "sev-snp-measure {:?} failed: {}",
                                    case.peer_args(),
                                    String::from_utf8_lossy(&out.stderr)
                                ));
                            }
                            let peer = String::from_utf8(out.stdout).unwrap().trim().to_string();
                            let ours = ours(*i, &case.inputs)
                                .map_err(|e| e.to_string())?
                                .to_string();
                            if peer == ours {
                                Ok(())
                            } else {
                                Err(format!(
                                    "{:?}: sev-snp-measure {peer} != kettle {ours}",
                                    case.peer_args()
                                ))
                            }
                        })
                        .collect::<Vec<_>>()
                })
            })
            .collect();
        handles
            .into_iter()
            .flat_map(|h| h.join().unwrap())
            .collect()
    });
    let failures: Vec<&String> = results.iter().filter_map(|r| r.as_ref().err()).collect();
    assert!(
        failures.is_empty(),
        "{} of {} cases differ:\n{:#?}",
        failures.len(),
        results.len(),
        failures
    );
    results.len()
}

#[test]
fn matches_sev_snp_measure_on_amdsev_footer() {
    let Some(cli) = peer_cli() else {
        return skip_or_fail("sev-snp-measure is not installed in $KETTLE_VENV (run make setup)");
    };
    let dir = tempfile::tempdir().unwrap();
    let Some(ovmf) = synthetic_firmware(dir.path()) else {
        return skip_or_fail(
            "sev 8.x test data (ovmf_AmdSev_suffix.bin) not found in the cargo registry",
        );
    };
    let (kernels, initrd) = kernel_inputs(dir.path());
    let cases = cases(&ovmf, &kernels, &initrd);
    let n = compare_with_peer(&cli, &cases);
    eprintln!("synthetic AmdSev firmware: {n}/{n} digests identical to sev-snp-measure");
}

#[test]
fn matches_sev_snp_measure_on_real_ovmf() {
    let ovmf = std::env::var_os("KETTLE_OVMF")
        .map(PathBuf::from)
        .unwrap_or_else(|| workspace_root().join("build").join("OVMF.fd"));
    if !ovmf.is_file() {
        eprintln!(
            "skipping: no real OVMF at {} (run make ovmf or set KETTLE_OVMF)",
            ovmf.display()
        );
        return;
    }
    let Some(cli) = peer_cli() else {
        return skip_or_fail("sev-snp-measure is not installed in $KETTLE_VENV (run make setup)");
    };
    let dir = tempfile::tempdir().unwrap();
    let (kernels, initrd) = kernel_inputs(dir.path());
    let cases = cases(&ovmf, &kernels, &initrd);
    let n = compare_with_peer(&cli, &cases);
    eprintln!(
        "real OVMF {}: {n}/{n} digests identical to sev-snp-measure",
        ovmf.display()
    );
}

/// For every input the sev crate can express, its digest equals ours.
#[test]
fn matches_sev_crate() {
    use sev::measurement::{
        snp::{snp_calc_launch_digest, SnpMeasurementArgs},
        vcpu_types::CpuType,
        vmsa::{GuestFeatures as SevFeatures, VMMType},
    };
    let dir = tempfile::tempdir().unwrap();
    let (Some(padded), Some(bare)) = (
        synthetic_firmware(dir.path()),
        sev_test_data("ovmf_AmdSev_suffix.bin"),
    ) else {
        return skip_or_fail(
            "sev 8.x test data (ovmf_AmdSev_suffix.bin) not found in the cargo registry",
        );
    };
    let (kernels, initrd) = kernel_inputs(dir.path());
    let mut compared = 0;
    // The bare 4 KiB footer page (as sev's own tests use it) for the whole
    // matrix, since debug builds hash slowly; the padded image for a few cases.
    let all = cases(&bare, &kernels, &initrd)
        .into_iter()
        .chain(cases(&padded, &kernels, &initrd).into_iter().step_by(50));
    for case in all {
        let i = &case.inputs;
        let VcpuType::Named(name) = &i.vcpu.vcpu_type else {
            continue;
        };
        let trimmed = i.cmdline.as_deref().is_none_or(|c| c.trim() == c);
        if i.vcpu.vmm_type != VmmType::Qemu
            || i.vcpu.guest_features != GuestFeatures::default()
            || !trimmed
        {
            continue; // sev cannot express these (see the module docs)
        }
        let theirs = snp_calc_launch_digest(SnpMeasurementArgs {
            vcpus: i.vcpu.vcpus,
            vcpu_type: CpuType::try_from(*name).unwrap(),
            ovmf_file: i.ovmf.clone(),
            guest_features: SevFeatures::default(),
            kernel_file: i.kernel.clone(),
            initrd_file: i.initrd.clone(),
            append: i.cmdline.as_deref(),
            ovmf_hash_str: None,
            vmm_type: Some(VMMType::QEMU),
        })
        .unwrap();
        assert_eq!(
            theirs.get_hex_ld(),
            i.launch_digest().unwrap().to_string(),
            "{:?}",
            case.peer_args()
        );
        compared += 1;
    }
    assert!(compared >= 192, "only {compared} cases compared");
    eprintln!("sev crate: {compared}/{compared} digests identical");
}
