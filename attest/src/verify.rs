//! Offline verification of SNP evidence against a policy. Every check runs that
//! can run; the verdict names each one with pass/fail and a detail message.

use std::fmt;

use p384::ecdsa::signature::DigestVerifier;
use serde::Serialize;
use sha2::{Digest, Sha384};
use x509_cert::Certificate;

use crate::binding::report_data_for;
use crate::chain::{self, CertChain, Product};
use crate::report::{self, offsets, Report, ReportSummary};

/// Names of the checks, in the order they appear in a verdict.
pub mod check_names {
    /// Size, version and structure of the report.
    pub const REPORT_FORMAT: &str = "report_format";
    /// ARK (self-signed, pinned) -> ASK -> VCEK.
    pub const CHAIN: &str = "chain";
    /// VCEK hwID / TCB extensions equal the report's chip_id / reported_tcb.
    pub const VCEK_MATCHES_REPORT: &str = "vcek_matches_report";
    /// The VCEK's ECDSA P-384 signature over report bytes 0x0..0x2A0.
    pub const SIGNATURE: &str = "signature";
    /// The launch measurement equals the expected one.
    pub const MEASUREMENT: &str = "measurement";
    /// The guest policy forbids debugging.
    pub const DEBUG_DISALLOWED: &str = "debug_disallowed";
    /// The report was requested at the required VMPL.
    pub const VMPL: &str = "vmpl";
    /// reported_tcb meets the minimum.
    pub const MIN_TCB: &str = "min_tcb";
    /// report_data binds the expected provenance.
    pub const REPORT_DATA: &str = "report_data";
    /// The evidence is not from the simulated PSP (or that is allowed).
    pub const SIMULATED: &str = "simulated";

    /// All check names, in verdict order.
    pub const ALL: [&str; 10] = [
        REPORT_FORMAT,
        CHAIN,
        VCEK_MATCHES_REPORT,
        SIGNATURE,
        MEASUREMENT,
        DEBUG_DISALLOWED,
        VMPL,
        MIN_TCB,
        REPORT_DATA,
        SIMULATED,
    ];
}
use check_names as names;

/// The minimum TCB a report's reported_tcb must meet (component-wise).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, serde::Deserialize)]
pub struct MinTcb {
    /// Minimum PSP bootloader SVN.
    pub bootloader: u8,
    /// Minimum PSP OS SVN.
    pub tee: u8,
    /// Minimum SNP firmware SVN.
    pub snp: u8,
    /// Minimum microcode patch level.
    pub microcode: u8,
}

/// What report_data must contain.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ExpectedReportData {
    /// Exactly these 64 bytes.
    Exact([u8; 64]),
    /// The binding of these provenance bytes: SHA-256(bytes) || 32 zero bytes.
    Provenance(Vec<u8>),
}

impl ExpectedReportData {
    /// The 64 bytes expected in the report.
    pub fn bytes(&self) -> [u8; 64] {
        match self {
            ExpectedReportData::Exact(b) => *b,
            ExpectedReportData::Provenance(p) => report_data_for(p),
        }
    }
}

/// What a verifier requires of the evidence.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Policy {
    /// The published launch digest the report's measurement must equal.
    pub measurement: [u8; 48],
    /// What report_data must be.
    pub report_data: ExpectedReportData,
    /// Accept a guest policy that allows debugging (default false).
    pub allow_debug: bool,
    /// The VMPL the report must have been requested at (default 0).
    pub vmpl: u32,
    /// The minimum reported TCB (default all zero).
    pub min_tcb: MinTcb,
    /// Accept evidence from the simulated PSP (default false; the verdict is then marked SIMULATED).
    pub allow_simulated: bool,
}

impl Policy {
    /// A strict policy: this measurement, report_data binding these provenance bytes.
    pub fn for_provenance(measurement: [u8; 48], provenance_bytes: &[u8]) -> Policy {
        Policy::new(
            measurement,
            ExpectedReportData::Provenance(provenance_bytes.to_vec()),
        )
    }

    /// A strict policy: this measurement, exactly this report_data.
    pub fn for_report_data(measurement: [u8; 48], report_data: [u8; 64]) -> Policy {
        Policy::new(measurement, ExpectedReportData::Exact(report_data))
    }

    fn new(measurement: [u8; 48], report_data: ExpectedReportData) -> Policy {
        Policy {
            measurement,
            report_data,
            allow_debug: false,
            vmpl: 0,
            min_tcb: MinTcb::default(),
            allow_simulated: false,
        }
    }
}

