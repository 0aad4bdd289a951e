//! Trust-chain steps 1-3 on real AMD evidence (the Milan report and VCEK the
//! `sev` crate ships, read from the cargo registry) and on the simulated
//! PSP's: every mutation fails exactly the check it should.

use std::collections::BTreeSet;
use std::os::unix::net::UnixStream;

use kettle_attest::chain::{self, Product};
use kettle_attest::report::{self, Report, Tcb};
use kettle_attest::simulated::{PspClient, SimulatedPsp, DEFAULT_GUEST_POLICY, DEFAULT_TCB};
use kettle_attest::{report_data_for, testdata, CertChain, ReportProvider};
use kettle_verify::{
    verify, Bundle, CheckId, Expectations, GuestPolicyRules, MinTcb, Status, TcbFloor, Verdict,
};
use x509_cert::Certificate;

/// Verifies a report (and, when given, the provenance it must bind) against `expect`.
fn verify_report(
    report: &[u8],
    chain: &CertChain,
    provenance: Option<&[u8]>,
    expect: &Expectations,
) -> Verdict {
    verify(
        &Bundle {
            report: report.to_vec(),
            chain: Ok(chain.clone()),
            provenance: provenance.map(<[u8]>::to_vec),
            artifacts: Vec::new(),
            complete_output: false,
        },
        expect,
    )
}

/// The failed checks of steps 1-3 (the report and its binding).
fn failed(v: &Verdict) -> BTreeSet<CheckId> {
    v.failures()
        .map(|c| c.id)
        .filter(|id| id.trust_chain_step() <= 3)
        .collect()
}

/// Asserts that of steps 1-3 exactly `checks` failed in `v` (none: all passed); `case`
/// says which verification `v` is.
fn assert_failed(v: &Verdict, checks: &[CheckId], case: &str) {
    let expected: BTreeSet<CheckId> = checks.iter().copied().collect();
    assert_eq!(failed(v), expected, "{case}: {v}");
}

/// Asserts that check `id` is among the failed ones of `v`; `case` says which verification `v` is.
fn assert_fails(v: &Verdict, id: CheckId, case: &str) {
    assert!(failed(v).contains(&id), "{case}: {id:?} did not fail: {v}");
}

/// Asserts that check `id` of `v` ended with `status`.
fn assert_status(v: &Verdict, id: CheckId, status: Status) {
    assert_eq!(v.check(id).unwrap().status(), status, "{id:?}: {v}");
}

/// Asserts that the detail of check `id` of `v` contains `text`.
fn assert_detail(v: &Verdict, id: CheckId, text: &str) {
    let detail = v.check(id).unwrap().detail();
    assert!(
        detail.contains(text),
        "{id:?}: {text:?} not in {detail:?}: {v}"
    );
}

/// `bytes` with the bits of `mask` flipped at `pos`.
fn flipped(bytes: &[u8], pos: usize, mask: u8) -> Vec<u8> {
    let mut out = bytes.to_vec();
    out[pos] ^= mask;
    out
}

fn milan() -> (Vec<u8>, CertChain, Expectations) {
    let report = testdata::milan_report();
    let r = Report::parse(&report).unwrap();
    (
        report,
        CertChain::from_der_parts(None, None, testdata::milan_vcek_der()),
        // Not a Kettle report: its report_data is whatever the sev crate's authors asked for.
        // A Milan report: these tests opt in to Milan so the other checks decide.
        Expectations {
            report_data: Some(r.report_data()),
            processor_generations: vec![Product::Milan, Product::Genoa, Product::Turin],
            ..Expectations::new(r.measurement(), "the report itself")
        },
    )
}

