//! `kettle verify` on real AMD evidence: the Milan report, VCEK and AMD CA
//! bundle from the `sev` crate's test data, read from the local cargo registry
//! (never copied into this repository). Report alone: no provenance exists
//! for it, so the binding must be reported as not checked.

use std::path::{Path, PathBuf};

use kettle_attest::testdata;
use std::process::{Command, Output};

struct Milan {
    _dir: tempfile::TempDir,
    report: PathBuf,
    chain: PathBuf,
    measurement: String,
    /// Its report_data: the sev crate's authors chose it, so a report-only check names it.
    report_data: String,
}

/// Writes the real Milan report and a PEM chain (AMD's ASK+ARK bundle + the VCEK) to a temp dir.
fn milan() -> Milan {
    let report = testdata::milan_report();
    let vcek = testdata::milan_vcek_der();
    let mut pem = testdata::milan_ca_bundle();
    pem.extend_from_slice(kettle_attest::chain::der_to_pem(&vcek).as_bytes());
    let dir = tempfile::tempdir().unwrap();
    let report_path = dir.path().join("evidence");
    let chain_path = dir.path().join("chain.pem");
    std::fs::write(&report_path, &report).unwrap();
    std::fs::write(&chain_path, pem).unwrap();
    let measurement = hex::encode(&report[0x90..0xC0]);
    let report_data = hex::encode(&report[0x50..0x90]);
    Milan {
        _dir: dir,
        report: report_path,
        chain: chain_path,
        measurement,
        report_data,
    }
}

fn kettle(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_kettle"))
        .args(args)
        .output()
        .expect("run kettle")
}

fn p(path: &Path) -> &str {
    path.to_str().unwrap()
}

#[test]
fn real_milan_report_alone_verifies_and_says_binding_not_checked() {
    let m = milan();
    let out = kettle(&[
        "verify",
        "--evidence",
        p(&m.report),
        "--chain",
        p(&m.chain),
        "--measurement",
        &m.measurement,
        "--report-data",
        &m.report_data,
    ]);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert_eq!(
        out.status.code(),
        Some(0),
        "{stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(stdout.contains("[PASS] report.chain"), "{stdout}");
    assert!(stdout.contains("[PASS] report.signature"), "{stdout}");
    assert!(stdout.contains("[PASS] binding.report_data"), "{stdout}");
    assert!(
        stdout.contains("binding to a provenance was NOT checked"),
        "{stdout}"
    );
    assert!(
        stdout
            .trim_end()
            .ends_with("VERIFIED (report only: not bound to any build)"),
        "{stdout}"
    );
}

#[test]
fn real_milan_report_alone_without_its_report_data_is_not_a_kettle_report() {
    let m = milan();
    let out = kettle(&[
        "verify",
        "--evidence",
        p(&m.report),
        "--chain",
        p(&m.chain),
        "--measurement",
        &m.measurement,
    ]);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(1), "{stdout}");
    assert!(
        stdout
            .trim_end()
            .ends_with("REJECTED: 1 check(s) failed: binding.report_data"),
        "{stdout}"
    );
}

#[test]
fn real_milan_report_json_verdict() {
    let m = milan();
    let out = kettle(&[
        "verify",
        "--evidence",
        p(&m.report),
        "--chain",
        p(&m.chain),
        "--measurement",
        &m.measurement,
        "--report-data",
        &m.report_data,
        "--min-tcb",
        "bl=3,tee=0,snp=8,ucode=115",
        "--json",
    ]);
    assert_eq!(out.status.code(), Some(0));
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["verified"], true);
    assert_eq!(v["binding_checked"], false);
    assert_eq!(v["simulated"], false);
    let names: Vec<&str> = v["checks"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["name"].as_str().unwrap())
        .collect();
    for expected in [
        "report.chain",
        "report.signature",
        "report.measurement",
        "report.debug_disallowed",
        "report.vmpl",
        "report.min_tcb",
        "binding.report_data",
    ] {
        assert!(names.contains(&expected), "{names:?}");
    }
}

#[test]
fn wrong_measurement_is_rejected_naming_the_check() {
    let m = milan();
    let wrong = "00".repeat(48);
    let out = kettle(&[
        "verify",
        "--evidence",
        p(&m.report),
        "--chain",
        p(&m.chain),
        "--measurement",
        &wrong,
        "--report-data",
        &m.report_data,
    ]);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(1), "{stdout}");
    assert!(stdout.contains("[FAIL] report.measurement"), "{stdout}");
    assert!(
        stdout.contains("REJECTED: 1 check(s) failed: report.measurement"),
        "{stdout}"
    );
}

