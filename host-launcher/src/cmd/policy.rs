//! `kettle policy init`: a starting verification policy from a published image
//! manifest, for a platform team to review, publish beside the image and hand
//! to auditors (`kettle verify DIR --policy FILE`).

use std::io::Write;
use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Args, Subcommand};
use kettle_image::ImageManifest;
use kettle_verify::policy::Signer;
use kettle_verify::Policy;

/// `kettle policy ...`.
#[derive(Subcommand, Debug)]
pub enum PolicyCommand {
    /// Write a starting policy for an image (refuses to overwrite).
    Init(InitArgs),
}

/// Options of `kettle policy init`.
#[derive(Args, Debug)]
#[command(
    after_long_help = "The policy accepts the manifest's launch digest, Kettle's SEV-SNP builder and recipes, \
VCEK-signed reports only, no debug / migration agent / CXL, VMPL 0 and Kettle's built-in TCB floor per \
processor generation. Review it, tighten min_tcb from AMD's security bulletins, and publish it next to the image.\n\n\
processor_generations is written out explicitly: [\"genoa\", \"turin\"]. EPYC Milan is left out because a \
software-only attack extracts its VCEK root seed (arXiv 2605.12990, May 2026), so a host running it can forge a \
valid report for any TCB; --allow-milan adds it, and every verdict it passes then says OPTED IN.\n\n\
source.any_commit (not set here) accepts any built commit. In cached mode the build host resolves the ref, so \
the provenance's repository and ref are only its claim: with the commit not pinned, provenance.repository and \
provenance.ref then FAIL unless source.accept_host_resolved is true (--accept-host-resolved), which every \
verdict it passes names as OPTED IN. Auditors who pin the commit (--commit, --source) need neither."
)]
pub struct InitArgs {
    /// The image's published manifest.json.
    #[arg(long, value_name = "FILE")]
    pub manifest: PathBuf,
    /// The policy's name (shown in every verdict).
    #[arg(long, default_value = "kettle-image")]
    pub name: String,
    /// Where to write it (default: stdout).
    #[arg(long, value_name = "FILE")]
    pub out: Option<PathBuf>,
    /// The repository builds must come from (externalParameters.repository).
    #[arg(long, value_name = "URL")]
    pub repo: Option<String>,
    /// An accepted ref, exact or with `*` (repeatable), e.g. refs/heads/main, refs/tags/v*.
    #[arg(long = "ref", value_name = "PATTERN")]
    pub refs: Vec<String>,
    /// Accept the simulated PSP's test-key evidence (for demos and CI, never for releases).
    #[arg(long)]
    pub allow_simulated: bool,
    /// Also accept VLEK-signed reports (AWS EC2).
    #[arg(long)]
    pub allow_vlek: bool,
    /// Also accept EPYC Milan reports (left out by default: its VCEK root seed can be
    /// extracted, arXiv 2605.12990).
    #[arg(long)]
    pub allow_milan: bool,
    /// With the commit not pinned, accept a repository and ref only the build host resolved
    /// (source.accept_host_resolved; verdicts then say OPTED IN).
    #[arg(long)]
    pub accept_host_resolved: bool,
    /// An accepted chip id (repeatable; hex, 64 bytes or a Turin 8-byte hwID), for platform
    /// teams that own their hosts.
    #[arg(long = "chip-id", value_name = "HEX")]
    pub chip_ids: Vec<String>,
    /// Reject evidence not checked against AMD's CRL (auditors then pass --crl or --fetch-crl).
    #[arg(long)]
    pub require_revocation_check: bool,
    /// Reject evidence whose certificates were not checked at a trusted time (auditors then pass --at).
    #[arg(long)]
    pub require_trusted_time: bool,
}

/// Runs `kettle policy`.
pub fn run(cmd: PolicyCommand) -> ExitCode {
    let PolicyCommand::Init(args) = cmd;
    crate::exit_code("kettle policy init", init(&args))
}

fn init(args: &InitArgs) -> Result<(), String> {
    let bytes = std::fs::read(&args.manifest)
        .map_err(|e| format!("cannot read {}: {e}", args.manifest.display()))?;
    let manifest = ImageManifest::from_json(&bytes)
        .map_err(|e| format!("{}: {e}", args.manifest.display()))?;
    let mut policy = Policy::for_image(&args.name, &manifest, &bytes);
    policy.source.repository = args.repo.clone();
    policy.source.refs = args.refs.clone();
    if args.allow_simulated {
        policy.allow_simulated = true;
        policy
            .builder_ids
            .push(kettle_provenance::ids::BUILDER_ID_SIMULATED.into());
    }
    if args.allow_vlek {
        policy.signers.push(Signer::Vlek);
    }
    if args.allow_milan {
        policy
            .processor_generations
            .insert(0, kettle_attest::chain::Product::Milan);
    }
    policy.source.accept_host_resolved = args.accept_host_resolved;
    policy.chip_ids = args
        .chip_ids
        .iter()
        .map(|c| c.parse())
        .collect::<Result<_, String>>()
        .map_err(|e| format!("policy field chip_ids: {e}"))?;
    policy.require_revocation_check = args.require_revocation_check;
    policy.require_trusted_time = args.require_trusted_time;
    policy.check().map_err(|e| e.to_string())?;
    let mut text = serde_json::to_string_pretty(&policy).expect("a policy serializes");
    text.push('\n');
    match &args.out {
        None => {
            crate::print_stdout(text.trim_end());
            Ok(())
        }
        Some(path) => std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .open(path)
            .and_then(|mut f| f.write_all(text.as_bytes()))
            .map_err(|e| {
                format!(
                    "{}: {e} (it is never overwritten: remove it or pass another --out)",
                    path.display()
                )
            }),
    }
}
