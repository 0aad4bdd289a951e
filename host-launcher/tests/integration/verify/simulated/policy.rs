//! `kettle verify --policy` over a simulated build: the policy `kettle policy init` writes,
//! what it requires, and how flags narrow it, loosen it by name, or are not applied.

use super::*;

/// `kettle policy init` for the sample's repository and `refs`, with `extra`, written to
/// `out`; it must succeed.
fn policy_init(out: &Path, refs: &str, extra: &[&str]) {
    let mut args = vec![
        "policy",
        "init",
        "--manifest",
        s(published_manifest()),
        "--repo",
        REPO,
        "--ref",
        refs,
        "--out",
        s(out),
    ];
    args.extend_from_slice(extra);
    let init = kettle(&args);
    let stderr = String::from_utf8_lossy(&init.stderr);
    assert_eq!(init.status.code(), Some(0), "{stderr}");
}

/// [`policy_init`] for `refs/heads/*`, accepting simulated evidence, with `extra`.
fn simulated_policy_init(out: &Path, extra: &[&str]) {
    let mut args = vec!["--allow-simulated"];
    args.extend_from_slice(extra);
    policy_init(out, "refs/heads/*", &args);
}

/// `kettle verify DIR --policy POLICY`, the auditor pinning the built commit (a policy names
/// none), with `extra`.
fn verify_under_policy(dir: &Path, policy: &Path, extra: &[&str]) -> (i32, String) {
    let mut args = vec![s(dir), "--policy", s(policy), "--commit", COMMIT];
    args.extend_from_slice(extra);
    verify(&args)
}

#[test]
fn a_policy_from_kettle_policy_init_is_the_documented_way_to_verify() {
    let dir = output_dir();
    let files = tempfile::tempdir().unwrap();
    let policy = files.path().join("policy.json");
    simulated_policy_init(&policy, &["--name", "hello-ci"]);
    // Never overwritten.
    let again = kettle(&[
        "policy",
        "init",
        "--manifest",
        s(published_manifest()),
        "--out",
        s(&policy),
    ]);
    assert_eq!(again.status.code(), Some(2));

    let under_policy = |extra: &[&str]| verify_under_policy(dir.path(), &policy, extra);
    let (code, text) = under_policy(&[]);
    assert_eq!(code, 0, "{text}");
    assert!(
        text.contains("under policy \"hello-ci\" (sha256 "),
        "{text}"
    );
    // A flag narrowing a field is named, and its violation names the field.
    let (code, text) = under_policy(&["--repo", "https://example.com/other.git"]);
    assert_eq!(code, 1, "{text}");
    assert!(
        text.contains("policy field source.repository was narrowed by --repo"),
        "{text}"
    );
    assert!(text.contains("[policy field: source.repository]"), "{text}");
    let (_, json) = under_policy(&["--json"]);
    let v: serde_json::Value = serde_json::from_str(
        json.lines()
            .take_while(|l| !l.contains("[INFO]"))
            .collect::<Vec<_>>()
            .join("\n")
            .as_str(),
    )
    .unwrap();
    let sha = kettle_provenance::Sha256Digest::of_file(&policy)
        .unwrap()
        .to_hex();
    assert_eq!(v["policy"]["sha256"], sha);
}

#[test]
fn a_policy_that_requires_revocation_and_time_rejects_until_the_auditor_gives_them() {
    let dir = output_dir();
    let files = tempfile::tempdir().unwrap();
    let policy = files.path().join("policy.json");
    let crl = files.path().join("simulated-ark.crl");
    simulated_policy_init(
        &policy,
        &["--require-revocation-check", "--require-trusted-time"],
    );
    let written: serde_json::Value = serde_json::from_slice(&fs::read(&policy).unwrap()).unwrap();
    assert_eq!(written["require_revocation_check"], true);
    assert_eq!(written["require_trusted_time"], true);
    // The processor generations are written out, Milan left out.
    assert_eq!(
        written["processor_generations"],
        serde_json::json!(["genoa", "turin"])
    );

    let (code, out) = verify_under_policy(dir.path(), &policy, &[]);
    assert_eq!(code, 1, "{out}");
    assert!(
        out.contains("2 check(s) failed: report.revocation, report.cert_validity"),
        "{out}"
    );
    assert!(out.contains("require_revocation_check"), "{out}");
    // With the simulated ARK's (empty) CRL and a time inside its window, it verifies.
    fs::write(&crl, kettle_testkit::evidence::clean_simulated_crl()).unwrap();
    let (code, out) = verify_under_policy(
        dir.path(),
        &policy,
        &["--crl", s(&crl), "--at", "2026-06-01T00:00:00Z"],
    );
    assert_eq!(code, 0, "{out}");
    assert!(out.contains("[PASS] report.revocation"), "{out}");
    // Only what the hand-made provenance does not name is left: the image it ran in.
    assert!(
        out.trim_end().ends_with("; not checked: provenance.image"),
        "{out}"
    );
}

