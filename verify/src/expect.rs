//! What the verifier requires of the evidence: the measurement it names, the
//! guest-policy rules and TCB floor, the source it pins and what the
//! provenance must say. Every default is the strict one.

use std::collections::{BTreeMap, BTreeSet};

use kettle_attest::chain::Product;
use kettle_provenance::ids;
use serde::{Deserialize, Serialize};

/// The minimum TCB a report's reported_tcb must meet (component-wise).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MinTcb {
    /// Minimum FMC SVN (compared on Turin and later, whose TCB has the field).
    #[serde(default)]
    pub fmc: u8,
    /// Minimum PSP bootloader SVN.
    pub bootloader: u8,
    /// Minimum PSP OS SVN.
    pub tee: u8,
    /// Minimum SNP firmware SVN.
    pub snp: u8,
    /// Minimum microcode patch level.
    pub microcode: u8,
}

/// Kettle's built-in TCB floor for a processor generation: the TCB of the
/// oldest genuine AMD report Kettle's tests verify for it (Milan: the `sev`
/// crate's report; Genoa: Azure's; Turin: Project Oak's), and the simulated
/// PSP's own TCB. It refuses 0.0.0.0 and pre-release firmware; it is NOT a
/// vulnerability floor: a platform team publishes its own from AMD's
/// security bulletins (`--min-tcb`, or the policy's `min_tcb`).
pub fn builtin_tcb_floor(product: Product) -> MinTcb {
    let (fmc, bootloader, tee, snp, microcode) = match product {
        Product::Milan => (0, 3, 0, 8, 115),
        Product::Genoa => (0, 10, 0, 23, 84),
        Product::Turin => (0, 1, 0, 2, 71),
        Product::Simulated => (0, 9, 0, 23, 72),
    };
    MinTcb {
        fmc,
        bootloader,
        tee,
        snp,
        microcode,
    }
}

/// Why EPYC Milan reports are refused unless the verifier opts in (report.processor_generation).
pub const MILAN_REFUSAL: &str = "EPYC Milan's VCEK root seed can be extracted by a software-only attack on the AMD secure processor (arXiv 2605.12990, May 2026): a host that runs it can forge a valid report for any TCB, which no TCB floor fixes";

/// The processor generations accepted by default: every hardware root Kettle pins but Milan's.
pub fn default_processor_generations() -> Vec<Product> {
    vec![Product::Genoa, Product::Turin]
}

/// Which TCB floor applies.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
#[non_exhaustive]
pub enum TcbFloor {
    /// [`builtin_tcb_floor`] of the report's processor generation.
    #[default]
    Builtin,
    /// This floor, whatever the generation.
    Fixed(MinTcb),
    /// A policy's floor per generation; the built-in one where it sets none.
    PerProduct(crate::policy::TcbFloors),
    /// Both: the first floor and, component-wise, at least the second (a flag narrowing a policy).
    AtLeast(Box<TcbFloor>, MinTcb),
}

impl TcbFloor {
    /// The floor for `product` and whose it is (for messages).
    pub fn for_product(&self, product: Product) -> (MinTcb, String) {
        match self {
            TcbFloor::Fixed(m) => (*m, "the verifier's".into()),
            TcbFloor::PerProduct(floors) => match floors.for_product(product) {
                Some(m) => (m, format!("the policy's {product}")),
                None => (
                    builtin_tcb_floor(product),
                    format!("Kettle's built-in {product}"),
                ),
            },
            TcbFloor::Builtin => (
                builtin_tcb_floor(product),
                format!("Kettle's built-in {product}"),
            ),
            TcbFloor::AtLeast(first, also) => {
                let (m, whose) = first.for_product(product);
                let max = MinTcb {
                    fmc: m.fmc.max(also.fmc),
                    bootloader: m.bootloader.max(also.bootloader),
                    tee: m.tee.max(also.tee),
                    snp: m.snp.max(also.snp),
                    microcode: m.microcode.max(also.microcode),
                };
                (max, format!("{whose} and the verifier's (--min-tcb)"))
            }
        }
    }
}