/// One named check with its outcome.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Check {
    /// The check's name (see [`check_names`]).
    pub name: &'static str,
    /// Whether it passed.
    pub passed: bool,
    /// What was found, in words.
    pub detail: String,
}

/// The outcome of verifying evidence: every check, and what was verified.
#[derive(Debug, Clone, Serialize)]
pub struct Verdict {
    /// True when every check passed.
    pub verified: bool,
    /// True when the evidence came from the simulated PSP (accepted only if allowed).
    pub simulated: bool,
    /// The product whose pinned root the chain ends in, if identified.
    pub product: Option<Product>,
    /// Every check, in a fixed order.
    pub checks: Vec<Check>,
    /// The report's fields, when it parsed.
    pub report: Option<ReportSummary>,
}

impl Verdict {
    /// True when every check passed.
    pub fn is_verified(&self) -> bool {
        self.verified
    }

    /// The names of the failed checks.
    pub fn failed_checks(&self) -> Vec<&'static str> {
        self.checks
            .iter()
            .filter(|c| !c.passed)
            .map(|c| c.name)
            .collect()
    }

    /// The check with this name.
    pub fn check(&self, name: &str) -> Option<&Check> {
        self.checks.iter().find(|c| c.name == name)
    }

    /// The verdict as pretty JSON.
    pub fn to_json(&self) -> String {
        serde_json::to_string_pretty(self).expect("a verdict always serializes")
    }
}

impl fmt::Display for Verdict {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let status = if self.verified {
            "VERIFIED"
        } else {
            "REJECTED"
        };
        let sim = if self.simulated {
            " (SIMULATED: test keys, not AMD hardware)"
        } else {
            ""
        };
        let product = self
            .product
            .map(|p| format!(" [root: {p}]"))
            .unwrap_or_default();
        writeln!(f, "SEV-SNP evidence: {status}{sim}{product}")?;
        let width = self.checks.iter().map(|c| c.name.len()).max().unwrap_or(0);
        for c in &self.checks {
            let mark = if c.passed { "✓ PASS" } else { "✗ FAIL" };
            writeln!(f, "  {mark}  {:width$}  {}", c.name, c.detail)?;
        }
        if !self.verified {
            write!(f, "failed checks: {}", self.failed_checks().join(", "))?;
        }
        Ok(())
    }
}

struct Checks(Vec<Check>);

impl Checks {
    fn push(&mut self, name: &'static str, result: Result<String, String>) {
        let (passed, detail) = match result {
            Ok(d) => (true, d),
            Err(d) => (false, d),
        };
        self.0.push(Check {
            name,
            passed,
            detail,
        });
    }
}

const NOT_PARSED: &str = "not checked: the report could not be parsed";

