//! kettle-init: the guest's PID 1. Reads the build request from the request
//! disk, fetches the pinned inputs, verifies every one of them, builds in a
//! sandbox, hashes the outputs, writes provenance.json (JCS) and requests an
//! SNP report whose report_data binds it, then writes everything to the output
//! disk and powers off.
//!
//! The same pipeline runs as an ordinary process for tests and `kettle build
//! --local`: see [`run_local`].
//!
//! Host-facing formats: [`request`] (request disk), [`cache`] (cache disk and
//! inputs dir), [`output`] (output disk and output dir).

pub mod boot;
pub mod cache;
pub mod digest;
pub mod disk;
pub mod dns;
pub mod error;
pub mod guest;
pub mod hostroot;
pub mod http;
pub mod lockfile;
pub mod manifest;
pub mod output;
pub mod pipeline;
pub mod provenance_doc;
pub mod request;
pub mod sandbox;
pub mod unpack;
pub mod vendor;

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};

use kettle_attest::ReportProvider;

pub use error::{ErrorReport, Step, StepError};
pub use output::Status;
pub use pipeline::{Built, Inputs, Subject, Tools};
pub use request::{
    write_request_disk, BuildRequest, FetchMode, Limits, ObjectFormat, Tee, Upstream,
};

use crate::error::InStep;
use crate::output::DirSink;
use crate::pipeline::{emit, emit_error, Attestor, EmitError, Pipeline};

/// The host's CA bundle, used by local upstream mode unless told otherwise.
pub const HOST_CA_BUNDLE: &str = "/etc/ssl/certs/ca-certificates.crt";

/// Options of [`run_local`]; `Default` = pinned tools, host CA bundle, no DNS resolver, temporary work dir.
#[derive(Debug, Clone)]
pub struct LocalOptions {
    /// Pinned toolchain/rootfs from kettle.toml (default), or the host's (see [`Tools::Host`]).
    pub tools: Tools,
    /// CA roots for upstream mode (default [`HOST_CA_BUNDLE`]).
    pub ca_roots: PathBuf,
    /// DNS resolver for upstream mode (default: the request's, else the first nameserver in /etc/resolv.conf).
    pub dns_resolver: Option<SocketAddr>,
    /// Scratch directory; default a fresh directory under the system temp dir, removed afterwards.
    pub work_dir: Option<PathBuf>,
}

impl Default for LocalOptions {
    fn default() -> Self {
        LocalOptions {
            tools: Tools::Pinned,
            ca_roots: HOST_CA_BUNDLE.into(),
            dns_resolver: None,
            work_dir: None,
        }
    }
}

/// The result of a successful local build.
#[derive(Debug)]
pub struct Outcome {
    /// The hashed outputs (paths point into `out_dir/artifacts`).
    pub subjects: Vec<Subject>,
    /// The exact provenance.json bytes.
    pub provenance: Vec<u8>,
    /// The report, when a provider was given; None means nothing is hardware-attested.
    pub evidence: Option<kettle_attest::Evidence>,
}

static RUN_COUNTER: AtomicU64 = AtomicU64::new(0);

/// Runs the guest pipeline as an ordinary process (the boot step is skipped).
///
/// * `request`: the same request the guest would read from its request disk.
/// * `inputs`: a directory in the cache layout ([`cache`]); used in cached mode.
///   Upstream mode fetches over HTTPS with `options.ca_roots` instead.
/// * `provider`: who signs the report; `None` = no evidence, and status.json
///   says plainly that nothing is hardware-attested.
/// * `out_dir`: must be empty or absent; receives the output layout of
///   [`output`] (or only error.json on failure).
///
/// As root the build runs in the guest's sandbox; as another user it runs in
/// the same sandbox inside a user namespace (see [`sandbox`] for what that
/// weakens). It never runs unsandboxed.
pub fn run_local(
    request: &BuildRequest,
    inputs: &Path,
    provider: Option<&mut dyn ReportProvider>,
    out_dir: &Path,
    options: &LocalOptions,
) -> Result<Outcome, StepError> {
    let mut sink = DirSink::create(out_dir)
        .map_err(|source| EmitError::Io {
            what: out_dir.display().to_string(),
            source,
        })
        .in_step(Step::Emit)?;
    let result = run_local_inner(request, inputs, provider, &mut sink, options, out_dir);
    if let Err(e) = &result {
        if let Err(io) = emit_error(e, &mut sink) {
            log::error!("could not write error.json: {io}");
        }
    }
    result
}

fn run_local_inner(
    request: &BuildRequest,
    inputs: &Path,
    provider: Option<&mut dyn ReportProvider>,
    sink: &mut DirSink,
    options: &LocalOptions,
    out_dir: &Path,
) -> Result<Outcome, StepError> {
    request.validate().in_step(Step::Request)?;
    let (work, temporary) = match &options.work_dir {
        Some(w) => (w.clone(), false),
        None => {
            let n = RUN_COUNTER.fetch_add(1, Ordering::Relaxed);
            (
                std::env::temp_dir().join(format!("kettle-local-{}-{n}", std::process::id())),
                true,
            )
        }
    };
    let inputs = match request.mode {
        FetchMode::Cached => Inputs::Dir(inputs.to_path_buf()),
        FetchMode::Upstream => {
            let resolver = options
                .dns_resolver
                .or_else(|| {
                    request
                        .upstream
                        .as_ref()
                        .and_then(|u| u.dns_resolver)
                        .map(|ip| SocketAddr::new(ip.into(), 53))
                })
                .or_else(|| {
                    std::fs::read_to_string("/etc/resolv.conf")
                        .ok()
                        .and_then(|t| dns::nameserver_from(&t))
                        .map(|ip| SocketAddr::new(ip.into(), 53))
                });
            Inputs::Https {
                roots_pem: options.ca_roots.clone(),
                resolver,
            }
        }
    };
    let pipeline = Pipeline {
        request,
        inputs,
        tools: options.tools.clone(),
        work: work.clone(),
        discard_consumed_inputs: false,
    };
    let attestor = match provider {
        Some(p) => Attestor::Given(p),
        None => Attestor::None,
    };
    let result = pipeline.run(attestor).and_then(|built| {
        emit(&built, sink)?;
        if built.evidence.is_none() {
            log::warn!(
                "no report provider: the outputs in {} are NOT hardware-attested",
                out_dir.display()
            );
        }
        let subjects = built
            .subjects
            .iter()
            .map(|s| Subject {
                path: out_dir.join(output::ARTIFACTS_DIR).join(&s.name),
                ..s.clone()
            })
            .collect();
        Ok(Outcome {
            subjects,
            provenance: built.provenance,
            evidence: built.evidence,
        })
    });
    if temporary && std::env::var_os("KETTLE_KEEP_WORK").is_none() {
        let _ = std::fs::remove_dir_all(&work);
    }
    result
}

#[cfg(test)]
mod e2e_tests;