/// What the guest policy may allow. Defaults: nothing that weakens isolation
/// beyond what every SNP host needs (SMT stays allowed: hosts run with it).
/// It is also the policy file's `guest_policy` field, `min_abi` written "major.minor".
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct GuestPolicyRules {
    /// Accept a policy that allows debugging (bit 19): the host can read and change guest memory.
    pub allow_debug: bool,
    /// Accept a policy that allows a migration agent (bit 18): guest memory can leave the platform.
    pub allow_migration_agent: bool,
    /// Accept a policy that allows SMT (bit 16): sibling threads share a core with the host's.
    pub allow_smt: bool,
    /// Require the guest to be bound to one socket (bit 20).
    pub require_single_socket: bool,
    /// Accept a policy that allows CXL-attached memory (bit 21).
    pub allow_cxl: bool,
    /// The lowest firmware ABI (major, minor) the policy may require.
    #[serde(with = "abi_text")]
    pub min_abi: (u8, u8),
}

/// A firmware ABI version as the policy file writes it: "major.minor".
mod abi_text {
    use serde::{Deserialize, Deserializer, Serializer};

    pub fn serialize<S: Serializer>(abi: &(u8, u8), s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&format!("{}.{}", abi.0, abi.1))
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<(u8, u8), D::Error> {
        let text = String::deserialize(d)?;
        super::parse_abi(&text).map_err(serde::de::Error::custom)
    }
}

/// "major.minor" (0-255 each) to (major, minor).
pub fn parse_abi(text: &str) -> Result<(u8, u8), String> {
    let err = || format!("guest_policy.min_abi: {text:?} is not \"major.minor\" (0-255 each)");
    let (a, b) = text.split_once('.').ok_or_else(err)?;
    Ok((a.parse().map_err(|_| err())?, b.parse().map_err(|_| err())?))
}

impl Default for GuestPolicyRules {
    fn default() -> Self {
        GuestPolicyRules {
            allow_debug: false,
            allow_migration_agent: false,
            allow_smt: true,
            require_single_socket: false,
            allow_cxl: false,
            min_abi: (0, 0),
        }
    }
}

/// Which source commit the verifier accepts.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
#[non_exhaustive]
pub enum SourcePin {
    /// Nothing was pinned: the source check fails (a build of an unknown commit is not verified).
    #[default]
    Unpinned,
    /// The auditor said any commit is fine (`--any-source`); the built commit is still printed.
    Any,
    /// Exactly this commit (`--commit`, or the tip of the ref in the auditor's clone).
    Commit(String),
    /// Any commit reachable from a ref's tip in the auditor's clone.
    ReachableFrom {
        /// The tip.
        tip: String,
        /// Every commit reachable from it.
        commits: BTreeSet<String>,
    },
}

/// What the provenance must say.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProvenanceExpectations {
    /// `externalParameters.repository` must equal this, when given...
    pub repository: Option<String>,
    /// ...and this too, when given (a `--repo` narrowing a policy's repository).
    pub also_repository: Option<String>,
    /// `externalParameters.ref` must equal this, when given (`--ref`)...
    pub git_ref: Option<String>,
    /// ...and match one of these patterns (`*` wildcards), when given (a policy's `source.refs`).
    pub refs: Vec<String>,
    /// The commit that must have been built.
    pub source: SourcePin,
    /// The tree of each commit the auditor's clone holds (`--source`): the provenance's
    /// gitTree of the built commit must be the clone's.
    pub source_trees: BTreeMap<String, String>,
    /// Accept a repository and ref that only the build host resolved (cached mode) when the
    /// commit is not pinned; named in the verdict line (policy `source.accept_host_resolved`).
    pub accept_host_resolved: bool,
    /// `runDetails.builder.id` must be one of these.
    pub builder_ids: Vec<String>,
    /// `buildDefinition.buildType` must be one of these.
    pub build_types: Vec<String>,
}

