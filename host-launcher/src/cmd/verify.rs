//! `kettle verify`: the whole trust chain of DESIGN.md over a build's evidence,
//! offline by default. Exit 0 verified, 1 rejected, 2 could not run.

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use clap::Args;
use kettle::kds::{self, KdsClient};
use kettle_attest::CertChain;
use kettle_image::ImageManifest;
use kettle_verify::policy::{FlagsError, NamedMeasurement, VerifierFlags};
use kettle_verify::{
    vsa, AppliedPolicy, Bundle, BundleFiles, CheckId, Expectations, LoadError, MinTcb, Policy,
    PolicyError, SourcePin, Verdict,
};

/// Exit code of a verification that ran and rejected the evidence.
pub const EXIT_REJECTED: u8 = 1;

/// What `kettle verify --help` says after the generated check list ([`CheckId::listing`]).
const VERIFY_HELP: &str = "In words: 1. the report's certificate chain \
(ARK -> ASK -> VCEK, pinned AMD roots), its signer and signature; 2. measurement = the launch digest YOU name \
(--manifest of the published image, or --measurement), debug, migration agent and CXL forbidden by the guest \
policy, VMPL 0, reported TCB at least the floor (built in per processor generation, or --min-tcb), no TCB \
rollback, the processor generation accepted (report.processor_generation: EPYC Milan refused unless \
--allow-milan or the policy's processor_generations, because its VCEK root seed can be extracted, arXiv \
2605.12990), the chip one the policy lists (report.chip_id, only with a chip_ids list), no simulated evidence \
unless --allow-simulated; 3. report_data = SHA-256(provenance.json bytes as \
read) || 32 zero bytes; 4. provenance.json is canonical (RFC 8785), an in-toto Statement v1 with SLSA \
provenance v1; 5. every artifact is a subject; 6. repository and ref as given, the built commit is the one you \
pinned (--commit, --source, or --any-source; with --source the provenance's gitTree must be your clone's tree \
of it), builder.id and buildType accepted. A repository or ref only the build host resolved (cached mode) fails \
when the commit is not pinned, unless --accept-host-resolved.\n\nThe verdict line never says more than was \
checked: SIMULATED, report only, LOOSENED (policy fields a flag replaced), OPTED IN (Milan, host-resolved \
sources) and `not checked: ...` (no CRL, no --at, no artifact, ...) are all on it.\n\nUnder --policy, flags only \
narrow it (--ref R: the ref must be R AND match the policy's refs); --allow-* flags, --accept-host-resolved and --any-source are not \
applied unless --loosen-policy FIELD names the field they replace.\n\nExit status: 0 verified, \
1 rejected (every failed check is named, with the policy field it enforces), 2 could not run.\n\nThe documented way \
to verify is against the platform team's published policy (kettle policy init):\n  kettle verify out/ --policy \
policy.json --ref refs/tags/v1.2.0 --source ~/src/my-clone\nWithout a policy:\n  kettle verify out/ --manifest \
image/manifest.json --repo https://github.com/o/r --ref refs/heads/main --commit 1f2e...\n  kettle verify \
--provenance out/provenance.json --evidence out/evidence --chain out/chain.pem --measurement HEX \
--source ~/src/r --ref refs/tags/v1.2.0 --artifact out/artifacts/hello";

