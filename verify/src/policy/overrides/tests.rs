use super::*;
use crate::policy::Policy;
use kettle_provenance::{ids, Sha256Digest};

fn loaded(extra: serde_json::Value) -> LoadedPolicy {
    let mut json = serde_json::json!({
        "schema": "kettle.policy/v1",
        "name": "p",
        "measurements": [{"launch_digest": "ab".repeat(48)}, {"launch_digest": "cd".repeat(48)}],
        "source": {"refs": ["refs/tags/v*"]},
    });
    for (k, v) in extra.as_object().unwrap() {
        json[k] = v.clone();
    }
    let policy: Policy = serde_json::from_value(json).unwrap();
    policy.check().unwrap();
    LoadedPolicy {
        policy,
        sha256: Sha256Digest::of_bytes(b"p"),
    }
}

fn named(byte: u8) -> Option<NamedMeasurement> {
    Some(NamedMeasurement {
        digest: [byte; 48],
        source: "--measurement".into(),
        flag: "--measurement",
    })
}

#[test]
fn without_a_policy_the_flags_are_the_expectations() {
    assert_eq!(
        VerifierFlags::default().expectations(None),
        Err(FlagsError::NoMeasurement)
    );
    let flags = VerifierFlags {
        measurement: named(0xab),
        allow_simulated: true,
        allow_milan: true,
        git_ref: Some("refs/heads/main".into()),
        builder_ids: vec!["https://example.com/b".into()],
        ..Default::default()
    };
    let (e, applied) = flags.expectations(None).unwrap();
    assert!(applied.is_none());
    assert_eq!(e.measurements, [([0xab; 48], "--measurement".to_string())]);
    assert!(e.allow_simulated && e.processor_generations.contains(&Product::Milan));
    assert_eq!(e.provenance.git_ref.as_deref(), Some("refs/heads/main"));
    assert_eq!(
        e.provenance.builder_ids,
        ["https://example.com/b", ids::BUILDER_ID_SIMULATED]
    );
    let stray = VerifierFlags {
        loosen: ["signers".to_string()].into(),
        ..flags
    };
    assert_eq!(stray.expectations(None), Err(FlagsError::NothingToLoosen));
}

#[test]
fn under_a_policy_flags_narrow_and_each_narrowing_is_recorded() {
    let policy = loaded(serde_json::json!({}));
    let flags = VerifierFlags {
        measurement: named(0xcd),
        min_tcb: Some(MinTcb {
            snp: 9,
            ..Default::default()
        }),
        git_ref: Some("refs/tags/v1".into()),
        repository: Some("https://example.com/r".into()),
        ..Default::default()
    };
    let (e, applied) = flags.expectations(Some(&policy)).unwrap();
    let applied = applied.unwrap();
    // Both must hold: the policy's digest that the flag names, the policy's refs and the flag's.
    assert_eq!(e.measurements.len(), 1);
    assert_eq!(e.measurements[0].0, [0xcd; 48]);
    assert_eq!(e.provenance.refs, ["refs/tags/v*"]);
    assert_eq!(e.provenance.git_ref.as_deref(), Some("refs/tags/v1"));
    assert_eq!(
        e.provenance.also_repository.as_deref(),
        Some("https://example.com/r")
    );
    assert!(matches!(e.min_tcb, TcbFloor::AtLeast(..)));
    assert_eq!(
        applied.narrowed.keys().copied().collect::<Vec<_>>(),
        [
            "measurements",
            "min_tcb",
            "source.refs",
            "source.repository"
        ]
    );
    assert!(applied.overrides.is_empty() && applied.not_applied.is_empty());
}

#[test]
fn a_loosening_flag_applies_only_with_loosen_policy_and_is_recorded_either_way() {
    let policy = loaded(serde_json::json!({}));
    let flags = VerifierFlags {
        allow_simulated: true,
        allow_vlek: true,
        source: SourcePin::Any,
        ..Default::default()
    };
    let (e, applied) = flags.expectations(Some(&policy)).unwrap();
    assert!(!e.allow_simulated && !e.accept_vlek);
    assert_eq!(e.provenance.source, SourcePin::Unpinned);
    assert_eq!(
        applied.unwrap().not_applied,
        Overrides::from([
            ("allow_simulated", "--allow-simulated".to_string()),
            ("signers", "--allow-vlek".to_string()),
            ("source.any_commit", "--any-source".to_string()),
        ])
    );
    let loosened = VerifierFlags {
        loosen: [
            "allow_simulated".to_string(),
            "source.any_commit".to_string(),
        ]
        .into(),
        ..flags
    };
    let (e, applied) = loosened.expectations(Some(&policy)).unwrap();
    let applied = applied.unwrap();
    assert!(e.allow_simulated && !e.accept_vlek);
    assert_eq!(e.provenance.source, SourcePin::Any);
    assert_eq!(
        applied.overrides.keys().copied().collect::<Vec<_>>(),
        ["allow_simulated", "source.any_commit"]
    );
    assert_eq!(
        applied.not_applied.keys().copied().collect::<Vec<_>>(),
        ["signers"]
    );
}

#[test]
fn a_loosen_policy_no_flag_uses_is_refused() {
    let policy = loaded(serde_json::json!({}));
    let flags = VerifierFlags {
        loosen: ["builder_ids".to_string()].into(),
        ..Default::default()
    };
    let err = flags.expectations(Some(&policy)).unwrap_err();
    assert_eq!(
        err,
        FlagsError::UnusedLoosen {
            field: "builder_ids".into()
        }
    );
    assert!(err
        .to_string()
        .starts_with("--loosen-policy: builder_ids: "));
}

#[test]
fn pinning_a_commit_narrows_a_policy_that_accepts_any() {
    let policy = loaded(serde_json::json!({"source": {"any_commit": true}}));
    let flags = VerifierFlags {
        source: SourcePin::Commit("a".repeat(40)),
        ..Default::default()
    };
    let (e, applied) = flags.expectations(Some(&policy)).unwrap();
    assert_eq!(e.provenance.source, SourcePin::Commit("a".repeat(40)));
    assert_eq!(
        applied.unwrap().narrowed,
        Overrides::from([("source.any_commit", "--commit/--source".to_string())])
    );
}
