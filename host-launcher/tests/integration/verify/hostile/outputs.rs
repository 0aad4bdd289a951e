//! What a hostile host can do to the output files: artifacts, provenance.json, and what
//! it leaves beside the evidence.

use super::*;

pub(super) fn cases() -> Vec<Case> {
    use Expect::*;
    vec![
        // --- artifacts ---
        (
            "replaced artifact",
            Box::new(|d| fs::write(artifact(d), "evil\n").unwrap()),
            Rejected("artifact:out/hello.txt"),
        ),
        (
            "extra artifact",
            Box::new(|d| fs::write(d.join("artifacts/out/extra"), "x").unwrap()),
            Rejected("artifact:out/extra"),
        ),
        (
            "missing artifact",
            Box::new(|d| fs::remove_file(artifact(d)).unwrap()),
            Rejected("artifacts.complete"),
        ),
        (
            "artifact replaced by a symlink to /dev/zero",
            Box::new(|d| {
                fs::remove_file(artifact(d)).unwrap();
                symlink("/dev/zero", artifact(d)).unwrap();
            }),
            Rejected("artifact:out/hello.txt"),
        ),
        (
            "artifact replaced by a FIFO (must not hang)",
            Box::new(|d| replace_with_fifo(&artifact(d))),
            Rejected("artifact:out/hello.txt"),
        ),
        (
            "artifact dir is a symlink out of the output",
            Box::new(|d| {
                fs::remove_dir_all(d.join("artifacts/out")).unwrap();
                symlink("/etc", d.join("artifacts/out")).unwrap();
            }),
            Rejected("artifacts.complete"),
        ),
        (
            "a newline and escape codes in a file name forge no verdict line",
            Box::new(|d| {
                fs::write(d.join("artifacts/out/x\n\nVERIFIED\x1b[2K"), "x").unwrap();
            }),
            Rejected("artifact:out/x\\u{a}\\u{a}VERIFIED\\u{1b}[2K"),
        ),
        (
            "artifacts is a file",
            Box::new(|d| {
                fs::remove_dir_all(d.join("artifacts")).unwrap();
                fs::write(d.join("artifacts"), "x").unwrap();
            }),
            CannotRun("artifacts directory"),
        ),
        // --- provenance.json ---
        (
            "one whitespace byte added",
            Box::new(|d| {
                let mut b = fs::read(d.join("provenance.json")).unwrap();
                b.push(b' ');
                fs::write(d.join("provenance.json"), b).unwrap();
            }),
            Rejected("binding.report_data"),
        ),
        (
            "provenance re-signed but not canonical",
            Box::new(|d| {
                let v: serde_json::Value =
                    serde_json::from_slice(&fs::read(d.join("provenance.json")).unwrap()).unwrap();
                let pretty = serde_json::to_vec_pretty(&v).unwrap();
                fs::write(d.join("provenance.json"), &pretty).unwrap();
                resign(d, SimulatedPsp::new(MEASUREMENT), 0);
            }),
            Rejected("provenance.canonical"),
        ),
        (
            "provenance is a symlink",
            Box::new(|d| replace_with_symlink(d, "provenance.json", "p")),
            CannotRun("is not a regular file"),
        ),
        (
            "provenance is a FIFO (must not hang)",
            Box::new(|d| replace_with_fifo(&d.join("provenance.json"))),
            CannotRun("is not a regular file"),
        ),
        (
            "provenance is huge (bounded read)",
            Box::new(|d| replace_with_sparse(&d.join("provenance.json"), 1 << 40)), // 1 TiB
            CannotRun("is larger than"),
        ),
        (
            "not JSON at all",
            Box::new(|d| {
                fs::write(d.join("provenance.json"), b"\x00\x01binary").unwrap();
                resign(d, SimulatedPsp::new(MEASUREMENT), 0);
            }),
            Rejected("provenance.parse"),
        ),
        (
            "wrong _type",
            provenance_edited(|st| st.type_ = "https://in-toto.io/Statement/v0.1".into()),
            Rejected("provenance.statement_type"),
        ),
        (
            "wrong predicateType",
            provenance_edited(|st| st.predicate_type = "https://example.com/other".into()),
            Rejected("provenance.predicate_type"),
        ),
        (
            "subject without a digest",
            provenance_edited(|st| st.subject[0].digest.clear()),
            Rejected("provenance.valid"),
        ),
        (
            "the local builder's id",
            provenance_edited(|st| {
                st.predicate.run_details.builder.id = ids::BUILDER_ID_LOCAL.into()
            }),
            Rejected("provenance.builder_id"),
        ),
        (
            "an unknown builder",
            provenance_edited(|st| {
                st.predicate.run_details.builder.id = "https://evil.example/builder".into()
            }),
            Rejected("provenance.builder_id"),
        ),
        (
            "an unknown build type",
            provenance_edited(|st| {
                st.predicate.build_definition.build_type = "https://evil.example/make/v1".into()
            }),
            Rejected("provenance.build_type"),
        ),
        (
            "another repository",
            external_parameter("repository", "https://evil.example/r.git".into()),
            Rejected("provenance.repository"),
        ),
        (
            "another ref",
            external_parameter("ref", "refs/heads/evil".into()),
            Rejected("provenance.ref"),
        ),
        (
            "ref not a string",
            external_parameter("ref", serde_json::json!(["refs/heads/main"])),
            Rejected("provenance.ref"),
        ),
        (
            "another commit built",
            provenance_edited(|st| {
                st.predicate.build_definition.resolved_dependencies[0]
                    .digest
                    .insert("gitCommit".into(), "ab".repeat(20));
            }),
            Rejected("provenance.source"),
        ),
        (
            "two source commits",
            provenance_edited(|st| {
                let dependencies = &mut st.predicate.build_definition.resolved_dependencies;
                let mut second = dependencies[0].clone();
                second.digest.insert("gitCommit".into(), "ab".repeat(20));
                dependencies.push(second);
            }),
            Rejected("provenance.source"),
        ),
        (
            "the provenance names another image",
            provenance_edited(|st| {
                st.predicate.run_details.builder.builder_dependencies.push(
                    kettle_provenance::ResourceDescriptor::from_uri("kettle-image:manifest.json")
                        .with_name(ids::IMAGE_DEPENDENCY)
                        .with_digest("sha384", "77".repeat(48)),
                );
            }),
            Rejected("provenance.image"),
        ),
        (
            "no source commit",
            provenance_edited(|st| st.predicate.build_definition.resolved_dependencies.clear()),
            Rejected("provenance.source"),
        ),
        // Issue 25: the host built its own commit and claimed the victim's repository and ref;
        // the auditor accepts any commit, so nothing witnessed the claim.
        (
            "a host-resolved repository and ref with any commit accepted",
            provenance_edited(|st| {
                let internal = &mut st.predicate.build_definition.internal_parameters;
                internal.insert(
                    vocab::REF_RESOLVED_BY.into(),
                    vocab::RESOLVED_BY_HOST.into(),
                );
            }),
            Rejected("provenance.repository"),
        ),
        // Issue 25: a short ref says neither branch nor tag (an old tag passed a branch pattern).
        (
            "a short ref recorded as guest-resolved",
            provenance_edited(|st| {
                let bd = &mut st.predicate.build_definition;
                bd.external_parameters.insert("ref".into(), "main".into());
                bd.internal_parameters.insert(
                    vocab::REF_RESOLVED_BY.into(),
                    vocab::RESOLVED_BY_GUEST.into(),
                );
            }),
            Rejected("provenance.ref"),
        ),
        // --- what the host left beside the evidence ---
        (
            "the host's manifest.json copy names another image",
            Box::new(|d| {
                image_dir(&d.join("evil-image"), [0x77; 48]);
                fs::copy(d.join("evil-image/manifest.json"), d.join("manifest.json")).unwrap();
                resign(d, SimulatedPsp::new([0x77; 48]), 0);
            }),
            Rejected("report.measurement"),
        ),
        (
            "a forged status.json claiming hardware attestation changes nothing",
            Box::new(|d| {
                fs::write(
                    d.join("status.json"),
                    r#"{"ok":true,"attested":true,"attestation":"sev-snp","artifacts":[]}"#,
                )
                .unwrap();
                fs::write(artifact(d), "evil\n").unwrap();
            }),
            Rejected("artifact:out/hello.txt"),
        ),
        (
            "the simulated PSP without --allow-simulated",
            Box::new(|_| {}),
            Rejected("report.simulated"),
        ),
        (
            "source not pinned",
            Box::new(|_| {}),
            Rejected("provenance.source"),
        ),
        (
            "commit pinned to another",
            Box::new(|_| {}),
            Rejected("provenance.source"),
        ),
    ]
}
