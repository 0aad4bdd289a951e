//! The pipeline end to end in local mode: real git commits and archives, a
//! root filesystem made from the host's binaries, the real sandbox (these
//! tests run as root), and a counting fake report provider or the simulated
//! PSP. What a successful build emits, and how a failing one stops.

mod common;

use std::fs;

use kettle_init::{run_local, LocalOptions, Step};
use kettle_provenance::{Provenance, Sha256Digest, Statement};
use kettle_testkit::fixtures::{read_status, rootfs, FAKE_REPORT_BYTE, FAKE_REPORT_LEN};
use kettle_testkit::{CountingProvider, Scenario};
use kettle_wire::cache;
use kettle_wire::output::{CHAIN_FILE, EVIDENCE_FILE, PROVENANCE_FILE};

use common::{build_unattested, expect_failure};

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
    assert_eq!(def.internal_parameters["hermetic"], true);
    assert_eq!(def.internal_parameters["tee_platform"], "simulated");
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
        kettle_provenance::ids::BUILDER_ID
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
    assert!(status.ok && status.attested);
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
    assert!(status.ok && !status.attested);
    assert!(
        status.attestation.contains("nothing is hardware-attested"),
        "{}",
        status.attestation
    );
    assert!(!out.join(EVIDENCE_FILE).exists());
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
    let out = sc.out();
    let outcome = run_local(
        &sc.request,
        &sc.inputs(),
        Some(&mut client),
        &out,
        &LocalOptions::default(),
    )
    .unwrap();
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
    assert_eq!(read_status(&out).attestation, "simulated");
}