impl Default for ProvenanceExpectations {
    /// Kettle's SEV-SNP builder and any of its recipes; no source pinned.
    fn default() -> Self {
        ProvenanceExpectations {
            repository: None,
            also_repository: None,
            git_ref: None,
            refs: Vec::new(),
            source: SourcePin::Unpinned,
            source_trees: BTreeMap::new(),
            accept_host_resolved: false,
            builder_ids: vec![ids::BUILDER_ID_SEV_SNP.to_string()],
            // Every recipe of the one registry (kettle-wire's).
            build_types: kettle_wire::BuildType::ALL
                .iter()
                .map(|t| t.uri().to_string())
                .collect(),
        }
    }
}

/// Everything the verifier requires.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Expectations {
    /// The launch digests the report's measurement may equal, each with where it came from.
    pub measurements: Vec<([u8; 48], String)>,
    /// Accept reports signed by the chip's VCEK.
    pub accept_vcek: bool,
    /// Accept reports signed by a cloud provider's VLEK.
    pub accept_vlek: bool,
    /// What the guest policy may allow.
    pub guest_policy: GuestPolicyRules,
    /// The VMPL the report must have been requested at (0).
    pub vmpl: u32,
    /// Minimum reported TCB.
    pub min_tcb: TcbFloor,
    /// Accept the simulated PSP's test keys.
    pub allow_simulated: bool,
    /// The processor generations (chain roots) accepted; Milan only by explicit opt-in.
    pub processor_generations: Vec<Product>,
    /// The chip ids accepted (64 bytes, or a Turin-style 8-byte hwID); empty: any chip.
    pub chip_ids: Vec<Vec<u8>>,
    /// The time the verifier trusts (Unix seconds) for certificate and CRL validity; None:
    /// offline verification has no trusted clock, and the validity check says so.
    pub at: Option<u64>,
    /// AMD CRLs (DER) to check the chain against; none: revocation is not checked, and the check says so.
    pub crls: Vec<Vec<u8>>,
    /// Without a CRL, fail `report.revocation` instead of skipping it (a policy's `require_revocation_check`).
    pub require_revocation_check: bool,
    /// Without a trusted time, fail `report.cert_validity` instead of skipping it (a policy's `require_trusted_time`).
    pub require_trusted_time: bool,
    /// Report only: the exact report_data expected (e.g. a verifier's nonce); None = the
    /// binding to provenance.json, or for a report alone a zero second half.
    pub report_data: Option<[u8; 64]>,
    /// What the provenance must say.
    pub provenance: ProvenanceExpectations,
}

impl Expectations {
    /// Strict defaults around a measurement the verifier names: no debug, VMPL 0, no simulated
    /// evidence, no EPYC Milan report, no chip list.
    pub fn new(measurement: [u8; 48], measurement_source: impl Into<String>) -> Expectations {
        Expectations {
            measurements: vec![(measurement, measurement_source.into())],
            accept_vcek: true,
            accept_vlek: false,
            guest_policy: GuestPolicyRules::default(),
            vmpl: 0,
            min_tcb: TcbFloor::Builtin,
            allow_simulated: false,
            processor_generations: default_processor_generations(),
            chip_ids: Vec::new(),
            at: None,
            crls: Vec::new(),
            require_revocation_check: false,
            require_trusted_time: false,
            report_data: None,
            provenance: ProvenanceExpectations::default(),
        }
    }

    /// Also accepts the simulated PSP's evidence and the simulated builder's id (test keys:
    /// the verdict says SIMULATED).
    pub fn accepting_simulated(mut self) -> Expectations {
        self.accept_simulated();
        self
    }

    /// [`Expectations::accepting_simulated`], in place.
    pub fn accept_simulated(&mut self) {
        self.allow_simulated = true;
        let id = ids::BUILDER_ID_SIMULATED.to_string();
        if !self.provenance.builder_ids.contains(&id) {
            self.provenance.builder_ids.push(id);
        }
    }
}

