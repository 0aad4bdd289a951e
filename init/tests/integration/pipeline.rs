//! The pipeline end to end in local mode: real git commits and archives, a
//! root filesystem made from the host's binaries, the real sandbox (these
//! tests run as root), and a counting fake report provider or the simulated
//! PSP. What a successful build emits, and how a failing one stops.

use std::fs;

use kettle_init::{run_local, Clock, LocalOptions, Step};
use kettle_provenance::{vocab, Provenance, Sha256Digest, Statement};
use kettle_testkit::fixtures::{read_status, rootfs, FAKE_REPORT_BYTE, FAKE_REPORT_LEN};
use kettle_testkit::{CountingProvider, Scenario};
use kettle_wire::cache;
use kettle_wire::output::{CHAIN_FILE, EVIDENCE_FILE, PROVENANCE_FILE};

use crate::common::{build_scenario, build_unattested, expect_failure, run_scenario};

#[test]
fn script_build_end_to_end() {
    let sc = Scenario::script(
        "mkdir -p out && { echo hello; cat greeting.txt; ./tool.sh; } > out/hello.txt && echo second > out/two.txt",
        &["out/hello.txt", "out/two.txt"],
    )
    .file("greeting.txt", "from a test\n")
    .executable("tool.sh", "#!/bin/sh\necho tool ran\n")
    .commit();
    let (inputs, out) = (sc.inputs(), sc.out());
    let mut provider = CountingProvider::default();
    let req = &sc.request;
    let outcome = run_local(
        req,
        &inputs,
        Some(&mut provider),
        &out,
        &LocalOptions::default(),
    )
    .unwrap();

    let hello = fs::read_to_string(out.join("artifacts/out/hello.txt")).unwrap();
    assert_eq!(hello, "hello\nfrom a test\ntool ran\n");
    let provenance = fs::read(out.join(PROVENANCE_FILE)).unwrap();
    assert_eq!(provenance, outcome.provenance);
    assert!(kettle_provenance::jcs::is_canonical(&provenance));
    let st: Statement<Provenance> = Statement::from_json(&provenance).unwrap();
    st.validate().unwrap();
    kettle_provenance::merkle::check_input_merkle_root(&st.predicate).unwrap();
    // Subjects are exactly the outputs, with the hashes of the emitted files.
    assert_eq!(st.subject.len(), 2);
    for (subject, name) in st.subject.iter().zip(["out/hello.txt", "out/two.txt"]) {
        assert_eq!(subject.name.as_deref(), Some(name));
        assert_eq!(
            subject.digest["sha256"],
            Sha256Digest::of_file(&out.join("artifacts").join(name))
                .unwrap()
                .to_hex()
        );
    }
    let def = &st.predicate.build_definition;
    assert_eq!(def.build_type, kettle_provenance::ids::BUILD_TYPE_SCRIPT);
    assert_eq!(def.external_parameters["repository"], req.repository);
    assert_eq!(def.external_parameters["ref"], req.git_ref);
    assert_eq!(def.internal_parameters[vocab::HERMETIC], true);
    // The provider's evidence is simulated (CountingProvider says so): the provenance says so too.
    assert_eq!(def.internal_parameters[vocab::TEE_PLATFORM], "simulated");
    assert_eq!(def.internal_parameters[vocab::REF_RESOLVED_BY], "host");
    assert_eq!(
        def.internal_parameters[vocab::CLOCK],
        "host-provided, unverified"
    );
    let src = &def.resolved_dependencies[0];
    assert_eq!(
        src.uri.as_deref(),
        Some(format!("git+{}@{}", req.repository, req.git_ref).as_str())
    );
    assert_eq!(src.digest["gitCommit"], sc.commit);
    let git_tree = String::from_utf8(sc.commit_raw.clone())
        .unwrap()
        .lines()
        .next()
        .unwrap()
        .strip_prefix("tree ")
        .unwrap()
        .to_string();
    assert_eq!(src.digest["gitTree"], git_tree);
    let rootfs_dep = def
        .resolved_dependencies
        .iter()
        .find(|d| d.name.as_deref() == Some("rootfs"))
        .unwrap();
    let rootfs_sha = Sha256Digest::of_bytes(rootfs());
    assert_eq!(rootfs_dep.digest["sha256"], rootfs_sha.to_hex());
    let meta = st.predicate.run_details.metadata.as_ref().unwrap();
    assert_eq!(meta.invocation_id.as_deref(), Some("test-invocation-1"));
    assert_eq!(
        st.predicate.run_details.builder.id,
        kettle_provenance::ids::BUILDER_ID_SIMULATED
    );
    // One report, bound to exactly these bytes.
    assert_eq!(provider.calls, 1);
    assert_eq!(
        provider.last_report_data.unwrap(),
        kettle_attest::binding::report_data_for(&provenance)
    );
    assert_eq!(
        fs::read(out.join(EVIDENCE_FILE)).unwrap(),
        vec![FAKE_REPORT_BYTE; FAKE_REPORT_LEN]
    );
    assert!(out.join(CHAIN_FILE).is_file());
    let status = read_status(&out);
    // Simulated evidence is never "attested".
    assert!(
        status.ok && !status.attested && status.simulated,
        "{status:?}"
    );
    assert_eq!(status.artifacts, vec!["out/hello.txt", "out/two.txt"]);
    // Local mode leaves the caller's inputs alone.
    assert!(cache::source_path(&inputs, &sc.commit).is_file());
    assert!(cache::blob_path(&inputs, &rootfs_sha).is_file());
}

