//! `kettle verify` on real AMD evidence: the Milan report, VCEK and AMD CA
//! bundle from the `sev` crate's test data, read from the local cargo registry
//! (never copied into this repository). The report is not a Kettle build's, so
//! it is verified alone, naming its report_data with `--report-data`.

use std::path::PathBuf;
use std::process::{Command, Output};

use kettle_attest::testdata;

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
    let mut pem = testdata::milan_ca_bundle();
    pem.extend_from_slice(kettle_attest::chain::der_to_pem(&testdata::milan_vcek_der()).as_bytes());
    let dir = tempfile::tempdir().unwrap();
    let report_path = dir.path().join("evidence");
    let chain_path = dir.path().join("chain.pem");
    std::fs::write(&report_path, &report).unwrap();
    std::fs::write(&chain_path, pem).unwrap();
    Milan {
        _dir: dir,
        report: report_path,
        chain: chain_path,
        measurement: hex::encode(&report[0x90..0xC0]),
        report_data: hex::encode(&report[0x50..0x90]),
    }
}

/// What one `kettle verify` run said.
struct Run {
    code: Option<i32>,
    stdout: String,
    stderr: String,
}

impl Milan {
    /// `kettle verify` of the Milan report with its evidence, chain, measurement and
    /// report_data, opting in to Milan (`--allow-milan`) so the other checks decide;
    /// `drop` leaves flags out, `set` gives flags other values, `extra` adds more.
    fn verify(&self, drop: &[&str], set: &[(&str, &str)], extra: &[&str]) -> Run {
        let defaults = [
            ("--evidence", self.report.to_str().unwrap()),
            ("--chain", self.chain.to_str().unwrap()),
            ("--measurement", self.measurement.as_str()),
            ("--report-data", self.report_data.as_str()),
        ];
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_kettle"));
        cmd.arg("verify");
        for (flag, value) in defaults {
            if drop.contains(&flag) {
                continue;
            }
            let value = set
                .iter()
                .find(|(f, _)| *f == flag)
                .map_or(value, |(_, v)| *v);
            cmd.args([flag, value]);
        }
        if !drop.contains(&"--allow-milan") {
            cmd.arg("--allow-milan");
        }
        run(cmd.args(extra))
    }
}

fn run(cmd: &mut Command) -> Run {
    let out: Output = cmd.output().expect("run kettle");
    Run {
        code: out.status.code(),
        stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
    }
}

/// Asserts exit 1 with `check` the one failed check.
fn rejected_by(r: &Run, check: &str) {
    assert_eq!(r.code, Some(1), "{}{}", r.stdout, r.stderr);
    assert!(
        r.stdout.contains(&format!("[FAIL] {check}")),
        "{}",
        r.stdout
    );
}

#[test]
fn real_milan_report_alone_verifies_and_says_binding_not_checked() {
    let r = milan().verify(&[], &[], &[]);
    assert_eq!(r.code, Some(0), "{}\n{}", r.stdout, r.stderr);
    for pass in ["report.chain", "report.signature", "binding.report_data"] {
        assert!(r.stdout.contains(&format!("[PASS] {pass}")), "{}", r.stdout);
    }
    assert!(
        r.stdout.contains("binding to a provenance was NOT checked"),
        "{}",
        r.stdout
    );
    assert!(
        r.stdout
            .trim_end()
            .ends_with("VERIFIED (report only: not bound to any build); OPTED IN: EPYC Milan accepted (its VCEK root seed can be extracted, arXiv 2605.12990); not checked: report.revocation, report.cert_validity"),
        "{}",
        r.stdout
    );
}

/// Issue 25: the real Milan report is REJECTED by default, by the check that names the VCEK
/// root seed extraction; VERIFIED with --allow-milan, the verdict line naming the opt-in.
#[test]
fn real_milan_report_is_refused_unless_milan_is_allowed() {
    let m = milan();
    let r = m.verify(&["--allow-milan"], &[], &[]);
    rejected_by(&r, "report.processor_generation");
    assert!(
        r.stdout
            .trim_end()
            .ends_with("REJECTED: 1 check(s) failed: report.processor_generation"),
        "{}",
        r.stdout
    );
    assert!(r.stdout.contains("arXiv 2605.12990"), "{}", r.stdout);
    let r = m.verify(&[], &[], &[]);
    assert_eq!(r.code, Some(0), "{}{}", r.stdout, r.stderr);
    let last = r.stdout.trim_end().lines().last().unwrap().to_string();
    assert!(
        last.starts_with("VERIFIED") && last.contains("OPTED IN: EPYC Milan accepted"),
        "{last}"
    );
}

