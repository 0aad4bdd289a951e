//! `kettle-fake-qemu`: what host-side tests give `kettle build --qemu` in place
//! of `qemu-system-x86_64`. It boots nothing and plays the guest from the
//! contract's own code, so it cannot drift from it: it finds its disks and the
//! PSP port by the serials and port name of `kettle_wire::devices` in the QEMU
//! command line `kettle build` made, reads the request disk with
//! `kettle_wire::request`, prints kettle-init's console lines with
//! `kettle_wire::console`, writes the provenance of
//! `kettle_testkit::evidence::StatementSpec`, asks the host's simulated PSP for
//! a report binding it (`kettle_attest::report_data_for`, the framed protocol
//! of `kettle_attest::simulated::PspClient`) and writes the output disk with
//! `kettle_wire::output::TarSink`, then "powers off".
//!
//! The environment picks the behaviour (names in `kettle_testkit::stand_in`):
//! `FAKE_QEMU_MODE` is `ok` (default), `fail` (error.json), `tamper` (an
//! artifact that differs from its subject), `hang` (never exits) or `crash`
//! (exits after the build line, writing nothing). `FAKE_QEMU_SLEEP=SECONDS`
//! makes the build step take that long (one compiler line, then silence), as a
//! slow TCG rustc does. `FAKE_QEMU_PIDFILE=PATH` records, one per line, this
//! process's pid, the pid of a child it starts in its process group (a stand-in
//! for QEMU's helpers, which must die with it) and the PSP socket's path, so a
//! test can check that nothing outlives a build. `FAKE_QEMU_HOSTILE=1` makes
//! the guest's words hostile to the operator's terminal: escape sequences (an
//! OSC 52 clipboard write, a clear-screen, a green VERIFIED) in console lines,
//! in error.json's message and in an artifact name of status.json; the host
//! must print every one escaped.

use std::collections::HashMap;
use std::ffi::{OsStr, OsString};
use std::fs::{self, File, OpenOptions};
use std::os::unix::ffi::{OsStrExt, OsStringExt};
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::process::{Command, ExitCode};
use std::time::Duration;

use kettle_attest::simulated::PspClient;
use kettle_attest::{report_data_for, ReportProvider};
use kettle_provenance::ids;
use kettle_testkit::evidence::StatementSpec;
use kettle_testkit::stand_in::{HOSTILE_VAR, MODE_VAR, PIDFILE_VAR, SLEEP_VAR};
use kettle_wire::output::{
    OutputSink, TarSink, ARTIFACTS_DIR, CHAIN_FILE, EVIDENCE_FILE, PROVENANCE_FILE, STATUS_FILE,
};
use kettle_wire::steps::ERROR_FILE;
use kettle_wire::{cache, console, devices, request, BuildStatus, ErrorReport, FetchMode, Step};

/// What `--version` prints: a QEMU recent enough for every `--tee`.
const VERSION: &str = "QEMU emulator version 10.0.2 (kettle test stand-in)";
/// The one artifact a successful stand-in build makes, and its bytes.
const ARTIFACT: (&str, &[u8]) = ("out/hello.txt", b"hello from a kettle build\n");
/// What a hostile guest writes to the operator's terminal through the host: an OSC 52
/// clipboard write, a clear-screen and a green VERIFIED.
const OSC52: &str = "\x1b]52;c;ZXZpbA==\x07";
const CLEAR: &str = "\x1b[2J\x1b[H";
const GREEN_VERIFIED: &str = "\x1b[32mVERIFIED\x1b[0m";

fn main() -> ExitCode {
    let args: Vec<OsString> = std::env::args_os().skip(1).collect();
    if args == ["--version"] {
        println!("{VERSION}");
        return ExitCode::SUCCESS;
    }
    if args == ["-object", "help"] {
        // No sev-snp-guest object: `--tee snp` is refused before anything runs.
        println!("List of user creatable objects:\n  memory-backend-file\n  memory-backend-memfd\n  memory-backend-ram");
        return ExitCode::SUCCESS;
    }
    match run(&args) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("kettle-fake-qemu: {e}");
            ExitCode::FAILURE
        }
    }
}

/// The behaviour `FAKE_QEMU_MODE` asks for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Mode {
    Ok,
    Fail,
    Tamper,
    Hang,
    Crash,
}

impl Mode {
    fn from_env() -> Result<Mode, String> {
        match std::env::var(MODE_VAR).as_deref() {
            Err(_) | Ok("ok") => Ok(Mode::Ok),
            Ok("fail") => Ok(Mode::Fail),
            Ok("tamper") => Ok(Mode::Tamper),
            Ok("hang") => Ok(Mode::Hang),
            Ok("crash") => Ok(Mode::Crash),
            Ok(other) => Err(format!("{MODE_VAR}={other:?} is not a mode")),
        }
    }
}

