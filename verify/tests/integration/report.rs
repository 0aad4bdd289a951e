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

#[test]
fn simulated_round_trip_verifies_only_when_simulated_is_allowed() {
    let (guest, host) = UnixStream::pair().unwrap();
    let server = std::thread::spawn(move || SimulatedPsp::new(MEASUREMENT).serve(host));
    let mut client = PspClient::new(guest);
    let evidence = client.request_report(&report_data_for(PROVENANCE)).unwrap();
    let again = client.request_report(&report_data_for(b"other")).unwrap();
    drop(client);
    server.join().unwrap().unwrap();
    let chain = CertChain::from_pem_bundle(evidence.cert_chain_pem.as_ref().unwrap()).unwrap();

    let v = verify_simulated(&evidence.report, &chain, &simulated_expect(true));
    assert_failed(&v, &[], "simulated evidence accepted");
    assert!(v.simulated());
    assert!(v.to_string().contains("SIMULATED"), "{v}");
    assert_eq!(serde_json::to_value(&v).unwrap()["simulated"], true);

    let v = verify_simulated(&evidence.report, &chain, &simulated_expect(false));
    assert_failed(&v, &[CheckId::Simulated], "simulated evidence refused");

    // The second report binds other data: it fails report_data and nothing else.
    let v = verify_simulated(&again.report, &chain, &simulated_expect(true));
    assert_failed(&v, &[CheckId::ReportData], "the report binding other data");
}

#[test]
fn simulated_evidence_without_bundle_roots_is_still_recognised() {
    let psp = SimulatedPsp::new(MEASUREMENT);
    let report = report_of(&psp, 0);
    // Only the VCEK supplied: the pinned simulated root is found, and still refused by default.
    let chain = CertChain::from_der_parts(None, None, chain_of(&psp).vcek);
    let v = verify_simulated(&report, &chain, &simulated_expect(false));
    assert_failed(&v, &[CheckId::Simulated], "simulated evidence refused");
    let v = verify_simulated(&report, &chain, &simulated_expect(true));
    assert_failed(&v, &[], "simulated evidence accepted");
}

#[test]
fn simulated_policy_failures_fail_exactly_their_own_check() {
    let expect = simulated_expect(true);
    let base = SimulatedPsp::new(MEASUREMENT);
    assert_failed(&verify_psp(&base, 0, &expect), &[], "the default PSP");

    // Debug allowed in the guest policy.
    let debug = SimulatedPsp::new(MEASUREMENT).with_guest_policy(DEFAULT_GUEST_POLICY | (1 << 19));
    let v = verify_psp(&debug, 0, &expect);
    assert_failed(&v, &[CheckId::DebugDisallowed], "debug allowed");
    let lax = Expectations {
        guest_policy: GuestPolicyRules {
            allow_debug: true,
            ..GuestPolicyRules::default()
        },
        ..expect.clone()
    };
    let v = verify_psp(&debug, 0, &lax);
    assert_failed(&v, &[], "debug allowed where the rules allow it");

    // Requested at VMPL 1.
    assert_failed(&verify_psp(&base, 1, &expect), &[CheckId::Vmpl], "VMPL 1");

    // Reported TCB below the minimum (the VCEK matches the lower TCB, so only min_tcb fails).
    let old = SimulatedPsp::new(MEASUREMENT).with_tcb(Tcb {
        snp: 5,
        ..DEFAULT_TCB
    });
    let min = Expectations {
        min_tcb: TcbFloor::Fixed(MinTcb {
            bootloader: 9,
            snp: 8,
            microcode: 72,
            ..MinTcb::default()
        }),
        ..expect.clone()
    };
    assert_failed(
        &verify_psp(&old, 0, &min),
        &[CheckId::MinTcb],
        "TCB below the floor",
    );
    assert_failed(&verify_psp(&base, 0, &min), &[], "TCB above the floor");

    // Wrong measurement.
    let other_image = SimulatedPsp::new([0x11; 48]);
    let v = verify_psp(&other_image, 0, &expect);
    assert_failed(&v, &[CheckId::Measurement], "another measurement");
}

#[test]
fn vcek_for_another_tcb_fails_vcek_matches_report() {
    let new = SimulatedPsp::new(MEASUREMENT);
    let old = SimulatedPsp::new(MEASUREMENT).with_tcb(Tcb {
        microcode: 73, // above the floor, so only the VCEK's TCB disagrees
        ..DEFAULT_TCB
    });
    // Same key, but the certificate is for the newer TCB: the extensions disagree.
    let v = verify_simulated(
        &report_of(&old, 0),
        &chain_of(&new),
        &simulated_expect(true),
    );
    assert_failed(&v, &[CheckId::VcekMatchesReport], "the newer TCB's VCEK");
    assert_detail(&v, CheckId::VcekMatchesReport, "microcode");
}