/// Issue 25: by default the real Milan report is refused by report.processor_generation,
/// which names the VCEK root seed extraction; only that check fails.
#[test]
fn the_real_milan_report_is_refused_by_default_naming_the_attack() {
    let (report, chain, expect) = milan();
    let strict = Expectations {
        processor_generations: kettle_verify::default_processor_generations(),
        ..expect
    };
    let v = verify_report(&report, &chain, None, &strict);
    assert_failed(&v, &[CheckId::ProcessorGeneration], "Milan by default");
    assert_detail(&v, CheckId::ProcessorGeneration, "arXiv 2605.12990");
    assert!(
        v.headline()
            .ends_with("REJECTED: 1 check(s) failed: report.processor_generation"),
        "{}",
        v.headline()
    );
}

#[test]
fn real_milan_report_verifies_when_milan_is_opted_in() {
    let (report, chain, expect) = milan();
    let v = verify_report(&report, &chain, None, &expect);
    assert!(v.verified(), "{v}");
    assert!(!v.simulated());
    let names: Vec<CheckId> = v.checks().iter().map(|c| c.id).collect();
    // Every one but the chip-id check, which runs only when chip ids are listed.
    let report_checks: Vec<CheckId> = CheckId::ALL
        .into_iter()
        .filter(|c| c.trust_chain_step() <= 3 && *c != CheckId::ChipId)
        .collect();
    assert_eq!(names, report_checks, "every check of steps 1-3, in order");
    assert_eq!(names.len(), 16);
    assert_detail(&v, CheckId::Chain, "ARK-Milan");
    assert_status(&v, CheckId::ReportData, Status::Pass);
    assert_detail(&v, CheckId::MinTcb, "built-in Milan floor");
    assert!(
        v.to_string().ends_with(
            "VERIFIED (report only: not bound to any build); \
             OPTED IN: EPYC Milan accepted (its VCEK root seed can be extracted, arXiv 2605.12990); \
             not checked: report.revocation, report.cert_validity"
        ),
        "{v}"
    );
    let text = v.to_string();
    assert!(text.contains("[PASS] report.signature"), "{text}");
    let json = serde_json::to_value(&v).unwrap();
    assert_eq!(json["verified"], true);
    assert_eq!(json["checks"].as_array().unwrap().len(), 16);
}