/// Options of `kettle verify`.
#[derive(Args, Debug)]
#[command(
    // With no arguments, the forms to use (the output-directory one first), not a missing flag.
    arg_required_else_help = true,
    override_usage = "kettle verify DIR --policy POLICY [OPTIONS]\n       \
kettle verify DIR --manifest MANIFEST --repo URL --ref REF --commit SHA [OPTIONS]\n       \
kettle verify --evidence FILE --provenance FILE --measurement HEX [OPTIONS]   (files outside an output directory)",
    after_long_help = format!(
    "Checks, in order (DESIGN.md's trust chain):\n{}\n{VERIFY_HELP}",
    CheckId::listing()
))]
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
    /// Your own clone of the repository: the built commit must be the tip of --ref there
    /// (under a policy naming exactly one ref, that ref), and the provenance's gitTree the
    /// tree of that commit in your clone.
    #[arg(long, value_name = "DIR", conflicts_with = "any_source")]
    pub source: Option<PathBuf>,
    /// With --source: accept any commit reachable from the ref's tip, not only the tip.
    #[arg(long, requires = "source")]
    pub reachable: bool,
    /// Accept a build of any commit (the verdict still names the built commit).
    #[arg(long)]
    pub any_source: bool,
    /// The verification policy to enforce (the platform team's `kettle policy init` output,
    /// reviewed). Under a policy a flag only NARROWS it (--ref, --repo, --commit, --source,
    /// --builder-id, --build-type, --min-tcb, --manifest/--measurement: the flag and the policy
    /// must both hold); a flag that would loosen it (--allow-simulated, --allow-vlek,
    /// --allow-milan, --accept-host-resolved, --any-source) is not applied unless
    /// --loosen-policy names the field.
    #[arg(long, value_name = "FILE")]
    pub policy: Option<PathBuf>,
    /// Let the flag for policy field FIELD replace it (repeatable): e.g. `--loosen-policy
    /// source.refs --ref R` accepts ref R whatever the policy's refs. The verdict line says
    /// LOOSENED and names each field and flag.
    #[arg(long = "loosen-policy", value_name = "FIELD",
          value_parser = clap::builder::PossibleValuesParser::new(kettle_verify::policy::LOOSENABLE_FIELDS))]
    pub loosen_policy: Vec<String>,
    /// Accepted runDetails.builder.id (repeatable; default: the policy's, else Kettle's SEV-SNP builder).
    #[arg(long = "builder-id", value_name = "ID", action = clap::ArgAction::Append)]
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
    /// Accept EPYC Milan reports, refused by default: a software-only attack extracts Milan's
    /// VCEK root seed (arXiv 2605.12990, May 2026), so a host running it can forge reports for
    /// any TCB. The verdict line says OPTED IN.
    #[arg(long)]
    pub allow_milan: bool,
    /// With the commit not pinned, accept a repository and ref that only the build host
    /// resolved (cached mode; otherwise provenance.repository and provenance.ref fail).
    /// The verdict line says OPTED IN.
    #[arg(long)]
    pub accept_host_resolved: bool,
    /// Report only (no provenance): the exact report_data expected, 128 hex digits
    /// (e.g. your nonce). Without it a report alone must have a zero second half.
    #[arg(long, value_name = "HEX", conflicts_with_all = ["dir", "provenance"])]
    pub report_data: Option<String>,
    /// AMD's CRL for the report's processor generation (DER, repeatable; of several, the
    /// newest by thisUpdate decides); revoked ASK/ASVK or VCEK/VLEK serials are rejected.
    /// Without one, revocation is not checked; without --at, the CRL's age is not (both said).
    #[arg(long = "crl", value_name = "FILE")]
    pub crls: Vec<PathBuf>,
    /// Fetch the CRL from AMD's KDS, always afresh (a copy is kept under the cache dir for a
    /// later --crl). With --crl files too, the newest CRL by thisUpdate decides.
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
    #[arg(long, value_parser = kds::product_parser())]
    pub product: Option<kds::KdsProduct>,
    /// Base URL of the key distribution service (for mirrors and tests).
    #[arg(long, value_name = "URL", default_value = kds::AMD_KDS_URL)]
    pub kds_url: String,
    /// Print the verdict as JSON.
    #[arg(long)]
    pub json: bool,
    /// Also write a SLSA Verification Summary Attestation v1 (an in-toto Statement, RFC 8785
    /// JSON) to FILE, for a pass and for a rejection alike: the verified artifacts, the policy
    /// and its digest, the provenance and evidence digests, PASSED or FAILED, and the build level
    /// shown (SLSA_BUILD_LEVEL_3 only for hardware-attested evidence bound to its provenance).
    #[arg(long, value_name = "FILE")]
    pub vsa: Option<PathBuf>,
}