#[test]
fn without_a_provider_the_output_says_not_attested() {
    let sc = Scenario::script("mkdir -p out && echo x > out/x", &["out/x"]).commit();
    let (outcome, out) = build_unattested(&sc);
    assert!(outcome.evidence.is_none());
    let status = read_status(&out);
    assert!(status.ok && !status.attested && !status.simulated);
    assert!(
        status.attestation.contains("nothing is hardware-attested"),
        "{}",
        status.attestation
    );
    assert!(!out.join(EVIDENCE_FILE).exists());
    // Local mode without a provider is its own builder, under no TEE (whatever the request's
    // tee says); hermetic still means "pinned tools", which this build used.
    let st = statement(&outcome.provenance);
    assert_eq!(
        st.predicate.run_details.builder.id,
        kettle_provenance::ids::BUILDER_ID_LOCAL
    );
    let internal = &st.predicate.build_definition.internal_parameters;
    assert_eq!(internal[vocab::TEE_PLATFORM], "none");
    assert_eq!(internal[vocab::HERMETIC], true);
}

/// The parsed Statement of provenance.json bytes.
fn statement(bytes: &[u8]) -> Statement<Provenance> {
    Statement::from_json(bytes).unwrap()
}

/// A report provider claiming its evidence comes from `tee` (a stand-in: the bytes are fake).
struct ClaimingProvider {
    tee: kettle_attest::Tee,
    calls: usize,
}

impl kettle_attest::ReportProvider for ClaimingProvider {
    fn request_report(
        &mut self,
        _report_data: &[u8; 64],
    ) -> Result<kettle_attest::Evidence, kettle_attest::RequestError> {
        self.calls += 1;
        Ok(kettle_attest::Evidence {
            report: vec![FAKE_REPORT_BYTE; FAKE_REPORT_LEN],
            cert_chain_pem: None,
            provider: self.tee,
        })
    }
}