#[test]
fn real_milan_report_alone_without_its_report_data_is_not_a_kettle_report() {
    let r = milan().verify(&["--report-data"], &[], &[]);
    assert_eq!(r.code, Some(1), "{}", r.stdout);
    assert!(
        r.stdout
            .trim_end()
            .ends_with("REJECTED: 1 check(s) failed: binding.report_data"),
        "{}",
        r.stdout
    );
}

#[test]
fn real_milan_report_json_verdict() {
    let r = milan().verify(
        &[],
        &[],
        &["--min-tcb", "bl=3,tee=0,snp=8,ucode=115", "--json"],
    );
    assert_eq!(r.code, Some(0));
    let v: serde_json::Value = serde_json::from_str(&r.stdout).unwrap();
    assert_eq!(v["verified"], true);
    assert_eq!(v["binding_checked"], false);
    assert_eq!(v["simulated"], false);
    assert_eq!(
        v["verdict"],
        "VERIFIED (report only: not bound to any build); OPTED IN: EPYC Milan accepted (its VCEK root seed can be extracted, arXiv 2605.12990); not checked: report.revocation, report.cert_validity"
    );
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
    let wrong = "00".repeat(48);
    let r = milan().verify(&[], &[("--measurement", &wrong)], &[]);
    rejected_by(&r, "report.measurement");
    assert!(
        r.stdout
            .contains("REJECTED: 1 check(s) failed: report.measurement"),
        "{}",
        r.stdout
    );
}

#[test]
fn tcb_below_the_minimum_is_rejected() {
    rejected_by(
        &milan().verify(&[], &[], &["--min-tcb", "snp=9"]),
        "report.min_tcb",
    );
}

#[test]
fn a_flipped_report_byte_fails_the_signature() {
    let m = milan();
    let mut report = std::fs::read(&m.report).unwrap();
    report[0x50] ^= 1; // report_data
    std::fs::write(&m.report, report).unwrap();
    rejected_by(&m.verify(&[], &[], &[]), "report.signature");
}

#[test]
fn a_garbled_chain_fails_the_chain_check() {
    let m = milan();
    std::fs::write(
        &m.chain,
        b"-----BEGIN CERTIFICATE-----\nnot base64\n-----END CERTIFICATE-----\n",
    )
    .unwrap();
    let r = m.verify(&[], &[], &[]);
    rejected_by(&r, "report.chain");
    assert!(r.stdout.contains("could not be read"), "{}", r.stdout);
}

#[test]
fn could_not_run_exits_2_and_says_what_to_do() {
    let m = milan();
    let r = m.verify(&["--chain"], &[], &[]);
    assert_eq!(r.code, Some(2));
    assert!(r.stderr.contains("pass --chain"));

    let r = m.verify(&[], &[("--evidence", "/nonexistent/evidence")], &[]);
    assert_eq!(r.code, Some(2));
    assert!(r
        .stderr
        .contains("cannot read attestation report /nonexistent/evidence"));

    let r = m.verify(&["--measurement", "--report-data"], &[], &[]);
    assert_eq!(r.code, Some(2));
    assert!(r.stderr.contains("--manifest"));

    assert_eq!(
        m.verify(&[], &[("--measurement", "xyz")], &[]).code,
        Some(2)
    );

    // With --json the failure to run is JSON too.
    let r = m.verify(&["--chain"], &[], &["--json"]);
    assert_eq!(r.code, Some(2));
    let v: serde_json::Value = serde_json::from_str(&r.stdout).unwrap();
    assert_eq!(v["verified"], false);
    assert!(v["error"].as_str().unwrap().contains("--chain"), "{v}");

    // clap usage errors also exit 2.
    assert_eq!(
        run(Command::new(env!("CARGO_BIN_EXE_kettle")).arg("verify")).code,
        Some(2)
    );
}

#[test]
fn fetch_vcek_from_a_stand_in_kds() {
    let m = milan();
    let (base, server) = super::serve_once(testdata::milan_vcek_der());
    // The Milan test report is version 2 (no CPUID), so the product is given.
    let r = m.verify(
        &["--chain"],
        &[],
        &["--fetch-vcek", "--product", "milan", "--kds-url", &base],
    );
    let request = server.join().unwrap();
    assert_eq!(r.code, Some(0), "{}\n{}", r.stdout, r.stderr);
    assert!(request.starts_with("GET /vcek/v1/Milan/"), "{request}");
    assert!(
        request.contains("blSPL=3&teeSPL=0&snpSPL=8&ucodeSPL=115"),
        "{request}"
    );
    assert!(r.stdout.contains("[PASS] report.chain"), "{}", r.stdout);
}
