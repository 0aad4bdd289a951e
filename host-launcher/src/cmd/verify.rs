//! `kettle verify`: the whole trust chain of DESIGN.md over a build's evidence,
//! offline by default. Exit 0 verified, 1 rejected, 2 could not run.

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use clap::Args;
use kettle::kds::{self, KdsClient};
use kettle_attest::CertChain;
use kettle_image::ImageManifest;
use kettle_verify::{
    AppliedPolicy, Bundle, BundleFiles, Expectations, LoadError, MinTcb, Policy, PolicyError,
    SourcePin, TcbFloor, Verdict,
};

/// Exit code of a verification that ran and rejected the evidence.
pub const EXIT_REJECTED: u8 = 1;

/// Options of `kettle verify`.
#[derive(Args, Debug)]
#[command(
    after_long_help = "Checks, in order (DESIGN.md's trust chain): 1. the report's certificate chain \
(ARK -> ASK -> VCEK, pinned AMD roots), its signer and signature; 2. measurement = the launch digest YOU name \
(--manifest of the published image, or --measurement), debug, migration agent and CXL forbidden by the guest \
policy, VMPL 0, reported TCB at least the floor (built in per processor generation, or --min-tcb), no TCB \
rollback, no simulated evidence unless --allow-simulated; 3. report_data = SHA-256(provenance.json bytes as \
read) || 32 zero bytes; 4. provenance.json is canonical (RFC 8785), an in-toto Statement v1 with SLSA \
provenance v1; 5. every artifact is a subject; 6. repository and ref as given, the built commit is the one you \
pinned (--commit, --source, or --any-source), builder.id and buildType accepted.\n\nExit status: 0 verified, \
1 rejected (every failed check is named, with the policy field it enforces), 2 could not run.\n\nThe documented way \
to verify is against the platform team's published policy (kettle policy init):\n  kettle verify out/ --policy \
policy.json --ref refs/tags/v1.2.0 --source ~/src/my-clone\nWithout a policy:\n  kettle verify out/ --manifest \
image/manifest.json --repo https://github.com/o/r --ref refs/heads/main --commit 1f2e...\n  kettle verify \
--provenance out/provenance.json --evidence out/evidence --chain out/chain.pem --measurement HEX \
--source ~/src/r --ref refs/tags/v1.2.0 --artifact out/artifacts/hello"
)]
pub struct VerifyArgs {
    /// An output directory of `kettle build` (provenance.json, evidence, chain.pem, artifacts/).
    #[arg(value_name = "DIR", conflicts_with_all = ["provenance", "evidence"])]
    pub dir: Option<PathBuf>,
    /// provenance.json of the build (omit to verify the report alone).
    #[arg(long, value_name = "FILE")]
    pub provenance: Option<PathBuf>,
    /// The raw SNP attestation report.
    #[arg(long, value_name = "FILE", required_unless_present = "dir")]
    pub evidence: Option<PathBuf>,
    /// PEM bundle with the VCEK (and optionally ASK and ARK; the pinned AMD ones are used otherwise).
    #[arg(long, value_name = "FILE")]
    pub chain: Option<PathBuf>,
    /// The published image manifest; its launch digest is the expected measurement.
    #[arg(long, value_name = "FILE", conflicts_with = "measurement")]
    pub manifest: Option<PathBuf>,
    /// The expected launch digest (96 hex digits) instead of a manifest.
    #[arg(long, value_name = "HEX")]
    pub measurement: Option<String>,
    /// A built artifact; its SHA-256 must be a subject of the provenance (repeatable).
    #[arg(long = "artifact", value_name = "FILE")]
    pub artifacts: Vec<PathBuf>,
    /// Expected externalParameters.repository.
    #[arg(long, value_name = "URL")]
    pub repo: Option<String>,
    /// Expected externalParameters.ref.
    #[arg(long = "ref", value_name = "REF")]
    pub git_ref: Option<String>,
    /// The commit that must have been built (full hex id).
    #[arg(long, value_name = "SHA", conflicts_with_all = ["source", "any_source"])]
    pub commit: Option<String>,
    /// Your own clone of the repository: the built commit must be the tip of --ref there.
    #[arg(
        long,
        value_name = "DIR",
        requires = "git_ref",
        conflicts_with = "any_source"
    )]
    pub source: Option<PathBuf>,
    /// With --source: accept any commit reachable from the ref's tip, not only the tip.
    #[arg(long, requires = "source")]
    pub reachable: bool,
    /// Accept a build of any commit (the verdict still names the built commit).
    #[arg(long)]
    pub any_source: bool,
    /// The verification policy to enforce (the platform team's `kettle policy init` output,
    /// reviewed); the flags below replace single fields of it, and the verdict says which.
    #[arg(long, value_name = "FILE")]
    pub policy: Option<PathBuf>,
    /// Accepted runDetails.builder.id (repeatable; default: the policy's, else Kettle's SEV-SNP builder).
    #[arg(long = "builder-id", value_name = "ID")]
    pub builder_ids: Vec<String>,
    /// Accept reports signed by a cloud provider's VLEK (AWS EC2), chained ARK -> ASVK -> VLEK.
    #[arg(long)]
    pub allow_vlek: bool,
    /// Expected buildDefinition.buildType (default: any Kettle recipe).
    #[arg(long, value_name = "URI")]
    pub build_type: Option<String>,
    /// Minimum reported TCB, e.g. bl=3,tee=0,snp=8,ucode=115.
    #[arg(long, value_name = "SPEC", value_parser = kettle_verify::parse_min_tcb)]
    pub min_tcb: Option<MinTcb>,
    /// Accept evidence signed by the simulated PSP, and its builder id (test keys: proves
    /// nothing about hardware; the verdict says SIMULATED).
    #[arg(long)]
    pub allow_simulated: bool,
    /// Report only (no provenance): the exact report_data expected, 128 hex digits
    /// (e.g. your nonce). Without it a report alone must have a zero second half.
    #[arg(long, value_name = "HEX", conflicts_with_all = ["dir", "provenance"])]
    pub report_data: Option<String>,
    /// AMD's CRL for the report's processor generation (DER, repeatable); revoked ASK/ASVK
    /// or VCEK/VLEK serials are rejected. Without one, revocation is not checked (said so).
    #[arg(long = "crl", value_name = "FILE")]
    pub crls: Vec<PathBuf>,
    /// Fetch the CRL from AMD's KDS (cached under the cache dir until its nextUpdate).
    #[arg(long)]
    pub fetch_crl: bool,
    /// The time to check certificate and CRL validity at (RFC 3339 UTC, e.g.
    /// 2026-12-01T00:00:00Z). Offline verification has no trusted clock: without it,
    /// validity windows are not checked, and the verdict says so.
    #[arg(long, value_name = "TIME")]
    pub at: Option<String>,
    /// Fetch the VCEK from AMD's key distribution service when no chain is given.
    #[arg(long)]
    pub fetch_vcek: bool,
    /// Processor generation for --fetch-vcek when the report does not say (version 2 reports).
    #[arg(long, value_enum)]
    pub product: Option<kds::KdsProduct>,
    /// Base URL of the key distribution service (for mirrors and tests).
    #[arg(long, value_name = "URL", default_value = kds::AMD_KDS_URL)]
    pub kds_url: String,
    /// Print the verdict as JSON.
    #[arg(long)]
    pub json: bool,
}

