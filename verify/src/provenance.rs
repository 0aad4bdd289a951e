//! Trust-chain steps 4 to 6: provenance.json is a canonical, valid in-toto
//! Statement with SLSA provenance; every artifact is a subject; the build's
//! parameters and builder are the expected ones.

use std::collections::BTreeMap;

use kettle_provenance::statement::{DIGEST_GIT_COMMIT, DIGEST_GIT_TREE, DIGEST_SHA256};
use kettle_provenance::{ids, jcs, vocab, Statement};
use kettle_wire::source_url;

use crate::bundle::Artifact;
use crate::check::{CheckId, CheckList, Failure, Outcome, Skipped};
use crate::expect::{ProvenanceExpectations, SourcePin};

/// Step 4: canonical JSON, a Statement of the right types that follows the in-toto and SLSA rules.
/// Returns the Statement when it parsed.
pub(crate) fn verify_statement(bytes: &[u8], checks: &mut CheckList) -> Option<Statement> {
    checks.push_result(
        CheckId::Canonical,
        if jcs::is_canonical(bytes) {
            Ok("provenance.json is RFC 8785 (JCS) canonical JSON".to_string())
        } else {
            Err(Failure::malformed("provenance.json is not byte-for-byte RFC 8785 (JCS) canonical JSON (whitespace, key order, escapes or number form differ)"))
        },
    );
    let statement = match Statement::from_json(bytes) {
        Ok(st) => st,
        Err(e) => {
            checks.push(
                CheckId::Parse,
                Outcome::Fail(Failure::malformed(format!(
                    "provenance.json is not an in-toto SLSA Statement: {e}"
                ))),
            );
            // Every check after the parse needs the Statement (per-artifact checks are not made).
            let needs_statement: Vec<CheckId> = CheckId::ALL
                .into_iter()
                .filter(|c| *c > CheckId::Parse && *c != CheckId::Artifact)
                .collect();
            checks.skip_dependents(
                &needs_statement,
                CheckId::Parse,
                "provenance.json does not parse",
            );
            return None;
        }
    };
    checks.push(
        CheckId::Parse,
        Outcome::Pass("provenance.json parses as an in-toto Statement with SLSA provenance".into()),
    );
    checks.push_result(
        CheckId::StatementType,
        equal("_type", &statement.type_, ids::STATEMENT_TYPE),
    );
    checks.push_result(
        CheckId::PredicateType,
        equal(
            "predicateType",
            &statement.predicate_type,
            ids::PREDICATE_TYPE_SLSA,
        ),
    );
    checks.push_result(
        CheckId::Valid,
        statement
            .validate()
            .map(|()| "in-toto Statement v1 and SLSA provenance v1 rules hold".to_string())
            .map_err(|e| Failure::malformed(e.to_string())),
    );
    Some(statement)
}

/// Step 5: one check per artifact (its digest must be its subject's), and completeness
/// when the artifacts are a whole output directory.
pub(crate) fn verify_subjects(
    statement: &Statement,
    artifacts: &[Artifact],
    complete_output: bool,
    checks: &mut CheckList,
) {
    let mut by_digest: BTreeMap<&str, Vec<&str>> = BTreeMap::new();
    let mut by_name: BTreeMap<&str, &str> = BTreeMap::new();
    for s in &statement.subject {
        if let Some(d) = s.digest.get(DIGEST_SHA256) {
            by_digest
                .entry(d.as_str())
                .or_default()
                .push(s.name.as_deref().unwrap_or("(unnamed)"));
            if let Some(n) = &s.name {
                by_name.insert(n.as_str(), d.as_str());
            }
        }
    }
    if artifacts.is_empty() {
        checks.push(
            CheckId::Artifacts,
            Outcome::no_input(
                "no artifact given (use --artifact FILE, or verify an output directory)",
            ),
        );
    }
    for a in artifacts {
        checks.push_for(
            CheckId::Artifact,
            &a.label,
            Outcome::from(artifact_result(a, &by_name, &by_digest)),
        );
    }
    if complete_output {
        let given: Vec<&str> = artifacts
            .iter()
            .filter_map(|a| a.subject_name.as_deref())
            .collect();
        let missing: Vec<String> = statement
            .subject
            .iter()
            .filter_map(|s| s.name.as_deref())
            .filter(|n| !given.contains(n))
            .map(|n| format!("{n:?}"))
            .collect();
        checks.push_result(
            CheckId::ArtifactsComplete,
            if missing.is_empty() {
                Ok(format!(
                    "all {} subject(s) present in artifacts/",
                    statement.subject.len()
                ))
            } else {
                Err(Failure::refused(format!(
                    "subject(s) with no file in artifacts/: {}",
                    missing.join(", ")
                )))
            },
        );
    }
}