#[test]
fn every_simulated_report_version_verifies() {
    let chain = chain_of(&SimulatedPsp::new(MEASUREMENT));
    for version in [2, 3, 5] {
        let report = report_of(
            &SimulatedPsp::new(MEASUREMENT).with_report_version(version),
            0,
        );
        let v = verify_simulated(&report, &chain, &simulated_expect(true));
        assert_failed(&v, &[], &format!("version {version}"));
        assert_eq!(Report::parse(&report).unwrap().version(), version);
    }
}

#[test]
fn a_real_report_alone_needs_a_zero_second_half_or_the_expected_value() {
    let (report, chain, expect) = milan();
    // Without --report-data, a report whose second half is not zero is no Kettle report.
    let alone = Expectations {
        report_data: None,
        ..expect.clone()
    };
    let v = verify_report(&report, &chain, None, &alone);
    assert_failed(&v, &[CheckId::ReportData], "no report_data expected");
    assert_detail(&v, CheckId::ReportData, "32 zero bytes");
    let mut other = expect;
    other.report_data.as_mut().unwrap()[0] ^= 1;
    let v = verify_report(&report, &chain, None, &other);
    assert_failed(&v, &[CheckId::ReportData], "another report_data expected");
}

#[test]
fn every_isolation_weakening_policy_bit_fails_the_guest_policy_check() {
    // Asserts what a report under guest `policy` fails against `rules`: the policy check or nothing.
    let assert_policy = |policy: u64, rules: GuestPolicyRules, refused: bool, case: &str| {
        let e = Expectations {
            guest_policy: rules,
            ..simulated_expect(true)
        };
        let v = verify_psp(
            &SimulatedPsp::new(MEASUREMENT).with_guest_policy(policy),
            0,
            &e,
        );
        let checks: &[CheckId] = if refused {
            &[CheckId::GuestPolicy]
        } else {
            &[]
        };
        assert_failed(&v, checks, case);
    };
    let strict = GuestPolicyRules::default();
    assert_policy(DEFAULT_GUEST_POLICY, strict, false, "the default policy");
    for (bit, what) in [
        (18, "migration agent"),
        (21, "CXL"),
        (30, "reserved high bit"),
    ] {
        assert_policy(DEFAULT_GUEST_POLICY | 1 << bit, strict, true, what);
    }
    assert_policy(
        DEFAULT_GUEST_POLICY & !(1 << 17),
        strict,
        true,
        "bit 17 clear",
    );
    let no_smt = GuestPolicyRules {
        allow_smt: false,
        ..strict
    };
    assert_policy(
        DEFAULT_GUEST_POLICY,
        no_smt,
        true,
        "SMT allowed, not accepted",
    );
    assert_policy(DEFAULT_GUEST_POLICY & !(1 << 16), no_smt, false, "no SMT");
    let one_socket = GuestPolicyRules {
        require_single_socket: true,
        ..strict
    };
    assert_policy(DEFAULT_GUEST_POLICY, one_socket, true, "several sockets");
    assert_policy(
        DEFAULT_GUEST_POLICY | 1 << 20,
        one_socket,
        false,
        "a single socket",
    );
    let abi = GuestPolicyRules {
        min_abi: (1, 51),
        ..strict
    };
    assert_policy(DEFAULT_GUEST_POLICY, abi, true, "an ABI below the minimum");
    assert_policy(DEFAULT_GUEST_POLICY | 0x0133, abi, false, "the minimum ABI");
    let ma = GuestPolicyRules {
        allow_migration_agent: true,
        ..strict
    };
    assert_policy(
        DEFAULT_GUEST_POLICY | 1 << 18,
        ma,
        false,
        "an accepted migration agent",
    );
}

#[test]
fn the_builtin_floor_refuses_a_tcb_below_it_by_default() {
    for low in [
        Tcb {
            bootloader: 0,
            tee: 0,
            snp: 0,
            microcode: 0,
            fmc: None,
        },
        Tcb {
            snp: 22,
            ..DEFAULT_TCB
        },
    ] {
        let low_tcb = SimulatedPsp::new(MEASUREMENT).with_tcb(low);
        let v = verify_psp(&low_tcb, 0, &simulated_expect(true));
        assert_failed(&v, &[CheckId::MinTcb], &format!("{low:?}"));
        assert_detail(&v, CheckId::MinTcb, "built-in");
    }
}

