use super::*;
use crate::check::{Check, Status};
use kettle_provenance::ResourceDescriptor;

const COMMIT: &str = "abababababababababababababababababababab";

/// The default expectations with the statement's commit pinned.
fn pinned() -> ProvenanceExpectations {
    ProvenanceExpectations {
        source: SourcePin::Commit(COMMIT.into()),
        ..Default::default()
    }
}

fn statement(artifact: &[u8]) -> Vec<u8> {
    kettle_testkit::evidence::StatementSpec {
        subjects: vec![("bin/hello", artifact)],
        repository: "https://example.com/r.git",
        commit: Some(COMMIT),
        build_type: ids::BUILD_TYPE_CARGO,
        ..Default::default()
    }
    .bytes()
}

/// Steps 3 to 6 over one provenance, as `verify` runs them.
fn check_provenance(
    bytes: &[u8],
    report_data: Option<&[u8; 64]>,
    expect: &ProvenanceExpectations,
    artifacts: &[Artifact],
    complete_output: bool,
) -> Vec<Check> {
    let mut list = CheckList::default();
    crate::binding::verify_binding(report_data.copied(), Some(bytes), None, &mut list);
    if let Some(st) = verify_statement(bytes, &mut list) {
        verify_subjects(&st, artifacts, complete_output, &mut list);
        verify_build_parameters(&st, expect, None, &mut list);
    }
    list.into_sorted()
}

fn status(checks: &[Check], name: &str) -> Status {
    checks
        .iter()
        .find(|c| c.name() == name)
        .unwrap_or_else(|| panic!("no check {name}: {checks:?}"))
        .status()
}

fn failed(checks: &[Check]) -> Vec<String> {
    checks
        .iter()
        .filter(|c| c.status() == Status::Fail)
        .map(|c| c.name())
        .collect()
}

#[test]
fn good_provenance_passes_every_check() {
    let bytes = statement(b"hello");
    let rd = kettle_attest::report_data_for(&bytes);
    let exp = ProvenanceExpectations {
        repository: Some("https://example.com/r.git".into()),
        git_ref: Some("refs/heads/main".into()),
        ..pinned()
    };
    let art = Artifact::from_bytes("bin/hello", Some("bin/hello".into()), b"hello");
    let checks = check_provenance(&bytes, Some(&rd), &exp, &[art], true);
    assert!(failed(&checks).is_empty(), "{checks:#?}");
    // Only the image check needs a report's measurement, which these unit tests have not.
    assert!(
        checks
            .iter()
            .all(|c| c.status() == Status::Pass || c.id == CheckId::Image),
        "{checks:#?}"
    );
}

#[test]
fn the_image_a_provenance_names_must_be_the_measured_one() {
    let mut st = Statement::from_json(&statement(b"hello")).unwrap();
    st.predicate.run_details.builder.builder_dependencies.push(
        ResourceDescriptor::from_uri("kettle-image:manifest.json")
            .with_name(ids::IMAGE_DEPENDENCY)
            .with_digest("sha384", hex::encode([7u8; 48])),
    );
    let image = |measured: [u8; 48]| {
        let mut list = CheckList::default();
        verify_build_parameters(&st, &pinned(), Some(measured), &mut list);
        let c = list
            .into_sorted()
            .into_iter()
            .find(|c| c.id == CheckId::Image)
            .unwrap();
        c.status()
    };
    assert_eq!(image([7; 48]), Status::Pass);
    assert_eq!(image([8; 48]), Status::Fail);
    // Issue 25: only the launch digest is compared; the manifest's sha256 is not claimed.
    let mut list = CheckList::default();
    verify_build_parameters(&st, &pinned(), Some([7; 48]), &mut list);
    let detail = list
        .into_sorted()
        .into_iter()
        .find(|c| c.id == CheckId::Image)
        .unwrap()
        .detail();
    assert!(
        detail.contains("not compared") && !detail.contains("whose launch digest"),
        "{detail}"
    );
    let plain = Statement::from_json(&statement(b"hello")).unwrap();
    let mut list = CheckList::default();
    verify_build_parameters(&plain, &pinned(), Some([7; 48]), &mut list);
    let c = list
        .into_sorted()
        .into_iter()
        .find(|c| c.id == CheckId::Image)
        .unwrap();
    assert_eq!(
        c.status(),
        Status::Skip,
        "an older provenance names no image"
    );
}