#[test]
fn each_security_mode_has_its_own_builder_id_and_tee_platform() {
    use kettle_attest::Tee;
    use kettle_provenance::ids;
    let mut sc = Scenario::script("mkdir -p out && echo x > out/x", &["out/x"]).commit();
    for (tee, builder, platform, attested, simulated) in [
        (Tee::SevSnp, ids::BUILDER_ID_SEV_SNP, "sev-snp", true, false),
        (
            Tee::Simulated,
            ids::BUILDER_ID_SIMULATED,
            "simulated",
            false,
            true,
        ),
    ] {
        sc.request.tee = tee;
        let mut provider = ClaimingProvider { tee, calls: 0 };
        let (outcome, out) = build_scenario(&sc, Some(&mut provider), &LocalOptions::default());
        assert_eq!(provider.calls, 1);
        let st = statement(&outcome.provenance);
        assert_eq!(st.predicate.run_details.builder.id, builder, "{tee:?}");
        assert_eq!(
            st.predicate.build_definition.internal_parameters[vocab::TEE_PLATFORM],
            platform
        );
        let status = read_status(&out);
        assert_eq!(
            (status.attested, status.simulated),
            (attested, simulated),
            "{status:?}"
        );
    }
}

#[test]
fn evidence_of_another_tee_than_the_provenance_names_is_refused() {
    use kettle_attest::Tee;
    // The provenance would say sev-snp, but the provider's evidence is simulated.
    let mut sc = Scenario::script("mkdir -p out && echo x > out/x", &["out/x"]).commit();
    sc.request.tee = Tee::SevSnp;
    let mut provider = ClaimingProvider {
        tee: Tee::Simulated,
        calls: 0,
    };
    let (result, out) = run_scenario(&sc, Some(&mut provider), &LocalOptions::default());
    let err = result.unwrap_err();
    assert_eq!(err.step, Step::Attest, "{}", err.message());
    assert!(
        err.message().contains("simulated evidence"),
        "{}",
        err.message()
    );
    kettle_testkit::fixtures::assert_only_error(&out);
}

#[test]
fn a_clock_before_kettle_init_was_built_fails_without_a_report() {
    // The host sets the guest's clock; one earlier than kettle-init's own build date is
    // certainly wrong, and the provenance would carry it as startedOn/finishedOn.
    let sc = Scenario::script("mkdir -p out && echo x > out/x", &["out/x"]).commit();
    let clock_at = |at| LocalOptions {
        clock: Clock::Fixed(at),
        ..LocalOptions::default()
    };
    expect_failure(
        &sc.request,
        &sc.inputs(),
        &clock_at(kettle_init::clock::BUILD_EPOCH - 86_400),
        Step::Provenance,
        None,
        &["before this kettle-init was built", "fix the host's clock"],
    );
    // At the build date itself it is accepted, and the timestamps are the clock's.
    let at = kettle_init::clock::BUILD_EPOCH;
    let (outcome, _) = build_scenario(&sc, None, &clock_at(at));
    let meta = statement(&outcome.provenance)
        .predicate
        .run_details
        .metadata
        .unwrap();
    let when = kettle_provenance::timestamp::format_rfc3339_utc(at);
    assert_eq!(meta.started_on.as_deref(), Some(when.as_str()));
    assert_eq!(meta.finished_on.as_deref(), Some(when.as_str()));
}

#[test]
fn a_failing_build_writes_error_json_and_requests_no_report() {
    let sc = Scenario::script("echo about to fail; exit 3", &["out/x"]).commit();
    expect_failure(
        &sc.request,
        &sc.inputs(),
        &LocalOptions::default(),
        Step::Build,
        None,
        &["exited with status 3", "about to fail"],
    );
}

#[test]
fn a_build_over_its_time_limit_is_killed() {
    let sc = Scenario::script("sleep 600 & sleep 600; echo never", &["out/x"]).commit();
    let mut req = sc.request.clone();
    req.limits.max_build_seconds = Some(1);
    expect_failure(
        &req,
        &sc.inputs(),
        &LocalOptions::default(),
        Step::Build,
        None,
        &["exceeded its 1 s time limit"],
    );
}

#[test]
fn outputs_that_are_symlinks_are_refused_not_followed() {
    // Inside the sandbox these links point at the build's own rootfs; outside, hashing
    // them would read the guest's files (or the host's, in local mode).
    for (script, output) in [
        ("mkdir -p out && ln -s /etc/hostname out/x", "out/x"),
        (
            "mkdir -p real && echo data > real/f && ln -s real out",
            "out/f",
        ),
    ] {
        let sc = Scenario::script(script, &[output]).commit();
        expect_failure(
            &sc.request,
            &sc.inputs(),
            &LocalOptions::default(),
            Step::Hash,
            Some(output),
            &["not a regular file"],
        );
    }
}