// --- real evidence from other processor generations and signers ----------

use kettle_attest::testdata::{RealEvidence, GENOA_V5, MILAN_DEBUG, MILAN_VLEK, TURIN_V5};

/// Strict report-only expectations for a real report (its own measurement and report_data).
fn own(e: &RealEvidence) -> Expectations {
    let r = Report::parse(e.report).unwrap();
    let mut x = Expectations {
        report_data: Some(r.report_data()),
        ..Expectations::new(r.measurement(), e.name)
    };
    // The Milan ones opt in to Milan, so the other checks decide.
    x.processor_generations.push(Product::Milan);
    x
}

fn verify_real(e: &RealEvidence, expect: &Expectations) -> Verdict {
    verify_report(e.report, &e.chain(), None, expect)
}

#[test]
fn real_genoa_and_turin_version_5_reports_verify_under_their_roots() {
    for (e, root) in [(GENOA_V5, "ARK-Genoa"), (TURIN_V5, "ARK-Turin")] {
        let v = verify_real(&e, &own(&e));
        assert!(v.verified(), "{}: {v}", e.name);
        assert_detail(&v, CheckId::Chain, root);
        assert_eq!(Report::parse(e.report).unwrap().version(), 5);
    }
    // Turin's TCB has an FMC SVN and its VCEK an 8-byte hwID.
    let v = verify_real(&TURIN_V5, &own(&TURIN_V5));
    assert_detail(&v, CheckId::VcekMatchesReport, "fmc=0");
}

#[test]
fn real_vlek_evidence_verifies_only_where_vlek_is_accepted() {
    let base = Expectations {
        vmpl: 1, // AWS requests it from VMPL 1 (its SVSM runs at 0)
        ..own(&MILAN_VLEK)
    };
    let v = verify_real(&MILAN_VLEK, &base);
    assert_failed(&v, &[CheckId::Signer], "VLEK not accepted");
    assert_status(&v, CheckId::Signature, Status::Skip);
    let vlek = Expectations {
        accept_vlek: true,
        ..base
    };
    let v = verify_real(&MILAN_VLEK, &vlek);
    assert!(v.verified(), "{v}");
    assert_detail(&v, CheckId::Chain, "ARK-Milan");
    let signer = v.check(CheckId::VcekMatchesReport).unwrap().detail();
    assert!(signer.starts_with("VLEK"), "{v}");
    // Without its ASVK the VLEK does not chain, and the error says what to add.
    let alone = kettle_attest::CertChain::from_der_parts(None, None, MILAN_VLEK.key_der.to_vec());
    let v = verify_report(MILAN_VLEK.report, &alone, None, &vlek);
    assert_fails(&v, CheckId::Chain, "the VLEK without its ASVK");
    assert_detail(&v, CheckId::Chain, "ASVK");
}

#[test]
fn a_real_report_that_allows_debugging_fails_only_the_debug_check() {
    let e = MILAN_DEBUG;
    let low_floor = Expectations {
        // This 2022 report's TCB (bl 2, snp 5, ucode 68) is below Kettle's built-in Milan floor.
        min_tcb: TcbFloor::Fixed(MinTcb::default()),
        ..own(&e)
    };
    let v = verify_real(&e, &low_floor);
    assert_failed(&v, &[CheckId::DebugDisallowed], "a floor it meets");
    let v = verify_real(&e, &own(&e));
    let below_floor = [CheckId::DebugDisallowed, CheckId::MinTcb];
    assert_failed(&v, &below_floor, "the built-in floor");
}

// --- revocation and validity --------------------------------------------

fn serials(
    psp: &SimulatedPsp,
) -> (
    x509_cert::serial_number::SerialNumber,
    x509_cert::serial_number::SerialNumber,
) {
    use x509_cert::der::Decode;
    let chain = chain_of(psp);
    let cert = |der: &[u8]| {
        x509_cert::Certificate::from_der(der)
            .unwrap()
            .tbs_certificate
            .serial_number
    };
    (cert(chain.ask.as_ref().unwrap()), cert(&chain.vcek))
}

const DEC_2026: u64 = 1_796_083_200;