#[test]
fn one_whitespace_byte_breaks_binding_and_canonical_form() {
    let bytes = statement(b"hello");
    let rd = kettle_attest::report_data_for(&bytes);
    let mut edited = bytes.clone();
    edited.push(b'\n');
    let checks = check_provenance(&edited, Some(&rd), &pinned(), &[], false);
    assert_eq!(
        failed(&checks),
        ["binding.report_data", "provenance.canonical"]
    );
    assert_eq!(status(&checks, "artifacts"), Status::Skip);
}

#[test]
fn nonzero_second_half_of_report_data_fails() {
    let bytes = statement(b"hello");
    let mut rd = kettle_attest::report_data_for(&bytes);
    rd[63] = 1;
    let checks = check_provenance(&bytes, Some(&rd), &pinned(), &[], false);
    let c = checks.iter().find(|c| c.id == CheckId::ReportData).unwrap();
    assert_eq!(c.status(), Status::Fail);
    assert!(c.detail().contains("32 zero bytes"), "{}", c.detail());
}

#[test]
fn replaced_artifact_fails_by_name_and_by_digest() {
    let bytes = statement(b"hello");
    let rd = kettle_attest::report_data_for(&bytes);
    let exp = pinned();
    let named = Artifact::from_bytes("bin/hello", Some("bin/hello".into()), b"evil");
    let loose = Artifact::from_bytes("./hello", None, b"evil");
    let checks = check_provenance(&bytes, Some(&rd), &exp, &[named, loose], false);
    assert_eq!(failed(&checks), ["artifact:bin/hello", "artifact:./hello"]);
    assert!(checks
        .iter()
        .any(|c| c.detail().contains("replaced or altered")));
}

#[test]
fn extra_and_missing_artifacts_in_a_directory_fail() {
    let bytes = statement(b"hello");
    let exp = pinned();
    let extra = Artifact::from_bytes("bin/other", Some("bin/other".into()), b"other");
    let checks = check_provenance(&bytes, None, &exp, &[extra], true);
    assert_eq!(
        failed(&checks),
        ["artifact:bin/other", "artifacts.complete"]
    );
    assert_eq!(status(&checks, "binding.report_data"), Status::Skip);
}

#[test]
fn wrong_parameters_builder_and_build_type_are_named() {
    let bytes = statement(b"hello");
    let exp = ProvenanceExpectations {
        repository: Some("https://example.com/other.git".into()),
        git_ref: Some("refs/tags/v2".into()),
        builder_ids: vec!["https://example.com/builder".into()],
        refs: Vec::new(),
        build_types: vec![ids::BUILD_TYPE_SCRIPT.into()],
        ..pinned()
    };
    let checks = check_provenance(&bytes, None, &exp, &[], false);
    assert_eq!(
        failed(&checks),
        [
            "provenance.repository",
            "provenance.ref",
            "provenance.builder_id",
            "provenance.build_type"
        ]
    );
}

#[test]
fn unparsable_provenance_skips_dependent_checks_saying_why() {
    let checks = check_provenance(b"{\"_type\":", None, &pinned(), &[], false);
    assert_eq!(
        failed(&checks),
        ["provenance.canonical", "provenance.parse"]
    );
    let skipped: Vec<_> = checks
        .iter()
        .filter(|c| c.status() == Status::Skip)
        .collect();
    assert!(skipped.len() >= 8);
    assert!(skipped
        .iter()
        .skip(1)
        .all(|c| c.detail() == "provenance.json does not parse"));
}

