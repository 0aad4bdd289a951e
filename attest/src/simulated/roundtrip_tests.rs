//! End-to-end tests of the simulated PSP: framed protocol over a socket pair,
//! then offline verification of what came back.

use std::os::unix::net::UnixStream;

use super::protocol::{self, ReportRequest, Response};
use super::{PspClient, SimulatedPsp, DEFAULT_GUEST_POLICY, DEFAULT_TCB};
use crate::report::{Report, Tcb};
use crate::{report_data_for, CertChain, ReportProvider, RequestError, Tee};

const MEASUREMENT: [u8; 48] = [0x5A; 48];
const PROVENANCE: &[u8] = br#"{"_type":"https://in-toto.io/Statement/v1"}"#;

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

// Kettle's verification of what the PSP signs is tested where those checks live,
// in kettle-verify (verify/tests/integration/report.rs). Here: the protocol, the
// report and chain formats, and the `sev` crate's own verification of the
// simulated evidence (a second implementation the chain and signature must pass).

#[test]
fn round_trip_returns_a_report_and_the_full_test_chain() {
    let (mut client, server) = connect(SimulatedPsp::new(MEASUREMENT));
    let rd = report_data_for(PROVENANCE);
    let evidence = client.request_report(&rd).unwrap();
    // A second request on the same connection works too.
    let again = client.request_report(&report_data_for(b"other")).unwrap();
    drop(client);
    server.join().unwrap().unwrap(); // EOF ends the session cleanly

    assert_eq!(evidence.provider, Tee::Simulated);
    assert_eq!(evidence.provider.to_string(), "simulated");
    let pem = evidence.cert_chain_pem.as_ref().unwrap();
    assert_eq!(
        String::from_utf8_lossy(pem)
            .matches("BEGIN CERTIFICATE")
            .count(),
        3
    );
    let chain = CertChain::from_pem_bundle(pem).unwrap();
    assert!(chain.ark.is_some() && chain.ask.is_some());
    let r = Report::parse(&evidence.report).unwrap();
    assert_eq!(r.report_data(), rd);
    assert_eq!(r.measurement(), MEASUREMENT);
    assert_eq!(r.guest_policy(), DEFAULT_GUEST_POLICY);
    assert_eq!(r.reported_tcb(), DEFAULT_TCB);
    assert_eq!(
        Report::parse(&again.report).unwrap().report_data(),
        report_data_for(b"other")
    );
}

#[test]
fn tcb_and_version_options_reach_the_report() {
    let rd = report_data_for(PROVENANCE);
    let old = SimulatedPsp::new(MEASUREMENT).with_tcb(Tcb {
        microcode: 1,
        ..DEFAULT_TCB
    });
    assert_eq!(
        Report::parse(&old.report(&rd, 0).unwrap())
            .unwrap()
            .reported_tcb()
            .microcode,
        1
    );
    for version in [2, 3, 5] {
        let psp = SimulatedPsp::new(MEASUREMENT).with_report_version(version);
        assert_eq!(
            Report::parse(&psp.report(&rd, 1).unwrap())
                .unwrap()
                .version(),
            version
        );
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
