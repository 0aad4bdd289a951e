//! The request step: read the build request from the unmeasured request disk
//! (never the measured kernel command line), or check the one local mode was
//! handed. The request is untrusted: it only names what to build, and every
//! input it leads to is verified against the requested commit.

use std::io::Read;
use std::path::Path;

use kettle_wire::devices::REQUEST_DISK_SERIAL;
use kettle_wire::request::{read_request_disk, REQUEST_ENTRY};
use kettle_wire::{BuildRequest, FetchMode};
use thiserror::Error;

use crate::error::{InStep, Step, StepError};
use crate::refs::info_refs_url;

/// Requests this guest refuses although the wire format allows them.
#[derive(Debug, Error)]
pub enum RequestCheckError {
    /// Upstream mode resolves the ref over HTTPS, so the repository must be https://.
    #[error("upstream mode: repository {0:?} is not an https:// URL (without query or fragment); the guest resolves the ref itself over HTTPS, so give the repository's https:// clone URL, or use cached mode (where the host resolves the ref)")]
    UpstreamRepositoryNotHttps(String),
}

/// What the guest requires beyond [`BuildRequest::validate`].
fn guest_checks(request: &BuildRequest) -> Result<(), RequestCheckError> {
    if request.mode == FetchMode::Upstream && info_refs_url(&request.repository).is_err() {
        return Err(RequestCheckError::UpstreamRepositoryNotHttps(
            request.repository.clone(),
        ));
    }
    Ok(())
}

/// Reads and checks the request disk's tar stream (`shown_as` names the disk in the summary).
pub fn read_disk(disk: impl Read, shown_as: &Path) -> Result<(BuildRequest, String), StepError> {
    let request = read_request_disk(disk).in_step_for(Step::Request, REQUEST_ENTRY)?;
    guest_checks(&request).in_step_for(Step::Request, REQUEST_ENTRY)?;
    let summary = format!(
        "{REQUEST_DISK_SERIAL} from {}: {}",
        shown_as.display(),
        describe(&request)
    );
    Ok((request, summary))
}

/// Checks a request handed over directly (local mode) as the guest checks the disk's.
pub fn check(request: &BuildRequest) -> Result<((), String), StepError> {
    request
        .validate()
        .in_step_for(Step::Request, REQUEST_ENTRY)?;
    guest_checks(request).in_step_for(Step::Request, REQUEST_ENTRY)?;
    Ok(((), describe(request)))
}

fn describe(req: &BuildRequest) -> String {
    format!(
        "{} {} @ {} ({:?} mode, tee {})",
        req.repository,
        req.git_ref,
        req.commit,
        req.mode,
        req.tee.platform_name()
    )
}