/// Verifies evidence (raw report bytes + certificate chain) against a policy.
pub fn verify(report_bytes: &[u8], chain: &CertChain, policy: &Policy) -> Verdict {
    let mut checks = Checks(Vec::new());

    // report_format
    let parsed = Report::parse(report_bytes);
    let format_result = match &parsed {
        Ok(r) => check_reserved_signature_bytes(r.bytes()).map(|()| {
            format!(
                "version {} report, {} bytes",
                r.version(),
                report::REPORT_LEN
            )
        }),
        Err(e) => Err(e.to_string()),
    };
    checks.push(names::REPORT_FORMAT, format_result);
    let parsed = parsed.ok();

    // chain
    let outcome = chain::check_chain(chain, policy.allow_simulated);
    checks.push(names::CHAIN, outcome.result.clone());
    let vcek = outcome.vcek.as_ref();

    // vcek_matches_report
    checks.push(
        names::VCEK_MATCHES_REPORT,
        match (&parsed, vcek) {
            (None, _) => Err(NOT_PARSED.into()),
            (_, None) => Err("not checked: the VCEK could not be parsed".into()),
            (Some(r), Some(v)) => chain::vcek_extensions(v).and_then(|ext| {
                chain::compare_vcek_with_report(&ext, &r.chip_id(), &r.reported_tcb())
            }),
        },
    );

    // signature: over the raw bytes, so it runs even if the body did not parse.
    checks.push(names::SIGNATURE, check_signature(report_bytes, vcek));

    let field = |f: &dyn Fn(&Report) -> Result<String, String>| {
        parsed.as_ref().map_or(Err(NOT_PARSED.into()), f)
    };

    checks.push(
        names::MEASUREMENT,
        field(&|r| {
            if r.measurement() == policy.measurement {
                Ok(format!(
                    "measurement {} equals the expected launch digest",
                    hex::encode(r.measurement())
                ))
            } else {
                Err(format!(
                    "measurement {} is not the expected launch digest {}",
                    hex::encode(r.measurement()),
                    hex::encode(policy.measurement)
                ))
            }
        }),
    );
    checks.push(
        names::DEBUG_DISALLOWED,
        field(&|r| match (r.debug_allowed(), policy.allow_debug) {
            (false, _) => Ok(format!("guest policy 0x{:x} forbids debugging", r.guest_policy())),
            (true, true) => Ok(format!("guest policy 0x{:x} allows debugging (accepted by this policy)", r.guest_policy())),
            (true, false) => Err(format!(
                "guest policy 0x{:x} allows debugging (bit 19): the host can read and change guest memory",
                r.guest_policy()
            )),
        }),
    );
    checks.push(
        names::VMPL,
        field(&|r| {
            if r.vmpl() == policy.vmpl {
                Ok(format!("report requested at VMPL {}", r.vmpl()))
            } else {
                Err(format!(
                    "report requested at VMPL {}, required VMPL {}",
                    r.vmpl(),
                    policy.vmpl
                ))
            }
        }),
    );
    checks.push(
        names::MIN_TCB,
        field(&|r| {
            let t = r.reported_tcb();
            let m = policy.min_tcb;
            let low: Vec<String> = [
                ("bootloader", t.bootloader, m.bootloader),
                ("tee", t.tee, m.tee),
                ("snp", t.snp, m.snp),
                ("microcode", t.microcode, m.microcode),
            ]
            .into_iter()
            .filter(|(_, have, min)| have < min)
            .map(|(n, have, min)| format!("{n} {have} < {min}"))
            .collect();
            if low.is_empty() {
                Ok(format!("reported TCB {t} meets the minimum"))
            } else {
                Err(format!(
                    "reported TCB {t} is below the minimum: {}",
                    low.join(", ")
                ))
            }
        }),
    );
    let expected_rd = policy.report_data.bytes();
    checks.push(
        names::REPORT_DATA,
        field(&|r| {
            let rd = r.report_data();
            if rd == expected_rd {
                Ok(match policy.report_data {
                    ExpectedReportData::Provenance(_) => {
                        format!(
                            "report_data = SHA-256(provenance) {} || 32 zero bytes",
                            hex::encode(&rd[..32])
                        )
                    }
                    ExpectedReportData::Exact(_) => {
                        format!("report_data equals the expected {}", hex::encode(rd))
                    }
                })
            } else {
                Err(format!(
                    "report_data {} is not the expected {}",
                    hex::encode(rd),
                    hex::encode(expected_rd)
                ))
            }
        }),
    );

    // simulated
    let chip_says_simulated = report_bytes.len() == report::REPORT_LEN
        && report_bytes[offsets::CHIP_ID..offsets::CHIP_ID + 64] == crate::simulated::CHIP_ID;
    let simulated = outcome.product == Some(Product::Simulated) || chip_says_simulated;
    checks.push(
        names::SIMULATED,
        match (simulated, policy.allow_simulated) {
            (false, _) => Ok(match outcome.product {
                Some(p) => format!("signed under AMD's {p} root, not the simulated PSP"),
                None => "no sign of the simulated PSP (chip id, root)".into(),
            }),
            (true, true) => Ok("SIMULATED evidence from Kettle's software PSP (test keys), accepted because simulated evidence is allowed".into()),
            (true, false) => Err("evidence comes from Kettle's SIMULATED PSP (public test keys, no hardware isolation); rejected unless simulated evidence is explicitly allowed (--allow-simulated)".into()),
        },
    );

    let checks = checks.0;
    let verified = checks.iter().all(|c| c.passed);
    Verdict {
        verified,
        simulated,
        product: outcome.product,
        checks,
        report: parsed.as_ref().map(Report::summary),
    }
}

