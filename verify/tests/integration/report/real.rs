//! Real AMD evidence of every generation (Genoa, Turin, a VLEK, a debug guest), the
//! verifier's CRLs and clock, and the binding of the VCEK to the reporting chip.

use super::*;
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

/// Verifies `psp`'s report (simulated evidence allowed) against `crls` at time `at`.
fn verify_with_crls(psp: &SimulatedPsp, crls: Vec<Vec<u8>>, at: Option<u64>) -> Verdict {
    let e = Expectations {
        crls,
        at,
        ..simulated_expect(true)
    };
    verify_simulated(&report_of(psp, 0), &chain_of(psp), &e)
}

#[test]
fn a_crl_listing_the_vcek_or_the_ask_rejects_it() {
    use kettle_attest::simulated::certs::test_crl;
    use kettle_testkit::evidence::{clean_simulated_crl, CRL_NEXT_UPDATE, CRL_THIS_UPDATE};
    let psp = SimulatedPsp::new(MEASUREMENT);
    let (ask, vcek) = serials(&psp);
    let run = |crls, at| verify_with_crls(&psp, crls, at);
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
    let (_, vcek) = serials(&psp);
    let old_clean = test_crl(&[], CRL_THIS_UPDATE, CRL_NEXT_UPDATE).unwrap();
    let newer_revoking =
        test_crl(&[vcek], CRL_THIS_UPDATE + 86_400, CRL_NEXT_UPDATE + 86_400).unwrap();
    let run = |crls, at| verify_with_crls(&psp, crls, at);
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
