//! `kettle verify`: the whole trust chain of DESIGN.md over a build's evidence,
//! offline by default. Exit 0 verified, 1 rejected, 2 could not run.

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use clap::Args;
use kettle::kds::{self, KdsClient};
use kettle::verifier::{self, load, Evidence, Expectations, LoadError, ProvenanceExpectations};
use kettle_attest::CertChain;
use kettle_provenance::ids;

/// Exit code of a verification that ran and rejected the evidence.
pub const EXIT_REJECTED: u8 = 1;

/// Options of `kettle verify`.
#[derive(Args, Debug)]
#[command(
    after_long_help = "Checks, in order: the report's certificate chain (ARK -> ASK -> VCEK, pinned AMD roots) and \
signature; measurement = the image's launch digest, debug forbidden, VMPL 0, minimum TCB; report_data = \
SHA-256(provenance.json bytes as read) || 32 zero bytes; provenance.json is canonical (RFC 8785) and a valid \
in-toto Statement v1 with SLSA provenance v1; every artifact is a subject; repository, ref, builder.id and \
buildType are the expected ones.\n\nExit status: 0 verified, 1 rejected (every failed check is named), \
2 could not run.\n\nExamples:\n  kettle verify out/\n  kettle verify --provenance out/provenance.json \
--evidence out/evidence --chain out/chain.pem --manifest image/manifest.json --artifact out/artifacts/hello"
)]
pub struct VerifyArgs {
    /// An output directory of `kettle build` (provenance.json, evidence, chain.pem, artifacts/, manifest.json).
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
    /// Expected runDetails.builder.id.
    #[arg(long, value_name = "ID", default_value = ids::BUILDER_ID)]
    pub builder_id: String,
    /// Expected buildDefinition.buildType (default: any Kettle recipe).
    #[arg(long, value_name = "URI")]
    pub build_type: Option<String>,
    /// Minimum reported TCB, e.g. bl=3,tee=0,snp=8,ucode=115.
    #[arg(long, value_name = "SPEC", value_parser = verifier::parse_min_tcb)]
    pub min_tcb: Option<kettle_attest::MinTcb>,
    /// Accept evidence signed by the simulated PSP (test keys: proves nothing about hardware).
    #[arg(long)]
    pub allow_simulated: bool,
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
    /// Neither --manifest nor --measurement, and no manifest.json in the directory.
    #[error("no expected measurement: pass --manifest <image>/manifest.json (the published image manifest) or --measurement HEX")]
    NoMeasurement,
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
pub fn verify(args: &VerifyArgs) -> Result<verifier::Verdict, VerifyCmdError> {
    let (provenance_path, evidence_path, chain_path, manifest_path, artifacts) = match &args.dir {
        Some(dir) => {
            let layout = verifier::load_dir(dir)?;
            let mut artifacts = match &layout.artifacts {
                Some(a) => verifier::load_artifacts(a)?,
                None => Vec::new(),
            };
            artifacts.extend(load::load_files(&args.artifacts)?);
            (
                Some(layout.provenance),
                layout.evidence,
                args.chain.clone().or(layout.chain),
                args.manifest.clone().or(layout.manifest),
                artifacts,
            )
        }
        None => (
            args.provenance.clone(),
            args.evidence
                .clone()
                .expect("clap requires --evidence without DIR"),
            args.chain.clone(),
            args.manifest.clone(),
            load::load_files(&args.artifacts)?,
        ),
    };

    // A manifest found inside the output dir was copied there by the build host, which
    // is not trusted: it shows consistency, not that the image is the published one.
    let manifest_from_dir =
        args.dir.is_some() && args.manifest.is_none() && args.measurement.is_none();
    let (measurement, measurement_source) = match (&args.measurement, &manifest_path) {
        (Some(hex), _) => (
            verifier::parse_measurement(hex).map_err(VerifyCmdError::BadMeasurement)?,
            "--measurement".to_string(),
        ),
        (None, Some(path)) => (
            manifest_measurement(path)?,
            format!("manifest {}", path.display()),
        ),
        (None, None) => return Err(VerifyCmdError::NoMeasurement),
    };

    let report = load::read("attestation report", &evidence_path)?;
    let provenance = provenance_path
        .as_deref()
        .map(|p| load::read("provenance", p))
        .transpose()?;
    let chain = match chain_path {
        Some(path) => {
            let pem = load::read("certificate chain", &path)?;
            CertChain::from_pem_bundle(&pem).map_err(|e| format!("{}: {e}", path.display()))
        }
        None if args.fetch_vcek => {
            let vcek = KdsClient::new(&args.kds_url)
                .with_product(args.product)
                .fetch_vcek_for_report(&report)?;
            Ok(CertChain::from_der_parts(None, None, vcek))
        }
        None => return Err(VerifyCmdError::NoChain),
    };

    let expect = Expectations {
        measurement,
        measurement_source,
        min_tcb: args.min_tcb.unwrap_or_default(),
        allow_simulated: args.allow_simulated,
        provenance: ProvenanceExpectations {
            repository: args.repo.clone(),
            git_ref: args.git_ref.clone(),
            builder_id: args.builder_id.clone(),
            build_types: match &args.build_type {
                Some(t) => vec![t.clone()],
                None => ProvenanceExpectations::default().build_types,
            },
            require_all_subjects: args.dir.is_some(),
        },
    };
    let evidence = Evidence {
        report,
        chain,
        provenance,
        artifacts,
    };
    let mut verdict = verifier::verify(&evidence, &expect);
    if manifest_from_dir {
        verdict.notes.push(
            "the expected measurement came from the manifest.json inside the output directory, a copy made by the \
             (untrusted) build host: pass --manifest with the image's published manifest.json to pin the image"
                .to_string(),
        );
    }
    Ok(verdict)
}

/// The launch digest a manifest publishes.
fn manifest_measurement(path: &Path) -> Result<[u8; 48], VerifyCmdError> {
    kettle::manifest::launch_digest_of(path).map_err(|message| VerifyCmdError::Manifest {
        path: path.into(),
        message,
    })
}