/// Issue 25: the documented `kettle verify out --policy P --ref R --source D` replaced the
/// policy's refs: a build of a branch passed a tags-only policy. Under a policy `--ref` only
/// narrows it; replacing the refs takes `--loosen-policy source.refs`, and the verdict line
/// then says LOOSENED.
#[test]
fn under_a_policy_ref_only_narrows_and_loosening_is_named() {
    let dir = output_dir(); // a build of refs/heads/main
    let files = tempfile::tempdir().unwrap();
    let tags_only = files.path().join("tags-only.json");
    policy_init(&tags_only, "refs/tags/v*", &["--allow-simulated"]);
    let (code, text) = verify_under_policy(dir.path(), &tags_only, &["--ref", REF]);
    assert_eq!(code, 1, "{text}");
    assert_eq!(failed_checks(&text), ["provenance.ref"], "{text}");
    assert!(
        text.contains("policy field source.refs was narrowed by --ref"),
        "{text}"
    );
    let (code, text) = verify_under_policy(
        dir.path(),
        &tags_only,
        &["--ref", REF, "--loosen-policy", "source.refs"],
    );
    assert_eq!(code, 0, "{text}");
    let line = verdict_line(&text);
    assert!(
        line.contains("under policy") && line.contains("LOOSENED: source.refs by --ref"),
        "{line}"
    );
    // Without a policy there is nothing to loosen.
    let (code, text) = verify(&[
        s(dir.path()),
        "--allow-simulated",
        "--loosen-policy",
        "source.refs",
    ]);
    assert_eq!(code, 2, "{text}");
    assert!(text.contains("no policy to loosen"), "{text}");
    // A --loosen-policy that loosens nothing is a mistake, said before anything runs.
    let (code, text) = verify_under_policy(
        dir.path(),
        &tags_only,
        &["--loosen-policy", "source.repository"],
    );
    assert_eq!(code, 2, "{text}");
    assert!(text.contains("--loosen-policy"), "{text}");
    // A policy that forbids simulated evidence: --allow-simulated is not applied...
    let strict = files.path().join("strict.json");
    policy_init(&strict, "refs/heads/*", &[]);
    let (code, text) = verify_under_policy(dir.path(), &strict, &["--allow-simulated"]);
    assert_eq!(code, 1, "{text}");
    assert!(
        failed_checks(&text).contains(&"report.simulated".to_string()),
        "{text}"
    );
    assert!(
        text.contains(
            "--allow-simulated was NOT applied: it would loosen policy field allow_simulated"
        ),
        "{text}"
    );
    // ...unless the auditor loosens the field by name, which the verdict line says.
    let (code, text) = verify_under_policy(
        dir.path(),
        &strict,
        &["--allow-simulated", "--loosen-policy", "allow_simulated"],
    );
    assert_eq!(code, 0, "{text}");
    let line = verdict_line(&text);
    assert!(
        line.starts_with("VERIFIED (SIMULATED")
            && line.contains("LOOSENED: allow_simulated by --allow-simulated)"),
        "{line}"
    );
}

/// Issue 25: `--any-source` silently overrode a policy that has the auditor pin the commit.
/// It is now a loosening like any other: not applied (and recorded) without
/// `--loosen-policy source.any_commit`, recorded in policy.overrides with it.
#[test]
fn any_source_under_a_policy_that_pins_the_commit_is_recorded() {
    let dir = output_dir();
    let files = tempfile::tempdir().unwrap();
    let policy = files.path().join("policy.json");
    simulated_policy_init(&policy, &[]);
    let run = |extra: &[&str]| {
        let mut args = vec![
            s(dir.path()),
            "--policy",
            s(&policy),
            "--any-source",
            "--json",
        ];
        args.extend_from_slice(extra);
        let (code, text) = verify(&args);
        (
            code,
            serde_json::from_str::<serde_json::Value>(&text).unwrap(),
        )
    };
    let (code, v) = run(&[]);
    assert_eq!(code, 1, "{v}");
    assert_eq!(
        v["policy"]["not_applied"]["source.any_commit"],
        "--any-source"
    );
    let failed: Vec<&str> = v["checks"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|c| c["status"] == "fail")
        .map(|c| c["name"].as_str().unwrap())
        .collect();
    assert!(failed.contains(&"provenance.source"), "{v}");
    let (code, v) = run(&["--loosen-policy", "source.any_commit"]);
    // The commit is then unpinned, and the host-resolved repository and ref need their own opt-in.
    assert_eq!(code, 1, "{v}");
    assert_eq!(
        v["policy"]["overrides"]["source.any_commit"],
        "--any-source"
    );
    assert!(v["verdict"]
        .as_str()
        .unwrap()
        .contains("LOOSENED: source.any_commit by --any-source"));
}