fn artifact_result(
    a: &Artifact,
    by_name: &BTreeMap<&str, &str>,
    by_digest: &BTreeMap<&str, Vec<&str>>,
) -> Result<String, Failure> {
    let digest = a
        .sha256
        .as_ref()
        .map_err(|why| Failure::refused(why.clone()))?;
    let hex_digest = digest.to_hex();
    match a.subject_name.as_deref() {
        // An output dir's file must match the subject of the same name, not merely any subject.
        Some(n) => match by_name.get(n) {
            Some(d) if *d == hex_digest => Ok(format!("sha256 {hex_digest} = subject {n:?}")),
            Some(d) => Err(
                Failure::mismatch("sha256", &hex_digest, *d).meaning(format!(
                    "subject {n:?} has another digest: the artifact was replaced or altered"
                )),
            ),
            None => Err(Failure::refused(format!(
                "sha256 {hex_digest}: no subject of the provenance is named {n:?}"
            ))),
        },
        None => match by_digest.get(hex_digest.as_str()) {
            Some(names) => Ok(format!(
                "sha256 {hex_digest} = subject {}",
                names.join(", ")
            )),
            None => Err(Failure::refused(format!(
                "sha256 {hex_digest} matches no subject of the provenance"
            ))),
        },
    }
}

impl From<Result<String, Failure>> for Outcome {
    fn from(r: Result<String, Failure>) -> Outcome {
        match r {
            Ok(d) => Outcome::Pass(d),
            Err(f) => Outcome::Fail(f),
        }
    }
}

/// The commit the provenance says was built: the gitCommit of the one
/// resolvedDependencies entry named `source`.
pub(crate) fn built_commit(statement: &Statement) -> Result<String, Failure> {
    let sources: Vec<&str> = statement
        .predicate
        .build_definition
        .resolved_dependencies
        .iter()
        .filter(|d| d.name.as_deref() == Some(ids::SOURCE_DEPENDENCY))
        .filter_map(|d| d.digest.get(DIGEST_GIT_COMMIT).map(String::as_str))
        .collect();
    match sources.as_slice() {
        [one] => Ok(one.to_string()),
        [] => Err(Failure::malformed(
            "resolvedDependencies has no `source` entry with a gitCommit digest: the built commit is unknown",
        )),
        many => Err(Failure::malformed(format!(
            "resolvedDependencies names {} `source` commits ({}): the built commit is ambiguous",
            many.len(),
            many.join(", ")
        ))),
    }
}

fn check_source(commit: &Result<String, Failure>, pin: &SourcePin) -> Outcome {
    let commit = match commit {
        Ok(c) => c,
        Err(f) => return Outcome::Fail(f.clone()),
    };
    match pin {
        SourcePin::Unpinned => Outcome::Fail(Failure::refused(format!(
            "the source was not pinned: commit {commit} was built, but nothing says it is the one you expect (pass --commit SHA, --source DIR with your own clone, or --any-source)"
        ))),
        SourcePin::Any => Outcome::Pass(format!(
            "commit {commit} was built; not compared with anything (--any-source)"
        )),
        SourcePin::Commit(want) if want == commit => {
            Outcome::Pass(format!("commit {commit} is the pinned commit"))
        }
        SourcePin::Commit(want) => Outcome::Fail(
            Failure::mismatch("source commit", commit, want)
                .meaning("another commit was built than the one pinned"),
        ),
        SourcePin::ReachableFrom { tip, commits } if commits.contains(commit) => Outcome::Pass(
            format!("commit {commit} is reachable from {tip} in the given clone"),
        ),
        SourcePin::ReachableFrom { tip, .. } => Outcome::Fail(Failure::refused(format!(
            "commit {commit} is not reachable from {tip} in the given clone"
        ))),
    }
}

