//! What a hostile host can do to the evidence: the report, the chain, and flags that
//! would loosen a policy.

use super::*;

pub(super) fn cases() -> Vec<Case> {
    use Expect::*;
    vec![
        // --- the report ---
        (
            "report of another build",
            Box::new(|d| {
                let other = StatementSpec {
                    subjects: vec![("out/hello.txt", b"other")],
                    ..StatementSpec::default()
                }
                .bytes();
                let psp = SimulatedPsp::new(MEASUREMENT);
                write_report(d, psp, &kettle_attest::report_data_for(&other), 0);
            }),
            Rejected("binding.report_data"),
        ),
        (
            "report of another image",
            Box::new(|d| resign(d, SimulatedPsp::new([0x77; 48]), 0)),
            Rejected("report.measurement"),
        ),
        (
            "report from VMPL 1",
            Box::new(|d| resign(d, SimulatedPsp::new(MEASUREMENT), 1)),
            Rejected("report.vmpl"),
        ),
        (
            "debuggable guest",
            guest_policy_bit(19),
            Rejected("report.debug_disallowed"),
        ),
        (
            "migration agent allowed",
            guest_policy_bit(18),
            Rejected("report.guest_policy"),
        ),
        (
            "CXL allowed",
            guest_policy_bit(21),
            Rejected("report.guest_policy"),
        ),
        (
            "TCB 0.0.0.0",
            Box::new(|d| {
                let tcb = kettle_attest::report::Tcb::default();
                resign(d, SimulatedPsp::new(MEASUREMENT).with_tcb(tcb), 0)
            }),
            Rejected("report.min_tcb"),
        ),
        (
            "report_data second half non-zero",
            Box::new(|d| {
                let prov = fs::read(d.join("provenance.json")).unwrap();
                let mut rd = kettle_attest::report_data_for(&prov);
                rd[40] = 1;
                write_report(d, SimulatedPsp::new(MEASUREMENT), &rd, 0);
            }),
            Rejected("binding.report_data"),
        ),
        (
            "a signed byte flipped",
            Box::new(|d| flip(&d.join("evidence"), 0x90)),
            Rejected("report.signature"),
        ),
        (
            "a signature byte flipped",
            Box::new(|d| flip(&d.join("evidence"), 0x2A0)),
            Rejected("report.signature"),
        ),
        (
            "reserved tail not zero",
            Box::new(|d| flip(&d.join("evidence"), 0x4A0 - 1)),
            Rejected("report.report_format"),
        ),
        (
            "unknown report version 4",
            Box::new(|d| set_byte(&d.join("evidence"), 0, 4)),
            Rejected("report.report_format"),
        ),
        (
            "report version 6 (a newer SNP ABI's layout is refused, never misread)",
            Box::new(|d| set_byte(&d.join("evidence"), 0, 6)),
            Rejected("report.report_format"),
        ),
        (
            "truncated report",
            Box::new(|d| {
                let b = fs::read(d.join("evidence")).unwrap();
                fs::write(d.join("evidence"), &b[..100]).unwrap();
            }),
            Rejected("report.report_format"),
        ),
        (
            "key_info says unsigned",
            Box::new(|d| set_byte(&d.join("evidence"), 0x48, 7 << 2)),
            Rejected("report.signer"),
        ),
        (
            "evidence is a symlink",
            Box::new(|d| replace_with_symlink(d, "evidence", "e")),
            CannotRun("is not a regular file"),
        ),
        (
            "evidence is huge (bounded read)",
            Box::new(|d| replace_with_sparse(&d.join("evidence"), 1 << 30)),
            CannotRun("is larger than"),
        ),
        (
            "no evidence (a --local build)",
            Box::new(|d| fs::remove_file(d.join("evidence")).unwrap()),
            CannotRun("never hardware-attested"),
        ),
        // --- the chain ---
        (
            "garbled chain",
            Box::new(|d| {
                fs::write(
                    d.join("chain.pem"),
                    "-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n",
                )
                .unwrap()
            }),
            Rejected("report.chain"),
        ),
        (
            "a VCEK byte flipped",
            Box::new(|d| {
                rechain(d, |chain| {
                    let mut vcek = chain.vcek;
                    vcek[200] ^= 1;
                    CertChain::from_der_parts(chain.ark, chain.ask, vcek)
                })
            }),
            Rejected("report.chain"),
        ),
        (
            "the real Milan VCEK instead of the signer's",
            Box::new(|d| {
                let pem =
                    kettle_attest::chain::der_to_pem(&kettle_attest::testdata::milan_vcek_der());
                fs::write(d.join("chain.pem"), pem).unwrap();
            }),
            Rejected("report.signature"),
        ),
        (
            "an unpinned self-signed ARK",
            Box::new(|d| {
                let other_ark = kettle_attest::chain::Product::Milan.pinned_der().unwrap().1; // an ASK, not any root
                rechain(d, |chain| {
                    CertChain::from_der_parts(Some(other_ark), chain.ask, chain.vcek)
                })
            }),
            Rejected("report.chain"),
        ),
        (
            "the VCEK of another chip (same key, another hwID)",
            Box::new(|d| {
                let other = SimulatedPsp::new(MEASUREMENT).with_vcek_hw_id(vec![0xB2; 64]);
                fs::write(d.join("chain.pem"), other.cert_chain_pem().unwrap()).unwrap();
            }),
            Rejected("report.vcek_matches_report"),
        ),
        (
            "chain is a FIFO (must not hang)",
            Box::new(|d| replace_with_fifo(&d.join("chain.pem"))),
            CannotRun("is not a regular file"),
        ),
        // --- flags under a policy (issue 25): they only narrow it ---
        (
            "a branch build under a tags-only policy, --ref naming the branch",
            policy(&["refs/tags/v*"], true),
            Rejected("provenance.ref"),
        ),
        (
            "--allow-simulated under a policy forbidding simulated evidence",
            policy(&["refs/heads/*"], false),
            Rejected("report.simulated"),
        ),
        (
            "--any-source under a policy that has the auditor pin the commit",
            policy(&["refs/heads/*"], true),
            Rejected("provenance.source"),
        ),
    ]
}
