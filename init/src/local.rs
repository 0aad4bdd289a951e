//! Local mode: the guest's pipeline as an ordinary process (the boot step is
//! skipped), for tests and `kettle build --local` (which runs `kettle-init
//! --local`). It never builds unsandboxed; see [`crate::sandbox`] for what
//! running without root weakens.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};

use kettle_attest::{Evidence, ReportProvider};
use kettle_wire::output::{DirSink, ARTIFACTS_DIR};
use kettle_wire::{BuildRequest, FetchMode};

use crate::clock::Clock;
use crate::error::StepError;
use crate::pipeline::{build_local, Pipeline};
use crate::steps::attest::Attestor;
use crate::steps::emit::{emit, emit_error, EmitError};
use crate::steps::fetch::{https_inputs, Inputs};
use crate::steps::hash::Subject;
use crate::steps::Tools;

/// The host's CA bundle, used by local upstream mode unless told otherwise.
pub const HOST_CA_BUNDLE: &str = "/etc/ssl/certs/ca-certificates.crt";
/// Where local upstream mode finds a nameserver when neither the options nor the request name one.
const HOST_RESOLV_CONF: &str = "/etc/resolv.conf";
/// Set (to anything) to keep a temporary work dir after the run, for debugging.
const KEEP_WORK_ENV: &str = "KETTLE_KEEP_WORK";

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
    /// Where the provenance's timestamps come from (default the system clock; tests fix it).
    pub clock: Clock,
}

impl Default for LocalOptions {
    fn default() -> Self {
        LocalOptions {
            tools: Tools::Pinned,
            ca_roots: HOST_CA_BUNDLE.into(),
            dns_resolver: None,
            work_dir: None,
            clock: Clock::System,
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
    pub evidence: Option<Evidence>,
}

static RUN_COUNTER: AtomicU64 = AtomicU64::new(0);

/// Runs the guest pipeline as an ordinary process (the boot step is skipped).
///
/// * `request`: the same request the guest would read from its request disk.
/// * `inputs`: a directory in the cache layout ([`kettle_wire::cache`]); used in cached mode.
///   Upstream mode fetches over HTTPS with `options.ca_roots` instead.
/// * `provider`: who signs the report; `None` = no evidence, and status.json
///   says plainly that nothing is hardware-attested.
/// * `out_dir`: must be empty or absent; receives the output layout of
///   [`kettle_wire::output`] (or only error.json on failure).
///
/// As root the build runs in the guest's sandbox; as another user it runs in
/// the same sandbox inside a user namespace (see [`crate::sandbox`] for what that
/// weakens). It never runs unsandboxed.
pub fn run_local(
    request: &BuildRequest,
    inputs: &Path,
    provider: Option<&mut dyn ReportProvider>,
    out_dir: &Path,
    options: &LocalOptions,
) -> Result<Outcome, StepError> {
    let mut sink =
        DirSink::create(out_dir).map_err(EmitError::io(out_dir.display().to_string()))?;
    let (work, temporary) = match &options.work_dir {
        Some(w) => (w.clone(), false),
        None => {
            let n = RUN_COUNTER.fetch_add(1, Ordering::Relaxed);
            let name = format!("kettle-local-{}-{n}", std::process::id());
            (std::env::temp_dir().join(name), true)
        }
    };
    let inputs = match request.mode {
        FetchMode::Cached => Inputs::Dir(inputs.to_path_buf()),
        FetchMode::Upstream => https_inputs(
            request,
            &options.ca_roots,
            options.dns_resolver,
            Path::new(HOST_RESOLV_CONF),
        ),
    };
    let pipeline = Pipeline {
        request,
        inputs,
        tools: options.tools.clone(),
        work: work.clone(),
        discard_consumed_inputs: false,
        clock: options.clock,
    };
    let attestor = match provider {
        Some(p) => Attestor::Given(p),
        None => Attestor::None,
    };
    let result = build_local(&pipeline, attestor).and_then(|built| {
        emit(&built, &mut sink)?;
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
                path: out_dir.join(ARTIFACTS_DIR).join(&s.name),
                ..s.clone()
            })
            .collect();
        Ok(Outcome {
            subjects,
            provenance: built.provenance,
            evidence: built.evidence,
        })
    });
    if temporary && std::env::var_os(KEEP_WORK_ENV).is_none() {
        let _ = std::fs::remove_dir_all(&work);
    }
    if let Err(e) = &result {
        if let Err(io) = emit_error(e, &mut sink) {
            log::error!("could not write error.json: {io}");
        }
    }
    result
}
