//! PID 1's life in the guest: boot, the pipeline over the host's disks, the
//! output disk, end the VM. Never returns. The host's disks are found by serial
//! ([`kettle_wire::devices`]), never by order.

use std::fs::{File, OpenOptions};
use std::io::BufWriter;
use std::path::{Path, PathBuf};
use std::time::Duration;

use kettle_wire::console;
use kettle_wire::devices::{GUEST_CA_ROOTS, OUTPUT_DISK_SERIAL};
use kettle_wire::output::TarSink;
use thiserror::Error;

use crate::disk;
use crate::error::{InStep, Step, StepError};
use crate::pipeline::{build_from_disks, Built};
use crate::steps::attest::Attestor;
use crate::steps::boot;
use crate::steps::emit::{attestation_of, emit, emit_error, EmitError};

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
}

/// Finds a host disk by serial: the guest looks in /sys/block; tests map serials to image files.
pub type DiskLocator<'a> = &'a dyn Fn(&'static str) -> Result<PathBuf, DiskError>;

/// The guest's locator: the virtio disk whose serial matches, waiting for it to appear.
pub fn virtio_disk(serial: &'static str) -> Result<PathBuf, DiskError> {
    disk::wait_for_disk(serial, DISK_WAIT).ok_or(DiskError::Missing(serial))
}

/// Locates the disk with `serial` and opens it (read-write when `write`).
pub(crate) fn open_disk(
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

/// Writes the result (outputs + status.json, or error.json) as a tar stream on the output disk, and syncs it.
pub fn write_output_disk(
    locate: DiskLocator<'_>,
    result: &Result<Built, StepError>,
) -> Result<(), StepError> {
    let (_, f) = open_disk(locate, OUTPUT_DISK_SERIAL, true).in_step(Step::Emit)?;
    let mut sink = TarSink::new(BufWriter::new(f));
    match result {
        Ok(built) => emit(built, &mut sink)?,
        Err(e) => emit_error(e, &mut sink).map_err(EmitError::io("output disk"))?,
    }
    let file = sink
        .into_inner()
        .and_then(|w| w.into_inner().map_err(|e| e.into_error()))
        .map_err(EmitError::io("output disk"))?;
    file.sync_all().map_err(EmitError::io("output disk"))
}

/// PID 1's whole life.
pub fn run_guest() -> ! {
    // PID 1 must never just die (the kernel would panic and the host would wait for a
    // VM that never ends): log the panic, then end the VM. The host then finds no
    // status.json on the output disk, which is a failed build.
    std::panic::set_hook(Box::new(|info| {
        log::error!("kettle-init panicked: {info}; ending the VM without results");
        boot::end_vm();
    }));
    let result = boot::boot().and_then(|()| {
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
    });
    match &result {
        Ok(b) => {
            let attestation = attestation_of(b.evidence.as_ref());
            let summary = format!("{} artifacts, {}", b.subjects.len(), attestation.console);
            log::info!("{}", console::succeeded(&summary));
        }
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
    log::info!("ending the VM");
    boot::end_vm()
}
