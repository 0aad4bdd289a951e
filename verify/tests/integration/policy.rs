//! The verification policy, field by field: each field violated alone fails
//! exactly its check (and the check names the field), on simulated evidence
//! (a whole output directory) and on real AMD evidence (reports alone).

use std::collections::BTreeSet;

use kettle_attest::chain::Product;
use kettle_attest::report::Report;
use kettle_attest::simulated::{SimulatedPsp, DEFAULT_GUEST_POLICY};
use kettle_attest::testdata::{self, RealEvidence, MILAN_DEBUG, MILAN_VLEK};
use kettle_provenance::{ids, Sha256Digest};
use kettle_testkit::evidence::{simulated_output_dir, StatementSpec};
use kettle_verify::policy::{AcceptedMeasurement, Policy, Signer, POLICY_SCHEMA};
use kettle_verify::{
    verify, AppliedPolicy, Bundle, BundleFiles, CheckId, MinTcb, SourcePin, Verdict,
};

const MEASUREMENT: [u8; 48] = [0x5a; 48];

fn policy(digest: [u8; 48]) -> Policy {
    let p: Policy = serde_json::from_value(serde_json::json!({
        "schema": POLICY_SCHEMA,
        "name": "matrix",
        "measurements": [{"launch_digest": hex::encode(digest)}],
    }))
    .unwrap();
    p.check().unwrap();
    p
}

/// A simulated-evidence policy that the default output directory satisfies.
fn simulated_policy() -> Policy {
    let spec = StatementSpec::default();
    let mut p = policy(MEASUREMENT);
    p.allow_simulated = true;
    p.builder_ids.push(ids::BUILDER_ID_SIMULATED.into());
    p.source.repository = Some(spec.repository.into());
    p.source.refs = vec!["refs/heads/*".into()];
    p
}

fn applied(p: &Policy) -> AppliedPolicy {
    AppliedPolicy {
        name: p.name.clone(),
        sha256: Sha256Digest::of_bytes(&serde_json::to_vec(p).unwrap()),
        overrides: Default::default(),
        narrowed: Default::default(),
        not_applied: Default::default(),
    }
}

/// Verifies `bundle` under `p`, the auditor pinning `commit` (None: nothing pinned).
fn under(p: &Policy, bundle: &Bundle, commit: Option<&str>) -> Verdict {
    let mut e = p.expectations();
    if let Some(c) = commit {
        e.provenance.source = SourcePin::Commit(c.into());
    }
    verify(bundle, &e).under_policy(applied(p))
}

/// Asserts that the detail of check `id` of `v` contains `text`.
fn assert_detail(v: &Verdict, id: CheckId, text: &str) {
    let detail = v.check(id).unwrap().detail();
    assert!(detail.contains(text), "{id}: {detail}\n{v}");
}

fn failed(v: &Verdict) -> BTreeSet<CheckId> {
    v.failures().map(|c| c.id).collect()
}

/// Asserts `v` failed exactly `ids`, each naming its policy field.
fn fails_exactly(v: &Verdict, ids: &[CheckId], what: &str) {
    assert_eq!(failed(v), ids.iter().copied().collect(), "{what}: {v}");
    for c in v.failures() {
        assert_eq!(c.policy_field, c.id.policy_field(), "{what}");
        assert!(
            c.policy_field.is_some(),
            "{what}: {} names no policy field",
            c.name()
        );
    }
    assert!(
        v.headline().contains("under policy \"matrix\""),
        "{}",
        v.headline()
    );
}

fn simulated_bundle(psp_policy: u64) -> Bundle {
    let dir = tempfile::tempdir().unwrap();
    simulated_output_dir(dir.path(), &StatementSpec::default(), MEASUREMENT);
    if psp_policy != DEFAULT_GUEST_POLICY {
        let prov = std::fs::read(dir.path().join("provenance.json")).unwrap();
        let psp = SimulatedPsp::new(MEASUREMENT).with_guest_policy(psp_policy);
        let report = psp
            .report(&kettle_attest::report_data_for(&prov), 0)
            .unwrap();
        std::fs::write(dir.path().join("evidence"), report).unwrap();
    }
    Bundle::load(&BundleFiles::output_dir(dir.path()).unwrap()).unwrap()
}