#[test]
fn a_crl_listing_the_vcek_or_the_ask_rejects_it() {
    use kettle_attest::simulated::certs::test_crl;
    use kettle_testkit::evidence::{clean_simulated_crl, CRL_NEXT_UPDATE, CRL_THIS_UPDATE};
    let psp = SimulatedPsp::new(MEASUREMENT);
    let report = report_of(&psp, 0);
    let (ask, vcek) = serials(&psp);
    let run = |crls: Vec<Vec<u8>>, at: Option<u64>| {
        let e = Expectations {
            crls,
            at,
            ..simulated_expect(true)
        };
        verify_simulated(&report, &chain_of(&psp), &e)
    };
    let v = run(Vec::new(), None);
    assert_status(&v, CheckId::Revocation, Status::Skip);
    assert_detail(&v, CheckId::Revocation, "--crl");

    let clean = clean_simulated_crl();
    let v = run(vec![clean.clone()], None);
    assert_status(&v, CheckId::Revocation, Status::Pass);

    for (which, serial) in [("VCEK", vcek), ("ASK", ask)] {
        let crl = test_crl(&[serial], CRL_THIS_UPDATE, CRL_NEXT_UPDATE).unwrap();
        let v = run(vec![crl], None);
        assert_failed(&v, &[CheckId::Revocation], which);
        assert_detail(&v, CheckId::Revocation, &format!("the {which}"));
    }

    // A CRL whose signature does not verify is not the ARK's.
    let mut forged = clean.clone();
    let n = forged.len();
    forged[n - 5] ^= 1;
    let v = run(vec![forged], None);
    assert_failed(&v, &[CheckId::Revocation], "a forged CRL");
    // A CRL past its nextUpdate at the verifier's time is stale.
    let v = run(vec![clean], Some(CRL_NEXT_UPDATE + 1));
    assert_fails(&v, CheckId::Revocation, "a stale CRL");
    assert_detail(&v, CheckId::Revocation, "expired");
}

#[test]
fn validity_windows_are_checked_against_the_verifiers_time_only() {
    let vlek = |at| Expectations {
        vmpl: 1,
        accept_vlek: true,
        at,
        ..own(&MILAN_VLEK)
    };
    let v = verify_real(&MILAN_VLEK, &vlek(None));
    assert_status(&v, CheckId::CertValidity, Status::Skip);
    assert_detail(&v, CheckId::CertValidity, "no trusted clock");
    // The VLEK was valid from 2024-12-10 to 2025-12-10.
    assert!(verify_real(&MILAN_VLEK, &vlek(Some(1_750_000_000))).verified());
    let v = verify_real(&MILAN_VLEK, &vlek(Some(DEC_2026)));
    assert_failed(&v, &[CheckId::CertValidity], "after the VLEK expired");
    assert_detail(&v, CheckId::CertValidity, "VCEK expired");
}

/// Issue 25: of several CRLs the ARK signed, the newest by thisUpdate decides: an older
/// clean one given first must not hide a revocation the newer one lists. Without a time,
/// the verdict line says the CRL's age was not checked.
#[test]
fn the_newest_crl_decides_and_its_unchecked_age_is_said() {
    use kettle_attest::simulated::certs::test_crl;
    use kettle_testkit::evidence::{CRL_NEXT_UPDATE, CRL_THIS_UPDATE};
    let psp = SimulatedPsp::new(MEASUREMENT);
    let report = report_of(&psp, 0);
    let (_, vcek) = serials(&psp);
    let old_clean = test_crl(&[], CRL_THIS_UPDATE, CRL_NEXT_UPDATE).unwrap();
    let newer_revoking =
        test_crl(&[vcek], CRL_THIS_UPDATE + 86_400, CRL_NEXT_UPDATE + 86_400).unwrap();
    let run = |crls: Vec<Vec<u8>>, at: Option<u64>| {
        let e = Expectations {
            crls,
            at,
            ..simulated_expect(true)
        };
        verify_simulated(&report, &chain_of(&psp), &e)
    };
    for order in [
        vec![old_clean.clone(), newer_revoking.clone()],
        vec![newer_revoking.clone(), old_clean.clone()],
    ] {
        let v = run(order, None);
        assert_failed(&v, &[CheckId::Revocation], "the newer CRL revokes the VCEK");
        assert_detail(&v, CheckId::Revocation, "the VCEK");
    }
    let v = run(vec![old_clean.clone()], None);
    assert_status(&v, CheckId::Revocation, Status::Pass);
    assert_detail(&v, CheckId::Revocation, "its age was not checked");
    // What the verdict line names (`not checked: report.revocation (CRL age)`).
    let part = v.check(CheckId::Revocation).unwrap().unchecked_part.clone();
    assert!(part.unwrap().starts_with("CRL age:"), "{v}");
    let v = run(vec![old_clean], Some(CRL_THIS_UPDATE + 3_600));
    assert_status(&v, CheckId::Revocation, Status::Pass);
    assert_eq!(v.check(CheckId::Revocation).unwrap().unchecked_part, None);
}