#[test]
fn the_built_commit_must_be_the_pinned_one() {
    let bytes = statement(b"hello");
    let source = |pin: SourcePin| {
        let checks = check_provenance(
            &bytes,
            None,
            &ProvenanceExpectations {
                source: pin,
                ..pinned()
            },
            &[],
            false,
        );
        let c = checks
            .into_iter()
            .find(|c| c.id == CheckId::Source)
            .unwrap();
        (c.status(), c.detail())
    };
    let (st, detail) = source(SourcePin::Unpinned);
    assert_eq!(st, Status::Fail);
    assert!(
        detail.contains("not pinned") && detail.contains(COMMIT),
        "{detail}"
    );
    assert_eq!(source(SourcePin::Any).0, Status::Pass);
    assert_eq!(source(SourcePin::Commit(COMMIT.into())).0, Status::Pass);
    assert_eq!(source(SourcePin::Commit("cd".repeat(20))).0, Status::Fail);
    let reach = |set: &[&str]| SourcePin::ReachableFrom {
        tip: "refs/heads/main".into(),
        commits: set.iter().map(|c| c.to_string()).collect(),
    };
    assert_eq!(source(reach(&[COMMIT, "x"])).0, Status::Pass);
    assert_eq!(source(reach(&["x"])).0, Status::Fail);
}

#[test]
fn a_statement_without_exactly_one_source_commit_fails_the_source_check() {
    let mut st = Statement::from_json(&statement(b"x")).unwrap();
    let deps = &mut st.predicate.build_definition.resolved_dependencies;
    deps.push(
        deps[0]
            .clone()
            .with_digest(DIGEST_GIT_COMMIT, "cd".repeat(20)),
    );
    let two = jcs::to_canonical_bytes(&st).unwrap();
    let checks = check_provenance(&two, None, &pinned(), &[], false);
    assert!(
        failed(&checks).contains(&"provenance.source".to_string()),
        "{checks:?}"
    );
    st.predicate.build_definition.resolved_dependencies.clear();
    let none = jcs::to_canonical_bytes(&st).unwrap();
    let checks = check_provenance(&none, None, &pinned(), &[], false);
    assert!(
        failed(&checks).contains(&"provenance.source".to_string()),
        "{checks:?}"
    );
}

#[test]
fn host_resolved_repository_and_ref_are_called_claims() {
    let mut st = Statement::from_json(&statement(b"hello")).unwrap();
    st.predicate.build_definition.internal_parameters.insert(
        vocab::REF_RESOLVED_BY.into(),
        vocab::RESOLVED_BY_HOST.into(),
    );
    let bytes = jcs::to_canonical_bytes(&st).unwrap();
    let exp = ProvenanceExpectations {
        repository: Some("https://example.com/r.git".into()),
        git_ref: Some("refs/heads/main".into()),
        ..pinned()
    };
    let checks = check_provenance(&bytes, None, &exp, &[], false);
    for id in [CheckId::Repository, CheckId::Ref] {
        let c = checks.iter().find(|c| c.id == id).unwrap();
        assert_eq!(c.status(), Status::Pass);
        assert!(c.detail().contains("requester's claim"), "{}", c.detail());
    }
    let src = checks.iter().find(|c| c.id == CheckId::Source).unwrap();
    assert!(!src.detail().contains("claim"), "the commit is witnessed");
    // Issue 25: with any commit accepted, nothing witnessed them: they fail, unless the
    // verifier opts in to host-resolved sources (then named as an opt-in).
    let any = ProvenanceExpectations {
        source: SourcePin::Any,
        ..exp
    };
    let checks = check_provenance(&bytes, None, &any, &[], false);
    assert_eq!(failed(&checks), ["provenance.repository", "provenance.ref"]);
    let opted = ProvenanceExpectations {
        accept_host_resolved: true,
        ..any
    };
    let checks = check_provenance(&bytes, None, &opted, &[], false);
    assert!(failed(&checks).is_empty(), "{checks:?}");
    assert!(check_named(&checks, CheckId::Ref).opt_in.is_some());
}

