//! End-to-end tests of the simulated PSP: framed protocol over a socket pair,
//! then offline verification of what came back.

use std::collections::BTreeSet;
use std::os::unix::net::UnixStream;

use super::protocol::{self, ReportRequest, Response};
use super::{PspClient, SimulatedPsp, DEFAULT_GUEST_POLICY, DEFAULT_TCB};
use crate::report::Tcb;
use crate::verify::{check_names as names, verify, MinTcb, Policy, Verdict};
use crate::{report_data_for, CertChain, ProviderKind, ReportProvider, RequestError};

const MEASUREMENT: [u8; 48] = [0x5A; 48];
const PROVENANCE: &[u8] = br#"{"_type":"https://in-toto.io/Statement/v1"}"#;

fn failed(v: &Verdict) -> BTreeSet<&'static str> {
    v.failed_checks().into_iter().collect()
}

/// Serves `psp` on one end of a socket pair and returns a client on the other.
fn connect(
    psp: SimulatedPsp,
) -> (
    PspClient,
    std::thread::JoinHandle<Result<(), protocol::ProtocolError>>,
) {
    let (guest, host) = UnixStream::pair().unwrap();
    let server = std::thread::spawn(move || psp.serve(host));
    (PspClient::new(guest), server)
}

fn allowed(policy: Policy) -> Policy {
    Policy {
        allow_simulated: true,
        ..policy
    }
}

#[test]
fn round_trip_verifies_only_when_simulated_is_allowed() {
    let (mut client, server) = connect(SimulatedPsp::new(MEASUREMENT));
    let evidence = client.request_report(&report_data_for(PROVENANCE)).unwrap();
    // A second request on the same connection works too.
    let again = client.request_report(&report_data_for(b"other")).unwrap();
    drop(client);
    server.join().unwrap().unwrap(); // EOF ends the session cleanly

    assert_eq!(evidence.provider, ProviderKind::Simulated);
    assert_eq!(evidence.provider.to_string(), "simulated");
    let pem = evidence.cert_chain_pem.as_ref().unwrap();
    assert!(
        String::from_utf8_lossy(pem)
            .matches("BEGIN CERTIFICATE")
            .count()
            == 3
    );
    let chain = CertChain::from_pem_bundle(pem).unwrap();
    assert!(chain.ark.is_some() && chain.ask.is_some());

    let strict = Policy::for_provenance(MEASUREMENT, PROVENANCE);
    let v = verify(&evidence.report, &chain, &allowed(strict.clone()));
    assert!(v.is_verified(), "{v}");
    assert!(v.simulated);
    assert!(v.to_string().contains("SIMULATED"), "{v}");
    assert_eq!(
        serde_json::from_str::<serde_json::Value>(&v.to_json()).unwrap()["simulated"],
        true
    );

    let v = verify(&evidence.report, &chain, &strict);
    assert!(!v.is_verified());
    assert_eq!(
        failed(&v),
        BTreeSet::from([names::CHAIN, names::SIMULATED]),
        "{v}"
    );

    // The second report binds other data: it fails report_data and nothing else.
    let v = verify(&again.report, &chain, &allowed(strict));
    assert_eq!(failed(&v), BTreeSet::from([names::REPORT_DATA]), "{v}");
}

#[test]
fn simulated_evidence_without_bundle_roots_is_still_recognised() {
    let psp = SimulatedPsp::new(MEASUREMENT);
    let report = psp.report(&report_data_for(PROVENANCE), 0).unwrap();
    let full = CertChain::from_pem_bundle(&psp.cert_chain_pem().unwrap()).unwrap();
    // Only the VCEK supplied: the pinned simulated root is found, and still refused by default.
    let chain = CertChain::from_der_parts(None, None, full.vcek);
    let policy = Policy::for_provenance(MEASUREMENT, PROVENANCE);
    let v = verify(&report, &chain, &policy);
    assert_eq!(
        failed(&v),
        BTreeSet::from([names::CHAIN, names::SIMULATED]),
        "{v}"
    );
    assert!(verify(&report, &chain, &allowed(policy)).is_verified());
}

#[test]
fn policy_failures_fail_exactly_their_own_check() {
    let rd = report_data_for(PROVENANCE);
    let policy = allowed(Policy::for_provenance(MEASUREMENT, PROVENANCE));
    let check = |psp: &SimulatedPsp, vmpl: u32, policy: &Policy| {
        let report = psp.report(&rd, vmpl).unwrap();
        let chain = CertChain::from_pem_bundle(&psp.cert_chain_pem().unwrap()).unwrap();
        verify(&report, &chain, policy)
    };

    let base = SimulatedPsp::new(MEASUREMENT);
    assert!(check(&base, 0, &policy).is_verified());

    // Debug allowed in the guest policy.
    let debug = SimulatedPsp::new(MEASUREMENT).with_guest_policy(DEFAULT_GUEST_POLICY | (1 << 19));
    let v = check(&debug, 0, &policy);
    assert_eq!(failed(&v), BTreeSet::from([names::DEBUG_DISALLOWED]), "{v}");
    assert!(check(
        &debug,
        0,
        &Policy {
            allow_debug: true,
            ..policy.clone()
        }
    )
    .is_verified());

    // Requested at VMPL 1.
    let v = check(&base, 1, &policy);
    assert_eq!(failed(&v), BTreeSet::from([names::VMPL]), "{v}");

    // Reported TCB below the minimum (the VCEK matches the lower TCB, so only min_tcb fails).
    let old = SimulatedPsp::new(MEASUREMENT).with_tcb(Tcb {
        snp: 5,
        ..DEFAULT_TCB
    });
    let min = Policy {
        min_tcb: MinTcb {
            bootloader: 9,
            tee: 0,
            snp: 8,
            microcode: 72,
        },
        ..policy.clone()
    };
    let v = check(&old, 0, &min);
    assert_eq!(failed(&v), BTreeSet::from([names::MIN_TCB]), "{v}");
    assert!(check(&base, 0, &min).is_verified());

    // Wrong measurement.
    let v = check(&SimulatedPsp::new([0x11; 48]), 0, &policy);
    assert_eq!(failed(&v), BTreeSet::from([names::MEASUREMENT]), "{v}");
}