/// The unsigned tail of the signature block is reserved and must be zero.
fn check_reserved_signature_bytes(bytes: &[u8]) -> Result<(), String> {
    let reserved = &bytes[report::SIGNATURE_OFFSET + 2 * report::SIG_COMPONENT_LEN..];
    match reserved.iter().position(|b| *b != 0) {
        None => Ok(()),
        Some(i) => Err(format!(
            "reserved byte 0x{:x} after the signature is not zero",
            report::SIGNATURE_OFFSET + 2 * report::SIG_COMPONENT_LEN + i
        )),
    }
}

/// Verifies the VCEK's ECDSA P-384/SHA-384 signature over bytes 0x0..0x2A0.
fn check_signature(bytes: &[u8], vcek: Option<&Certificate>) -> Result<String, String> {
    if bytes.len() != report::REPORT_LEN {
        return Err(format!(
            "not checked: report is {} bytes, not {}",
            bytes.len(),
            report::REPORT_LEN
        ));
    }
    let vcek = vcek.ok_or("not checked: the VCEK could not be parsed")?;
    let sig_algo = report::read_u32(bytes, offsets::SIG_ALGO);
    if sig_algo != report::SIG_ALGO_ECDSA_P384_SHA384 {
        return Err(format!(
            "sig_algo is {sig_algo}, expected 1 (ECDSA P-384 with SHA-384)"
        ));
    }
    let signing_key = (report::read_u32(bytes, offsets::KEY_INFO) >> 2) & 0x7;
    if signing_key != 0 {
        return Err(format!("report is signed with key {signing_key} (0 = VCEK, 1 = VLEK, 7 = none); only VCEK-signed reports are supported"));
    }
    let sig = signature_from_report(bytes)?;
    let key = p384::ecdsa::VerifyingKey::from_sec1_bytes(
        vcek.tbs_certificate
            .subject_public_key_info
            .subject_public_key
            .raw_bytes(),
    )
    .map_err(|e| format!("the VCEK's public key is not an ECDSA P-384 key: {e}"))?;
    key.verify_digest(Sha384::new_with_prefix(&bytes[..report::SIGNED_LEN]), &sig)
        .map_err(|_| {
            "the VCEK's ECDSA P-384 signature over report bytes 0x0..0x2A0 does not verify"
                .to_string()
        })?;
    Ok("ECDSA P-384/SHA-384 signature over bytes 0x0..0x2A0 verifies with the VCEK".into())
}

