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

fn milan() -> (Vec<u8>, CertChain, Expectations) {
    let report = testdata::milan_report();
    let r = Report::parse(&report).unwrap();
    (
        report,
        CertChain::from_der_parts(None, None, testdata::milan_vcek_der()),
        // Not a Kettle report: its report_data is whatever the sev crate's authors asked for.
        Expectations {
            report_data: Some(r.report_data()),
            ..Expectations::new(r.measurement(), "the report itself")
        },
    )
}

#[test]
fn real_milan_report_verifies() {
    let (report, chain, expect) = milan();
    let v = verify_report(&report, &chain, None, &expect);
    assert!(v.verified, "{v}");
    assert!(!v.simulated);
    let names: Vec<CheckId> = v.checks.iter().map(|c| c.id).collect();
    let report_checks: Vec<CheckId> = CheckId::ALL
        .into_iter()
        .filter(|c| c.trust_chain_step() <= 3)
        .collect();
    assert_eq!(names, report_checks, "every check of steps 1-3, in order");
    assert_eq!(names.len(), 15);
    assert!(
        v.check(CheckId::Chain)
            .unwrap()
            .detail()
            .contains("ARK-Milan"),
        "{v}"
    );
    assert_eq!(v.check(CheckId::ReportData).unwrap().status(), Status::Pass);
    assert!(
        v.check(CheckId::MinTcb)
            .unwrap()
            .detail()
            .contains("built-in Milan floor"),
        "{v}"
    );
    assert!(
        v.to_string()
            .ends_with("VERIFIED (report only: not bound to any build)"),
        "{v}"
    );
    let text = v.to_string();
    assert!(text.contains("[PASS] report.signature"), "{text}");
    let json = serde_json::to_value(&v).unwrap();
    assert_eq!(json["verified"], true);
    assert_eq!(json["checks"].as_array().unwrap().len(), 15);
}