#[test]
fn every_policy_field_violated_alone_fails_its_check_on_simulated_evidence() {
    let commit = StatementSpec::default().commit.unwrap();
    let good = simulated_bundle(DEFAULT_GUEST_POLICY);
    let v = under(&simulated_policy(), &good, Some(commit));
    assert!(v.verified(), "{v}");
    assert!(
        v.headline().starts_with("VERIFIED (SIMULATED"),
        "{}",
        v.headline()
    );

    // (which policy field, how it is tightened, the checks that must then fail)
    type Case<'a> = (&'a str, Box<dyn Fn(&mut Policy)>, Vec<CheckId>);
    let cases: Vec<Case> = vec![
        (
            "measurements",
            Box::new(|p| {
                p.measurements = vec![AcceptedMeasurement {
                    launch_digest: kettle_image::LaunchDigest([0x11; 48]),
                    vcpus: None,
                    vcpu_type: None,
                    image_manifest_sha256: None,
                }]
            }),
            vec![CheckId::Measurement],
        ),
        (
            "guest_policy.allow_smt",
            Box::new(|p| p.guest_policy.allow_smt = false),
            vec![CheckId::GuestPolicy],
        ),
        (
            "guest_policy.require_single_socket",
            Box::new(|p| p.guest_policy.require_single_socket = true),
            vec![CheckId::GuestPolicy],
        ),
        (
            "guest_policy.min_abi",
            Box::new(|p| p.guest_policy.min_abi = (1, 55)),
            vec![CheckId::GuestPolicy],
        ),
        ("vmpl", Box::new(|p| p.vmpl = 1), vec![CheckId::Vmpl]),
        (
            "signers",
            Box::new(|p| p.signers = vec![Signer::Vlek]),
            vec![CheckId::Signer],
        ),
        (
            "allow_simulated",
            Box::new(|p| p.allow_simulated = false),
            vec![CheckId::Simulated],
        ),
        (
            "builder_ids",
            Box::new(|p| p.builder_ids = vec!["https://example.com/other/v1".into()]),
            vec![CheckId::BuilderId],
        ),
        (
            "build_types",
            Box::new(|p| p.build_types = vec![ids::BUILD_TYPE_CARGO.into()]),
            vec![CheckId::BuildType],
        ),
        (
            "source.repository",
            Box::new(|p| p.source.repository = Some("https://example.com/other.git".into())),
            vec![CheckId::Repository],
        ),
        (
            "source.refs",
            Box::new(|p| p.source.refs = vec!["refs/tags/v*".into()]),
            vec![CheckId::Ref],
        ),
    ];
    for (field, mutate, expected) in cases {
        let mut p = simulated_policy();
        mutate(&mut p);
        p.check().unwrap();
        let v = under(&p, &good, Some(commit));
        fails_exactly(&v, &expected, field);
    }
    // guest_policy.allow_debug: evidence from a debuggable guest fails it alone.
    let debug = simulated_bundle(DEFAULT_GUEST_POLICY | 1 << 19);
    fails_exactly(
        &under(&simulated_policy(), &debug, Some(commit)),
        &[CheckId::DebugDisallowed],
        "allow_debug",
    );
    let mut lax = simulated_policy();
    lax.guest_policy.allow_debug = true;
    assert!(under(&lax, &debug, Some(commit)).verified());
    // guest_policy.allow_migration_agent likewise.
    let ma = simulated_bundle(DEFAULT_GUEST_POLICY | 1 << 18);
    fails_exactly(
        &under(&simulated_policy(), &ma, Some(commit)),
        &[CheckId::GuestPolicy],
        "allow_migration_agent",
    );
    // source.any_commit: without it, and without the auditor's pin, the source is not pinned
    // (and the repository and ref, which only the host resolved, are witnessed by nothing).
    fails_exactly(
        &under(&simulated_policy(), &good, None),
        &[CheckId::Repository, CheckId::Ref, CheckId::Source],
        "source.any_commit",
    );
}

