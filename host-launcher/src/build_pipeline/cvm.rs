//! `kettle build` in a CVM: the host's checks, the disks, QEMU and the simulated PSP.

use std::fs::{self, File};
use std::path::Path;
use std::process::ExitCode;
use std::time::{Duration, Instant};

use kettle_attest::simulated::SimulatedPsp;
use kettle_wire::cache::CacheWriter;
use kettle_wire::devices::SECTOR_BYTES;
use kettle_wire::output::{self, STATUS_FILE};
use kettle_wire::request::{write_request_disk, BuildRequest, FetchMode};
use kettle_wire::Tee;

use super::collect::{
    copy_manifest, print_summary, record_result, report_guest_failure, result_context, supply_vcek,
    verify_and_publish, verify_command,
};
use super::prepare::{load_image, open_store, resolve_source, Image};
use super::request::{make_request_for, vm_deadline};
use super::result::Outcome;
use super::{
    check_interrupted, host_step, interrupt, interrupted, io_err, timed, work_dir, BuildError,
    BuildOptions, EXIT_FAILED,
};
use crate::console::{escape, escape_lines, human_duration, Progress};
use crate::download::{Downloader, RetryPolicy};
use crate::inputs;
use crate::outdir::Staging;
use crate::psp_host::PspServer;
use crate::qemu::{self, Accel, Disks, Isolation, VmConfig};
use crate::source::ResolvedSource;
use crate::vm::{self, VmEnd};

/// The whole `kettle build` in a CVM, as a sequence of named steps.
pub(super) fn build_vm(opts: &BuildOptions) -> Result<ExitCode, BuildError> {
    let started = Instant::now();
    // Check QEMU, KVM and the image before anything is downloaded.
    let image = load_image(&opts.image)?;
    let (tee, accel) = host_step("check QEMU and the image", || check_host(opts))?;
    let vcpus = opts.vcpus.unwrap_or(image.manifest.vcpus);
    if tee == Tee::SevSnp && vcpus != image.manifest.vcpus {
        return Err(BuildError::Args(format!(
            "--vcpus {vcpus}: the image's launch digest is for {} vCPUs (the vCPU count is measured)",
            image.manifest.vcpus
        )));
    }

    let staging = Staging::new(&opts.out, opts.force)?;
    let work = work_dir(&opts.out)?;
    let t = Instant::now();
    let src = host_step("resolve the source", || resolve_source(opts, work.path()))?;
    timed("resolve source", t);
    check_interrupted()?;
    let request = make_request_for(opts, &src, tee, Some(&image))?;
    eprintln!(
        "building {} {} @ {} ({:?} mode, tee {})",
        src.repository,
        src.git_ref,
        src.commit,
        opts.mode,
        tee.platform_name()
    );
    let disks = host_step("resolve the inputs and write the disks", || {
        write_disks(opts, &src, &request, work.path())
    })?;
    check_interrupted()?;

    // The simulated PSP listens before QEMU starts (QEMU connects at startup).
    let sock_dir = tempfile::Builder::new()
        .prefix("kettle-psp-")
        .tempdir()
        .map_err(io_err("temp dir"))?;
    let (isolation, psp) = start_isolation(tee, &image, sock_dir.path())?;
    let out_disk = disks.output.clone();
    let cfg = VmConfig {
        cpu: qemu::cpu_model(&isolation, accel, &image.manifest.vcpu_type.to_string()),
        isolation,
        accel,
        vcpus,
        memory_mib: opts.memory,
        ovmf: image.files.ovmf.clone(),
        kernel: image.files.kernel.clone(),
        initrd: image.files.initrd.clone(),
        cmdline: image.manifest.cmdline.clone(),
        disks,
        network: opts.mode == FetchMode::Upstream,
    };
    let log_path = staging.path().join(output::BUILD_LOG_FILE);
    eprintln!(
        "build log: {} (written as the build goes; it ends up in {})",
        log_path.display(),
        opts.out.join(output::BUILD_LOG_FILE).display()
    );
    let progress = Progress::with_heartbeat(
        crate::console::stderr_is_fancy(),
        Duration::from_secs(opts.heartbeat.max(1)),
    );
    let vm_started = Instant::now();
    let t = vm_started;
    let run = vm::run(
        &opts.qemu,
        &qemu::argv(&cfg),
        &log_path,
        vm_deadline(&request.limits, opts.vm_allowance),
        interrupt().flag(),
        progress,
    )?;
    timed("qemu", t);
    if let Some(p) = psp {
        p.stop();
    }
    if run.end == VmEnd::Interrupted {
        // Everything goes before the message says so: disks, the PSP socket, the staging dir.
        drop((work, sock_dir, staging));
        return Ok(interrupted(
            &opts.out,
            "QEMU (its whole process group) stopped",
        ));
    }
    eprintln!(
        "  [host: run the VM] ended in {}",
        human_duration(vm_started.elapsed())
    );
    report_vm_end(&run);

    // Collect what the guest wrote (an all-zero disk is an empty archive).
    let t = Instant::now();
    if let Err(e) = output::read_output_disk(&out_disk, staging.path()) {
        // The error may quote an entry name of the disk, which the guest chose.
        eprintln!(
            "kettle build: the output disk could not be read: {}",
            escape(&e.to_string())
        );
    }
    copy_manifest(&image.manifest_path, staging.path())?;
    drop(work); // disks are no longer needed
    timed("collect", t);
    let ctx = result_context(opts, &image, &src, tee)?;
    if !staging.path().join(STATUS_FILE).is_file() {
        let failure = report_guest_failure(staging.path(), &run, &log_path);
        record_result(
            &staging,
            Outcome::BuildFailed,
            Some(failure),
            &ctx,
            opts.json,
        )?;
        let out = staging.publish()?;
        eprintln!(
            "the console log and any error report are in {}",
            out.display()
        );
        return Ok(ExitCode::from(EXIT_FAILED));
    }
    if tee == Tee::SevSnp {
        supply_vcek(staging.path());
    }
    let code = host_step("verify the outputs", || {
        verify_and_publish(staging, &image, &src, &ctx, opts.json)
    })?;
    if code == ExitCode::SUCCESS {
        print_summary(started, &opts.out, &verify_command(&ctx.verify_command));
    }
    Ok(code)
}

