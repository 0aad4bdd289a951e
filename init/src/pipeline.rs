//! The build pipeline shared by the guest and local mode: fetch -> verify ->
//! unpack -> build -> hash -> provenance -> attest, then emit. Each step logs
//! one line with its duration and fails with a [`StepError`] naming the step
//! (and the input, when one is to blame). No report is requested unless every
//! step before `attest` succeeded.

use std::fs;
use std::io::Read;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Instant;

use kettle_attest::{Evidence, ReportProvider};
use kettle_provenance::git;
use thiserror::Error;

use crate::cache;
use crate::digest::sha256_file;
use crate::error::{InStep, Step, StepError};
use crate::http::{load_roots, Https};
use crate::lockfile::{self, LockedCrate};
use crate::manifest::{Manifest, Pinned, Recipe};
use crate::output::{self, OutputSink, Status};
use crate::provenance_doc::{self, ProvenanceInputs};
use crate::request::{BuildRequest, ObjectFormat, Tee};
use crate::sandbox::{self, Bind, SandboxLimits, SandboxSpec};
use crate::unpack::{open_archive, unpack, UnpackLimits};
use crate::vendor;

/// Largest raw commit object accepted.
pub const MAX_COMMIT_OBJECT_BYTES: u64 = 1 << 20;
/// Largest single download (toolchain bundles are the big ones).
pub const MAX_DOWNLOAD_BYTES: u64 = 16 << 30;
/// Largest .crate file accepted.
pub const MAX_CRATE_BYTES: u64 = 256 << 20;

/// Sandbox path of the source tree (the build's working directory).
pub const SANDBOX_SRC: &str = "/src";
/// Sandbox path of the vendored crates.
pub const SANDBOX_VENDOR: &str = "/vendor";
/// Sandbox path of the toolchain root (bin/cargo, bin/rustc, lib/...).
pub const SANDBOX_TOOLCHAIN: &str = "/opt/kettle/toolchain";
/// Sandbox path of the build's writable home (CARGO_HOME lives under it).
pub const SANDBOX_HOME: &str = "/kettle-home";

/// Where the inputs come from.
#[derive(Debug, Clone)]
pub enum Inputs {
    /// A directory in the cache layout (see [`cache`]): the extracted cache disk, or local mode's inputs dir.
    Dir(PathBuf),
    /// HTTPS (upstream mode), trusting only the CA roots in `roots_pem`.
    Https {
        /// PEM file of trusted CA roots.
        roots_pem: PathBuf,
        /// DNS resolver for host names (None: only IP-literal URLs work).
        resolver: Option<SocketAddr>,
    },
}

/// Where the build's root filesystem and toolchain come from.
#[derive(Debug, Clone)]
pub enum Tools {
    /// The toolchain and rootfs pinned in kettle.toml, fetched and verified (always, in the guest).
    Pinned,
    /// Local mode only: the host's own /usr, /bin, /lib, /lib64, /sbin and /etc (read-only) and
    /// the host's Rust toolchain at `toolchain_root`. These are NOT verified against kettle.toml's
    /// pins (the pin is, in effect, whatever the host has), and the provenance says so:
    /// `hermetic: false`, `kettle_hostTools: true`, and the toolchain/rootfs descriptors name host paths.
    Host {
        /// A toolchain root (holding bin/cargo and bin/rustc), e.g. `rustc --print sysroot`.
        toolchain_root: PathBuf,
    },
}

/// Which provider is asked for the report.
pub enum Attestor<'a> {
    /// No report (local mode without a provider): nothing is hardware-attested.
    None,
    /// A provider the caller chose.
    Given(&'a mut dyn ReportProvider),
    /// The guest's provider for the request's tee, opened only at the attest step.
    Guest,
}

/// A hashed output.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Subject {
    /// The declared output path (the subject name).
    pub name: String,
    /// Lowercase hex SHA-256.
    pub sha256: String,
    /// Where the file is now.
    pub path: PathBuf,
}

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