/// Issue 25: a host built its own commit, claimed the victim's repository and ref, and a
/// policy with `any_commit` passed them. A repository or ref only the host resolved now
/// fails unless the policy explicitly accepts host-resolved sources, and then the verdict
/// line names that opt-in.
#[test]
fn any_commit_does_not_let_a_host_resolved_repository_or_ref_pass() {
    let good = simulated_bundle(DEFAULT_GUEST_POLICY);
    let mut any = simulated_policy();
    any.source.any_commit = true;
    let v = under(&any, &good, None);
    fails_exactly(
        &v,
        &[CheckId::Repository, CheckId::Ref],
        "host-resolved with any_commit",
    );
    assert_detail(&v, CheckId::Repository, "source.accept_host_resolved");
    any.source.accept_host_resolved = true;
    let v = under(&any, &good, None);
    assert!(v.verified(), "{v}");
    assert!(
        v.headline().contains("OPTED IN: host-resolved source"),
        "{}",
        v.headline()
    );
    // The auditor's own pin needs no opt-in: the commit is what was built.
    let v = under(
        &simulated_policy(),
        &good,
        Some(StatementSpec::default().commit.unwrap()),
    );
    assert!(v.verified() && !v.headline().contains("OPTED IN"), "{v}");
}

#[test]
fn a_policy_can_require_the_checks_offline_verification_skips() {
    use kettle_testkit::evidence::{clean_simulated_crl, CRL_THIS_UPDATE};
    let commit = StatementSpec::default().commit.unwrap();
    let good = simulated_bundle(DEFAULT_GUEST_POLICY);
    let run = |p: &Policy, crls: Vec<Vec<u8>>, at: Option<u64>| {
        let mut e = p.expectations();
        e.provenance.source = SourcePin::Commit(commit.into());
        e.crls = crls;
        e.at = at;
        verify(&good, &e).under_policy(applied(p))
    };
    let v = run(&simulated_policy(), Vec::new(), None);
    assert!(v.verified(), "{v}");
    assert!(
        // The test provenance names no image: that too is said.
        v.headline()
            .ends_with("; not checked: report.revocation, report.cert_validity, provenance.image"),
        "{}",
        v.headline()
    );

    let mut strict = simulated_policy();
    strict.require_revocation_check = true;
    strict.require_trusted_time = true;
    let v = run(&strict, Vec::new(), None);
    assert_eq!(
        failed(&v),
        [CheckId::Revocation, CheckId::CertValidity]
            .into_iter()
            .collect(),
        "{v}"
    );
    for (id, field, flag) in [
        (CheckId::Revocation, "require_revocation_check", "--crl"),
        (CheckId::CertValidity, "require_trusted_time", "--at"),
    ] {
        let detail = v.check(id).unwrap().detail();
        assert!(detail.contains(field) && detail.contains(flag), "{detail}");
    }
    // Given a CRL and a time, the strict policy verifies, and nothing is left unchecked.
    let v = run(
        &strict,
        vec![clean_simulated_crl()],
        Some(CRL_THIS_UPDATE + 86_400),
    );
    assert!(v.verified(), "{v}");
    assert!(
        v.headline().ends_with("; not checked: provenance.image"),
        "{}",
        v.headline()
    );
    // Absent from the file, both are off; present, they are read.
    let read: Policy = serde_json::from_value(serde_json::json!({
        "schema": POLICY_SCHEMA,
        "name": "strict",
        "measurements": [{"launch_digest": hex::encode(MEASUREMENT)}],
        "require_revocation_check": true,
        "require_trusted_time": true,
    }))
    .unwrap();
    let e = read.expectations();
    assert!(e.require_revocation_check && e.require_trusted_time);
    let e = policy(MEASUREMENT).expectations();
    assert!(!e.require_revocation_check && !e.require_trusted_time);
}

