//! `kettle build --local`: the guest's own pipeline as a host process.

use std::fs;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::{Duration, Instant};

use kettle_wire::cache::CacheWriter;
use kettle_wire::request::FetchMode;
use kettle_wire::Tee;

use super::collect::{read_error_report, read_status, render_error_report};
use super::prepare::{load_image, open_store, resolve_source};
use super::request::make_request;
use super::{
    check_interrupted, interrupt, interrupted, io_err, work_dir, BuildError, BuildOptions,
    EXIT_FAILED,
};
use crate::download::{Downloader, RetryPolicy};
use crate::inputs;
use crate::outdir::Staging;

/// `kettle build --local`: the guest's pipeline as a host process, no VM, no TEE.
/// The pipeline is kettle-init's own (`kettle-init --local`), so local mode runs
/// the guest's code, not a host copy of it.
pub(super) fn build_local(opts: &BuildOptions) -> Result<ExitCode, BuildError> {
    eprintln!("kettle build --local: no VM and no TEE: the result is NOT hardware-attested (no evidence is produced)");
    let staging = Staging::new(&opts.out, opts.force)?;
    let work = work_dir(&opts.out)?;
    let init = local_init(opts, work.path())?;
    let src = resolve_source(opts, work.path())?;
    // The request says "simulated" only because it must name a provider; local mode requests no report.
    // Local mode names no image: it runs no VM, whatever binary it runs.
    let request = make_request(opts, &src, Tee::Simulated)?;
    let inputs_dir = work.path().join("inputs");
    check_interrupted()?;
    if opts.mode == FetchMode::Cached {
        let (store, delivered) = open_store(opts)?;
        let downloader = Downloader::new(RetryPolicy::default());
        let resolved = inputs::resolve(&src, &store, &downloader, work.path(), &delivered)?;
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
    let mut cmd = std::process::Command::new(&init);
    cmd.arg("--local")
        .arg(&inputs_dir)
        .arg("--out")
        .arg(&out_dir)
        .arg("--work")
        .arg(work.path().join("work"))
        .stdin(std::process::Stdio::null())
        // Its output is the build's: relayed escaped, never written to the terminal raw.
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        // Its own process group, like QEMU: a signal is forwarded deliberately, and
        // whatever kettle-init started goes with its group when it is killed.
        .process_group(0);
    let mut child = cmd
        .spawn()
        .map_err(io_err(format!("running {}", init.display())))?;
    let relays = Relays::start(&mut child);
    let waited = wait_local(crate::vm::ChildGuard::new(child));
    relays.finish();
    let status = match waited? {
        Some(status) => status,
        None => {
            drop((work, staging));
            return Ok(interrupted(
                &opts.out,
                "kettle-init (its whole process group) stopped and reaped",
            ));
        }
    };
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
    clean_up(work);
    if built {
        let artifacts = read_status(&out).map_or(0, |s| s.artifacts.len());
        eprintln!(
            "built {artifacts} artifact(s) into {}; provenance.json written; NOT hardware-attested (local mode has no evidence)",
            out.display()
        );
        Ok(ExitCode::SUCCESS)
    } else {
        if let Some(e) = read_error_report(&out) {
            eprintln!("kettle build --local: {}", render_error_report(&e));
        }
        eprintln!("error.json is in {}", out.display());
        Ok(ExitCode::from(EXIT_FAILED))
    }
}

/// Removes local mode's work directory, saying so first: it holds the unpacked toolchain
/// and root filesystem (a gigabyte), and removing them takes seconds that would otherwise
/// look like a hang after the build's last line.
fn clean_up(work: tempfile::TempDir) {
    eprintln!(
        "kettle build --local: cleaning up the work directory {} (the unpacked inputs)",
        crate::console::escape(&work.path().display().to_string())
    );
    let shown = work.path().display().to_string();
    if let Err(e) = work.close() {
        log::warn!("could not remove the work directory {shown}: {e}");
    }
}

/// How long the relays get to pass on what kettle-init wrote last, once it has ended
/// (a process of the build that left its group may hold the pipes open for ever).
const RELAY_DRAIN: Duration = Duration::from_secs(2);

/// Threads copying kettle-init's stdout and stderr to ours, escaped ([`crate::console::relay`]).
struct Relays {
    done: std::sync::mpsc::Receiver<()>,
    running: usize,
}

impl Relays {
    fn start(child: &mut std::process::Child) -> Relays {
        let (tx, done) = std::sync::mpsc::channel();
        let mut running = 0;
        let mut spawn = |input: Box<dyn std::io::Read + Send>, to_stdout: bool| {
            let tx = tx.clone();
            running += 1;
            std::thread::spawn(move || {
                let _ = if to_stdout {
                    crate::console::relay(input, std::io::stdout())
                } else {
                    crate::console::relay(input, std::io::stderr())
                };
                let _ = tx.send(());
            });
        };
        if let Some(out) = child.stdout.take() {
            spawn(Box::new(out), true);
        }
        if let Some(err) = child.stderr.take() {
            spawn(Box::new(err), false);
        }
        Relays { done, running }
    }

    /// Waits until both pipes are drained, or [`RELAY_DRAIN`] has passed.
    fn finish(self) {
        let deadline = Instant::now() + RELAY_DRAIN;
        for _ in 0..self.running {
            let left = deadline.saturating_duration_since(Instant::now());
            if self.done.recv_timeout(left).is_err() {
                log::debug!("kettle-init's output is still open after it ended; no longer relayed");
                return;
            }
        }
    }
}

/// How long kettle-init gets to stop after the forwarded signal before it is killed.
const LOCAL_GRACE: Duration = Duration::from_secs(5);

/// Waits for kettle-init; on a signal, forwards it to kettle-init's process group, then
/// kills the group after [`LOCAL_GRACE`] and reaps it (None: interrupted).
fn wait_local(
    mut guard: crate::vm::ChildGuard,
) -> Result<Option<std::process::ExitStatus>, BuildError> {
    let waited = |g: &mut crate::vm::ChildGuard| {
        g.child()
            .try_wait()
            .map_err(io_err("waiting for kettle-init"))
    };
    loop {
        if let Some(status) = waited(&mut guard)? {
            if !interrupt().is_set() {
                return Ok(Some(status));
            }
            return Ok(None);
        }
        if interrupt().is_set() {
            break;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    let sig = rustix::process::Signal::from_named_raw(interrupt().signal())
        .unwrap_or(rustix::process::Signal::TERM);
    guard.signal_group(sig);
    let deadline = Instant::now() + LOCAL_GRACE;
    while Instant::now() < deadline {
        if waited(&mut guard)?.is_some() {
            break;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    // Kills the group if anything is left, and reaps kettle-init.
    guard.signal_group(rustix::process::Signal::KILL);
    drop(guard);
    Ok(None)
}

/// The kettle-init binary local mode runs: `--init`, else `/init` of the image's
/// initramfs (after checking the initramfs against the image manifest).
fn local_init(opts: &BuildOptions, work: &Path) -> Result<PathBuf, BuildError> {
    if let Some(p) = &opts.init {
        return Ok(p.clone());
    }
    let image = load_image(&opts.image)?;
    let err = |message: String| BuildError::Image {
        dir: opts.image.clone(),
        message,
    };
    // Bounded, and only a regular file: the image directory may be one someone else published.
    let initrd = kettle_image::audit::files::read_regular(
        "initrd",
        &image.files.initrd,
        kettle_image::audit::files::MAX_IMAGE_FILE_BYTES,
    )
    .map_err(|e| err(e.to_string()))?;
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