/// Step 6: repository, ref, the built commit, builder.id and buildType. Returns the built commit.
pub(crate) fn verify_build_parameters(
    statement: &Statement,
    expect: &ProvenanceExpectations,
    measured: Option<[u8; 48]>,
    checks: &mut CheckList,
) -> Option<String> {
    let ext = &statement.predicate.build_definition.external_parameters;
    // Only upstream mode's guest witnesses repository and ref (it asked the repository
    // itself); in cached mode (or when the provenance does not say) the untrusted host
    // resolved the ref, so repository and ref are the requester's claim, and only the
    // commit (provenance.source) is witnessed.
    let resolved_by = statement
        .predicate
        .build_definition
        .internal_parameters
        .get(vocab::REF_RESOLVED_BY)
        .and_then(|v| v.as_str());
    let witnessed = resolved_by == Some(vocab::RESOLVED_BY_GUEST);
    let commit_pinned = matches!(
        expect.source,
        SourcePin::Commit(_) | SourcePin::ReachableFrom { .. }
    );
    let repository = [&expect.repository, &expect.also_repository]
        .into_iter()
        .flatten()
        .map(|r| parameter("repository", ext.get("repository"), Some(r), "--repo"))
        .reduce(|a, b| if matches!(a, Outcome::Fail(_)) { a } else { b })
        .unwrap_or_else(|| parameter("repository", ext.get("repository"), None, "--repo"));
    for (id, outcome) in [
        (CheckId::Repository, repository),
        (CheckId::Ref, check_ref(ext.get("ref"), expect)),
    ] {
        match outcome {
            Outcome::Pass(d) if witnessed => checks.push(id, Outcome::Pass(d)),
            // The auditor pinned the commit: that is what was built, whatever the host called it.
            Outcome::Pass(d) if commit_pinned => checks.push(id, Outcome::Pass(format!(
                "{d} (the requester's claim: the build host resolved the ref, the guest witnessed only the commit, which you pinned)"
            ))),
            Outcome::Pass(d) if expect.accept_host_resolved => checks.push_opted_in(
                id,
                format!("{d} (only the build host's claim: the host resolved the ref and the commit is not pinned; accepted by explicit opt-in)"),
                HOST_RESOLVED_OPT_IN,
            ),
            Outcome::Pass(d) => checks.push(id, Outcome::Fail(Failure::refused(format!(
                "{d}, but only the build host says so ({} {}) and the built commit is not pinned: nothing witnessed that the commit is this source's; pin the commit (--commit, or --source with your clone) or accept host-resolved sources explicitly (policy source.accept_host_resolved, --accept-host-resolved)",
                vocab::REF_RESOLVED_BY,
                resolved_by.map_or("absent".to_string(), |r| format!("{r:?}"))
            )))),
            other => checks.push(id, other),
        }
    }
    let commit = built_commit(statement);
    checks.push(
        CheckId::Source,
        check_source(&commit, &expect.source).and_tree(statement, &commit, &expect.source_trees),
    );
    let builder = &statement.predicate.run_details.builder.id;
    checks.push_result(
        CheckId::BuilderId,
        if expect.builder_ids.iter().any(|b| b == builder) {
            Ok(format!("runDetails.builder.id {builder:?} is accepted"))
        } else {
            Err(Failure::mismatch(
                "runDetails.builder.id",
                format!("{builder:?}"),
                format!("one of {:?}", expect.builder_ids),
            )
            .meaning(builder_meaning(builder)))
        },
    );
    checks.push(CheckId::Image, check_image(statement, measured));
    let build_type = &statement.predicate.build_definition.build_type;
    checks.push_result(
        CheckId::BuildType,
        if expect.build_types.iter().any(|t| t == build_type) {
            Ok(format!(
                "buildDefinition.buildType {build_type:?} is expected"
            ))
        } else {
            Err(Failure::mismatch(
                "buildDefinition.buildType",
                format!("{build_type:?}"),
                if expect.build_types.len() == 1 {
                    format!("{:?}", expect.build_types[0])
                } else {
                    format!("one of {:?}", expect.build_types)
                },
            ))
        },
    );
    commit.ok()
}

