//! The one place that runs the steps in order (DESIGN.md, "Inside the guest"):
//! request -> fetch -> verify -> unpack -> build -> hash -> provenance -> attest.
//! Boot comes before (the guest's [`crate::guest::run_guest`]) and emit after
//! (the guest's output disk, or local mode's output dir). Each step logs one
//! console line and fails with a [`StepError`] naming the step (and the input,
//! when one is to blame). No report is requested unless every step before
//! attest succeeded.

use std::fs;
use std::path::{Path, PathBuf};

use kettle_attest::Evidence;
use kettle_wire::devices::{CACHE_DISK_SERIAL, REQUEST_DISK_SERIAL};
use kettle_wire::inputs::required_inputs;
use kettle_wire::{BuildRequest, FetchMode};

use crate::clock::Clock;
use crate::error::{InStep, Step, StepError};
use crate::guest::{open_disk, DiskLocator};
use crate::steps::attest::Attestor;
use crate::steps::fetch::{FetchError, Fetcher, Inputs};
use crate::steps::hash::Subject;
use crate::steps::provenance::{BuilderMode, ProvenanceInputs, RefResolvedBy};
use crate::steps::{self, timed, Tools, WorkDir};

/// Where the guest learns its DHCP nameserver: with `ip=dhcp` the kernel records it here.
const GUEST_NAMESERVER_FILE: &str = "/proc/net/pnp";

/// A finished build, before emission.
#[derive(Debug)]
pub struct Built {
    /// Outputs in declared order.
    pub subjects: Vec<Subject>,
    /// The exact provenance.json bytes (JCS).
    pub provenance: Vec<u8>,
    /// The report, when a provider was asked.
    pub evidence: Option<Evidence>,
}

/// Everything one run needs.
pub struct Pipeline<'a> {
    /// The checked request.
    pub request: &'a BuildRequest,
    /// Where inputs come from.
    pub inputs: Inputs,
    /// Where the toolchain and rootfs come from.
    pub tools: Tools,
    /// Scratch directory (source, vendor, rootfs, downloads).
    pub work: PathBuf,
    /// Delete each input file once it has been unpacked (the guest: inputs are a private
    /// copy in RAM). Downloads under `work` are always deleted; a caller's inputs dir is
    /// left alone unless this is set.
    pub discard_consumed_inputs: bool,
    /// Where startedOn/finishedOn come from (the system clock, which the host sets; tests fix it).
    pub clock: Clock,
}

impl Pipeline<'_> {
    /// Runs every step from fetch up to and including attest.
    pub fn run(&self, attestor: Attestor<'_>) -> Result<Built, StepError> {
        let started = self.clock.now();
        let req = self.request;
        let mode = BuilderMode::of(&attestor, req.tee);
        let work = WorkDir::new(self.work.clone(), self.discard_consumed_inputs);
        fs::create_dir_all(work.root())
            .map_err(|source| FetchError::Io {
                path: work.root().display().to_string(),
                source,
            })
            .in_step(Step::Fetch)?;
        let fetcher = Fetcher::open(&self.inputs)?;
        // Upstream mode asks the repository itself what the ref names; in cached mode the
        // host resolved it, and only the commit is witnessed.
        let ref_resolved_by = match &fetcher {
            Fetcher::Https(client) => {
                let resolved = timed(Step::Fetch, "ref", || {
                    steps::fetch::resolve_ref(client, req)
                })?;
                timed(Step::Verify, "ref", || {
                    steps::verify::resolved_ref(req, &resolved)
                })?;
                RefResolvedBy::Guest {
                    full_ref: resolved.name,
                }
            }
            Fetcher::Dir(_) => RefResolvedBy::Host,
        };

        let source = timed(Step::Fetch, "source", || {
            steps::fetch::source(&fetcher, req, &work)
        })?;
        let tree = timed(Step::Verify, "source", || {
            steps::verify::source(req, &source, &work)
        })?;
        let plan = timed(Step::Verify, "recipe", || steps::verify::recipe(&work))?;
        let pins = required_inputs(
            &plan.recipe,
            &plan.dependencies,
            steps::fetch::crates_url(req),
            self.tools.build_tools(),
        );
        let fetched = timed(Step::Fetch, "dependencies", || {
            steps::fetch::inputs(&fetcher, &pins, &self.tools, &work)
        })?;
        timed(Step::Verify, "dependencies", || {
            steps::verify::inputs(&fetched, &self.tools)
        })?;
        let root = timed(Step::Unpack, "build root", || {
            steps::unpack::build_root(&plan.recipe, &fetched, &self.tools, &work)
        })?;
        timed(Step::Build, plan.recipe.build_type.uri(), || {
            steps::build::run(
                &plan.recipe,
                &root,
                &req.commit,
                &source.commit_raw,
                &req.limits,
                &self.tools,
                &work,
            )
        })?;
        let subjects = timed(Step::Hash, "outputs", || {
            steps::hash::outputs(&plan.recipe.outputs, &work)
        })?;
        let finished = self.clock.now();
        let provenance = timed(Step::Provenance, "provenance.json", || {
            steps::provenance::document(&ProvenanceInputs {
                request: req,
                build_type: plan.recipe.build_type,
                tree: &tree,
                dependencies: &plan.dependencies,
                toolchain: plan.recipe.toolchain.as_ref(),
                rootfs: &plan.recipe.rootfs,
                tools: &self.tools,
                manifests: &root.manifests,
                subjects: &subjects,
                mode,
                ref_resolved_by,
                started_on: started,
                finished_on: finished,
            })
        })?;
        let evidence = timed(Step::Attest, "report", || {
            steps::attest::report(mode, attestor, &provenance)
        })?;
        Ok(Built {
            subjects,
            provenance,
            evidence,
        })
    }
}

/// Local mode: checks the request as the guest would, then runs the pipeline.
pub fn build_local(pipeline: &Pipeline<'_>, attestor: Attestor<'_>) -> Result<Built, StepError> {
    timed(Step::Request, "request", || {
        steps::request::check(pipeline.request)
    })?;
    pipeline.run(attestor)
}

/// The guest between boot and emit: reads the request disk, takes inputs from the
/// cache disk (cached mode) or HTTPS trusting `ca_roots` (upstream mode), and runs
/// the pipeline in `work`. `ca_roots` is [`kettle_wire::devices::GUEST_CA_ROOTS`] in the guest.
pub fn build_from_disks(
    locate: DiskLocator<'_>,
    work: &Path,
    ca_roots: &Path,
    attestor: Attestor<'_>,
) -> Result<Built, StepError> {
    let request = timed(Step::Request, "request disk", || {
        let (path, disk) = open_disk(locate, REQUEST_DISK_SERIAL, false).in_step(Step::Request)?;
        steps::request::read_disk(disk, &path)
    })?;
    let inputs = match request.mode {
        FetchMode::Cached => timed(Step::Fetch, "cache disk", || {
            let (path, disk) = open_disk(locate, CACHE_DISK_SERIAL, false)
                .in_step_for(Step::Fetch, "cache disk")?;
            steps::fetch::cache_disk(disk, &path, work.join("cache"))
        })?,
        FetchMode::Upstream => {
            steps::fetch::https_inputs(&request, ca_roots, None, Path::new(GUEST_NAMESERVER_FILE))
        }
    };
    let pipeline = Pipeline {
        request: &request,
        inputs,
        tools: Tools::Pinned,
        work: work.join("work"),
        discard_consumed_inputs: true,
        clock: Clock::System,
    };
    pipeline.run(attestor)
}