/// A Statement from [`statement`] with `edit` applied, as canonical bytes.
fn edited(edit: impl FnOnce(&mut Statement)) -> Vec<u8> {
    let mut st = Statement::from_json(&statement(b"hello")).unwrap();
    edit(&mut st);
    jcs::to_canonical_bytes(&st).unwrap()
}

fn check_named(checks: &[Check], id: CheckId) -> &Check {
    checks.iter().find(|c| c.id == id).unwrap()
}

/// Issue 25: upstream mode recorded the short ref, and an old tag passed a
/// `refs/heads/release-*` policy. A short name says neither branch nor tag: it matches nothing.
#[test]
fn a_short_ref_matches_no_expected_ref() {
    let bytes = edited(|st| {
        let bd = &mut st.predicate.build_definition;
        bd.external_parameters
            .insert("ref".into(), "release-2019".into());
        bd.internal_parameters.insert(
            vocab::REF_RESOLVED_BY.into(),
            vocab::RESOLVED_BY_GUEST.into(),
        );
    });
    for exp in [
        ProvenanceExpectations {
            refs: vec!["refs/heads/release-*".into()],
            ..pinned()
        },
        ProvenanceExpectations {
            git_ref: Some("refs/heads/release-2019".into()),
            ..pinned()
        },
    ] {
        let checks = check_provenance(&bytes, None, &exp, &[], false);
        assert_eq!(failed(&checks), ["provenance.ref"], "{exp:?}");
        assert!(
            check_named(&checks, CheckId::Ref)
                .detail()
                .contains("short name"),
            "{checks:?}"
        );
    }
}

/// Issue 25: `--ref` narrows a policy's refs: a ref must match the flag AND the policy.
#[test]
fn an_exact_ref_and_the_policy_patterns_must_both_hold() {
    let bytes = statement(b"hello"); // refs/heads/main
    let both = |git_ref: &str, pattern: &str| {
        let exp = ProvenanceExpectations {
            git_ref: Some(git_ref.into()),
            refs: vec![pattern.into()],
            ..pinned()
        };
        check_named(
            &check_provenance(&bytes, None, &exp, &[], false),
            CheckId::Ref,
        )
        .status()
    };
    assert_eq!(both("refs/heads/main", "refs/heads/*"), Status::Pass);
    assert_eq!(
        both("refs/heads/main", "refs/tags/v*"),
        Status::Fail,
        "a tags-only policy"
    );
    assert_eq!(
        both("refs/heads/other", "refs/heads/*"),
        Status::Fail,
        "another --ref"
    );
}

/// Issue 25: with the auditor's clone, the provenance's gitTree must be the clone's tree of
/// the built commit.
#[test]
fn the_source_tree_must_be_the_clones() {
    let tree = "cd".repeat(20);
    let bytes = edited(|st| {
        let dep = &mut st.predicate.build_definition.resolved_dependencies[0];
        dep.digest.insert(DIGEST_GIT_TREE.into(), tree.clone());
    });
    let with_tree = |t: &str| ProvenanceExpectations {
        source_trees: [(COMMIT.to_string(), t.to_string())].into(),
        ..pinned()
    };
    let checks = check_provenance(&bytes, None, &with_tree(&tree), &[], false);
    assert_eq!(check_named(&checks, CheckId::Source).status(), Status::Pass);
    assert!(check_named(&checks, CheckId::Source)
        .detail()
        .contains("gitTree"));
    let checks = check_provenance(&bytes, None, &with_tree(&"ef".repeat(20)), &[], false);
    assert_eq!(failed(&checks), ["provenance.source"]);
    // A provenance with no gitTree cannot be compared with the clone: refused.
    let checks = check_provenance(&statement(b"hello"), None, &with_tree(&tree), &[], false);
    assert_eq!(failed(&checks), ["provenance.source"]);
}