/// The opt-in a host-resolved repository or ref passes under, as the verdict line names it.
const HOST_RESOLVED_OPT_IN: &str =
    "host-resolved source (repository and ref are the build host's claim; commit not pinned)";

/// externalParameters.ref against `--ref` (exact) and the policy's `source.refs` patterns:
/// each given one must hold. A short name (no `refs/`) says neither branch nor tag, so it
/// matches nothing (a Kettle guest records the full ref it resolved).
fn check_ref(found: Option<&serde_json::Value>, expect: &ProvenanceExpectations) -> Outcome {
    if expect.git_ref.is_none() && expect.refs.is_empty() {
        return parameter("ref", found, None, "--ref");
    }
    if let Some(serde_json::Value::String(r)) = found {
        if !r.starts_with("refs/") {
            return Outcome::Fail(Failure::refused(format!(
                "externalParameters.ref {r:?} is a short name: it does not say whether a branch or a tag was built, so it matches no expected ref (a Kettle guest records the full ref, refs/heads/... or refs/tags/...)"
            )));
        }
    }
    let exact = expect
        .git_ref
        .as_deref()
        .map(|want| parameter("ref", found, Some(want), "--ref"));
    if let Some(fail @ Outcome::Fail(_)) = &exact {
        return fail.clone();
    }
    if expect.refs.is_empty() {
        return exact.expect("a --ref was given");
    }
    match found {
        // Exact policy refs in kettle_wire::source_url's one form (`*` ones are full refs).
        Some(serde_json::Value::String(r))
            if expect.refs.iter().any(|p| {
                let norm = |s: &str| source_url::normalize_ref(s).unwrap_or_else(|_| s.into());
                let p = if p.contains('*') { p.clone() } else { norm(p) };
                crate::policy::ref_matches(&p, r)
            }) =>
        {
            Outcome::Pass(format!(
                "externalParameters.ref {r:?} matches the accepted refs {:?}{}",
                expect.refs,
                if exact.is_some() { " and --ref" } else { "" }
            ))
        }
        other => Outcome::Fail(Failure::mismatch(
            "externalParameters.ref",
            other.map_or("missing".to_string(), |v| v.to_string()),
            format!("one of {:?}", expect.refs),
        )),
    }
}

impl Outcome {
    /// A passed source check, also requiring the provenance's gitTree of `commit` to be the
    /// tree `trees` (the auditor's clone) gives it; unchanged when there is no clone's tree.
    fn and_tree(
        self,
        statement: &Statement,
        commit: &Result<String, Failure>,
        trees: &BTreeMap<String, String>,
    ) -> Outcome {
        let (Outcome::Pass(detail), Ok(commit)) = (&self, commit) else {
            return self;
        };
        let Some(want) = trees.get(commit) else {
            return self;
        };
        let found = statement
            .predicate
            .build_definition
            .resolved_dependencies
            .iter()
            .find(|d| d.name.as_deref() == Some(ids::SOURCE_DEPENDENCY))
            .and_then(|d| d.digest.get(DIGEST_GIT_TREE));
        match found {
            Some(t) if t.eq_ignore_ascii_case(want) => Outcome::Pass(format!(
                "{detail}; its gitTree {t} is the tree of that commit in your clone"
            )),
            Some(t) => Outcome::Fail(
                Failure::mismatch("source gitTree", t.as_str(), want.as_str())
                    .meaning(format!("the provenance says commit {commit} has another tree than your clone does: the source the guest built is not that commit's")),
            ),
            None => Outcome::Fail(Failure::malformed(format!(
                "the `source` dependency has no gitTree digest to compare with your clone's tree {want} of commit {commit}"
            ))),
        }
    }
}

