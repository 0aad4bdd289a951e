//! The simulated PSP's evidence through steps 1-3: the round trip, each expectation
//! failing exactly its own check, every report version, guest-policy bits and the TCB floor.

use super::*;

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