/// Issue 25: the chip-ID to VCEK binding, on fixtures of our own (snpguest's own check never
/// ran before its PR #159, so agreeing with it proves nothing).
#[test]
fn the_vcek_must_be_the_reporting_chips() {
    let chip = |fill: u8, len: usize| {
        let mut id = [0u8; 64];
        id[..len].fill(fill);
        id
    };
    let run = |psp: SimulatedPsp, expect: &Expectations| {
        let report = report_of(&psp, 0);
        verify_simulated(&report, &chain_of(&psp), expect)
    };
    let allow = simulated_expect(true);
    // A chip's own VCEK.
    let v = run(
        SimulatedPsp::new(MEASUREMENT).with_chip_id(chip(0xA1, 64)),
        &allow,
    );
    assert_failed(&v, &[], "its own VCEK");
    // The VCEK of another chip (same key, another hwID): refused.
    let other = SimulatedPsp::new(MEASUREMENT)
        .with_chip_id(chip(0xA1, 64))
        .with_vcek_hw_id(chip(0xB2, 64).to_vec());
    let v = run(other, &allow);
    assert_failed(&v, &[CheckId::VcekMatchesReport], "another chip's VCEK");
    assert_detail(
        &v,
        CheckId::VcekMatchesReport,
        "does not equal the report's chip_id",
    );
    // Turin: an 8-byte hwID and the report's chip_id padded with zeros.
    let turin = SimulatedPsp::new(MEASUREMENT)
        .with_chip_id(chip(0xC3, 8))
        .with_vcek_hw_id(vec![0xC3; 8]);
    assert_failed(&run(turin, &allow), &[], "a Turin-style 8-byte hwID");
    // ...but not when the rest of the chip_id is not zero.
    let mut padded = chip(0xC3, 8);
    padded[40] = 1;
    let turin_not_padded = SimulatedPsp::new(MEASUREMENT)
        .with_chip_id(padded)
        .with_vcek_hw_id(vec![0xC3; 8]);
    assert_failed(
        &run(turin_not_padded, &allow),
        &[CheckId::VcekMatchesReport],
        "8 matching bytes, then not zeros",
    );
    // A masked chip id (all zero) matches no chip's VCEK, and no listed chip.
    let masked = SimulatedPsp::new(MEASUREMENT)
        .with_chip_id([0; 64])
        .with_vcek_hw_id(chip(0xA1, 64).to_vec());
    let listing = Expectations {
        chip_ids: vec![chip(0xA1, 64).to_vec()],
        ..allow.clone()
    };
    let v = run(masked, &listing);
    assert_failed(
        &v,
        &[CheckId::VcekMatchesReport, CheckId::ChipId],
        "a masked chip id",
    );
    assert_detail(&v, CheckId::ChipId, "MASK_CHIP_ID");
    // A listed chip passes report.chip_id; an unlisted one fails it alone.
    let listed = SimulatedPsp::new(MEASUREMENT).with_chip_id(chip(0xA1, 64));
    assert_failed(&run(listed, &listing), &[], "a listed chip");
    let unlisted = SimulatedPsp::new(MEASUREMENT).with_chip_id(chip(0xD4, 64));
    assert_failed(
        &run(unlisted, &listing),
        &[CheckId::ChipId],
        "an unlisted chip",
    );
}

/// Issue 25 (never misread): the `sev` crate guesses a version 2 report's TCB layout from its
/// chip_id (Turin's when only the first 8 bytes are set), so a Genoa-layout report from such
/// a chip id was read as Turin's: the VCEK then "disagreed" and the floor looked unmet. The
/// verifier reads the layout of the AMD root the chain verified under.
#[test]
fn a_version_2_report_is_read_in_its_roots_tcb_layout_whatever_its_chip_id() {
    let mut chip = [0u8; 64];
    chip[..8].fill(0xC3);
    let psp = SimulatedPsp::new(MEASUREMENT)
        .with_report_version(2)
        .with_chip_id(chip)
        .with_vcek_hw_id(chip[..8].to_vec());
    let v = verify_psp(&psp, 0, &simulated_expect(true));
    assert_failed(
        &v,
        &[],
        "a Turin-like chip id on a Genoa-layout version 2 report",
    );
    assert_detail(&v, CheckId::MinTcb, &DEFAULT_TCB.to_string());
}