#[test]
fn a_source_archive_under_one_top_directory_is_accepted() {
    // As forges serve archives: every path under "samples-<sha>/".
    let mut sc = Scenario::script("mkdir -p out && cat data.txt > out/x", &["out/x"])
        .file("data.txt", "prefixed\n")
        .commit();
    sc.archive = sc.repo.git(&[
        "archive",
        "--format=tar.gz",
        "--prefix=samples-main/",
        &sc.commit,
    ]);
    let (_, out) = build_unattested(&sc);
    assert_eq!(
        fs::read_to_string(out.join("artifacts/out/x")).unwrap(),
        "prefixed\n"
    );
}

#[test]
fn local_build_attested_by_the_simulated_psp_binds_the_provenance() {
    use kettle_attest::simulated::{PspClient, SimulatedPsp};
    let (guest_end, host_end) = std::os::unix::net::UnixStream::pair().unwrap();
    let measurement = [0x42u8; 48];
    let psp = std::thread::spawn(move || SimulatedPsp::new(measurement).serve(host_end));
    let mut client = PspClient::new(guest_end);

    let sc = Scenario::script("mkdir -p out && echo attested > out/a.txt", &["out/a.txt"]).commit();
    let (outcome, out) = build_scenario(&sc, Some(&mut client), &LocalOptions::default());
    drop(client);
    psp.join().unwrap().unwrap();

    let evidence = fs::read(out.join(EVIDENCE_FILE)).unwrap();
    let report = kettle_attest::report::Report::parse(&evidence).unwrap();
    let provenance = fs::read(out.join(PROVENANCE_FILE)).unwrap();
    assert_eq!(provenance, outcome.provenance);
    assert_eq!(
        report.report_data(),
        kettle_attest::binding::report_data_for(&provenance)
    );
    assert_eq!(report.measurement(), measurement);
    assert_eq!(report.vmpl(), 0);
    assert_eq!(
        outcome.evidence.unwrap().provider,
        kettle_attest::Tee::Simulated
    );
    assert!(fs::read_to_string(out.join(CHAIN_FILE))
        .unwrap()
        .contains("BEGIN CERTIFICATE"));
    let status = read_status(&out);
    assert!(status.simulated && !status.attested, "{status:?}");
    assert!(
        status.attestation.starts_with("SIMULATED"),
        "{}",
        status.attestation
    );
}

/// A build script printing `mib` MiB without a newline (bash builtins only), then `then`.
fn flood(mib: u32, then: &str) -> String {
    format!("s=$(printf '%*s' 1048576 ''); for ((i = 0; i < {mib}; i++)); do printf '%s' \"$s\"; done; {then}")
}

#[test]
fn one_endless_output_line_is_cut_and_the_build_still_ends_cleanly() {
    // 64 MiB in one line: kettle-init must neither buffer it whole (OOM, no error.json)
    // nor put it in the error message.
    let sc = Scenario::script(&flood(64, "echo; echo after; exit 7"), &["out/x"]).commit();
    let report = expect_failure(
        &sc.request,
        &sc.inputs(),
        &LocalOptions::default(),
        Step::Build,
        None,
        &[
            "exited with status 7",
            "more bytes of this line dropped",
            "after",
        ],
    );
    assert!(
        report.message.len() < kettle_init::sandbox::TAIL_BYTES + 1024,
        "error.json message is {} bytes",
        report.message.len()
    );
    // The same flood from a build that succeeds: it completes.
    let sc = Scenario::script(&flood(64, "mkdir -p out && echo ok > out/x"), &["out/x"]).commit();
    let (_, out) = build_unattested(&sc);
    assert_eq!(
        fs::read_to_string(out.join("artifacts/out/x")).unwrap(),
        "ok\n"
    );
}