#[test]
fn tcb_below_the_minimum_is_rejected() {
    let m = milan();
    let out = kettle(&[
        "verify",
        "--evidence",
        p(&m.report),
        "--chain",
        p(&m.chain),
        "--measurement",
        &m.measurement,
        "--report-data",
        &m.report_data,
        "--min-tcb",
        "snp=9",
    ]);
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stdout).contains("[FAIL] report.min_tcb"));
}

#[test]
fn a_flipped_report_byte_fails_the_signature() {
    let m = milan();
    let mut report = std::fs::read(&m.report).unwrap();
    report[0x50] ^= 1; // report_data
    std::fs::write(&m.report, report).unwrap();
    let out = kettle(&[
        "verify",
        "--evidence",
        p(&m.report),
        "--chain",
        p(&m.chain),
        "--measurement",
        &m.measurement,
        "--report-data",
        &m.report_data,
    ]);
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stdout).contains("[FAIL] report.signature"));
}

#[test]
fn a_garbled_chain_fails_the_chain_check() {
    let m = milan();
    std::fs::write(
        &m.chain,
        b"-----BEGIN CERTIFICATE-----\nnot base64\n-----END CERTIFICATE-----\n",
    )
    .unwrap();
    let out = kettle(&[
        "verify",
        "--evidence",
        p(&m.report),
        "--chain",
        p(&m.chain),
        "--measurement",
        &m.measurement,
        "--report-data",
        &m.report_data,
    ]);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(1), "{stdout}");
    assert!(stdout.contains("[FAIL] report.chain"), "{stdout}");
    assert!(stdout.contains("could not be read"), "{stdout}");
}

#[test]
fn could_not_run_exits_2_and_says_what_to_do() {
    let m = milan();
    let out = kettle(&[
        "verify",
        "--evidence",
        p(&m.report),
        "--measurement",
        &m.measurement,
        "--report-data",
        &m.report_data,
    ]);
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("pass --chain"));

    let out = kettle(&[
        "verify",
        "--evidence",
        "/nonexistent/evidence",
        "--chain",
        p(&m.chain),
        "--measurement",
        &m.measurement,
        "--report-data",
        &m.report_data,
    ]);
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr)
        .contains("cannot read attestation report /nonexistent/evidence"));

    let out = kettle(&["verify", "--evidence", p(&m.report), "--chain", p(&m.chain)]);
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("--manifest"));

    let out = kettle(&[
        "verify",
        "--evidence",
        p(&m.report),
        "--chain",
        p(&m.chain),
        "--measurement",
        "xyz",
    ]);
    assert_eq!(out.status.code(), Some(2));

    // With --json the failure to run is JSON too.
    let out = kettle(&[
        "verify",
        "--evidence",
        p(&m.report),
        "--measurement",
        &m.measurement,
        "--report-data",
        &m.report_data,
        "--json",
    ]);
    assert_eq!(out.status.code(), Some(2));
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["verified"], false);
    assert!(v["error"].as_str().unwrap().contains("--chain"), "{v}");

    // clap usage errors also exit 2.
    let out = kettle(&["verify"]);
    assert_eq!(out.status.code(), Some(2));
}

#[test]
fn fetch_vcek_from_a_stand_in_kds() {
    use std::io::{BufRead, BufReader, Write};
    let m = milan();
    let vcek = testdata::milan_vcek_der();
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    let server = std::thread::spawn(move || {
        let (stream, _) = listener.accept().unwrap();
        let mut reader = BufReader::new(stream.try_clone().unwrap());
        let mut request_line = String::new();
        reader.read_line(&mut request_line).unwrap();
        loop {
            let mut h = String::new();
            if reader.read_line(&mut h).unwrap() == 0 || h == "\r\n" {
                break;
            }
        }
        let mut stream = stream;
        write!(
            stream,
            "HTTP/1.1 200 OK\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
            vcek.len()
        )
        .unwrap();
        stream.write_all(&vcek).unwrap();
        request_line
    });
    // The Milan test report is version 2 (no CPUID), so the product is given.
    let out = kettle(&[
        "verify",
        "--evidence",
        p(&m.report),
        "--measurement",
        &m.measurement,
        "--report-data",
        &m.report_data,
        "--fetch-vcek",
        "--product",
        "milan",
        "--kds-url",
        &base,
    ]);
    let request = server.join().unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert_eq!(
        out.status.code(),
        Some(0),
        "{stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(request.starts_with("GET /vcek/v1/Milan/"), "{request}");
    assert!(
        request.contains("blSPL=3&teeSPL=0&snpSPL=8&ucodeSPL=115"),
        "{request}"
    );
    assert!(stdout.contains("[PASS] report.chain"), "{stdout}");
}