#[test]
fn vcek_for_another_tcb_fails_vcek_matches_report() {
    let rd = report_data_for(PROVENANCE);
    let new = SimulatedPsp::new(MEASUREMENT);
    let old = SimulatedPsp::new(MEASUREMENT).with_tcb(Tcb {
        microcode: 1,
        ..DEFAULT_TCB
    });
    let report = old.report(&rd, 0).unwrap();
    // Same key, but the certificate is for the newer TCB: the extensions disagree.
    let chain = CertChain::from_pem_bundle(&new.cert_chain_pem().unwrap()).unwrap();
    let v = verify(
        &report,
        &chain,
        &allowed(Policy::for_provenance(MEASUREMENT, PROVENANCE)),
    );
    assert_eq!(
        failed(&v),
        BTreeSet::from([names::VCEK_MATCHES_REPORT]),
        "{v}"
    );
    assert!(v
        .check(names::VCEK_MATCHES_REPORT)
        .unwrap()
        .detail
        .contains("microcode"));
}

#[test]
fn every_report_version_verifies() {
    let rd = report_data_for(PROVENANCE);
    let policy = allowed(Policy::for_provenance(MEASUREMENT, PROVENANCE));
    let psp = SimulatedPsp::new(MEASUREMENT);
    let chain = CertChain::from_pem_bundle(&psp.cert_chain_pem().unwrap()).unwrap();
    for version in [2, 3, 5] {
        let psp = SimulatedPsp::new(MEASUREMENT).with_report_version(version);
        let v = verify(&psp.report(&rd, 0).unwrap(), &chain, &policy);
        assert!(v.is_verified(), "version {version}: {v}");
        assert_eq!(v.report.as_ref().unwrap().version, version);
    }
}

#[test]
fn psp_errors_reach_the_client() {
    let (mut client, server) = connect(SimulatedPsp::new(MEASUREMENT).with_report_version(4));
    match client.request_report(&[0; 64]) {
        Err(RequestError::Simulated { code: 2, message }) => {
            assert!(message.contains("report version 4"), "{message}")
        }
        other => panic!("{other:?}"),
    }
    drop(client);
    server.join().unwrap().unwrap();

    // VMPL above 3 over the raw protocol.
    let (guest, host) = UnixStream::pair().unwrap();
    let server = std::thread::spawn(move || SimulatedPsp::new(MEASUREMENT).serve(host));
    let mut g = &guest;
    protocol::write_request(
        &mut g,
        &ReportRequest {
            report_data: [0; 64],
            vmpl: 4,
        },
    )
    .unwrap();
    assert!(matches!(
        protocol::read_response(&mut g).unwrap(),
        Response::Error {
            code: protocol::ErrorCode::InvalidParameter,
            ..
        }
    ));
    drop(guest);
    server.join().unwrap().unwrap();
}

#[test]
fn garbage_gets_an_error_frame_and_ends_the_session() {
    use std::io::Write;
    let (guest, host) = UnixStream::pair().unwrap();
    let server = std::thread::spawn(move || SimulatedPsp::new(MEASUREMENT).serve(host));
    let mut g = &guest;
    g.write_all(b"GET / HTTP/1.1\r\n\r\n").unwrap();
    match protocol::read_response(&mut g).unwrap() {
        Response::Error { code, message } => {
            assert_eq!(code, protocol::ErrorCode::BadRequest);
            assert!(message.contains("magic"), "{message}");
        }
        other => panic!("{other:?}"),
    }
    assert!(matches!(
        server.join().unwrap(),
        Err(protocol::ProtocolError::BadMagic(_))
    ));
}

#[test]
fn client_reports_a_closed_channel() {
    let (guest, host) = UnixStream::pair().unwrap();
    drop(host);
    let mut client = PspClient::new(guest);
    let err = client.request_report(&[0; 64]).unwrap_err();
    assert!(matches!(err, RequestError::Protocol(_)), "{err:?}");
}

#[test]
fn simulated_evidence_passes_the_sev_crates_own_verification() {
    use sev::certs::snp::{ca, Certificate, Chain, Verifiable};
    use sev::firmware::guest::AttestationReport;
    use sev::parser::ByteParser;

    let psp = SimulatedPsp::new(MEASUREMENT);
    let report = psp.report(&report_data_for(PROVENANCE), 0).unwrap();
    let ours = CertChain::from_pem_bundle(&psp.cert_chain_pem().unwrap()).unwrap();
    let chain = Chain {
        ca: ca::Chain {
            ark: Certificate::from_der(ours.ark.as_ref().unwrap()).unwrap(),
            ask: Certificate::from_der(ours.ask.as_ref().unwrap()).unwrap(),
        },
        vek: Certificate::from_der(&ours.vcek).unwrap(),
    };
    (&chain).verify().unwrap();
    let parsed = AttestationReport::from_bytes(&report).unwrap();
    (&chain, &parsed).verify().unwrap();
    // And the sev crate rejects it once a signed byte changes.
    let mut bad = report.clone();
    bad[0x90] ^= 1;
    assert!((&chain, &AttestationReport::from_bytes(&bad).unwrap())
        .verify()
        .is_err());
}
