//! The guest run: boot, read the request disk, fill inputs from the cache disk
//! or HTTPS, run the pipeline, write the output disk, power off. Never returns.

use std::fs::{File, OpenOptions};
use std::io::BufWriter;
use std::net::{IpAddr, SocketAddr};
use std::path::{Path, PathBuf};
use std::time::Duration;

use thiserror::Error;

use crate::boot;
use crate::disk::{self, CACHE_SERIAL, OUTPUT_SERIAL, REQUEST_SERIAL};
use crate::dns::nameserver_from;
use crate::error::{InStep, Step, StepError};
use crate::http::GUEST_CA_ROOTS;
use crate::output::TarSink;
use crate::pipeline::{emit, emit_error, timed, Attestor, Built, Inputs, Pipeline, Tools};
use crate::request::{read_request_disk, FetchMode};
use crate::unpack::{unpack, UnpackLimits};

/// Where the guest keeps its work area (tmpfs).
pub const GUEST_WORK: &str = "/run/kettle";
/// How long to wait for a virtio disk to show up.
const DISK_WAIT: Duration = Duration::from_secs(10);

/// Errors locating the host's disks.
#[derive(Debug, Error)]
pub enum DiskError {
    /// No virtio disk carries the serial.
    #[error("no virtio disk with serial {0:?} (the host passes -drive ...,serial={0})")]
    Missing(&'static str),
    /// Opening or reading it failed.
    #[error("{0}: {1}")]
    Io(String, #[source] std::io::Error),
    /// The cache disk was refused.
    #[error("the cache disk was refused: {0}")]
    Cache(#[from] crate::unpack::UnpackError),
}

/// Finds a host disk by serial: the guest looks in /sys/block; tests map serials to image files.
pub type DiskLocator<'a> = &'a dyn Fn(&'static str) -> Result<PathBuf, DiskError>;

/// The guest's locator: the virtio disk whose serial matches, waiting for it to appear.
pub fn virtio_disk(serial: &'static str) -> Result<PathBuf, DiskError> {
    disk::wait_for_disk(serial, DISK_WAIT).ok_or(DiskError::Missing(serial))
}

fn open_disk(
    locate: DiskLocator<'_>,
    serial: &'static str,
    write: bool,
) -> Result<(PathBuf, File), DiskError> {
    let path = locate(serial)?;
    let f = OpenOptions::new()
        .read(true)
        .write(write)
        .open(&path)
        .map_err(|e| DiskError::Io(path.display().to_string(), e))?;
    Ok((path, f))
}

/// Everything between boot and emit: read the request disk, take inputs from the
/// cache disk (cached mode) or HTTPS trusting `ca_roots` (upstream mode), run the pipeline in `work`.
pub fn build_from_disks(
    locate: DiskLocator<'_>,
    work: &Path,
    ca_roots: &Path,
    attestor: Attestor<'_>,
) -> Result<Built, StepError> {
    let request = timed(Step::Request, "request disk", || {
        let (path, f) = open_disk(locate, REQUEST_SERIAL, false).in_step(Step::Request)?;
        let req = read_request_disk(f).in_step_for(Step::Request, "request.json")?;
        let s = format!(
            "{} from {}: {} {} @ {} ({:?} mode, tee {})",
            REQUEST_SERIAL,
            path.display(),
            req.repository,
            req.git_ref,
            req.commit,
            req.mode,
            req.tee.platform_name()
        );
        Ok((req, s))
    })?;
    let inputs = match request.mode {
        FetchMode::Cached => timed(Step::Fetch, "cache disk", || {
            let (path, f) =
                open_disk(locate, CACHE_SERIAL, false).in_step_for(Step::Fetch, "cache disk")?;
            let dir = work.join("cache");
            let stats = unpack(f, &dir, &UnpackLimits::CACHE_DISK)
                .map_err(DiskError::from)
                .in_step_for(Step::Fetch, "cache disk")?;
            Ok((
                Inputs::Dir(dir),
                format!(
                    "{} entries, {} bytes from {}",
                    stats.entries,
                    stats.bytes,
                    path.display()
                ),
            ))
        })?,
        FetchMode::Upstream => {
            let configured = request.upstream.as_ref().and_then(|u| u.dns_resolver);
            // With `ip=dhcp` the kernel configured the network and recorded the DHCP nameserver here.
            let from_dhcp = std::fs::read_to_string("/proc/net/pnp")
                .ok()
                .and_then(|t| nameserver_from(&t));
            let resolver = configured
                .or(from_dhcp)
                .map(|ip| SocketAddr::new(IpAddr::V4(ip), 53));
            Inputs::Https {
                roots_pem: ca_roots.to_path_buf(),
                resolver,
            }
        }
    };
    let pipeline = Pipeline {
        request: &request,
        inputs,
        tools: Tools::Pinned,
        work: work.join("work"),
        discard_consumed_inputs: true,
    };
    pipeline.run(attestor)
}

/// Writes the result (outputs + status.json, or error.json) as a tar stream on the output disk, and syncs it.
pub fn write_output_disk(
    locate: DiskLocator<'_>,
    result: &Result<Built, StepError>,
) -> Result<(), StepError> {
    let (_, f) = open_disk(locate, OUTPUT_SERIAL, true).in_step(Step::Emit)?;
    let mut sink = TarSink::new(BufWriter::new(f));
    match result {
        Ok(built) => emit(built, &mut sink)?,
        Err(e) => emit_error(e, &mut sink)
            .map_err(|e| DiskError::Io("output disk".into(), e))
            .in_step(Step::Emit)?,
    }
    let file = sink
        .into_inner()
        .and_then(|w| w.into_inner().map_err(|e| e.into_error()))
        .map_err(|e| DiskError::Io("output disk".into(), e))
        .in_step(Step::Emit)?;
    file.sync_all()
        .map_err(|e| DiskError::Io("output disk".into(), e))
        .in_step(Step::Emit)
}

/// PID 1's whole life.
pub fn run_guest() -> ! {
    // PID 1 must never just die (the kernel would panic and the host would wait for a
    // VM that never powers off): log the panic, then power off. The host then finds no
    // status.json on the output disk, which is a failed build.
    std::panic::set_hook(Box::new(|info| {
        log::error!("kettle-init panicked: {info}; powering off without results");
        boot::power_off();
    }));
    let result = match boot::boot() {
        Ok(()) => {
            let built = build_from_disks(
                &virtio_disk,
                Path::new(GUEST_WORK),
                Path::new(GUEST_CA_ROOTS),
                Attestor::Guest,
            );
            // Only PID 1 reaps every child: in a library caller (the tests, the
            // host CLI) waitpid(-1) would steal other threads' children.
            boot::reap_zombies();
            built
        }
        Err(e) => {
            boot::init_logger();
            log::error!("[boot] FAILED: {e}");
            Err(StepError::new(Step::Boot, e))
        }
    };
    match &result {
        Ok(b) => log::info!(
            "build succeeded: {} artifacts, {}",
            b.subjects.len(),
            if b.evidence.is_some() {
                "attested"
            } else {
                "NOT attested"
            }
        ),
        Err(e) => log::error!(
            "build FAILED at step {}: {}{}",
            e.step,
            e.message(),
            e.input
                .as_ref()
                .map(|i| format!(" (input: {i})"))
                .unwrap_or_default()
        ),
    }
    if let Err(e) = write_output_disk(&virtio_disk, &result) {
        log::error!("could not write the output disk: {}", e.message());
    }
    log::info!("powering off");
    boot::power_off()
}