/// Why `kettle verify` could not run.
#[derive(Debug, thiserror::Error)]
pub enum VerifyCmdError {
    /// An input could not be read.
    #[error(transparent)]
    Load(#[from] LoadError),
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
    /// The VSA could not be written.
    #[error("--vsa {path}: cannot write it: {source}")]
    WriteVsa {
        /// Where it was to go.
        path: PathBuf,
        /// Why not.
        source: std::io::Error,
    },
    /// The flags and the policy do not make expectations (no measurement, a stray
    /// --loosen-policy).
    #[error(transparent)]
    Flags(#[from] FlagsError),
    /// The auditor's clone could not say which tree a commit has.
    #[error("--source {dir}: cannot list the commits and trees of {git_ref}: {message}")]
    CloneTrees {
        /// The clone.
        dir: PathBuf,
        /// The ref listed.
        git_ref: String,
        /// What git said.
        message: String,
    },
}

/// Runs `kettle verify`.
pub fn run(args: VerifyArgs) -> ExitCode {
    match verify(&args).and_then(|(verdict, bundle)| {
        if let Some(path) = &args.vsa {
            write_vsa(path, &verdict, &bundle, &args)?;
        }
        Ok(verdict)
    }) {
        Ok(verdict) => {
            let text = if args.json {
                serde_json::to_string_pretty(&verdict).expect("a verdict always serializes")
            } else {
                verdict.to_string()
            };
            crate::print_stdout(&text);
            if verdict.verified() {
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
            // It names host paths (the output directory, the files in it): escaped.
            eprintln!(
                "kettle verify: could not run: {}",
                kettle::console::escape(&e.to_string())
            );
            ExitCode::from(crate::EXIT_CANNOT_RUN)
        }
    }
}

/// Writes the VSA over `verdict` to `path`, whole or not at all (a temporary file beside
/// it, renamed into place).
fn write_vsa(
    path: &Path,
    verdict: &Verdict,
    bundle: &Bundle,
    args: &VerifyArgs,
) -> Result<(), VerifyCmdError> {
    let name_of = |p: Option<&PathBuf>, default: &str| {
        p.and_then(|p| p.file_name())
            .map_or_else(|| default.to_owned(), |n| n.to_string_lossy().into_owned())
    };
    let (evidence_uri, provenance_uri) = match &args.dir {
        Some(_) => ("evidence".to_owned(), "provenance.json".to_owned()),
        None => (
            name_of(args.evidence.as_ref(), "evidence"),
            name_of(args.provenance.as_ref(), "provenance.json"),
        ),
    };
    let resource_uri = vsa::repository_of(bundle.provenance.as_deref())
        .or_else(|| {
            let dir = std::path::absolute(args.dir.as_ref()?).ok()?;
            Some(format!("file://{}", dir.display()))
        })
        .unwrap_or_else(|| "urn:kettle:unnamed-resource".to_owned());
    let ctx = vsa::VsaContext {
        verifier_version: [("kettle".to_owned(), env!("CARGO_PKG_VERSION").to_owned())].into(),
        time_verified: kettle_provenance::timestamp::now_rfc3339_utc(),
        flags_policy_uri: "urn:kettle:policy:command-line".to_owned(),
        resource_uri,
        evidence_uri,
        provenance_uri,
    };
    let bytes = vsa::summary(verdict, bundle, &ctx);
    let err = |source| VerifyCmdError::WriteVsa {
        path: path.to_owned(),
        source,
    };
    let dir = path
        .parent()
        .filter(|d| !d.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    let mut tmp = tempfile::NamedTempFile::new_in(dir).map_err(err)?;
    std::io::Write::write_all(&mut tmp, &bytes).map_err(err)?;
    tmp.persist(path).map_err(|e| err(e.error))?;
    Ok(())
}

/// Reads the inputs and runs the verifier; returns the verdict and what it judged.
pub fn verify(args: &VerifyArgs) -> Result<(Verdict, Bundle), VerifyCmdError> {
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
    let verdict = match applied {
        Some(p) => verdict.under_policy(p),
        None => verdict,
    };
    Ok((verdict, bundle))
}

/// What the verifier requires: the flags, filled into [`VerifierFlags`], met with the policy
/// (kettle-verify decides which flag narrows, replaces or is not applied to which field).
fn expectations(
    args: &VerifyArgs,
) -> Result<(Expectations, Option<AppliedPolicy>), VerifyCmdError> {
    // Only what the auditor names: never the manifest.json copy a build host left in the directory.
    let measurement = match (&args.measurement, &args.manifest) {
        (Some(hex), _) => Some(NamedMeasurement {
            digest: kettle_verify::parse_measurement(hex)
                .map_err(VerifyCmdError::BadMeasurement)?,
            source: "--measurement".to_string(),
            flag: "--measurement",
        }),
        (None, Some(path)) => Some(NamedMeasurement {
            digest: manifest_measurement(path)?,
            source: format!("manifest {}", path.display()),
            flag: "--manifest",
        }),
        (None, None) => None,
    };
    let loaded = args.policy.as_deref().map(Policy::load).transpose()?;
    if loaded.is_none() && measurement.is_none() {
        return Err(FlagsError::NoMeasurement.into());
    }
    let git_ref = match (&args.git_ref, &args.source) {
        (Some(r), Some(dir)) => Some(kettle::source::full_ref_in(dir, r)?),
        (r, _) => r.clone(),
    };
    let policy_ref = loaded
        .as_ref()
        .and_then(|l| l.policy.single_exact_ref())
        .map(str::to_owned);
    let source = source_pin(args, policy_ref.as_deref())?;
    let source_trees = match &args.source {
        Some(dir) => {
            let r = args
                .git_ref
                .clone()
                .or(policy_ref)
                .expect("source_pin checked a ref");
            clone_trees(dir, &kettle::source::full_ref_in(dir, &r)?, args.reachable)?
        }
        None => Default::default(),
    };
    let flags = VerifierFlags {
        measurement,
        min_tcb: args.min_tcb,
        allow_simulated: args.allow_simulated,
        allow_vlek: args.allow_vlek,
        allow_milan: args.allow_milan,
        accept_host_resolved: args.accept_host_resolved,
        repository: args.repo.clone(),
        git_ref,
        builder_ids: args.builder_ids.clone(),
        build_type: args.build_type.clone(),
        source,
        source_trees,
        loosen: args.loosen_policy.iter().cloned().collect(),
    };
    let (mut expect, applied) = flags.expectations(loaded.as_ref())?;
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
    Ok((expect, applied))
}

/// commit -> tree of the ref's tip in the auditor's clone (with `reachable`, of every commit
/// reachable from it), for comparing with the provenance's gitTree.
fn clone_trees(
    dir: &Path,
    git_ref: &str,
    reachable: bool,
) -> Result<std::collections::BTreeMap<String, String>, VerifyCmdError> {
    let err = |message: String| VerifyCmdError::CloneTrees {
        dir: dir.to_path_buf(),
        git_ref: git_ref.to_string(),
        message,
    };
    let mut cmd = std::process::Command::new("git");
    cmd.arg("-C").arg(dir).args(["log", "--format=%H %T"]);
    if !reachable {
        cmd.arg("-n1");
    }
    // `--end-of-options` so that a ref can never be read as an option.
    cmd.args(["--end-of-options", git_ref]);
    let out = cmd.output().map_err(|e| err(e.to_string()))?;
    if !out.status.success() {
        return Err(err(String::from_utf8_lossy(&out.stderr).trim().to_string()));
    }
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(|l| {
            l.split_once(' ')
                .map(|(c, t)| (c.to_string(), t.to_string()))
                .ok_or_else(|| err(format!("unexpected git log line {l:?}")))
        })
        .collect()
}

/// The commit the auditor pins: `--commit`, the ref's tip in `--source` (`--ref`, else the
/// policy's one exact ref), `--any-source`, or none.
fn source_pin(args: &VerifyArgs, policy_ref: Option<&str>) -> Result<SourcePin, VerifyCmdError> {
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
        (None, Some(dir)) => {
            let r = args.git_ref.as_deref().or(policy_ref).ok_or_else(|| {
                VerifyCmdError::BadArgument {
                    flag: "--source",
                    message: "which ref's tip must have been built? pass --ref REF (a policy gives it only when its source.refs is exactly one ref without `*`)".into(),
                }
            })?;
            kettle::source::pin_from_clone(
                dir,
                &kettle::source::full_ref_in(dir, r)?,
                args.reachable,
            )?
        }
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

#[cfg(test)]
mod tests {
    use clap::Args;

    use super::*;

    /// `kettle verify --help` names every check (the list is generated from `CheckId`).
    #[test]
    fn the_long_help_lists_every_check_under_its_step() {
        let help = VerifyArgs::augment_args(clap::Command::new("verify"))
            .render_long_help()
            .to_string();
        for c in CheckId::ALL {
            let line = format!(
                "  {} {}: ",
                c.trust_chain_step(),
                CheckId::step_title(c.trust_chain_step())
            );
            let listed = help
                .lines()
                .find(|l| l.starts_with(&line))
                .unwrap_or_else(|| panic!("no line {line:?} in:\n{help}"));
            assert!(
                listed.contains(c.listed_name()),
                "{c} missing from {listed:?}"
            );
        }
    }
}