/// QEMU, KVM and SNP support for the requested TEE; the accelerator to use.
fn check_host(opts: &BuildOptions) -> Result<(Tee, Accel), BuildError> {
    match opts.tee {
        Tee::SevSnp => {
            let v = qemu::check_snp(&opts.qemu)?;
            log::info!("QEMU {v} with SEV-SNP, KVM");
            if matches!(opts.accel, Some(Accel::Tcg)) {
                return Err(BuildError::Args(
                    "SEV-SNP guests need KVM: drop --accel tcg, or use --tee simulated".into(),
                ));
            }
            Ok((Tee::SevSnp, Accel::Kvm))
        }
        Tee::Simulated => {
            let v = qemu::version(&opts.qemu)?;
            let accel = match opts.accel {
                Some(Accel::Kvm) => {
                    qemu::kvm_usable().map_err(qemu::ProbeError::NoKvm)?;
                    Accel::Kvm
                }
                Some(Accel::Tcg) => Accel::Tcg,
                None => match qemu::kvm_usable() {
                    Ok(()) => Accel::Kvm,
                    Err(why) => {
                        log::info!("KVM not usable ({why}): using TCG (slow)");
                        Accel::Tcg
                    }
                },
            };
            log::warn!("--tee simulated: the report is signed with TEST keys; nothing is hardware-attested");
            log::info!("QEMU {v}, {}", accel.name());
            Ok((Tee::Simulated, accel))
        }
    }
}

/// The request disk, the cache disk (cached mode: every input resolved first) and a sparse output disk.
fn write_disks(
    opts: &BuildOptions,
    src: &ResolvedSource,
    request: &BuildRequest,
    work: &Path,
) -> Result<Disks, BuildError> {
    let t = Instant::now();
    let req_disk = work.join("request.img");
    write_request_disk(&req_disk, request).map_err(|e| BuildError::Request(e.to_string()))?;
    pad_to_sector(&req_disk)?;
    timed("request disk", t);
    let cache = match opts.mode {
        FetchMode::Cached => {
            let t = Instant::now();
            let (store, delivered) = open_store(opts)?;
            timed("add --input files", t);
            let t = Instant::now();
            let downloader = Downloader::new(RetryPolicy::default());
            let resolved = inputs::resolve(src, &store, &downloader, work, &delivered)?;
            timed("resolve inputs", t);
            check_interrupted()?;
            let t = Instant::now();
            let path = work.join("cache.img");
            let writer =
                CacheWriter::create_disk(&path).map_err(io_err(path.display().to_string()))?;
            inputs::write_cache(&resolved, &src.commit, &store, writer, &path)?;
            pad_to_sector(&path)?;
            timed("write cache disk", t);
            log::info!(
                "cache disk: {} inputs, {} bytes",
                resolved.blobs.len() + 2,
                fs::metadata(&path).map(|m| m.len()).unwrap_or(0)
            );
            Some(path)
        }
        FetchMode::Upstream => None,
    };
    let output = work.join("output.img");
    File::create(&output)
        .and_then(|f| f.set_len(opts.output_size << 20))
        .map_err(io_err(output.display().to_string()))?;
    Ok(Disks {
        request: req_disk,
        cache,
        output,
    })
}

/// QEMU's isolation for `tee`, and the simulated PSP serving it when there is no SNP.
fn start_isolation(
    tee: Tee,
    image: &Image,
    sock_dir: &Path,
) -> Result<(Isolation, Option<PspServer>), BuildError> {
    Ok(match tee {
        Tee::SevSnp => (
            Isolation::Snp {
                cbitpos: 51,
                reduced_phys_bits: 1,
            },
            None,
        ),
        Tee::Simulated => {
            let sock = sock_dir.join("psp.sock");
            let server = PspServer::start(&sock, SimulatedPsp::new(image.manifest.launch_digest.0))
                .map_err(io_err(format!("simulated PSP socket {}", sock.display())))?;
            (Isolation::Simulated { psp_socket: sock }, Some(server))
        }
    })
}

/// Says how QEMU ended when the guest did not end the VM cleanly, and what QEMU itself said.
fn report_vm_end(run: &vm::VmRun) {
    match &run.end {
        VmEnd::TimedOut(t) => eprintln!(
            "kettle build: the VM did not finish within {}s (--timeout plus --vm-allowance for the guest's steps around the build) and was killed (raise --timeout, or --vm-allowance if the build itself was not what ran long)",
            t.as_secs()
        ),
        VmEnd::Exited(status) if !status.success() => {
            eprintln!("kettle build: QEMU exited with {status}");
        }
        VmEnd::Exited(_) | VmEnd::Interrupted => {}
    }
    if !run.qemu_stderr.trim().is_empty() {
        eprintln!("QEMU said:\n{}", escape_lines(run.qemu_stderr.trim_end()));
    }
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