/// Why `kettle verify` could not run.
#[derive(Debug, thiserror::Error)]
pub enum VerifyCmdError {
    /// An input could not be read.
    #[error(transparent)]
    Load(#[from] LoadError),
    /// Neither --policy, --manifest nor --measurement.
    #[error("no expected measurement: pass --policy (the platform team's verification policy), --manifest with the image's PUBLISHED manifest.json, or --measurement HEX (the manifest.json a build leaves in its output directory is a copy the untrusted build host wrote, so it is never used)")]
    NoMeasurement,
    /// A hex argument is malformed.
    #[error("{flag}: {message}")]
    BadArgument {
        /// The flag.
        flag: &'static str,
        /// What is wrong.
        message: String,
    },
    /// The policy could not be used.
    #[error(transparent)]
    Policy(#[from] PolicyError),
    /// The auditor's clone could not be read.
    #[error("--source: {0}")]
    Source(#[from] kettle::source::SourceError),
    /// --measurement is malformed.
    #[error("--measurement: {0}")]
    BadMeasurement(String),
    /// The manifest could not be used.
    #[error("--manifest {path}: {message}")]
    Manifest {
        /// The manifest path.
        path: PathBuf,
        /// What is wrong.
        message: String,
    },
    /// No chain and no way to get one.
    #[error("no certificate chain: pass --chain FILE (a PEM bundle with the VCEK), or --fetch-vcek to get the VCEK from AMD's KDS")]
    NoChain,
    /// Fetching the VCEK failed.
    #[error(transparent)]
    Kds(#[from] kds::KdsError),
}

/// Runs `kettle verify`.
pub fn run(args: VerifyArgs) -> ExitCode {
    match verify(&args) {
        Ok(verdict) => {
            let text = if args.json {
                serde_json::to_string_pretty(&verdict).expect("a verdict always serializes")
            } else {
                verdict.to_string()
            };
            crate::print_stdout(&text);
            if verdict.verified {
                ExitCode::SUCCESS
            } else {
                ExitCode::from(EXIT_REJECTED)
            }
        }
        Err(e) => {
            if args.json {
                let error = serde_json::json!({ "verified": false, "error": e.to_string() });
                crate::print_stdout(&error.to_string());
            }
            eprintln!("kettle verify: could not run: {e}");
            ExitCode::from(crate::EXIT_CANNOT_RUN)
        }
    }
}

/// Reads the inputs and runs the verifier.
pub fn verify(args: &VerifyArgs) -> Result<Verdict, VerifyCmdError> {
    let mut files = match &args.dir {
        Some(dir) => BundleFiles::output_dir(dir)?,
        None => BundleFiles {
            evidence: args
                .evidence
                .clone()
                .expect("clap requires --evidence without DIR"),
            provenance: args.provenance.clone(),
            ..Default::default()
        },
    };
    files.artifact_files = args.artifacts.clone();
    if args.chain.is_some() {
        files.chain = args.chain.clone();
    }

    let (expect, applied) = expectations(args)?;

    let fetched_vcek = match &files.chain {
        Some(_) => None,
        None if args.fetch_vcek => {
            let report = kettle_verify::bundle::read_regular(
                "attestation report",
                &files.evidence,
                kettle_verify::bundle::MAX_EVIDENCE_BYTES,
            )?;
            Some(
                KdsClient::new(&args.kds_url)
                    .with_product(args.product)
                    .fetch_vcek_for_report(&report)?,
            )
        }
        None => return Err(VerifyCmdError::NoChain),
    };
    let mut bundle = Bundle::load(&files)?;
    if let Some(vcek) = fetched_vcek {
        bundle.chain = Ok(CertChain::from_der_parts(None, None, vcek));
    }

    let mut expect = expect;
    for path in &args.crls {
        expect
            .crls
            .push(kettle_verify::bundle::read_regular("CRL", path, 4 << 20)?);
    }
    if args.fetch_crl {
        let cache = kettle::store::Store::default_root()
            .map_err(|e| VerifyCmdError::BadArgument {
                flag: "--fetch-crl",
                message: e.to_string(),
            })?
            .join("crl");
        expect.crls.push(
            KdsClient::new(&args.kds_url)
                .with_product(args.product)
                .fetch_crl_for_report(&bundle.report, &cache)?,
        );
    }
    let verdict = kettle_verify::verify(&bundle, &expect);
    Ok(match applied {
        Some(p) => verdict.under_policy(p),
        None => verdict,
    })
}

/// What the verifier requires: the policy's fields (or the strict defaults), each flag
/// replacing one field (recorded, so the verdict can say which).
fn expectations(
    args: &VerifyArgs,
) -> Result<(Expectations, Option<AppliedPolicy>), VerifyCmdError> {
    // Only what the auditor names: never the manifest.json copy a build host left in the directory.
    let measurement = match (&args.measurement, &args.manifest) {
        (Some(hex), _) => Some((
            kettle_verify::parse_measurement(hex).map_err(VerifyCmdError::BadMeasurement)?,
            "--measurement".to_string(),
            "--measurement",
        )),
        (None, Some(path)) => Some((
            manifest_measurement(path)?,
            format!("manifest {}", path.display()),
            "--manifest",
        )),
        (None, None) => None,
    };
    let mut overrides = std::collections::BTreeMap::new();
    let (mut expect, loaded) = match (&args.policy, measurement) {
        (Some(path), m) => {
            let loaded = Policy::load(path)?;
            let mut e = loaded.policy.expectations();
            if let Some((digest, source, flag)) = m {
                e.measurements = vec![(digest, source)];
                overrides.insert("measurements", flag.to_string());
            }
            (e, Some(loaded))
        }
        (None, Some((digest, source, _))) => (Expectations::new(digest, source), None),
        (None, None) => return Err(VerifyCmdError::NoMeasurement),
    };
    let mut set = |field: &'static str, flag: &str| {
        if loaded.is_some() {
            overrides.insert(field, flag.to_string());
        }
    };
    if let Some(t) = args.min_tcb {
        expect.min_tcb = TcbFloor::Fixed(t);
        set("min_tcb", "--min-tcb");
    }
    if args.allow_simulated && !expect.allow_simulated {
        expect = expect.accepting_simulated();
        set("allow_simulated", "--allow-simulated");
    }
    if args.allow_vlek && !expect.accept_vlek {
        expect.accept_vlek = true;
        set("signers", "--allow-vlek");
    }
    if let Some(r) = &args.repo {
        expect.provenance.repository = Some(r.clone());
        set("source.repository", "--repo");
    }
    if let Some(r) = expected_ref(args)? {
        expect.provenance.git_ref = Some(r);
        set("source.refs", "--ref");
    }
    if !args.builder_ids.is_empty() {
        expect.provenance.builder_ids = args.builder_ids.clone();
        if args.allow_simulated {
            expect = expect.accepting_simulated();
        }
        set("builder_ids", "--builder-id");
    }
    if let Some(t) = &args.build_type {
        expect.provenance.build_types = vec![t.clone()];
        set("build_types", "--build-type");
    }
    match source_pin(args)? {
        SourcePin::Unpinned => {}
        pin => {
            if expect.provenance.source == SourcePin::Any && pin != SourcePin::Any {
                set("source.any_commit", "--commit/--source");
            }
            expect.provenance.source = pin;
        }
    }
    expect.at = args
        .at
        .as_deref()
        .map(|t| {
            kettle_provenance::timestamp::parse_rfc3339_utc(t)
                .map(|ts| ts.unix_seconds.max(0) as u64)
                .map_err(|e| VerifyCmdError::BadArgument {
                    flag: "--at",
                    message: format!("{t:?}: {e}"),
                })
        })
        .transpose()?;
    expect.report_data = args
        .report_data
        .as_deref()
        .map(|hex| {
            let mut out = [0u8; 64];
            hex::decode_to_slice(hex.trim(), &mut out)
                .map(|()| out)
                .map_err(|e| VerifyCmdError::BadArgument {
                    flag: "--report-data",
                    message: format!("{hex:?} is not 128 hex digits: {e}"),
                })
        })
        .transpose()?;
    let applied = loaded.map(|l| AppliedPolicy {
        name: l.policy.name,
        sha256: l.sha256,
        overrides,
    });
    Ok((expect, applied))
}

/// `--ref` as a full ref: with `--source`, git says whether a short name is a branch or
/// a tag in the auditor's clone; otherwise kettle_wire::source_url's rule (a branch).
/// The comparison itself normalizes both sides again.
fn expected_ref(args: &VerifyArgs) -> Result<Option<String>, VerifyCmdError> {
    let Some(r) = &args.git_ref else {
        return Ok(None);
    };
    Ok(Some(match &args.source {
        Some(dir) => kettle::source::full_ref_in(dir, r)?,
        None => r.clone(),
    }))
}

/// The commit the auditor pins: `--commit`, the ref's tip in `--source`, `--any-source`, or none.
fn source_pin(args: &VerifyArgs) -> Result<SourcePin, VerifyCmdError> {
    Ok(match (&args.commit, &args.source) {
        (Some(c), _) => {
            let ok = matches!(c.len(), 40 | 64) && c.bytes().all(|b| b.is_ascii_hexdigit());
            if !ok {
                return Err(VerifyCmdError::BadArgument {
                    flag: "--commit",
                    message: format!("{c:?} is not a full commit id (40 or 64 hex digits)"),
                });
            }
            SourcePin::Commit(c.to_ascii_lowercase())
        }
        (None, Some(dir)) => kettle::source::pin_from_clone(
            dir,
            &expected_ref(args)?.expect("clap: --source requires --ref"),
            args.reachable,
        )?,
        (None, None) if args.any_source => SourcePin::Any,
        (None, None) => SourcePin::Unpinned,
    })
}

/// The launch digest a manifest publishes.
fn manifest_measurement(path: &Path) -> Result<[u8; 48], VerifyCmdError> {
    ImageManifest::load(path)
        .map(|m| m.launch_digest.0)
        .map_err(|e| VerifyCmdError::Manifest {
            path: path.into(),
            message: e.to_string(),
        })
}