/// Errors of the fetch step.
#[derive(Debug, Error)]
pub enum FetchError {
    /// An input is not in the cache.
    #[error("{what} is not in the inputs ({path}); the host must put it there")]
    Missing {
        /// Which input.
        what: String,
        /// Where it was expected.
        path: String,
    },
    /// Reading a cached input failed.
    #[error("reading {path}: {source}")]
    Io {
        /// Path.
        path: String,
        /// Cause.
        #[source]
        source: std::io::Error,
    },
    /// A download failed.
    #[error(transparent)]
    Http(#[from] crate::http::HttpError),
    /// The commit object is larger than [`MAX_COMMIT_OBJECT_BYTES`].
    #[error("the commit object is larger than {MAX_COMMIT_OBJECT_BYTES} bytes")]
    CommitTooLarge,
    /// Upstream mode without its configuration.
    #[error("upstream mode needs the request's upstream section")]
    NoUpstream,
}

/// Errors of the verify step.
#[derive(Debug, Error)]
pub enum VerifyError {
    /// The commit object does not hash to the requested id or is malformed.
    #[error(transparent)]
    Commit(git::GitError),
    /// The source archive could not be unpacked safely.
    #[error("the source archive was refused: {0}")]
    Unpack(#[from] crate::unpack::UnpackError),
    /// The extracted tree could not be hashed.
    #[error("hashing the source tree: {0}")]
    TreeHash(git::GitError),
    /// The source tree is not the commit's tree.
    #[error("the source archive's tree hashes to {computed}, but commit {commit} names tree {expected}: the archive does not hold that commit")]
    TreeMismatch {
        /// The commit.
        commit: String,
        /// The commit's tree.
        expected: String,
        /// The archive's tree.
        computed: String,
    },
    /// kettle.toml is missing or invalid.
    #[error(transparent)]
    Manifest(#[from] crate::manifest::ManifestError),
    /// Cargo.lock is missing or invalid.
    #[error(transparent)]
    Lockfile(#[from] lockfile::LockfileError),
    /// An input's SHA-256 differs from its pin.
    #[error("{input}: sha256 is {computed} but {pinned_by} pins {expected}")]
    Digest {
        /// Which input.
        input: String,
        /// The pin.
        expected: String,
        /// What the bytes hash to.
        computed: String,
        /// Where the pin comes from (Cargo.lock, kettle.toml).
        pinned_by: &'static str,
    },
    /// Reading an input failed.
    #[error("reading {path}: {source}")]
    Io {
        /// Path.
        path: String,
        /// Cause.
        #[source]
        source: std::io::Error,
    },
}

/// Errors of the unpack step.
#[derive(Debug, Error)]
pub enum UnpackStepError {
    /// A root filesystem or toolchain archive was refused.
    #[error("{what}: {source}")]
    Archive {
        /// Which archive.
        what: String,
        /// The cause.
        #[source]
        source: crate::unpack::UnpackError,
    },
    /// Vendoring a crate failed.
    #[error(transparent)]
    Vendor(#[from] vendor::VendorError),
    /// The toolchain bundle has no bin/cargo.
    #[error("the toolchain bundle has no bin/cargo and bin/rustc (at its top or under a single top directory)")]
    ToolchainLayout,
    /// Filesystem error.
    #[error("{what}: {source}")]
    Io {
        /// What was being done.
        what: String,
        /// Cause.
        #[source]
        source: std::io::Error,
    },
}

/// Errors of the build step.
#[derive(Debug, Error)]
pub enum BuildError {
    /// The sandbox refused to start or the command failed.
    #[error(transparent)]
    Sandbox(#[from] sandbox::SandboxError),
    /// Preparing the build directories failed.
    #[error("{what}: {source}")]
    Io {
        /// What was being done.
        what: String,
        /// Cause.
        #[source]
        source: std::io::Error,
    },
}

/// Errors of the hash step.
#[derive(Debug, Error)]
pub enum HashError {
    /// A declared output is missing.
    #[error("declared output {0:?} was not produced")]
    Missing(String),
    /// An output is not a regular file reached without symlinks.
    #[error("declared output {0:?} is not a regular file (or is reached through a symlink)")]
    NotRegular(String),
    /// Reading failed.
    #[error("reading output {name:?}: {source}")]
    Io {
        /// Output name.
        name: String,
        /// Cause.
        #[source]
        source: std::io::Error,
    },
}

/// Errors of the attest step.
#[derive(Debug, Error)]
pub enum AttestError {
    /// No provider for the requested tee.
    #[error("no SEV-SNP attestation device in this guest (neither configfs-tsm nor /dev/sev-guest); use tee simulated on hosts without SNP")]
    NoHardware,
    /// The provider failed.
    #[error(transparent)]
    Request(#[from] kettle_attest::RequestError),
}

/// Errors of the emit step.
#[derive(Debug, Error)]
pub enum EmitError {
    /// Writing the output failed.
    #[error("writing {what}: {source}")]
    Io {
        /// What.
        what: String,
        /// Cause.
        #[source]
        source: std::io::Error,
    },
    /// The output disk was not found.
    #[error("no virtio disk with serial {0:?}")]
    NoDisk(String),
}

/// Runs `f` as `step`, logging one line with its duration and outcome.
pub fn timed<T>(
    step: Step,
    what: &str,
    f: impl FnOnce() -> Result<(T, String), StepError>,
) -> Result<T, StepError> {
    let start = Instant::now();
    let r = f();
    let secs = start.elapsed().as_secs_f64();
    match r {
        Ok((v, summary)) => {
            log::info!(
                "[{step}] ok in {secs:.2}s: {what}{}{summary}",
                if summary.is_empty() { "" } else { ": " }
            );
            Ok(v)
        }
        Err(e) => {
            log::error!(
                "[{step}] FAILED after {secs:.2}s: {what}: {}{}",
                e.message(),
                e.input
                    .as_ref()
                    .map(|i| format!(" (input: {i})"))
                    .unwrap_or_default()
            );
            Err(e)
        }
    }
}

fn git_format(f: ObjectFormat) -> git::ObjectFormat {
    match f {
        ObjectFormat::Sha1 => git::ObjectFormat::Sha1,
        ObjectFormat::Sha256 => git::ObjectFormat::Sha256,
    }
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
}

struct Plan {
    manifest: Manifest,
    recipe: Recipe,
    crates: Vec<LockedCrate>,
}

struct Fetched {
    crates: Vec<(LockedCrate, PathBuf)>,
    toolchain: Option<PathBuf>,
    rootfs: Option<PathBuf>,
}

enum Source<'a> {
    Dir(&'a Path),
    Https(Https),
}

impl Pipeline<'_> {
    /// Frees an input file that has been unpacked, when it is ours to free.
    fn consumed(&self, path: &Path) {
        if self.discard_consumed_inputs || path.starts_with(self.work.join("downloads")) {
            let _ = fs::remove_file(path);
        }
    }

    fn src_dir(&self) -> PathBuf {
        self.work.join("src")
    }

    fn source(&self) -> Result<Source<'_>, StepError> {
        match &self.inputs {
            Inputs::Dir(d) => Ok(Source::Dir(d)),
            Inputs::Https {
                roots_pem,
                resolver,
            } => {
                let roots = load_roots(roots_pem)
                    .map_err(FetchError::from)
                    .in_step(Step::Fetch)?;
                Ok(Source::Https(
                    Https::new(roots, *resolver)
                        .map_err(FetchError::from)
                        .in_step(Step::Fetch)?,
                ))
            }
        }
    }

    /// Runs every step up to and including attest.
    pub fn run(&self, attestor: Attestor<'_>) -> Result<Built, StepError> {
        let started = kettle_provenance::timestamp::now_rfc3339_utc();
        fs::create_dir_all(&self.work)
            .map_err(|e| FetchError::Io {
                path: self.work.display().to_string(),
                source: e,
            })
            .in_step(Step::Fetch)?;
        let source = self.source()?;
        let req = self.request;

        let (commit_raw, archive) = timed(Step::Fetch, "source", || {
            let r = self.fetch_source(&source)?;
            Ok((
                r,
                format!("commit object and source archive of {}", req.commit),
            ))
        })?;
        let tree = timed(Step::Verify, "source", || {
            let tree = self.verify_source(&commit_raw, &archive)?;
            Ok((
                tree.clone(),
                format!("commit {} -> tree {tree}", req.commit),
            ))
        })?;
        let plan = timed(Step::Verify, "recipe", || {
            let p = self.plan()?;
            let s = format!(
                "{} with {} crates, outputs {:?}",
                p.manifest.build.build_type,
                p.crates.len(),
                p.manifest.build.outputs
            );
            Ok((p, s))
        })?;
        let fetched = timed(Step::Fetch, "dependencies", || {
            let f = self.fetch_deps(&source, &plan)?;
            let tools = match (&self.tools, plan.manifest.toolchain.is_some()) {
                (Tools::Host { .. }, _) => " (host tools, not fetched)",
                (Tools::Pinned, true) => ", toolchain, rootfs",
                (Tools::Pinned, false) => ", rootfs",
            };
            Ok((f, format!("{} crates{tools}", plan.crates.len())))
        })?;
        timed(Step::Verify, "dependencies", || {
            self.verify_deps(&plan, &fetched)?;
            Ok((
                (),
                "every crate, toolchain and rootfs matches its pin".to_string(),
            ))
        })?;
        let (root, toolchain) = timed(Step::Unpack, "build root", || {
            let r = self.unpack(&plan, &fetched)?;
            let what = match (&self.tools, r.1.is_some()) {
                (Tools::Host { .. }, _) => "host tools (read-only binds)",
                (Tools::Pinned, true) => "rootfs and toolchain",
                (Tools::Pinned, false) => "rootfs",
            };
            Ok((r, format!("{what}, {} vendored crates", plan.crates.len())))
        })?;
        timed(Step::Build, plan.recipe.build_type_uri(), || {
            self.build(&plan, &root, toolchain.as_deref(), &commit_raw)?;
            Ok(((), String::new()))
        })?;
        let subjects = timed(Step::Hash, "outputs", || {
            let s = self.hash_outputs(&plan)?;
            let summary = s
                .iter()
                .map(|s| format!("{} sha256:{}", s.name, s.sha256))
                .collect::<Vec<_>>()
                .join(", ");
            Ok((s, summary))
        })?;
        let finished = kettle_provenance::timestamp::now_rfc3339_utc();
        let provenance = timed(Step::Provenance, "provenance.json", || {
            let bytes = provenance_doc::build(&ProvenanceInputs {
                request: req,
                recipe: plan.recipe,
                tree: &tree,
                crates: &plan.crates,
                toolchain: plan.manifest.toolchain.as_ref(),
                rootfs: &plan.manifest.rootfs,
                tools: &self.tools,
                subjects: &subjects,
                started_on: &started,
                finished_on: &finished,
            })
            .in_step(Step::Provenance)?;
            let n = bytes.len();
            let summary = format!("{n} bytes, sha256 {}", crate::digest::sha256_bytes(&bytes));
            Ok((bytes, summary))
        })?;
        let evidence = timed(Step::Attest, "report", || {
            let e = attest(req.tee, attestor, &provenance)?;
            let s = match &e {
                Some(ev) => format!("{} report of {} bytes", ev.provider, ev.report.len()),
                None => "no provider: NOT attested".to_string(),
            };
            Ok((e, s))
        })?;
        Ok(Built {
            subjects,
            provenance,
            evidence,
        })
    }

    fn fetch_source(&self, source: &Source<'_>) -> Result<(Vec<u8>, PathBuf), StepError> {
        let req = self.request;
        match source {
            Source::Dir(root) => {
                let cpath = cache::commit_path(root, &req.commit);
                let apath = cache::source_path(root, &req.commit);
                let raw = read_bounded(&cpath, MAX_COMMIT_OBJECT_BYTES)
                    .in_step_for(Step::Fetch, "commit object")?;
                if !apath.is_file() {
                    return Err(StepError::new(
                        Step::Fetch,
                        FetchError::Missing {
                            what: "source archive".into(),
                            path: apath.display().to_string(),
                        },
                    )
                    .with_input("source archive"));
                }
                Ok((raw, apath))
            }
            Source::Https(client) => {
                let up = req
                    .upstream
                    .as_ref()
                    .ok_or(FetchError::NoUpstream)
                    .in_step(Step::Fetch)?;
                let raw = client
                    .get_bytes(&up.commit_object_url, MAX_COMMIT_OBJECT_BYTES)
                    .map_err(FetchError::from)
                    .in_step_for(Step::Fetch, "commit object")?;
                let apath = self.work.join("downloads").join("source-archive");
                download_to(client, &up.source_archive_url, &apath)
                    .in_step_for(Step::Fetch, "source archive")?;
                Ok((raw, apath))
            }
        }
    }

    fn verify_source(&self, commit_raw: &[u8], archive: &Path) -> Result<String, StepError> {
        let req = self.request;
        let fmt = git_format(req.object_format);
        let tree = git::verify_commit(commit_raw, &req.commit, fmt)
            .map_err(VerifyError::Commit)
            .in_step_for(Step::Verify, "commit object")?;
        let extracted = self.work.join("src-archive");
        let reader = open_archive(archive)
            .map_err(VerifyError::from)
            .in_step_for(Step::Verify, "source archive")?;
        unpack(reader, &extracted, &UnpackLimits::SOURCE)
            .map_err(VerifyError::from)
            .in_step_for(Step::Verify, "source archive")?;
        self.consumed(archive);
        let tree_of = |dir: &Path| {
            git::tree_id(dir, fmt)
                .map_err(VerifyError::TreeHash)
                .in_step_for(Step::Verify, "source archive")
        };
        let computed = tree_of(&extracted)?;
        // Forge archive downloads wrap the tree in one top directory ("repo-<sha>/"):
        // accept that directory too, since matching the commit's tree is all that counts.
        let matched = if computed.as_str() == tree.as_str() {
            Some(extracted.clone())
        } else {
            match single_top_dir(&extracted) {
                Some(inner) if tree_of(&inner)?.as_str() == tree.as_str() => Some(inner),
                _ => None,
            }
        };
        let Some(matched) = matched else {
            return Err(StepError::new(
                Step::Verify,
                VerifyError::TreeMismatch {
                    commit: req.commit.clone(),
                    expected: tree.to_string(),
                    computed: computed.to_string(),
                },
            )
            .with_input("source archive"));
        };
        fs::rename(&matched, self.src_dir())
            .map_err(|source| VerifyError::Io {
                path: matched.display().to_string(),
                source,
            })
            .in_step_for(Step::Verify, "source archive")?;
        Ok(tree.into_string())
    }

    fn plan(&self) -> Result<Plan, StepError> {
        let src = self.src_dir();
        let manifest = Manifest::load(&src)
            .map_err(VerifyError::from)
            .in_step_for(Step::Verify, "kettle.toml")?;
        let recipe = manifest
            .recipe()
            .map_err(VerifyError::from)
            .in_step_for(Step::Verify, "kettle.toml")?;
        let crates = match recipe {
            Recipe::CargoBuild => lockfile::load(&src)
                .map_err(VerifyError::from)
                .in_step_for(Step::Verify, "Cargo.lock")?,
            Recipe::Script => Vec::new(),
        };
        Ok(Plan {
            manifest,
            recipe,
            crates,
        })
    }

    fn fetch_deps(&self, source: &Source<'_>, plan: &Plan) -> Result<Fetched, StepError> {
        let pinned = matches!(self.tools, Tools::Pinned);
        let mut want: Vec<(String, String, Option<String>)> = Vec::new(); // (label, sha256, url)
        let crates_url = self
            .request
            .upstream
            .as_ref()
            .map(|u| u.crates_url.trim_end_matches('/').to_string());
        for k in &plan.crates {
            let url = crates_url
                .as_ref()
                .map(|base| format!("{base}/{}/{}-{}.crate", k.name, k.name, k.version));
            want.push((k.label(), k.checksum.clone(), url));
        }
        let mut tool_pins: Vec<(&str, &Pinned)> = Vec::new();
        if pinned {
            if let Some(t) = &plan.manifest.toolchain {
                tool_pins.push(("toolchain", t));
            }
            tool_pins.push(("rootfs", &plan.manifest.rootfs));
        }
        for (label, pin) in &tool_pins {
            want.push((label.to_string(), pin.sha256.clone(), Some(pin.url.clone())));
        }
        let mut paths = Vec::new();
        for (label, sha, url) in &want {
            let path = match source {
                Source::Dir(root) => {
                    let p = cache::blob_path(root, sha);
                    if !p.is_file() {
                        return Err(StepError::new(
                            Step::Fetch,
                            FetchError::Missing {
                                what: label.clone(),
                                path: p.display().to_string(),
                            },
                        )
                        .with_input(label.clone()));
                    }
                    p
                }
                Source::Https(client) => {
                    let p = self.work.join("downloads").join(sha);
                    download_to(client, url.as_deref().unwrap_or_default(), &p)
                        .in_step_for(Step::Fetch, label.clone())?;
                    p
                }
            };
            paths.push(path);
        }
        let mut it = paths.into_iter();
        let crates = plan.crates.iter().cloned().zip(it.by_ref()).collect();
        let mut toolchain = None;
        let mut rootfs = None;
        for ((label, _), p) in tool_pins.iter().zip(it) {
            if *label == "toolchain" {
                toolchain = Some(p);
            } else {
                rootfs = Some(p);
            }
        }
        Ok(Fetched {
            crates,
            toolchain,
            rootfs,
        })
    }

    fn verify_deps(&self, plan: &Plan, fetched: &Fetched) -> Result<(), StepError> {
        let check = |label: String,
                     path: &Path,
                     expected: &str,
                     pinned_by: &'static str|
         -> Result<(), StepError> {
            let computed = sha256_file(path)
                .map_err(|source| VerifyError::Io {
                    path: path.display().to_string(),
                    source,
                })
                .in_step_for(Step::Verify, label.clone())?;
            if computed != expected {
                return Err(StepError::new(
                    Step::Verify,
                    VerifyError::Digest {
                        input: label.clone(),
                        expected: expected.into(),
                        computed,
                        pinned_by,
                    },
                )
                .with_input(label));
            }
            Ok(())
        };
        for (k, p) in &fetched.crates {
            check(k.label(), p, &k.checksum, "Cargo.lock")?;
        }
        if let (Some(p), Some(pin)) = (&fetched.toolchain, &plan.manifest.toolchain) {
            check(
                "toolchain".into(),
                p,
                &pin.sha256,
                "kettle.toml [toolchain]",
            )?;
        }
        if let Some(p) = &fetched.rootfs {
            check(
                "rootfs".into(),
                p,
                &plan.manifest.rootfs.sha256,
                "kettle.toml [rootfs]",
            )?;
        }
        if !matches!(self.tools, Tools::Pinned) {
            log::warn!("local mode with host tools: the toolchain and root filesystem are the host's and are NOT verified against kettle.toml");
        }
        Ok(())
    }

    /// Returns (build root, toolchain root).
    fn unpack(
        &self,
        plan: &Plan,
        fetched: &Fetched,
    ) -> Result<(PathBuf, Option<PathBuf>), StepError> {
        let io = |what: &str| {
            let what = what.to_string();
            move |source| StepError::new(Step::Unpack, UnpackStepError::Io { what, source })
        };
        let vendor_dir = self.work.join("vendor");
        fs::create_dir_all(&vendor_dir).map_err(io("vendor dir"))?;
        for (k, p) in &fetched.crates {
            let bytes = read_bounded(p, MAX_CRATE_BYTES).map_err(|e| {
                StepError::new(
                    Step::Unpack,
                    UnpackStepError::Io {
                        what: k.label(),
                        source: std::io::Error::other(e.to_string()),
                    },
                )
            })?;
            // The bytes unpacked are the bytes hashed again here, so a file swapped after verify cannot slip in.
            if crate::digest::sha256_bytes(&bytes) != k.checksum {
                return Err(StepError::new(
                    Step::Verify,
                    VerifyError::Digest {
                        input: k.label(),
                        expected: k.checksum.clone(),
                        computed: crate::digest::sha256_bytes(&bytes),
                        pinned_by: "Cargo.lock",
                    },
                )
                .with_input(k.label()));
            }
            vendor::vendor_crate(k, &bytes, &vendor_dir)
                .map_err(UnpackStepError::from)
                .in_step_for(Step::Unpack, k.label())?;
            self.consumed(p);
        }
        match &self.tools {
            Tools::Host { toolchain_root } => {
                let root = self.work.join("root");
                fs::create_dir_all(&root).map_err(io("build root"))?;
                Ok((root, Some(toolchain_root.clone())))
            }
            Tools::Pinned => {
                let root = self.work.join("rootfs");
                let rootfs = fetched.rootfs.as_ref().expect("pinned rootfs fetched");
                let reader = open_archive(rootfs)
                    .map_err(|source| UnpackStepError::Archive {
                        what: "rootfs".into(),
                        source,
                    })
                    .in_step_for(Step::Unpack, "rootfs")?;
                unpack(reader, &root, &UnpackLimits::TREE)
                    .map_err(|source| UnpackStepError::Archive {
                        what: "rootfs".into(),
                        source,
                    })
                    .in_step_for(Step::Unpack, "rootfs")?;
                self.consumed(rootfs);
                let toolchain = match &fetched.toolchain {
                    None => None,
                    Some(t) => {
                        let dir = self.work.join("toolchain");
                        let reader = open_archive(t)
                            .map_err(|source| UnpackStepError::Archive {
                                what: "toolchain".into(),
                                source,
                            })
                            .in_step_for(Step::Unpack, "toolchain")?;
                        unpack(reader, &dir, &UnpackLimits::TREE)
                            .map_err(|source| UnpackStepError::Archive {
                                what: "toolchain".into(),
                                source,
                            })
                            .in_step_for(Step::Unpack, "toolchain")?;
                        self.consumed(t);
                        Some(
                            toolchain_root(&dir)
                                .ok_or(UnpackStepError::ToolchainLayout)
                                .in_step_for(Step::Unpack, "toolchain")?,
                        )
                    }
                };
                if plan.recipe == Recipe::CargoBuild && toolchain.is_none() {
                    return Err(
                        StepError::new(Step::Unpack, UnpackStepError::ToolchainLayout)
                            .with_input("toolchain"),
                    );
                }
                Ok((root, toolchain))
            }
        }
    }

    fn build(
        &self,
        plan: &Plan,
        root: &Path,
        toolchain: Option<&Path>,
        commit_raw: &[u8],
    ) -> Result<(), StepError> {
        let io = |what: &str| {
            let what = what.to_string();
            move |source| StepError::new(Step::Build, BuildError::Io { what, source })
        };
        let src = self.src_dir();
        let home = self.work.join("home");
        let cargo_home = home.join("cargo");
        fs::create_dir_all(&cargo_home).map_err(io("build home"))?;
        fs::write(
            cargo_home.join("config.toml"),
            vendor::cargo_config(SANDBOX_VENDOR),
        )
        .map_err(io("cargo config"))?;
        // As root, hand the writable trees to the build uid; rootless, the caller's own
        // files already appear as the build uid inside the user namespace.
        if sandbox::has_root() {
            sandbox::chown_tree(&src).map_err(io("hand the source tree to the build user"))?;
            sandbox::chown_tree(&home).map_err(io("hand the build home to the build user"))?;
        }

        let mut binds = vec![
            Bind {
                source: src.clone(),
                target: SANDBOX_SRC.into(),
                writable: true,
            },
            Bind {
                source: home.clone(),
                target: SANDBOX_HOME.into(),
                writable: true,
            },
            Bind {
                source: self.work.join("vendor"),
                target: SANDBOX_VENDOR.into(),
                writable: false,
            },
        ];
        if let Some(t) = toolchain {
            binds.push(Bind {
                source: t.to_path_buf(),
                target: SANDBOX_TOOLCHAIN.into(),
                writable: false,
            });
        }
        let host_dirs = match self.tools {
            Tools::Host { .. } => ["/usr", "/bin", "/lib", "/lib64", "/sbin", "/etc"]
                .iter()
                .map(PathBuf::from)
                .collect(),
            Tools::Pinned => Vec::new(),
        };
        let mut env = vec![
            (
                "PATH".to_string(),
                format!("{SANDBOX_TOOLCHAIN}/bin:/usr/local/bin:/usr/bin:/bin"),
            ),
            ("HOME".into(), SANDBOX_HOME.into()),
            ("CARGO_HOME".into(), format!("{SANDBOX_HOME}/cargo")),
            ("CARGO_TERM_COLOR".into(), "never".into()),
            ("TMPDIR".into(), "/tmp".into()),
            ("LANG".into(), "C.UTF-8".into()),
            ("TZ".into(), "UTC".into()),
        ];
        if let Some(epoch) = committer_time(commit_raw) {
            env.push(("SOURCE_DATE_EPOCH".into(), epoch.to_string()));
        }
        let argv = match plan.recipe {
            Recipe::CargoBuild => ["cargo", "build", "--locked", "--offline", "--release"]
                .iter()
                .map(|s| s.to_string())
                .collect(),
            Recipe::Script => plan.manifest.build.command.clone().unwrap_or_default(),
        };
        let secs = self.request.limits.build_seconds();
        let spec = SandboxSpec {
            root: root.to_path_buf(),
            host_dirs,
            binds,
            argv,
            env,
            cwd: SANDBOX_SRC.into(),
            limits: SandboxLimits {
                wall_seconds: secs,
                cpu_seconds: secs,
                data_bytes: self.request.limits.max_memory_bytes,
                file_bytes: 16 << 30,
                processes: 4096,
                open_files: 4096,
            },
        };
        sandbox::run(&spec).in_step(Step::Build)
    }

    fn hash_outputs(&self, plan: &Plan) -> Result<Vec<Subject>, StepError> {
        let src = self.src_dir();
        plan.manifest
            .build
            .outputs
            .iter()
            .map(|name| {
                let path = regular_file_without_symlinks(&src, name)
                    .in_step_for(Step::Hash, name.clone())?;
                let sha256 = sha256_file(&path)
                    .map_err(|source| HashError::Io {
                        name: name.clone(),
                        source,
                    })
                    .in_step_for(Step::Hash, name.clone())?;
                Ok(Subject {
                    name: name.clone(),
                    sha256,
                    path,
                })
            })
            .collect()
    }
}

/// The only entry of `dir`, when it is a directory (not a symlink).
fn single_top_dir(dir: &Path) -> Option<PathBuf> {
    let entries: Vec<_> = fs::read_dir(dir).ok()?.filter_map(Result::ok).collect();
    match entries.as_slice() {
        [one] if one.file_type().ok()?.is_dir() => Some(one.path()),
        _ => None,
    }
}

/// The toolchain root inside an unpacked bundle: the top, or its single top directory.
fn toolchain_root(dir: &Path) -> Option<PathBuf> {
    let ok = |d: &Path| d.join("bin/cargo").is_file() && d.join("bin/rustc").is_file();
    if ok(dir) {
        return Some(dir.to_path_buf());
    }
    let entries: Vec<_> = fs::read_dir(dir).ok()?.filter_map(Result::ok).collect();
    match entries.as_slice() {
        [one] if one.file_type().ok()?.is_dir() && ok(&one.path()) => Some(one.path()),
        _ => None,
    }
}

/// Resolves an output path, refusing symlinks anywhere along it and non-regular files.
fn regular_file_without_symlinks(base: &Path, rel: &str) -> Result<PathBuf, HashError> {
    let mut cur = base.to_path_buf();
    for c in Path::new(rel).components() {
        cur.push(c);
        match fs::symlink_metadata(&cur) {
            Ok(m) if m.file_type().is_symlink() => return Err(HashError::NotRegular(rel.into())),
            Ok(_) => {}
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                return Err(HashError::Missing(rel.into()))
            }
            Err(source) => {
                return Err(HashError::Io {
                    name: rel.into(),
                    source,
                })
            }
        }
    }
    if !fs::symlink_metadata(&cur)
        .map(|m| m.is_file())
        .unwrap_or(false)
    {
        return Err(HashError::NotRegular(rel.into()));
    }
    Ok(cur)
}

/// The committer timestamp of a raw commit object (for SOURCE_DATE_EPOCH).
fn committer_time(raw: &[u8]) -> Option<i64> {
    let text = std::str::from_utf8(raw).ok()?;
    let header = text.split("\n\n").next()?;
    let line = header.lines().find(|l| l.starts_with("committer "))?;
    let mut parts = line.rsplitn(3, ' ');
    let _tz = parts.next()?;
    parts.next()?.parse().ok()
}

fn read_bounded(path: &Path, limit: u64) -> Result<Vec<u8>, FetchError> {
    let f = fs::File::open(path).map_err(|source| {
        if source.kind() == std::io::ErrorKind::NotFound {
            FetchError::Missing {
                what: path
                    .file_name()
                    .map(|n| n.to_string_lossy().into_owned())
                    .unwrap_or_default(),
                path: path.display().to_string(),
            }
        } else {
            FetchError::Io {
                path: path.display().to_string(),
                source,
            }
        }
    })?;
    let mut v = Vec::new();
    f.take(limit + 1)
        .read_to_end(&mut v)
        .map_err(|source| FetchError::Io {
            path: path.display().to_string(),
            source,
        })?;
    if v.len() as u64 > limit {
        return Err(FetchError::CommitTooLarge);
    }
    Ok(v)
}

fn download_to(client: &Https, url: &str, path: &Path) -> Result<(), FetchError> {
    let io = |source| FetchError::Io {
        path: path.display().to_string(),
        source,
    };
    if let Some(p) = path.parent() {
        fs::create_dir_all(p).map_err(io)?;
    }
    let mut f = fs::File::create(path).map_err(io)?;
    client.download(url, &mut f, MAX_DOWNLOAD_BYTES)?;
    Ok(())
}

fn attest(
    tee: Tee,
    attestor: Attestor<'_>,
    provenance: &[u8],
) -> Result<Option<Evidence>, StepError> {
    let report_data = kettle_attest::binding::report_data_for(provenance);
    match attestor {
        Attestor::None => Ok(None),
        Attestor::Given(p) => p
            .request_report(&report_data)
            .map(Some)
            .map_err(AttestError::from)
            .in_step(Step::Attest),
        Attestor::Guest => {
            let mut provider: Box<dyn ReportProvider> = match tee {
                Tee::SevSnp => kettle_attest::detect_hardware()
                    .ok_or(AttestError::NoHardware)
                    .in_step(Step::Attest)?,
                Tee::Simulated => Box::new(
                    kettle_attest::simulated::PspClient::open_port("kettle.psp")
                        .map_err(AttestError::from)
                        .in_step(Step::Attest)?,
                ),
            };
            provider
                .request_report(&report_data)
                .map(Some)
                .map_err(AttestError::from)
                .in_step(Step::Attest)
        }
    }
}

/// Writes a successful build to `sink` (artifacts, provenance.json, evidence, chain.pem, then status.json).
pub fn emit(built: &Built, sink: &mut dyn OutputSink) -> Result<(), StepError> {
    timed(Step::Emit, "outputs", || {
        let io = |what: &str| {
            let what = what.to_string();
            move |source| StepError::new(Step::Emit, EmitError::Io { what, source })
        };
        for s in &built.subjects {
            sink.put_file(&format!("{}/{}", output::ARTIFACTS_DIR, s.name), &s.path)
                .map_err(io(&s.name))?;
        }
        sink.put_bytes(output::PROVENANCE_FILE, &built.provenance)
            .map_err(io(output::PROVENANCE_FILE))?;
        let attestation = match &built.evidence {
            Some(ev) => {
                sink.put_bytes(output::EVIDENCE_FILE, &ev.report)
                    .map_err(io(output::EVIDENCE_FILE))?;
                if let Some(chain) = &ev.cert_chain_pem {
                    sink.put_bytes(output::CHAIN_FILE, chain)
                        .map_err(io(output::CHAIN_FILE))?;
                }
                ev.provider.to_string()
            }
            None => {
                "none: no report provider was given, so nothing is hardware-attested".to_string()
            }
        };
        let status = Status {
            ok: true,
            attested: built.evidence.is_some(),
            attestation,
            artifacts: built.subjects.iter().map(|s| s.name.clone()).collect(),
        };
        sink.put_bytes(
            output::STATUS_FILE,
            &serde_json::to_vec_pretty(&status).expect("json"),
        )
        .map_err(io(output::STATUS_FILE))?;
        sink.finish().map_err(io("output"))?;
        Ok((
            (),
            format!(
                "{} artifacts{}",
                built.subjects.len(),
                if built.evidence.is_some() {
                    " with evidence"
                } else {
                    ", NOT attested"
                }
            ),
        ))
    })
}

/// Writes `error.json` for a failed build to `sink`.
pub fn emit_error(err: &StepError, sink: &mut dyn OutputSink) -> std::io::Result<()> {
    sink.put_bytes(
        output::ERROR_FILE,
        &serde_json::to_vec_pretty(&err.to_error_json()).expect("json"),
    )?;
    sink.finish()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn committer_time_is_read_from_the_commit_header() {
        let raw = b"tree 4b825dc642cb6eb9a060e54bf8d69288fbee4904\nauthor A <a@x> 1600000000 +0200\ncommitter C <c@x> 1700000000 -0500\n\ncommitter 5 +0000\n";
        assert_eq!(committer_time(raw), Some(1_700_000_000));
        assert_eq!(committer_time(b"tree x\n\nmessage"), None);
    }

    #[test]
    fn toolchain_root_is_the_top_or_a_single_top_directory() {
        let tmp = tempfile::tempdir().unwrap();
        let make = |d: &Path| {
            fs::create_dir_all(d.join("bin")).unwrap();
            fs::write(d.join("bin/cargo"), b"").unwrap();
            fs::write(d.join("bin/rustc"), b"").unwrap();
        };
        let top = tmp.path().join("top");
        make(&top);
        assert_eq!(toolchain_root(&top), Some(top.clone()));
        let nested = tmp.path().join("nested");
        make(&nested.join("rust-1.85.0"));
        assert_eq!(toolchain_root(&nested), Some(nested.join("rust-1.85.0")));
        fs::create_dir_all(nested.join("other")).unwrap();
        assert_eq!(
            toolchain_root(&nested),
            None,
            "two top directories are ambiguous"
        );
        assert_eq!(toolchain_root(tmp.path()), None);
    }
}