/// A failed `report.revocation` under a policy that requires it names that field in `--json`,
/// as every check a policy field governs does (issue 23: it named none).
#[test]
fn a_required_revocation_check_that_fails_names_its_policy_field_in_json() {
    let mut strict = simulated_policy();
    strict.require_revocation_check = true;
    let v = under(
        &strict,
        &simulated_bundle(DEFAULT_GUEST_POLICY),
        StatementSpec::default().commit,
    );
    fails_exactly(&v, &[CheckId::Revocation], "require_revocation_check");
    let json = serde_json::to_value(&v).unwrap();
    let revocation = json["checks"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["name"] == "report.revocation")
        .unwrap();
    assert_eq!(revocation["status"], "fail", "{revocation}");
    assert_eq!(
        revocation["policy_field"], "require_revocation_check",
        "{revocation}"
    );
    // Every check a field governs names it; the others name none.
    for c in json["checks"].as_array().unwrap() {
        let id = CheckId::ALL
            .into_iter()
            .find(|id| c["name"].as_str().unwrap().split(':').next() == Some(id.name()))
            .unwrap();
        assert_eq!(c["policy_field"].as_str(), id.policy_field(), "{c}");
    }
}

/// Report-only expectations for a real report: the policy plus its report_data.
fn real_under(p: &Policy, e: &RealEvidence) -> Verdict {
    let mut x = p.expectations();
    x.report_data = Some(Report::parse(e.report).unwrap().report_data());
    let bundle = Bundle {
        report: e.report.to_vec(),
        chain: Ok(e.chain()),
        provenance: None,
        artifacts: Vec::new(),
        complete_output: false,
    };
    verify(&bundle, &x).under_policy(applied(p))
}

fn milan() -> RealEvidence {
    RealEvidence {
        name: "milan",
        report: Box::leak(testdata::milan_report().into_boxed_slice()),
        key_der: Box::leak(testdata::milan_vcek_der().into_boxed_slice()),
        intermediate_pem: None,
    }
}

#[test]
fn every_report_policy_field_violated_alone_fails_its_check_on_real_evidence() {
    let m = milan();
    // These are Milan reports: each policy opts in to Milan, so the other fields decide.
    let own = |e: &RealEvidence| {
        let mut p = policy(Report::parse(e.report).unwrap().measurement());
        p.processor_generations.push(Product::Milan);
        p
    };
    assert!(real_under(&own(&m), &m).verified());

    let mut p = own(&m);
    p.measurements[0].launch_digest = kettle_image::LaunchDigest([0x22; 48]);
    fails_exactly(&real_under(&p, &m), &[CheckId::Measurement], "measurements");
    let mut p = own(&m);
    p.guest_policy.allow_smt = false;
    fails_exactly(&real_under(&p, &m), &[CheckId::GuestPolicy], "guest_policy");
    let mut p = own(&m);
    p.vmpl = 2;
    fails_exactly(&real_under(&p, &m), &[CheckId::Vmpl], "vmpl");
    let mut p = own(&m);
    p.signers = vec![Signer::Vlek];
    fails_exactly(&real_under(&p, &m), &[CheckId::Signer], "signers");
    // A policy demanding a higher TCB than the report's rejects by name.
    let mut p = own(&m);
    p.min_tcb.milan = Some(MinTcb {
        bootloader: 3,
        snp: 9,
        microcode: 115,
        ..MinTcb::default()
    });
    let v = real_under(&p, &m);
    fails_exactly(&v, &[CheckId::MinTcb], "min_tcb");
    assert_detail(&v, CheckId::MinTcb, "the policy's Milan floor");
    // A lower policy floor than Kettle's built-in one is the policy's to set.
    let mut p = own(&MILAN_DEBUG);
    p.guest_policy.allow_debug = true;
    p.min_tcb.milan = Some(MinTcb::default());
    assert!(real_under(&p, &MILAN_DEBUG).verified());
    p.guest_policy.allow_debug = false;
    fails_exactly(
        &real_under(&p, &MILAN_DEBUG),
        &[CheckId::DebugDisallowed],
        "guest_policy.allow_debug",
    );

    // The VLEK-signed AWS report: signers decides.
    let mut p = own(&MILAN_VLEK);
    p.vmpl = 1;
    fails_exactly(
        &real_under(&p, &MILAN_VLEK),
        &[CheckId::Signer],
        "signers (vlek)",
    );
    p.signers.push(Signer::Vlek);
    assert!(real_under(&p, &MILAN_VLEK).verified());
}