/// Reads r and s (little-endian, zero-padded to 72 bytes each) into a P-384 signature.
pub(crate) fn signature_from_report(bytes: &[u8]) -> Result<p384::ecdsa::Signature, String> {
    let block =
        &bytes[report::SIGNATURE_OFFSET..report::SIGNATURE_OFFSET + 2 * report::SIG_COMPONENT_LEN];
    let (r, s) = block.split_at(report::SIG_COMPONENT_LEN);
    // The padding is outside the scalar; require zeros so the encoding is unique.
    if r[48..].iter().chain(&s[48..]).any(|b| *b != 0) {
        return Err("signature r or s has non-zero bytes beyond the 48-byte P-384 scalar".into());
    }
    let be = |le: &[u8]| -> p384::FieldBytes {
        let mut out = p384::FieldBytes::default();
        for (o, b) in out.iter_mut().zip(le[..48].iter().rev()) {
            *o = *b;
        }
        out
    };
    p384::ecdsa::Signature::from_scalars(be(r), be(s))
        .map_err(|_| "signature r or s is zero or not below the P-384 group order".to_string())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testdata;
    use std::collections::BTreeSet;

    fn milan() -> (Vec<u8>, CertChain, Policy) {
        let report = testdata::milan_report();
        let r = Report::parse(&report).unwrap();
        let policy = Policy::for_report_data(r.measurement(), r.report_data());
        (
            report,
            CertChain::from_der_parts(None, None, testdata::milan_vcek_der()),
            policy,
        )
    }

    fn failed(v: &Verdict) -> BTreeSet<&'static str> {
        v.failed_checks().into_iter().collect()
    }

    #[test]
    fn real_milan_report_verifies() {
        let (report, chain, policy) = milan();
        let v = verify(&report, &chain, &policy);
        assert!(v.is_verified(), "{v}");
        assert!(!v.simulated);
        assert_eq!(v.product, Some(Product::Milan));
        assert_eq!(
            v.checks.iter().map(|c| c.name).collect::<Vec<_>>(),
            check_names::ALL.to_vec()
        );
        let text = v.to_string();
        assert!(
            text.contains("VERIFIED") && text.contains("✓ PASS  signature"),
            "{text}"
        );
        let json: serde_json::Value = serde_json::from_str(&v.to_json()).unwrap();
        assert_eq!(json["verified"], true);
        assert_eq!(json["checks"].as_array().unwrap().len(), 10);
        assert_eq!(json["report"]["version"], 2);
    }

    #[test]
    fn real_milan_report_verifies_with_full_amd_bundle() {
        let (report, _, policy) = milan();
        let mut bundle = testdata::milan_ca_bundle();
        bundle.extend_from_slice(chain::der_to_pem(&testdata::milan_vcek_der()).as_bytes());
        let chain = CertChain::from_pem_bundle(&bundle).unwrap();
        assert!(chain.ark.is_some());
        let v = verify(&report, &chain, &policy);
        assert!(v.is_verified(), "{v}");
    }

    /// Positions to mutate: all of `range` when exhaustive, else about `budget`
    /// evenly spread ones including both ends (RSA-4096 in a debug build is slow).
    fn sweep(range: std::ops::Range<usize>, budget: usize, exhaustive: bool) -> Vec<usize> {
        let len = range.end - range.start;
        if exhaustive || len <= budget {
            return range.collect();
        }
        let mut out: Vec<usize> = (0..budget)
            .map(|i| range.start + i * (len - 1) / (budget - 1))
            .collect();
        out.dedup();
        out
    }

    #[test]
    fn flips_of_the_signed_part_fail_signature() {
        signed_part_sweep(false);
    }

    /// Every byte of 0x0..0x2A0 (about 3 minutes in a debug build).
    #[test]
    #[ignore]
    fn every_flip_of_the_signed_part_fails_signature() {
        signed_part_sweep(true);
    }

    fn signed_part_sweep(exhaustive: bool) {
        let (report, chain, policy) = milan();
        let mut positions = sweep(0..report::SIGNED_LEN, 64, exhaustive);
        // Each field's first byte, so every field is hit at least once.
        positions.extend([
            0x04, 0x08, 0x30, 0x34, 0x38, 0x40, 0x48, 0x50, 0x90, 0xC0, 0xE0, 0x110, 0x140, 0x160,
            0x180, 0x188, 0x1A0, 0x1E0, 0x1E8, 0x1EC, 0x1F0, 0x1F8,
        ]);
        for pos in positions {
            let mut bad = report.clone();
            bad[pos] ^= 0x01;
            let v = verify(&bad, &chain, &policy);
            assert!(!v.is_verified());
            assert!(
                failed(&v).contains(names::SIGNATURE),
                "flip at 0x{pos:x}: {v}"
            );
        }
    }

    #[test]
    fn flips_of_the_signature_fail_signature() {
        signature_sweep(false);
    }

    /// Every byte of r and s.
    #[test]
    #[ignore]
    fn every_flip_of_the_signature_fails_signature() {
        signature_sweep(true);
    }

    fn signature_sweep(exhaustive: bool) {
        let (report, chain, policy) = milan();
        let sig =
            report::SIGNATURE_OFFSET..report::SIGNATURE_OFFSET + 2 * report::SIG_COMPONENT_LEN;
        for pos in sweep(sig, 40, exhaustive) {
            let mut bad = report.clone();
            bad[pos] ^= 0x80;
            let v = verify(&bad, &chain, &policy);
            assert_eq!(
                failed(&v),
                BTreeSet::from([names::SIGNATURE]),
                "flip at 0x{pos:x}: {v}"
            );
        }
    }

    #[test]
    fn flips_of_the_reserved_tail_fail_report_format() {
        let (report, chain, policy) = milan();
        for pos in (report::SIGNATURE_OFFSET + 144..report::REPORT_LEN).step_by(7) {
            let mut bad = report.clone();
            bad[pos] ^= 0x01;
            let v = verify(&bad, &chain, &policy);
            assert_eq!(
                failed(&v),
                BTreeSet::from([names::REPORT_FORMAT]),
                "flip at 0x{pos:x}: {v}"
            );
        }
    }

    /// Byte range of the TBS part inside a DER certificate.
    fn tbs_range(der: &[u8]) -> std::ops::Range<usize> {
        use x509_cert::der::{Decode, Encode};
        let cert = Certificate::from_der(der).unwrap();
        let tbs_len = cert.tbs_certificate.to_der().unwrap().len();
        // Outer SEQUENCE header is 4 bytes for certificates of this size (0x30 0x82 len len).
        assert_eq!(der[0..2], [0x30, 0x82]);
        4..4 + tbs_len
    }

    #[test]
    fn flips_of_the_vcek_tbs_fail_chain() {
        vcek_tbs_sweep(false);
    }

    /// Every byte of the VCEK's TBS certificate.
    #[test]
    #[ignore]
    fn every_flip_of_the_vcek_tbs_fails_chain() {
        vcek_tbs_sweep(true);
    }

    fn vcek_tbs_sweep(exhaustive: bool) {
        let (report, chain, policy) = milan();
        for pos in sweep(tbs_range(&chain.vcek), 64, exhaustive) {
            let mut vcek = chain.vcek.clone();
            vcek[pos] ^= 0x01;
            let bad = CertChain::from_der_parts(None, None, vcek);
            let v = verify(&report, &bad, &policy);
            assert!(failed(&v).contains(names::CHAIN), "VCEK flip at {pos}: {v}");
        }
    }

    #[test]
    fn flips_of_the_ask_and_ark_tbs_fail_chain() {
        ca_tbs_sweep(false);
    }

    /// Every byte of the ARK's and the ASK's TBS certificates.
    #[test]
    #[ignore]
    fn every_flip_of_the_ask_and_ark_tbs_fails_chain() {
        ca_tbs_sweep(true);
    }

    fn ca_tbs_sweep(exhaustive: bool) {
        let (report, chain, policy) = milan();
        let (ark, ask) = Product::Milan.pinned_der().unwrap();
        for (which, der) in [("ARK", &ark), ("ASK", &ask)] {
            for pos in sweep(tbs_range(der), 24, exhaustive) {
                let mut m = der.clone();
                m[pos] ^= 0x01;
                let bad = if which == "ARK" {
                    CertChain::from_der_parts(Some(m), Some(ask.clone()), chain.vcek.clone())
                } else {
                    CertChain::from_der_parts(Some(ark.clone()), Some(m), chain.vcek.clone())
                };
                let v = verify(&report, &bad, &policy);
                assert_eq!(
                    failed(&v),
                    BTreeSet::from([names::CHAIN]),
                    "{which} flip at {pos}: {v}"
                );
            }
        }
    }

    #[test]
    fn wrong_vcek_fails_signature_and_match() {
        let (report, _, policy) = milan();
        let chain = CertChain::from_der_parts(None, None, testdata::turin_vcek_der());
        let v = verify(&report, &chain, &policy);
        assert_eq!(
            failed(&v),
            BTreeSet::from([names::VCEK_MATCHES_REPORT, names::SIGNATURE]),
            "{v}"
        );
        assert_eq!(v.product, Some(Product::Turin));
    }

    #[test]
    fn policy_mismatches_on_real_report_fail_only_their_check() {
        let (report, chain, policy) = milan();
        let mut p = policy.clone();
        p.measurement[0] ^= 1;
        assert_eq!(
            failed(&verify(&report, &chain, &p)),
            BTreeSet::from([names::MEASUREMENT])
        );
        let mut p = policy.clone();
        p.min_tcb = MinTcb {
            bootloader: 3,
            tee: 0,
            snp: 9,
            microcode: 0,
        };
        let v = verify(&report, &chain, &p);
        assert_eq!(failed(&v), BTreeSet::from([names::MIN_TCB]));
        assert!(v
            .check(names::MIN_TCB)
            .unwrap()
            .detail
            .contains("snp 8 < 9"));
        let mut p = policy.clone();
        p.report_data = ExpectedReportData::Provenance(b"{}".to_vec());
        assert_eq!(
            failed(&verify(&report, &chain, &p)),
            BTreeSet::from([names::REPORT_DATA])
        );
        let mut p = policy;
        p.vmpl = 1;
        assert_eq!(
            failed(&verify(&report, &chain, &p)),
            BTreeSet::from([names::VMPL])
        );
    }

    #[test]
    fn garbage_and_truncated_reports_give_a_verdict() {
        let (report, chain, policy) = milan();
        for bad in [
            vec![],
            report[..100].to_vec(),
            vec![0xFF; report::REPORT_LEN],
        ] {
            let v = verify(&bad, &chain, &policy);
            assert!(!v.is_verified());
            assert!(failed(&v).contains(names::REPORT_FORMAT));
            assert!(failed(&v).contains(names::SIGNATURE));
            assert!(!failed(&v).contains(names::CHAIN));
        }
    }
}