#[test]
fn real_milan_report_verifies_with_full_amd_bundle() {
    let (report, _, expect) = milan();
    let mut bundle = testdata::milan_ca_bundle();
    bundle.extend_from_slice(chain::der_to_pem(&testdata::milan_vcek_der()).as_bytes());
    let chain = CertChain::from_pem_bundle(&bundle).unwrap();
    assert!(chain.ark.is_some());
    let v = verify_report(&report, &chain, None, &expect);
    assert!(v.verified, "{v}");
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
    let (report, chain, expect) = milan();
    let mut positions = sweep(0..report::SIGNED_LEN, 64, exhaustive);
    // Each field's first byte, so every field is hit at least once.
    positions.extend([
        0x04, 0x08, 0x30, 0x34, 0x38, 0x40, 0x48, 0x50, 0x90, 0xC0, 0xE0, 0x110, 0x140, 0x160,
        0x180, 0x188, 0x1A0, 0x1E0, 0x1E8, 0x1EC, 0x1F0, 0x1F8,
    ]);
    for pos in positions {
        let mut bad = report.clone();
        bad[pos] ^= 0x01;
        let v = verify_report(&bad, &chain, None, &expect);
        assert!(!v.verified);
        assert!(
            failed(&v).contains(&CheckId::Signature),
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
    let (report, chain, expect) = milan();
    let sig = report::SIGNATURE_OFFSET..report::SIGNATURE_OFFSET + 2 * report::SIG_COMPONENT_LEN;
    for pos in sweep(sig, 40, exhaustive) {
        let mut bad = report.clone();
        bad[pos] ^= 0x80;
        let v = verify_report(&bad, &chain, None, &expect);
        assert_eq!(
            failed(&v),
            BTreeSet::from([CheckId::Signature]),
            "flip at 0x{pos:x}: {v}"
        );
    }
}

#[test]
fn flips_of_the_reserved_tail_fail_report_format() {
    let (report, chain, expect) = milan();
    for pos in (report::SIGNATURE_OFFSET + 144..report::REPORT_LEN).step_by(7) {
        let mut bad = report.clone();
        bad[pos] ^= 0x01;
        let v = verify_report(&bad, &chain, None, &expect);
        assert_eq!(
            failed(&v),
            BTreeSet::from([CheckId::ReportFormat]),
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
    let (report, chain, expect) = milan();
    for pos in sweep(tbs_range(&chain.vcek), 64, exhaustive) {
        let mut vcek = chain.vcek.clone();
        vcek[pos] ^= 0x01;
        let bad = CertChain::from_der_parts(None, None, vcek);
        let v = verify_report(&report, &bad, None, &expect);
        assert!(
            failed(&v).contains(&CheckId::Chain),
            "VCEK flip at {pos}: {v}"
        );
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
    let (report, chain, expect) = milan();
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
            let v = verify_report(&report, &bad, None, &expect);
            assert_eq!(
                failed(&v),
                BTreeSet::from([CheckId::Chain]),
                "{which} flip at {pos}: {v}"
            );
        }
    }
}

#[test]
fn wrong_vcek_fails_signature_and_match() {
    let (report, _, expect) = milan();
    let chain = CertChain::from_der_parts(None, None, testdata::turin_vcek_der());
    let v = verify_report(&report, &chain, None, &expect);
    assert_eq!(
        failed(&v),
        BTreeSet::from([CheckId::VcekMatchesReport, CheckId::Signature]),
        "{v}"
    );
    assert!(
        v.check(CheckId::Chain).unwrap().detail().contains("Turin"),
        "{v}"
    );
}

#[test]
fn expectation_mismatches_on_real_report_fail_only_their_check() {
    let (report, chain, expect) = milan();
    let mut e = expect.clone();
    e.measurements[0].0[0] ^= 1;
    assert_eq!(
        failed(&verify_report(&report, &chain, None, &e)),
        BTreeSet::from([CheckId::Measurement])
    );
    let mut e = expect.clone();
    e.min_tcb = TcbFloor::Fixed(MinTcb {
        bootloader: 3,
        snp: 9,
        ..MinTcb::default()
    });
    let v = verify_report(&report, &chain, None, &e);
    assert_eq!(failed(&v), BTreeSet::from([CheckId::MinTcb]));
    assert!(v
        .check(CheckId::MinTcb)
        .unwrap()
        .detail()
        .contains("snp 8 < 9"));
    let v = verify_report(&report, &chain, Some(b"{}"), &expect);
    assert_eq!(failed(&v), BTreeSet::from([CheckId::ReportData]));
    let mut e = expect;
    e.vmpl = 1;
    assert_eq!(
        failed(&verify_report(&report, &chain, None, &e)),
        BTreeSet::from([CheckId::Vmpl])
    );
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
        assert!(!v.verified);
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

    let v = verify_report(
        &evidence.report,
        &chain,
        Some(PROVENANCE),
        &simulated_expect(true),
    );
    assert!(failed(&v).is_empty(), "{v}");
    assert!(v.simulated);
    assert!(v.to_string().contains("SIMULATED"), "{v}");
    assert_eq!(serde_json::to_value(&v).unwrap()["simulated"], true);

    let v = verify_report(
        &evidence.report,
        &chain,
        Some(PROVENANCE),
        &simulated_expect(false),
    );
    assert_eq!(failed(&v), BTreeSet::from([CheckId::Simulated]), "{v}");

    // The second report binds other data: it fails report_data and nothing else.
    let v = verify_report(
        &again.report,
        &chain,
        Some(PROVENANCE),
        &simulated_expect(true),
    );
    assert_eq!(failed(&v), BTreeSet::from([CheckId::ReportData]), "{v}");
}

#[test]
fn simulated_evidence_without_bundle_roots_is_still_recognised() {
    let psp = SimulatedPsp::new(MEASUREMENT);
    let report = psp.report(&report_data_for(PROVENANCE), 0).unwrap();
    // Only the VCEK supplied: the pinned simulated root is found, and still refused by default.
    let chain = CertChain::from_der_parts(None, None, chain_of(&psp).vcek);
    let v = verify_report(&report, &chain, Some(PROVENANCE), &simulated_expect(false));
    assert_eq!(failed(&v), BTreeSet::from([CheckId::Simulated]), "{v}");
    let v = verify_report(&report, &chain, Some(PROVENANCE), &simulated_expect(true));
    assert!(failed(&v).is_empty(), "{v}");
}

#[test]
fn simulated_policy_failures_fail_exactly_their_own_check() {
    let rd = report_data_for(PROVENANCE);
    let check = |psp: &SimulatedPsp, vmpl: u32, expect: &Expectations| {
        let report = psp.report(&rd, vmpl).unwrap();
        failed(&verify_report(
            &report,
            &chain_of(psp),
            Some(PROVENANCE),
            expect,
        ))
    };
    let expect = simulated_expect(true);
    let base = SimulatedPsp::new(MEASUREMENT);
    assert!(check(&base, 0, &expect).is_empty());

    // Debug allowed in the guest policy.
    let debug = SimulatedPsp::new(MEASUREMENT).with_guest_policy(DEFAULT_GUEST_POLICY | (1 << 19));
    assert_eq!(
        check(&debug, 0, &expect),
        BTreeSet::from([CheckId::DebugDisallowed])
    );
    let lax = Expectations {
        guest_policy: GuestPolicyRules {
            allow_debug: true,
            ..GuestPolicyRules::default()
        },
        ..expect.clone()
    };
    assert!(check(&debug, 0, &lax).is_empty());

    // Requested at VMPL 1.
    assert_eq!(check(&base, 1, &expect), BTreeSet::from([CheckId::Vmpl]));

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
    assert_eq!(check(&old, 0, &min), BTreeSet::from([CheckId::MinTcb]));
    assert!(check(&base, 0, &min).is_empty());

    // Wrong measurement.
    assert_eq!(
        check(&SimulatedPsp::new([0x11; 48]), 0, &expect),
        BTreeSet::from([CheckId::Measurement])
    );
}

#[test]
fn vcek_for_another_tcb_fails_vcek_matches_report() {
    let rd = report_data_for(PROVENANCE);
    let new = SimulatedPsp::new(MEASUREMENT);
    let old = SimulatedPsp::new(MEASUREMENT).with_tcb(Tcb {
        microcode: 73, // above the floor, so only the VCEK's TCB disagrees
        ..DEFAULT_TCB
    });
    let report = old.report(&rd, 0).unwrap();
    // Same key, but the certificate is for the newer TCB: the extensions disagree.
    let v = verify_report(
        &report,
        &chain_of(&new),
        Some(PROVENANCE),
        &simulated_expect(true),
    );
    assert_eq!(
        failed(&v),
        BTreeSet::from([CheckId::VcekMatchesReport]),
        "{v}"
    );
    assert!(v
        .check(CheckId::VcekMatchesReport)
        .unwrap()
        .detail()
        .contains("microcode"));
}

#[test]
fn every_simulated_report_version_verifies() {
    let rd = report_data_for(PROVENANCE);
    let chain = chain_of(&SimulatedPsp::new(MEASUREMENT));
    for version in [2, 3, 5] {
        let psp = SimulatedPsp::new(MEASUREMENT).with_report_version(version);
        let report = psp.report(&rd, 0).unwrap();
        let v = verify_report(&report, &chain, Some(PROVENANCE), &simulated_expect(true));
        assert!(failed(&v).is_empty(), "version {version}: {v}");
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
    assert_eq!(failed(&v), BTreeSet::from([CheckId::ReportData]), "{v}");
    assert!(v
        .check(CheckId::ReportData)
        .unwrap()
        .detail()
        .contains("32 zero bytes"));
    let mut other = expect;
    other.report_data.as_mut().unwrap()[0] ^= 1;
    assert_eq!(
        failed(&verify_report(&report, &chain, None, &other)),
        BTreeSet::from([CheckId::ReportData])
    );
}

#[test]
fn every_isolation_weakening_policy_bit_fails_the_guest_policy_check() {
    let rd = report_data_for(PROVENANCE);
    let with_policy = |policy: u64, rules: GuestPolicyRules| {
        let psp = SimulatedPsp::new(MEASUREMENT).with_guest_policy(policy);
        let report = psp.report(&rd, 0).unwrap();
        let e = Expectations {
            guest_policy: rules,
            ..simulated_expect(true)
        };
        failed(&verify_report(
            &report,
            &chain_of(&psp),
            Some(PROVENANCE),
            &e,
        ))
    };
    let strict = GuestPolicyRules::default();
    let only = |id| BTreeSet::from([id]);
    assert!(with_policy(DEFAULT_GUEST_POLICY, strict).is_empty());
    for (bit, what) in [
        (18, "migration agent"),
        (21, "CXL"),
        (30, "reserved high bit"),
    ] {
        assert_eq!(
            with_policy(DEFAULT_GUEST_POLICY | 1 << bit, strict),
            only(CheckId::GuestPolicy),
            "{what}"
        );
    }
    assert_eq!(
        with_policy(DEFAULT_GUEST_POLICY & !(1 << 17), strict),
        only(CheckId::GuestPolicy),
        "bit 17 clear"
    );
    let no_smt = GuestPolicyRules {
        allow_smt: false,
        ..strict
    };
    assert_eq!(
        with_policy(DEFAULT_GUEST_POLICY, no_smt),
        only(CheckId::GuestPolicy)
    );
    assert!(with_policy(DEFAULT_GUEST_POLICY & !(1 << 16), no_smt).is_empty());
    let one_socket = GuestPolicyRules {
        require_single_socket: true,
        ..strict
    };
    assert_eq!(
        with_policy(DEFAULT_GUEST_POLICY, one_socket),
        only(CheckId::GuestPolicy)
    );
    assert!(with_policy(DEFAULT_GUEST_POLICY | 1 << 20, one_socket).is_empty());
    let abi = GuestPolicyRules {
        min_abi: (1, 51),
        ..strict
    };
    assert_eq!(
        with_policy(DEFAULT_GUEST_POLICY, abi),
        only(CheckId::GuestPolicy)
    );
    assert!(with_policy(DEFAULT_GUEST_POLICY | 0x0133, abi).is_empty());
    let ma = GuestPolicyRules {
        allow_migration_agent: true,
        ..strict
    };
    assert!(with_policy(DEFAULT_GUEST_POLICY | 1 << 18, ma).is_empty());
}

#[test]
fn the_builtin_floor_refuses_a_tcb_below_it_by_default() {
    let rd = report_data_for(PROVENANCE);
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
        let psp = SimulatedPsp::new(MEASUREMENT).with_tcb(low);
        let report = psp.report(&rd, 0).unwrap();
        let v = verify_report(
            &report,
            &chain_of(&psp),
            Some(PROVENANCE),
            &simulated_expect(true),
        );
        assert_eq!(failed(&v), BTreeSet::from([CheckId::MinTcb]), "{v}");
        assert!(
            v.check(CheckId::MinTcb)
                .unwrap()
                .detail()
                .contains("built-in"),
            "{v}"
        );
    }
}

// --- real evidence from other processor generations and signers ----------

use kettle_attest::testdata::{RealEvidence, GENOA_V5, MILAN_DEBUG, MILAN_VLEK, TURIN_V5};

/// Strict report-only expectations for a real report (its own measurement and report_data).
fn own(e: &RealEvidence) -> Expectations {
    let r = Report::parse(e.report).unwrap();
    Expectations {
        report_data: Some(r.report_data()),
        ..Expectations::new(r.measurement(), e.name)
    }
}

fn verify_real(e: &RealEvidence, expect: &Expectations) -> Verdict {
    verify_report(e.report, &e.chain(), None, expect)
}

#[test]
fn real_genoa_and_turin_version_5_reports_verify_under_their_roots() {
    for (e, root) in [(GENOA_V5, "ARK-Genoa"), (TURIN_V5, "ARK-Turin")] {
        let v = verify_real(&e, &own(&e));
        assert!(v.verified, "{}: {v}", e.name);
        assert!(
            v.check(CheckId::Chain).unwrap().detail().contains(root),
            "{v}"
        );
        assert_eq!(Report::parse(e.report).unwrap().version(), 5);
    }
    // Turin's TCB has an FMC SVN and its VCEK an 8-byte hwID.
    let v = verify_real(&TURIN_V5, &own(&TURIN_V5));
    assert!(
        v.check(CheckId::VcekMatchesReport)
            .unwrap()
            .detail()
            .contains("fmc=0"),
        "{v}"
    );
}

#[test]
fn real_vlek_evidence_verifies_only_where_vlek_is_accepted() {
    let base = Expectations {
        vmpl: 1, // AWS requests it from VMPL 1 (its SVSM runs at 0)
        ..own(&MILAN_VLEK)
    };
    let v = verify_real(&MILAN_VLEK, &base);
    assert_eq!(failed(&v), BTreeSet::from([CheckId::Signer]), "{v}");
    assert_eq!(
        v.check(CheckId::Signature).unwrap().status(),
        Status::Skip,
        "{v}"
    );
    let vlek = Expectations {
        accept_vlek: true,
        ..base
    };
    let v = verify_real(&MILAN_VLEK, &vlek);
    assert!(v.verified, "{v}");
    assert!(
        v.check(CheckId::Chain)
            .unwrap()
            .detail()
            .contains("ARK-Milan"),
        "{v}"
    );
    assert!(
        v.check(CheckId::VcekMatchesReport)
            .unwrap()
            .detail()
            .starts_with("VLEK"),
        "{v}"
    );
    // Without its ASVK the VLEK does not chain, and the error says what to add.
    let alone = kettle_attest::CertChain::from_der_parts(None, None, MILAN_VLEK.key_der.to_vec());
    let v = verify_report(MILAN_VLEK.report, &alone, None, &vlek);
    assert!(failed(&v).contains(&CheckId::Chain), "{v}");
    assert!(
        v.check(CheckId::Chain).unwrap().detail().contains("ASVK"),
        "{v}"
    );
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
    assert_eq!(
        failed(&v),
        BTreeSet::from([CheckId::DebugDisallowed]),
        "{v}"
    );
    let v = verify_real(&e, &own(&e));
    assert_eq!(
        failed(&v),
        BTreeSet::from([CheckId::DebugDisallowed, CheckId::MinTcb]),
        "{v}"
    );
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

const JAN_2026: u64 = 1_767_225_600;
const DEC_2026: u64 = 1_796_083_200;

#[test]
fn a_crl_listing_the_vcek_or_the_ask_rejects_it() {
    use kettle_attest::simulated::certs::test_crl;
    let psp = SimulatedPsp::new(MEASUREMENT);
    let report = psp.report(&report_data_for(PROVENANCE), 0).unwrap();
    let (ask, vcek) = serials(&psp);
    let run = |crls: Vec<Vec<u8>>, at: Option<u64>| {
        let e = Expectations {
            crls,
            at,
            ..simulated_expect(true)
        };
        verify_report(&report, &chain_of(&psp), Some(PROVENANCE), &e)
    };
    let v = run(Vec::new(), None);
    assert_eq!(
        v.check(CheckId::Revocation).unwrap().status(),
        Status::Skip,
        "{v}"
    );
    assert!(v
        .check(CheckId::Revocation)
        .unwrap()
        .detail()
        .contains("--crl"));

    let clean = test_crl(&[], JAN_2026, DEC_2026).unwrap();
    let v = run(vec![clean.clone()], None);
    assert_eq!(
        v.check(CheckId::Revocation).unwrap().status(),
        Status::Pass,
        "{v}"
    );

    for (which, serial) in [("VCEK", vcek), ("ASK", ask)] {
        let v = run(vec![test_crl(&[serial], JAN_2026, DEC_2026).unwrap()], None);
        assert_eq!(
            failed(&v),
            BTreeSet::from([CheckId::Revocation]),
            "{which}: {v}"
        );
        assert!(
            v.check(CheckId::Revocation)
                .unwrap()
                .detail()
                .contains(&format!("the {which}")),
            "{v}"
        );
    }

    // A CRL whose signature does not verify is not the ARK's.
    let mut forged = clean.clone();
    let n = forged.len();
    forged[n - 5] ^= 1;
    let v = run(vec![forged], None);
    assert_eq!(failed(&v), BTreeSet::from([CheckId::Revocation]), "{v}");
    // A CRL past its nextUpdate at the verifier's time is stale.
    let v = run(vec![clean], Some(DEC_2026 + 1));
    assert!(failed(&v).contains(&CheckId::Revocation), "{v}");
    assert!(
        v.check(CheckId::Revocation)
            .unwrap()
            .detail()
            .contains("expired"),
        "{v}"
    );
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
    let c = v.check(CheckId::CertValidity).unwrap();
    assert_eq!(c.status(), Status::Skip);
    assert!(c.detail().contains("no trusted clock"), "{v}");
    // The VLEK was valid from 2024-12-10 to 2025-12-10.
    assert!(verify_real(&MILAN_VLEK, &vlek(Some(1_750_000_000))).verified);
    let v = verify_real(&MILAN_VLEK, &vlek(Some(DEC_2026)));
    assert_eq!(failed(&v), BTreeSet::from([CheckId::CertValidity]), "{v}");
    assert!(
        v.check(CheckId::CertValidity)
            .unwrap()
            .detail()
            .contains("VCEK expired"),
        "{v}"
    );
}
