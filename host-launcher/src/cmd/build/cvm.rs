//! `kettle build` in a CVM: disks, QEMU, the simulated PSP, collecting and verifying out/.

use super::*;

use std::time::Instant;

/// Logs how long a host-side step took (`kettle build -v`; scripts/bench.sh reads these).
fn timed(step: &str, since: Instant) {
    log::debug!("timing: {step} {:.3}s", since.elapsed().as_secs_f64());
}

/// The whole `kettle build` in a CVM, as a sequence of named steps.
pub(super) fn build_vm(args: &BuildArgs) -> Result<ExitCode, BuildError> {
    let started = Instant::now();
    // Check QEMU, KVM and the image before anything is downloaded.
    let image = load_image(&args.image)?;
    let (tee, accel) = host_step("check QEMU and the image", || check_host(args))?;
    let vcpus = args.vcpus.unwrap_or(image.manifest.vcpus);
    if tee == Tee::SevSnp && vcpus != image.manifest.vcpus {
        return Err(BuildError::Args(format!(
            "--vcpus {vcpus}: the image's launch digest is for {} vCPUs (the vCPU count is measured)",
            image.manifest.vcpus
        )));
    }

    let staging = Staging::new(&args.out, args.force)?;
    let work = work_dir(&args.out)?;
    let t = Instant::now();
    let src = host_step("resolve the source", || resolve_source(args, work.path()))?;
    timed("resolve source", t);
    check_interrupted()?;
    let request = make_request(args, &src, tee, Some(&image))?;
    eprintln!(
        "building {} {} @ {} ({:?} mode, tee {})",
        src.repository,
        src.git_ref,
        src.commit,
        args.mode,
        tee.platform_name()
    );
    let disks = host_step("resolve the inputs and write the disks", || {
        write_disks(args, &src, &request, work.path())
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
        memory_mib: args.memory,
        ovmf: image.files.ovmf.clone(),
        kernel: image.files.kernel.clone(),
        initrd: image.files.initrd.clone(),
        cmdline: image.manifest.cmdline.clone(),
        disks,
        network: args.mode == ModeArg::Upstream,
    };
    let log_path = staging.path().join(output::BUILD_LOG_FILE);
    eprintln!(
        "build log: {} (written as the build goes; it ends up in {})",
        log_path.display(),
        args.out.join(output::BUILD_LOG_FILE).display()
    );
    let progress = Progress::with_heartbeat(
        kettle::console::stderr_is_fancy(),
        Duration::from_secs(args.heartbeat.max(1)),
    );
    let vm_started = Instant::now();
    let t = vm_started;
    let run = vm::run(
        &args.qemu,
        &qemu::argv(&cfg),
        &log_path,
        vm_deadline(&request.limits, args.vm_allowance),
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
            &args.out,
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
    if !staging.path().join(STATUS_FILE).is_file() {
        report_guest_failure(staging.path(), &run, &log_path);
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
        verify_and_publish(staging, &image, &src, tee)
    })?;
    if code == ExitCode::SUCCESS {
        print_summary(started, &args.out, &verify_command(args, &image, &src, tee));
    }
    Ok(code)
}

/// QEMU, KVM and SNP support for the requested TEE; the accelerator to use.
fn check_host(args: &BuildArgs) -> Result<(Tee, Accel), BuildError> {
    match args.tee {
        Tee::SevSnp => {
            let v = qemu::check_snp(&args.qemu)?;
            log::info!("QEMU {v} with SEV-SNP, KVM");
            if matches!(args.accel, AccelArg::Tcg) {
                return Err(BuildError::Args(
                    "SEV-SNP guests need KVM: drop --accel tcg, or use --tee simulated".into(),
                ));
            }
            Ok((Tee::SevSnp, Accel::Kvm))
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
            Ok((Tee::Simulated, accel))
        }
    }
}

/// The request disk, the cache disk (cached mode: every input resolved first) and a sparse output disk.
fn write_disks(
    args: &BuildArgs,
    src: &ResolvedSource,
    request: &BuildRequest,
    work: &Path,
) -> Result<Disks, BuildError> {
    let t = Instant::now();
    let req_disk = work.join("request.img");
    write_request_disk(&req_disk, request).map_err(|e| BuildError::Request(e.to_string()))?;
    pad_to_sector(&req_disk)?;
    timed("request disk", t);
    let cache = match args.mode {
        ModeArg::Cached => {
            let t = Instant::now();
            let (store, delivered) = open_store(args)?;
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
        ModeArg::Upstream => None,
    };
    let output = work.join("output.img");
    File::create(&output)
        .and_then(|f| f.set_len(args.output_size << 20))
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

/// The guest's own account of a failed build: error.json, else its console, else the log tail.
fn report_guest_failure(staging: &Path, run: &vm::VmRun, log_path: &Path) {
    match kettle_verify::bundle::read_regular("error.json", &staging.join(ERROR_FILE), 64 << 10) {
        Ok(bytes) => eprintln!(
            "kettle build: the guest reported a failure:\n{}",
            escape_lines(String::from_utf8_lossy(&bytes).trim_end())
        ),
        Err(_) => match &run.console_failure {
            Some((step, message)) => eprintln!(
                "kettle build: the guest console reported step {step} failed: {} (no error.json was written)",
                escape(message)
            ),
            None => {
                eprintln!("kettle build: the guest wrote no result; see the console log");
                print_log_tail(log_path);
            }
        },
    }
}

/// Verifies the collected outputs exactly as an auditor would, then publishes --out.
fn verify_and_publish(
    staging: Staging,
    image: &Image,
    src: &ResolvedSource,
    tee: Tee,
) -> Result<ExitCode, BuildError> {
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
    if tee == Tee::Simulated {
        expect = expect.accepting_simulated();
    }
    let t = Instant::now();
    let verdict = kettle_verify::verify_output_dir(staging.path(), &expect);
    timed("verify", t);
    let verdict = match verdict {
        Ok(v) => v,
        Err(why) => {
            // The error may name a file under artifacts/, a name the build chose.
            eprintln!(
                "kettle build: the outputs cannot be verified: {}",
                escape(&why.to_string())
            );
            let out = staging.publish()?;
            eprintln!("outputs (unverified) are in {}", out.display());
            return Ok(ExitCode::from(EXIT_FAILED));
        }
    };
    crate::print_stdout(&verdict.to_string());
    let out = staging.publish()?;
    if verdict.verified() {
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

/// The console's last lines, escaped (the guest wrote them) and read in bounded memory.
fn print_log_tail(path: &Path) {
    if let Ok(lines) = kettle::console::log_tail(path, 20) {
        eprintln!("--- last console lines ({}) ---", path.display());
        for l in lines {
            eprintln!("{l}");
        }
    }
}