/// One console line as kettle-init's logger prints it (the host reads whatever precedes the tag).
fn log(level: &str, line: &str) {
    println!("[{level}] {line}");
}

fn run(args: &[OsString]) -> Result<(), String> {
    let mode = Mode::from_env()?;
    let evil = if std::env::var(HOSTILE_VAR).as_deref() == Ok("1") {
        format!("{OSC52}{CLEAR}{GREEN_VERIFIED}")
    } else {
        String::new()
    };
    let vm = VmArgs::parse(args)?;
    let disk = |serial: &str| {
        vm.disk(serial)
            .ok_or(format!("no disk with serial {serial}"))
    };
    let psp_socket = vm.port(devices::PSP_PORT);

    println!("[    0.000000] Linux version 6.12 (stand-in)");
    let boot = console::step_ok(Step::Boot, 0.01, &format!("kettle-init as PID 1{evil}"), "");
    log("INFO", &boot);
    if !evil.is_empty() {
        println!("{evil}\r{GREEN_VERIFIED}");
    }

    let request_disk = disk(devices::REQUEST_DISK_SERIAL)?;
    let file = File::open(&request_disk).map_err(|e| format!("{}: {e}", request_disk.display()))?;
    let request = request::read_request_disk(file).map_err(|e| format!("request disk: {e}"))?;
    let what = format!(
        "{} {} @ {}",
        request.repository, request.git_ref, request.commit
    );
    log("INFO", &console::step_ok(Step::Request, 0.0, &what, ""));
    let cache_disk = vm.disk(devices::CACHE_DISK_SERIAL);
    // The commit's tree id, as the guest records it (gitTree) after hashing the archive.
    let mut tree = None;
    match (request.mode, &cache_disk) {
        (FetchMode::Upstream, None) if vm.network => {
            let upstream = request
                .upstream
                .as_ref()
                .ok_or("upstream mode without upstream")?;
            let what = format!("upstream from {}", upstream.source_archive_url);
            log("INFO", &console::step_ok(Step::Fetch, 0.01, &what, ""));
        }
        (FetchMode::Cached, Some(path)) => {
            let (entries, commit_tree) = cache_entries(path, &request.commit)?;
            tree = commit_tree;
            let what = format!("cache disk: {entries} entries");
            log("INFO", &console::step_ok(Step::Fetch, 0.01, &what, ""));
        }
        (mode, cache) => {
            return Err(format!(
                "{mode:?} mode with a cache disk {cache:?} and network {}",
                vm.network
            ))
        }
    }

    if let Ok(pidfile) = std::env::var(PIDFILE_VAR) {
        write_pidfile(Path::new(&pidfile), psp_socket.as_deref())?;
    }
    log(
        "INFO",
        &console::step_ok(Step::Verify, 0.01, "inputs verified", ""),
    );
    log(
        "INFO",
        &console::step_ok(Step::Unpack, 0.01, "unpacked", ""),
    );
    let compiling = format!("   Compiling serde_derive v1.0.228{evil}");
    log("INFO", &console::build_output(&compiling));
    if let Ok(seconds) = std::env::var(SLEEP_VAR) {
        let seconds: f64 = seconds
            .parse()
            .map_err(|e| format!("{SLEEP_VAR}={seconds:?}: {e}"))?;
        std::thread::sleep(Duration::from_secs_f64(seconds));
    }
    match mode {
        Mode::Hang => std::thread::sleep(Duration::from_secs(3600)),
        // Ends without a result (no output disk, no FAILED line): the host shows the console's tail.
        Mode::Crash => return Err("crashed (FAKE_QEMU_MODE=crash)".into()),
        _ => {}
    }

    let out = disk(devices::OUTPUT_DISK_SERIAL)?;
    let out_file = OpenOptions::new()
        .write(true)
        .open(&out)
        .map_err(|e| format!("{}: {e}", out.display()))?;
    let mut sink = TarSink::new(out_file);
    let put = |sink: &mut TarSink<File>, name: &str, bytes: &[u8]| {
        sink.put_bytes(name, bytes)
            .map_err(|e| format!("output disk: {name}: {e}"))
    };
    if mode == Mode::Fail {
        let (message, input) = ("rootfs: sha256 mismatch", "rootfs");
        let failed = console::step_failed(Step::Verify, 0.01, "inputs", message, Some(input));
        log("ERROR", &failed);
        let hostile = if evil.is_empty() {
            String::new()
        } else {
            format!("{evil}\n{GREEN_VERIFIED}")
        };
        let error = ErrorReport {
            ok: false,
            step: Step::Verify,
            message: format!("{message}{hostile}"),
            input: Some(input.into()),
        };
        put(&mut sink, ERROR_FILE, &to_json(&error)?)?;
    } else {
        let (name, artifact) = ARTIFACT;
        let spec = StatementSpec {
            subjects: vec![ARTIFACT],
            repository: &request.repository,
            git_ref: &request.git_ref,
            commit: Some(&request.commit),
            tree: tree.as_deref(),
            build_type: ids::BUILD_TYPE_SCRIPT,
            builder_id: ids::BUILDER_ID_SIMULATED,
        };
        let provenance = spec.bytes();
        let socket = psp_socket.ok_or(format!("no {} port", devices::PSP_PORT))?;
        let stream = UnixStream::connect(&socket)
            .map_err(|e| format!("PSP socket {}: {e}", socket.display()))?;
        let evidence = PspClient::new(stream)
            .request_report(&report_data_for(&provenance))
            .map_err(|e| format!("simulated PSP: {e}"))?;
        log(
            "INFO",
            &console::step_ok(Step::Attest, 0.01, "simulated report", ""),
        );
        let bytes: &[u8] = if mode == Mode::Tamper {
            b"evil\n"
        } else {
            artifact
        };
        put(&mut sink, &format!("{ARTIFACTS_DIR}/{name}"), bytes)?;
        put(&mut sink, PROVENANCE_FILE, &provenance)?;
        put(&mut sink, EVIDENCE_FILE, &evidence.report)?;
        if let Some(chain) = &evidence.cert_chain_pem {
            put(&mut sink, CHAIN_FILE, chain)?;
        }
        let mut artifacts = vec![name.to_string()];
        if !evil.is_empty() {
            artifacts.push(format!("out/{evil}"));
        }
        let status = BuildStatus {
            ok: true,
            attested: false,
            simulated: true,
            attestation:
                "SIMULATED: the kettle-fake-qemu stand-in's report, from the host's simulated PSP"
                    .into(),
            artifacts,
        };
        put(&mut sink, STATUS_FILE, &to_json(&status)?)?;
        log(
            "INFO",
            &console::succeeded(
                "1 artifacts, SIMULATED evidence (test keys), NOT hardware-attested",
            ),
        );
    }
    sink.finish().map_err(|e| format!("output disk: {e}"))?;
    log("INFO", "powering off");
    Ok(())
}