/// Issue 25: `--source` takes its ref from a policy naming exactly one, and the provenance's
/// gitTree must be the tree of the built commit in the auditor's clone.
#[test]
fn source_takes_its_ref_from_the_policy_and_compares_the_tree() {
    let repo = kettle_testkit::git::GitRepo::new();
    repo.write(
        "hello.txt",
        "hello
",
    );
    let commit = repo.commit_all("one");
    let tree = repo.rev_parse("HEAD^{tree}");
    let branch = String::from_utf8(repo.git(&["symbolic-ref", "HEAD"])).unwrap();
    let branch = branch.trim().to_string();
    let files = tempfile::tempdir().unwrap();
    let policy = files.path().join("policy.json");
    let init = kettle(&[
        "policy",
        "init",
        "--manifest",
        s(published_manifest()),
        "--allow-simulated",
        "--repo",
        REPO,
        "--ref",
        &branch,
        "--out",
        s(&policy),
    ]);
    assert_eq!(init.status.code(), Some(0));
    // An output directory of a build of that commit, whose provenance names `tree_claimed`.
    let built = |tree_claimed: &str| {
        let dir = tempfile::tempdir().unwrap();
        let spec = StatementSpec {
            commit: Some(&commit),
            git_ref: &branch,
            ..spec()
        };
        simulated_output_dir(dir.path(), &spec, MEASUREMENT);
        let mut st = spec.statement();
        st.predicate.build_definition.resolved_dependencies[0]
            .digest
            .insert("gitTree".into(), tree_claimed.into());
        let bytes = kettle_provenance::jcs::to_canonical_bytes(&st).unwrap();
        fs::write(dir.path().join("provenance.json"), &bytes).unwrap();
        replace_report(dir.path(), MEASUREMENT, &bytes);
        dir
    };
    let good = built(&tree);
    let args = |d: &Path| {
        vec![
            s(d).to_string(),
            "--policy".into(),
            s(&policy).to_string(),
            "--source".into(),
            s(repo.path()).to_string(),
        ]
    };
    let (code, text) = verify(&args(good.path()));
    assert_eq!(code, 0, "{text}");
    assert!(
        text.contains("is the tree of that commit in your clone"),
        "{text}"
    );
    let other = built(&"ee".repeat(20));
    let (code, text) = verify(&args(other.path()));
    assert_eq!(code, 1, "{text}");
    assert_eq!(failed_checks(&text), ["provenance.source"], "{text}");
}

/// `kettle policy init` writes the processor generations and the host-resolved opt-in
/// explicitly, and its help says what each means.
#[test]
fn policy_init_writes_the_milan_and_host_resolved_opt_ins_explicitly() {
    let files = tempfile::tempdir().unwrap();
    let policy = files.path().join("policy.json");
    simulated_policy_init(
        &policy,
        &[
            "--allow-milan",
            "--accept-host-resolved",
            "--chip-id",
            &"ab".repeat(8),
        ],
    );
    let written: serde_json::Value = serde_json::from_slice(&fs::read(&policy).unwrap()).unwrap();
    assert_eq!(
        written["processor_generations"],
        serde_json::json!(["milan", "genoa", "turin"])
    );
    assert_eq!(written["source"]["accept_host_resolved"], true);
    assert_eq!(written["chip_ids"], serde_json::json!(["ab".repeat(8)]));
    let help = kettle(&["policy", "init", "--help"]);
    let help = String::from_utf8_lossy(&help.stdout);
    for text in [
        "accept_host_resolved",
        "arXiv 2605.12990",
        "processor_generations",
    ] {
        assert!(help.contains(text), "{text}: {help}");
    }
    let help = kettle(&["verify", "--help"]);
    let help = String::from_utf8_lossy(&help.stdout);
    for text in [
        "report.processor_generation",
        "--loosen-policy",
        "OPTED IN",
        "LOOSENED",
    ] {
        assert!(help.contains(text), "{text}: {help}");
    }
}