#[test]
fn real_milan_report_verifies_with_full_amd_bundle() {
    let (report, _, expect) = milan();
    let mut bundle = testdata::milan_ca_bundle();
    bundle.extend_from_slice(chain::der_to_pem(&testdata::milan_vcek_der()).as_bytes());
    let chain = CertChain::from_pem_bundle(&bundle).unwrap();
    assert!(chain.ark.is_some());
    let v = verify_report(&report, &chain, None, &expect);
    assert!(v.verified(), "{v}");
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

/// `#[test] fn $quick`, a `sweep` over sample positions, and `#[test] #[ignore] fn
/// $exhaustive` (with its doc), the same over every position.
macro_rules! sweep_tests {
    ($sweep:ident: $quick:ident, $(#[doc = $doc:expr])* $exhaustive:ident) => {
        #[test]
        fn $quick() {
            $sweep(false);
        }

        $(#[doc = $doc])*
        #[test]
        #[ignore]
        fn $exhaustive() {
            $sweep(true);
        }
    };
}

sweep_tests!(signed_part_sweep: flips_of_the_signed_part_fail_signature,
    /// Every byte of 0x0..0x2A0 (about 3 minutes in a debug build).
    every_flip_of_the_signed_part_fails_signature);

fn signed_part_sweep(exhaustive: bool) {
    let (report, chain, expect) = milan();
    let mut positions = sweep(0..report::SIGNED_LEN, 64, exhaustive);
    // Each field's first byte, so every field is hit at least once.
    positions.extend([
        0x04, 0x08, 0x30, 0x34, 0x38, 0x40, 0x48, 0x50, 0x90, 0xC0, 0xE0, 0x110, 0x140, 0x160,
        0x180, 0x188, 0x1A0, 0x1E0, 0x1E8, 0x1EC, 0x1F0, 0x1F8,
    ]);
    for pos in positions {
        let v = verify_report(&flipped(&report, pos, 0x01), &chain, None, &expect);
        assert!(!v.verified());
        assert_fails(&v, CheckId::Signature, &format!("flip at 0x{pos:x}"));
    }
}

sweep_tests!(signature_sweep: flips_of_the_signature_fail_signature,
    /// Every byte of r and s.
    every_flip_of_the_signature_fails_signature);

fn signature_sweep(exhaustive: bool) {
    let (report, chain, expect) = milan();
    let sig = report::SIGNATURE_OFFSET..report::SIGNATURE_OFFSET + 2 * report::SIG_COMPONENT_LEN;
    for pos in sweep(sig, 40, exhaustive) {
        let v = verify_report(&flipped(&report, pos, 0x80), &chain, None, &expect);
        assert_failed(&v, &[CheckId::Signature], &format!("flip at 0x{pos:x}"));
    }
}

#[test]
fn flips_of_the_reserved_tail_fail_report_format() {
    let (report, chain, expect) = milan();
    for pos in (report::SIGNATURE_OFFSET + 144..report::REPORT_LEN).step_by(7) {
        let v = verify_report(&flipped(&report, pos, 0x01), &chain, None, &expect);
        assert_failed(&v, &[CheckId::ReportFormat], &format!("flip at 0x{pos:x}"));
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

sweep_tests!(vcek_tbs_sweep: flips_of_the_vcek_tbs_fail_chain,
    /// Every byte of the VCEK's TBS certificate.
    every_flip_of_the_vcek_tbs_fails_chain);

fn vcek_tbs_sweep(exhaustive: bool) {
    let (report, chain, expect) = milan();
    for pos in sweep(tbs_range(&chain.vcek), 64, exhaustive) {
        let bad = CertChain::from_der_parts(None, None, flipped(&chain.vcek, pos, 0x01));
        let v = verify_report(&report, &bad, None, &expect);
        assert_fails(&v, CheckId::Chain, &format!("VCEK flip at {pos}"));
    }
}

sweep_tests!(ca_tbs_sweep: flips_of_the_ask_and_ark_tbs_fail_chain,
    /// Every byte of the ARK's and the ASK's TBS certificates.
    every_flip_of_the_ask_and_ark_tbs_fails_chain);

fn ca_tbs_sweep(exhaustive: bool) {
    let (report, chain, expect) = milan();
    let (ark, ask) = Product::Milan.pinned_der().unwrap();
    for (which, der) in [("ARK", &ark), ("ASK", &ask)] {
        for pos in sweep(tbs_range(der), 24, exhaustive) {
            let m = flipped(der, pos, 0x01);
            let bad = if which == "ARK" {
                CertChain::from_der_parts(Some(m), Some(ask.clone()), chain.vcek.clone())
            } else {
                CertChain::from_der_parts(Some(ark.clone()), Some(m), chain.vcek.clone())
            };
            let v = verify_report(&report, &bad, None, &expect);
            assert_failed(&v, &[CheckId::Chain], &format!("{which} flip at {pos}"));
        }
    }
}

#[test]
fn wrong_vcek_fails_signature_and_match() {
    let (report, _, expect) = milan();
    let chain = CertChain::from_der_parts(None, None, testdata::turin_vcek_der());
    let v = verify_report(&report, &chain, None, &expect);
    // The chain says Turin, so the Milan report's TCB is read in Turin's layout: it then
    // also falls below Turin's floor.
    let mismatch = [
        CheckId::VcekMatchesReport,
        CheckId::Signature,
        CheckId::MinTcb,
    ];
    assert_failed(&v, &mismatch, "Turin's VCEK");
    assert_detail(&v, CheckId::Chain, "Turin");
}

#[test]
fn expectation_mismatches_on_real_report_fail_only_their_check() {
    let (report, chain, expect) = milan();
    let mut e = expect.clone();
    e.measurements[0].0[0] ^= 1;
    let v = verify_report(&report, &chain, None, &e);
    assert_failed(&v, &[CheckId::Measurement], "another measurement");
    let mut e = expect.clone();
    e.min_tcb = TcbFloor::Fixed(MinTcb {
        bootloader: 3,
        snp: 9,
        ..MinTcb::default()
    });
    let v = verify_report(&report, &chain, None, &e);
    assert_failed(&v, &[CheckId::MinTcb], "a higher TCB floor");
    assert_detail(&v, CheckId::MinTcb, "snp 8 < 9");
    let v = verify_report(&report, &chain, Some(b"{}"), &expect);
    assert_failed(&v, &[CheckId::ReportData], "a provenance it does not bind");
    let mut e = expect;
    e.vmpl = 1;
    let v = verify_report(&report, &chain, None, &e);
    assert_failed(&v, &[CheckId::Vmpl], "another VMPL");
}

#[test]
fn garbage_and_truncated_reports_fail_the_format_and_skip_what_depends_on_it() {
    let (report, chain, expect) = milan();
    for bad in [
        vec![],
        report[..100].to_vec(),
        vec![0xFF; report::REPORT_LEN],
    ] {
        let v = verify_report(&bad, &chain, None, &expect);
        assert!(!v.verified());
        let f = failed(&v);
        assert!(f.contains(&CheckId::ReportFormat), "{v}");
        assert!(!f.contains(&CheckId::Chain), "{v}");
        let on_the_body = [CheckId::Signer]
            .into_iter()
            .chain(CheckId::of_step(2).filter(|c| *c != CheckId::Simulated));
        for id in on_the_body {
            let c = v.check(id).unwrap();
            assert_eq!(c.status(), Status::Skip, "{v}");
            assert!(matches!(
                &c.outcome,
                kettle_verify::Outcome::Skip(kettle_verify::Skipped::DependsOn {
                    check: CheckId::ReportFormat,
                    ..
                })
            ));
        }
        // A full-size report's signature still runs over its raw bytes (and fails).
        let sig = v.check(CheckId::Signature).unwrap().status();
        if bad.len() == report::REPORT_LEN {
            assert_eq!(sig, Status::Fail, "{v}");
        } else {
            assert_eq!(sig, Status::Skip, "{v}");
        }
        assert!(
            f.len() <= 3,
            "one bad report is not a pile of failures: {v}"
        );
    }
}

// --- the simulated PSP's evidence ---------------------------------------

const MEASUREMENT: [u8; 48] = [0x5A; 48];
const PROVENANCE: &[u8] = br#"{"_type":"https://in-toto.io/Statement/v1"}"#;

fn simulated_expect(allow: bool) -> Expectations {
    let e = Expectations::new(MEASUREMENT, "test");
    if allow {
        e.accepting_simulated()
    } else {
        e
    }
}

fn chain_of(psp: &SimulatedPsp) -> CertChain {
    CertChain::from_pem_bundle(&psp.cert_chain_pem().unwrap()).unwrap()
}

/// A report `psp` signs at `vmpl`, binding [`PROVENANCE`].
fn report_of(psp: &SimulatedPsp, vmpl: u32) -> Vec<u8> {
    psp.report(&report_data_for(PROVENANCE), vmpl).unwrap()
}

/// Verifies a simulated report, which must bind [`PROVENANCE`].
fn verify_simulated(report: &[u8], chain: &CertChain, expect: &Expectations) -> Verdict {
    verify_report(report, chain, Some(PROVENANCE), expect)
}

/// Verifies the report `psp` signs at `vmpl` (see [`report_of`]) with `psp`'s own chain.
fn verify_psp(psp: &SimulatedPsp, vmpl: u32, expect: &Expectations) -> Verdict {
    verify_simulated(&report_of(psp, vmpl), &chain_of(psp), expect)
}

mod real;
mod simulated;