fn to_json(value: &impl serde::Serialize) -> Result<Vec<u8>, String> {
    serde_json::to_vec_pretty(value).map_err(|e| e.to_string())
}

/// Checks the cache disk holds the commit object and source archive of `commit`; returns how
/// many entries it has and the tree the commit object names.
fn cache_entries(disk: &Path, commit: &str) -> Result<(usize, Option<String>), String> {
    let err = |e: std::io::Error| format!("cache disk {}: {e}", disk.display());
    let file = File::open(disk).map_err(err)?;
    let mut archive = tar::Archive::new(file);
    let commit_entry = cache::commit_path(Path::new(""), commit);
    let mut names = Vec::new();
    let mut tree = None;
    for entry in archive.entries().map_err(err)? {
        let mut entry = entry.map_err(err)?;
        let name = entry.path().map_err(err)?.into_owned();
        if name == commit_entry {
            let mut object = String::new();
            std::io::Read::read_to_string(&mut entry, &mut object).map_err(err)?;
            tree = object
                .lines()
                .next()
                .and_then(|l| l.strip_prefix("tree "))
                .map(str::to_string);
        }
        names.push(name);
    }
    for wanted in [commit_entry, cache::source_path(Path::new(""), commit)] {
        if !names.contains(&wanted) {
            return Err(format!(
                "cache disk {}: no {} in {names:?}",
                disk.display(),
                wanted.display()
            ));
        }
    }
    Ok((names.len(), tree))
}

/// Writes, atomically, this process's pid, a helper's in its process group and the PSP socket.
fn write_pidfile(path: &Path, psp_socket: Option<&Path>) -> Result<(), String> {
    let helper = Command::new("sleep")
        .arg("3600")
        .spawn()
        .map_err(|e| format!("start a helper: {e}"))?;
    let socket = psp_socket
        .map(|p| p.display().to_string())
        .unwrap_or_default();
    let tmp = path.with_extension("tmp");
    let text = format!("{}\n{}\n{socket}\n", std::process::id(), helper.id());
    fs::write(&tmp, text).map_err(|e| format!("{}: {e}", tmp.display()))?;
    fs::rename(&tmp, path).map_err(|e| format!("{}: {e}", path.display()))
}