/// A chip id a verifier accepts: 64 bytes, or a Turin-style 8-byte hwID (hex in a policy file).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ChipId(Vec<u8>);

impl ChipId {
    /// The id's bytes (8 or 64).
    pub fn as_bytes(&self) -> &[u8] {
        &self.0
    }
}

impl std::str::FromStr for ChipId {
    type Err = String;

    fn from_str(text: &str) -> Result<ChipId, String> {
        parse_chip_id(text).map(ChipId)
    }
}

impl Serialize for ChipId {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&hex::encode(&self.0))
    }
}

impl<'de> Deserialize<'de> for ChipId {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<ChipId, D::Error> {
        let text = String::deserialize(d)?;
        text.parse()
            .map_err(|e| serde::de::Error::custom(format!("chip_ids: {e}")))
    }
}

/// Parses a chip id: 128 hex digits, or 16 for a Turin-style 8-byte hwID.
pub fn parse_chip_id(text: &str) -> Result<Vec<u8>, String> {
    let bytes =
        hex::decode(text.trim()).map_err(|e| format!("{text:?} is not a chip id (hex): {e}"))?;
    match bytes.len() {
        8 | 64 => Ok(bytes),
        n => Err(format!(
            "{text:?} is {n} bytes; a chip id is 64 bytes (128 hex digits), or 8 (16) for a Turin hwID"
        )),
    }
}

/// Parses `bl=N,tee=N,snp=N,ucode=N` (any subset; unnamed parts are 0).
pub fn parse_min_tcb(text: &str) -> Result<MinTcb, String> {
    let mut tcb = MinTcb::default();
    for part in text.split(',').map(str::trim).filter(|p| !p.is_empty()) {
        let (key, value) = part
            .split_once('=')
            .ok_or_else(|| format!("{part:?} is not KEY=N (keys: fmc, bl, tee, snp, ucode)"))?;
        let value: u8 = value
            .trim()
            .parse()
            .map_err(|_| format!("{part:?}: {value:?} is not a number 0..=255"))?;
        match key.trim() {
            "fmc" => tcb.fmc = value,
            "bl" | "bootloader" => tcb.bootloader = value,
            "tee" => tcb.tee = value,
            "snp" => tcb.snp = value,
            "ucode" | "microcode" => tcb.microcode = value,
            other => {
                return Err(format!(
                    "unknown TCB component {other:?} (keys: fmc, bl, tee, snp, ucode)"
                ))
            }
        }
    }
    Ok(tcb)
}

/// Parses a 48-byte launch digest from 96 hex digits.
pub fn parse_measurement(text: &str) -> Result<[u8; 48], String> {
    let mut out = [0u8; 48];
    hex::decode_to_slice(text.trim(), &mut out)
        .map_err(|e| format!("{text:?} is not a launch digest (96 hex digits): {e}"))?;
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_min_tcb() {
        let t = parse_min_tcb("bl=3,tee=0,snp=8,ucode=115").unwrap();
        assert_eq!(
            t,
            MinTcb {
                fmc: 0,
                bootloader: 3,
                tee: 0,
                snp: 8,
                microcode: 115
            }
        );
        assert_eq!(
            parse_min_tcb("snp=2").unwrap(),
            MinTcb {
                snp: 2,
                ..Default::default()
            }
        );
        assert!(parse_min_tcb("fw=1").unwrap_err().contains("unknown"));
        assert!(parse_min_tcb("snp=300").unwrap_err().contains("0..=255"));
        assert!(parse_min_tcb("snp").unwrap_err().contains("KEY=N"));
    }

    #[test]
    fn parses_measurements() {
        assert_eq!(parse_measurement(&"ab".repeat(48)).unwrap(), [0xab; 48]);
        assert!(parse_measurement("abcd").is_err());
    }
}
