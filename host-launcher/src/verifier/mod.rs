//! The verifier `kettle verify` and `kettle build` share: DESIGN.md's trust
//! chain, each step a named check, all of them run (a check that cannot run
//! is listed as skipped, with the reason).
//!
//! Order: the report (format, chain ARK->ASK->VCEK, VCEK vs report, signature,
//! measurement, debug, VMPL, TCB, simulated) from `kettle_attest::verify`, then
//! the binding of report_data to the exact provenance.json bytes, then the
//! provenance itself, the artifacts and the expected parameters.

pub mod checks;
pub mod load;
pub mod provenance;

use kettle_attest::{check_names, CertChain, ExpectedReportData, MinTcb, Policy, Report};

pub use checks::{Check, Status, Verdict};
pub use load::{load_artifacts, load_dir, load_files, DirLayout, LoadError};
pub use provenance::{check_provenance, Artifact, ProvenanceExpectations};

/// Everything handed to the verifier, already read from disk.
#[derive(Debug, Clone)]
pub struct Evidence {
    /// The raw SNP attestation report.
    pub report: Vec<u8>,
    /// The certificate chain, or why it could not be read (then the chain check fails saying so).
    pub chain: Result<CertChain, String>,
    /// The exact bytes of provenance.json, when given.
    pub provenance: Option<Vec<u8>>,
    /// The artifacts to check against the provenance's subjects.
    pub artifacts: Vec<Artifact>,
}

/// What the verifier requires.
#[derive(Debug, Clone)]
pub struct Expectations {
    /// The published launch digest of the image.
    pub measurement: [u8; 48],
    /// Where the measurement came from (said in the output).
    pub measurement_source: String,
    /// Minimum reported TCB.
    pub min_tcb: MinTcb,
    /// Accept the simulated PSP's test keys.
    pub allow_simulated: bool,
    /// What the provenance must say.
    pub provenance: ProvenanceExpectations,
}

/// The report's checks as `report.<name>`.
fn report_check_name(name: &str) -> String {
    format!("report.{name}")
}

/// Runs the whole trust chain over `evidence`.
pub fn verify(evidence: &Evidence, expect: &Expectations) -> Verdict {
    let parsed = Report::parse(&evidence.report).ok();
    // attest's own report_data check is replaced by `binding.report_data`
    // below (same comparison, over the same bytes), so any value works here.
    let report_data = match &evidence.provenance {
        Some(p) => ExpectedReportData::Provenance(p.clone()),
        None => ExpectedReportData::Exact([0; 64]),
    };
    let policy = Policy {
        measurement: expect.measurement,
        report_data,
        allow_debug: false,
        vmpl: 0,
        min_tcb: expect.min_tcb,
        allow_simulated: expect.allow_simulated,
    };
    let empty = CertChain::default();
    let chain = evidence.chain.as_ref().unwrap_or(&empty);
    let report_verdict = kettle_attest::verify(&evidence.report, chain, &policy);

    let mut checks = Vec::new();
    for c in &report_verdict.checks {
        if c.name == check_names::REPORT_DATA {
            continue;
        }
        let mut detail = c.detail.clone();
        if c.name == check_names::CHAIN {
            if let Err(why) = &evidence.chain {
                detail = format!("the certificate chain could not be read: {why}");
            }
        }
        if c.name == check_names::MEASUREMENT {
            detail = format!(
                "{detail} (expected value from {})",
                expect.measurement_source
            );
        }
        checks.push(Check::from_bool(
            report_check_name(c.name),
            c.passed,
            detail,
        ));
    }

    let binding_checked = evidence.provenance.is_some();
    match &evidence.provenance {
        Some(bytes) => {
            let rd = parsed.as_ref().map(|r| r.report_data());
            checks.extend(check_provenance(
                bytes,
                rd.as_ref(),
                &expect.provenance,
                &evidence.artifacts,
            ));
        }
        None => {
            checks.push(Check::skip(
                "binding.report_data",
                "no provenance given: the report is not bound to any build (pass --provenance to check it)",
            ));
            if !evidence.artifacts.is_empty() {
                for a in &evidence.artifacts {
                    checks.push(Check::fail(
                        format!("artifact:{}", a.label),
                        "cannot be checked without the provenance that names the subjects (pass --provenance)",
                    ));
                }
            }
        }
    }
    Verdict::new(checks, binding_checked, report_verdict.simulated)
}

/// Parses `--min-tcb bl=N,tee=N,snp=N,ucode=N` (any subset; unnamed parts are 0).
pub fn parse_min_tcb(text: &str) -> Result<MinTcb, String> {
    let mut tcb = MinTcb::default();
    for part in text.split(',').map(str::trim).filter(|p| !p.is_empty()) {
        let (key, value) = part
            .split_once('=')
            .ok_or_else(|| format!("{part:?} is not KEY=N (keys: bl, tee, snp, ucode)"))?;
        let value: u8 = value
            .trim()
            .parse()
            .map_err(|_| format!("{part:?}: {value:?} is not a number 0..=255"))?;
        match key.trim() {
            "bl" | "bootloader" => tcb.bootloader = value,
            "tee" => tcb.tee = value,
            "snp" => tcb.snp = value,
            "ucode" | "microcode" => tcb.microcode = value,
            other => {
                return Err(format!(
                    "unknown TCB component {other:?} (keys: bl, tee, snp, ucode)"
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