/// What the guest sees of a QEMU command line: its disks and virtio-serial ports by the
/// names the contract gives them, and whether it has a NIC.
#[derive(Debug, Default)]
struct VmArgs {
    /// `-drive` id -> file.
    drives: HashMap<String, PathBuf>,
    /// virtio-blk serial -> drive id.
    serials: HashMap<String, String>,
    /// `-chardev` id -> socket path.
    chardevs: HashMap<String, PathBuf>,
    /// virtserialport name -> chardev id.
    ports: HashMap<String, String>,
    /// A `-netdev` was given.
    network: bool,
}

impl VmArgs {
    fn parse(args: &[OsString]) -> Result<VmArgs, String> {
        let mut vm = VmArgs::default();
        let mut it = args.iter();
        while let Some(flag) = it.next() {
            let flag = flag.to_string_lossy();
            if !matches!(&*flag, "-drive" | "-device" | "-chardev" | "-netdev") {
                continue;
            }
            let value = it.next().ok_or(format!("{flag} without a value"))?;
            let opts = sub_options(value);
            let text = |key: &str| {
                opts.get(key)
                    .map(|v| v.to_string_lossy().into_owned())
                    .ok_or(format!("{flag} {value:?} has no {key}="))
            };
            match (&*flag, opts.get("").map(|d| d.as_bytes())) {
                ("-drive", _) => {
                    let file = opts.get("file").ok_or(format!("{value:?} has no file="))?;
                    vm.drives.insert(text("id")?, PathBuf::from(file));
                }
                ("-device", Some(b"virtio-blk-pci")) => {
                    vm.serials.insert(text("serial")?, text("drive")?);
                }
                ("-device", Some(b"virtserialport")) => {
                    vm.ports.insert(text("name")?, text("chardev")?);
                }
                ("-chardev", Some(b"socket")) => {
                    let path = opts.get("path").ok_or(format!("{value:?} has no path="))?;
                    vm.chardevs.insert(text("id")?, PathBuf::from(path));
                }
                ("-netdev", _) => vm.network = true,
                _ => {}
            }
        }
        Ok(vm)
    }

    /// The file of the virtio-blk disk with `serial`.
    fn disk(&self, serial: &str) -> Option<PathBuf> {
        self.drives.get(self.serials.get(serial)?).cloned()
    }

    /// The socket behind the virtio-serial port called `name`.
    fn port(&self, name: &str) -> Option<PathBuf> {
        self.chardevs.get(self.ports.get(name)?).cloned()
    }
}

/// A QEMU option value's sub-options (`driver,key=value,...`; a doubled comma is a literal
/// one): `key -> value`, the part without `=` under the key "".
fn sub_options(value: &OsStr) -> HashMap<String, OsString> {
    let mut parts = vec![Vec::new()];
    let mut bytes = value.as_bytes().iter().peekable();
    while let Some(&b) = bytes.next() {
        if b == b',' && bytes.next_if_eq(&&b',').is_none() {
            parts.push(Vec::new());
        } else if let Some(part) = parts.last_mut() {
            part.push(b);
        }
    }
    parts
        .into_iter()
        .map(|part| match part.iter().position(|&b| b == b'=') {
            Some(i) => (
                String::from_utf8_lossy(&part[..i]).into_owned(),
                OsString::from_vec(part[i + 1..].to_vec()),
            ),
            None => (String::new(), OsString::from_vec(part)),
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args(a: &[&str]) -> Vec<OsString> {
        a.iter().map(OsString::from).collect()
    }

    #[test]
    fn finds_disks_by_serial_and_the_psp_by_port_name_through_escaped_commas() {
        // The drives as the host writes them (kettle::qemu::argv's own -drive values).
        let mut argv = args(&["-drive"]);
        argv.push(devices::qemu_drive(
            "req",
            Path::new("/tmp/a,b/request.img"),
            true,
        ));
        argv.push("-drive".into());
        argv.push(devices::qemu_drive("out", Path::new("/tmp/out.img"), false));
        argv.extend(args(&[
            "-device",
            "virtio-blk-pci,drive=req,serial=kettle-request",
            "-device",
            "virtio-blk-pci,drive=out,serial=kettle-output",
            "-chardev",
            "socket,id=psp,path=/run/p,,s.sock",
            "-device",
            "virtserialport,chardev=psp,name=kettle.psp",
            "-nic",
            "none",
        ]));
        let vm = VmArgs::parse(&argv).unwrap();
        assert_eq!(
            vm.disk(devices::REQUEST_DISK_SERIAL),
            Some(PathBuf::from("/tmp/a,b/request.img"))
        );
        assert_eq!(
            vm.disk(devices::OUTPUT_DISK_SERIAL),
            Some(PathBuf::from("/tmp/out.img"))
        );
        assert_eq!(vm.disk(devices::CACHE_DISK_SERIAL), None);
        assert_eq!(
            vm.port(devices::PSP_PORT),
            Some(PathBuf::from("/run/p,s.sock"))
        );
        assert!(!vm.network);
    }
}
