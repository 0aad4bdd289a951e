//! The build request the guest reads from its request disk, and the time limits
//! it carries (the guest's) and implies (the host's deadline for the VM).

use std::fs::File;
use std::io::Read;
use std::time::Duration;

use kettle_wire::request::{
    BuildRequest, FetchMode, ImageRef, Limits, Upstream, DEFAULT_CRATES_URL, MAX_BUILD_SECONDS,
    REQUEST_SCHEMA,
};
use kettle_wire::Tee;

use super::prepare::Image;
use super::{io_err, BuildError, BuildOptions};
use crate::source::ResolvedSource;

/// What the VM gets beyond `--timeout` by default (`--vm-allowance`) for the guest's other
/// steps (boot, fetch, verify, unpack, hash, attest, emit) before the host kills it, so that
/// a build over its limit is stopped by the guest, which says so in error.json, rather than
/// by the host, which cannot say which step was slow.
pub const VM_ALLOWANCE_SECONDS: u64 = 15 * 60;

/// 128 random bits, hex: unique per invocation.
fn invocation_id() -> Result<String, BuildError> {
    let mut bytes = [0u8; 16];
    File::open("/dev/urandom")
        .and_then(|mut f| f.read_exact(&mut bytes))
        .map_err(io_err("/dev/urandom"))?;
    Ok(hex::encode(bytes))
}

/// The image as the request names it (the guest records it; the verifier holds its
/// launch digest against the report's measurement).
fn image_ref(image: &Image) -> Result<ImageRef, BuildError> {
    Ok(ImageRef {
        manifest_sha256: kettle_provenance::Sha256Digest::of_file(&image.manifest_path)
            .map_err(io_err(image.manifest_path.display().to_string()))?,
        launch_digest: image.manifest.launch_digest.to_string(),
    })
}

/// The request's limits for `--timeout SECONDS`: the build's time limit is that one number,
/// in the guest (the sandbox's wall-clock and CPU limits) and on the host ([`vm_deadline`]).
pub fn build_limits(timeout: u64) -> Result<Limits, BuildError> {
    if timeout == 0 || timeout > MAX_BUILD_SECONDS {
        return Err(BuildError::Args(format!(
            "--timeout {timeout} is outside 1..={MAX_BUILD_SECONDS} seconds (the longest build a request may ask for is a week)"
        )));
    }
    Ok(Limits {
        max_build_seconds: Some(timeout),
        max_memory_bytes: None,
    })
}

/// When the host kills the VM: the build's own limit (`limits.max_build_seconds`, i.e.
/// `--timeout`) plus `allowance` (`--vm-allowance`) for the guest's other steps.
pub fn vm_deadline(limits: &Limits, allowance: u64) -> Duration {
    Duration::from_secs(limits.build_seconds().saturating_add(allowance))
}

/// The validated request for building `src` (an image only when a VM boots one).
pub(super) fn make_request_for(
    opts: &BuildOptions,
    src: &ResolvedSource,
    tee: Tee,
    image: Option<&Image>,
) -> Result<BuildRequest, BuildError> {
    let upstream = match opts.mode {
        FetchMode::Cached => None,
        FetchMode::Upstream => Some(Upstream {
            source_archive_url: opts.source_archive_url.clone().ok_or_else(|| {
                BuildError::Args("--mode upstream needs --source-archive-url (an HTTPS tar of the commit's tree)".into())
            })?,
            commit_object_url: opts.commit_object_url.clone().ok_or_else(|| {
                BuildError::Args("--mode upstream needs --commit-object-url (an HTTPS URL of the raw commit object)".into())
            })?,
            crates_url: DEFAULT_CRATES_URL.to_string(),
            dns_resolver: None,
        }),
    };
    let request = BuildRequest {
        schema: REQUEST_SCHEMA.to_string(),
        repository: src.repository.clone(),
        git_ref: src.git_ref.clone(),
        commit: src.commit.clone(),
        object_format: src.object_format,
        mode: opts.mode,
        tee,
        invocation_id: invocation_id()?,
        limits: build_limits(opts.timeout)?,
        upstream,
        image: image.map(image_ref).transpose()?,
    };
    request
        .validate()
        .map_err(|e| BuildError::Request(format!("the build request is invalid: {e}")))?;
    Ok(request)
}

/// The validated request for building `src` with no image named (what `--local` sends).
pub fn make_request(
    opts: &BuildOptions,
    src: &ResolvedSource,
    tee: Tee,
) -> Result<BuildRequest, BuildError> {
    make_request_for(opts, src, tee, None)
}