/// The image the provenance says the build ran in, against the launch digest the report measured.
fn check_image(statement: &Statement, measured: Option<[u8; 48]>) -> Outcome {
    let images: Vec<_> = statement
        .predicate
        .run_details
        .builder
        .builder_dependencies
        .iter()
        .filter(|d| d.name.as_deref() == Some(ids::IMAGE_DEPENDENCY))
        .collect();
    let Some(measured) = measured else {
        return Outcome::Skip(Skipped::DependsOn {
            check: CheckId::ReportFormat,
            message: "no measured launch digest to compare the named image with".into(),
        });
    };
    let measured = hex::encode(measured);
    match images.as_slice() {
        [] => Outcome::no_input("the provenance does not name the image it ran in (builderDependencies kettle-image); the report's measurement identifies it"),
        [one] => match one.digest.get("sha384") {
            // Only the launch digest is compared: the manifest's sha256 is the build's claim.
            Some(d) if *d == measured => Outcome::Pass(format!(
                "the image the provenance names has the measured launch digest (sha384 {measured}); its manifest sha256 {} is not compared (the provenance's claim)",
                one.digest.get(DIGEST_SHA256).map_or("(none)", String::as_str)
            )),
            Some(d) => Outcome::Fail(
                Failure::mismatch("builderDependencies kettle-image sha384", d.as_str(), measured.as_str())
                    .meaning("the provenance names another image than the one the report measured"),
            ),
            None => Outcome::Fail(Failure::malformed("the kettle-image builderDependencies entry has no sha384 launch digest")),
        },
        many => Outcome::Fail(Failure::malformed(format!(
            "the provenance names {} images it ran in",
            many.len()
        ))),
    }
}

/// What an unaccepted builder id means.
fn builder_meaning(builder: &str) -> String {
    match builder {
        ids::BUILDER_ID_SIMULATED => {
            "a build under the SIMULATED PSP (test keys); accept it with --allow-simulated".into()
        }
        ids::BUILDER_ID_LOCAL => {
            "a `kettle build --local` build: no VM, no TEE, never attested".into()
        }
        _ => "not a builder this verifier trusts".into(),
    }
}

fn equal(field: &str, found: &str, expected: &str) -> Result<String, Failure> {
    if found == expected {
        Ok(format!("{field} {found:?} is expected"))
    } else {
        Err(Failure::mismatch(
            field,
            format!("{found:?}"),
            format!("{expected:?}"),
        ))
    }
}

/// Whether `found` and `expected` name the same repository or ref once normalized.
fn same_normalized(key: &str, found: &str, expected: &str) -> bool {
    match key {
        "repository" => source_url::same_repository(found, expected),
        "ref" => source_url::same_ref(found, expected),
        _ => false,
    }
}

/// Compares one externalParameters entry, skipping (saying why) when nothing was expected.
fn parameter(
    key: &str,
    found: Option<&serde_json::Value>,
    expected: Option<&str>,
    flag: &str,
) -> Outcome {
    let found_text = match found {
        Some(serde_json::Value::String(s)) => Some(s.as_str()),
        _ => None,
    };
    match (expected, found_text) {
        (None, Some(f)) => Outcome::not_requested(format!(
            "externalParameters.{key} is {f:?}; not compared because {flag} was not given"
        )),
        (None, None) => {
            Outcome::not_requested(format!("not compared because {flag} was not given"))
        }
        // Repository URLs and refs compare in kettle_wire::source_url's one normalized form.
        (Some(e), Some(f)) if f != e && same_normalized(key, f, e) => Outcome::Pass(format!(
            "externalParameters.{key} {f:?} is expected ({e:?}: the same after normalization)"
        )),
        (Some(e), Some(f)) => equal(&format!("externalParameters.{key}"), f, e).into(),
        (Some(e), None) => Outcome::Fail(Failure::mismatch(
            format!("externalParameters.{key}"),
            found.map_or("missing".to_string(), |v| format!("not a string ({v})")),
            format!("{e:?}"),
        )),
    }
}

#[cfg(test)]
mod tests;