#[test]
fn flags_that_replace_policy_fields_are_named_in_the_verdict() {
    let p = simulated_policy();
    let mut a = applied(&p);
    a.overrides.insert("vmpl", "--vmpl".into());
    let v = verify(&simulated_bundle(DEFAULT_GUEST_POLICY), &p.expectations()).under_policy(a);
    assert!(
        v.notes()
            .iter()
            .any(|n| n.starts_with("policy field vmpl was replaced by --vmpl (LOOSENED")),
        "{v}"
    );
    let json = serde_json::to_value(&v).unwrap();
    assert_eq!(json["policy"]["name"], "matrix");
    assert_eq!(json["policy"]["sha256"].as_str().unwrap().len(), 64);
}

/// Issue 25: the real Milan report the `sev` crate ships is refused by default, naming the
/// attack, and verified under a policy that lists Milan, the verdict line saying so.
#[test]
fn the_real_milan_report_is_refused_unless_the_policy_lists_milan() {
    let m = milan();
    let p = policy(Report::parse(m.report).unwrap().measurement());
    let written = serde_json::to_value(&p).unwrap();
    assert_eq!(
        written["processor_generations"],
        serde_json::json!(["genoa", "turin"])
    );
    let v = real_under(&p, &m);
    fails_exactly(&v, &[CheckId::ProcessorGeneration], "Milan by default");
    let detail = v.check(CheckId::ProcessorGeneration).unwrap().detail();
    assert!(
        detail.contains("arXiv 2605.12990") && detail.contains("VCEK root seed"),
        "{detail}"
    );
    assert!(
        v.headline().contains("report.processor_generation"),
        "{}",
        v.headline()
    );
    let mut allow = p.clone();
    allow.processor_generations.push(Product::Milan);
    let v = real_under(&allow, &m);
    assert!(v.verified(), "{v}");
    assert!(
        v.headline().starts_with("VERIFIED (report only")
            && v.headline().contains("OPTED IN: EPYC Milan accepted"),
        "{}",
        v.headline()
    );
    // Genoa and Turin need no opt-in; "simulated" is no generation.
    for e in [
        kettle_attest::testdata::GENOA_V5,
        kettle_attest::testdata::TURIN_V5,
    ] {
        let v = real_under(&policy(Report::parse(e.report).unwrap().measurement()), &e);
        assert!(
            v.verified() && !v.headline().contains("OPTED IN"),
            "{}: {v}",
            e.name
        );
    }
    let mut bad = p;
    bad.processor_generations = vec![Product::Simulated];
    assert!(bad.check().is_err());
}

/// A policy listing chip ids accepts only those chips (the chip-ID binding itself is tested
/// with simulated fixtures in report.rs).
#[test]
fn a_policy_listing_chip_ids_accepts_only_those_chips() {
    let e = kettle_attest::testdata::TURIN_V5;
    let r = Report::parse(e.report).unwrap();
    let mut p = policy(r.measurement());
    let v = real_under(&p, &e);
    assert!(v.check(CheckId::ChipId).is_none(), "no list, no check: {v}");
    // Turin's 8-byte hwID, as a platform team copies it from the VCEK.
    p.chip_ids = vec![hex::encode(&r.chip_id()[..8]).parse().unwrap()];
    p.check().unwrap();
    let v = real_under(&p, &e);
    assert!(v.verified(), "{v}");
    p.chip_ids = vec!["ab".repeat(64).parse().unwrap()];
    fails_exactly(&real_under(&p, &e), &[CheckId::ChipId], "another chip");
    assert!(
        "abcd".parse::<kettle_verify::ChipId>().is_err(),
        "a chip id of 2 bytes"
    );
}
