//! Structural checks of a Kettle provenance Statement: the in-toto Statement v1
//! rules plus the SLSA provenance v1 rules Kettle relies on. Each failure names
//! the rule that was broken and where.

use std::collections::BTreeSet;

use thiserror::Error;

use crate::ids;
use crate::statement::{
    Provenance, ResourceDescriptor, Statement, DIGEST_GIT_COMMIT, DIGEST_GIT_TREE, DIGEST_SHA1,
    DIGEST_SHA256, DIGEST_SHA384, DIGEST_SHA512,
};
use crate::timestamp::{parse_rfc3339_utc, TimestampError};

/// The first rule a Statement breaks.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
#[non_exhaustive]
pub enum ValidationError {
    /// `_type` is not the in-toto Statement v1 URI.
    #[error("_type is {found:?}; an in-toto Statement v1 must have _type {expected:?}", expected = ids::STATEMENT_TYPE)]
    WrongStatementType {
        /// The `_type` found.
        found: String,
    },
    /// `predicateType` is not SLSA provenance v1.
    #[error("predicateType is {found:?}; SLSA build provenance must have predicateType {expected:?}", expected = ids::PREDICATE_TYPE_SLSA)]
    WrongPredicateType {
        /// The `predicateType` found.
        found: String,
    },
    /// `subject` is empty; a Statement must be about at least one artifact.
    #[error("subject is empty: a Statement must name at least one artifact")]
    EmptySubject,
    /// A subject has no digest; subjects are identified by digest.
    #[error("{location} has no digest: every subject must carry at least one digest")]
    SubjectWithoutDigest {
        /// Where, e.g. `subject[2]`.
        location: String,
    },
    /// A digest value is not lowercase hex of the algorithm's length.
    #[error("{location}: digest {algorithm}={value:?} is invalid: {reason}")]
    BadDigest {
        /// Where, e.g. `resolvedDependencies[0]`.
        location: String,
        /// Algorithm name (the digest-set key).
        algorithm: String,
        /// The offending value.
        value: String,
        /// What is wrong with it.
        reason: String,
    },
    /// A ResourceDescriptor has none of uri, digest, content.
    #[error(
        "{location} has none of uri, digest, content: a ResourceDescriptor must set at least one"
    )]
    EmptyDescriptor {
        /// Where, e.g. `byproducts[1]`.
        location: String,
    },
    /// Two subjects share a name.
    #[error("subject name {name:?} appears more than once: subject names must be unique")]
    DuplicateSubjectName {
        /// The repeated name.
        name: String,
    },
    /// A timestamp is not RFC 3339 UTC with `Z`.
    #[error("runDetails.metadata.{field} = {value:?} is not an RFC 3339 UTC timestamp: {reason}")]
    BadTimestamp {
        /// `startedOn` or `finishedOn`.
        field: &'static str,
        /// The offending value.
        value: String,
        /// What is wrong with it.
        reason: TimestampError,
    },
    /// finishedOn precedes startedOn.
    #[error("runDetails.metadata.finishedOn {finished:?} is before startedOn {started:?}")]
    FinishedBeforeStarted {
        /// startedOn.
        started: String,
        /// finishedOn.
        finished: String,
    },
    /// A field that must be a URI is empty or not URI-shaped.
    #[error("{field} = {value:?} is not a URI (expected scheme:rest, e.g. {example})", example = ids::BUILDER_ID_SEV_SNP)]
    NotAUri {
        /// Which field, e.g. `buildDefinition.buildType`.
        field: String,
        /// The offending value.
        value: String,
    },
}

impl Statement<Provenance> {
    /// Checks every rule above, returning the first one broken.
    pub fn validate(&self) -> Result<(), ValidationError> {
        match self.validation_errors().into_iter().next() {
            Some(first) => Err(first),
            None => Ok(()),
        }
    }

    /// Every broken rule, in document order (empty when the Statement is valid),
    /// so a verifier can name all failures at once.
    pub fn validation_errors(&self) -> Vec<ValidationError> {
        let mut errs = Vec::new();
        if self.type_ != ids::STATEMENT_TYPE {
            errs.push(ValidationError::WrongStatementType {
                found: self.type_.clone(),
            });
        }
        if self.predicate_type != ids::PREDICATE_TYPE_SLSA {
            errs.push(ValidationError::WrongPredicateType {
                found: self.predicate_type.clone(),
            });
        }
        if self.subject.is_empty() {
            errs.push(ValidationError::EmptySubject);
        }
        let mut names = BTreeSet::new();
        for (i, subject) in self.subject.iter().enumerate() {
            let location = format!("subject[{i}]");
            if subject.digest.is_empty() {
                errs.push(ValidationError::SubjectWithoutDigest {
                    location: location.clone(),
                });
            } else {
                check_descriptor(subject, &location, &mut errs);
            }
            if let Some(name) = &subject.name {
                if !names.insert(name.as_str()) {
                    errs.push(ValidationError::DuplicateSubjectName { name: name.clone() });
                }
            }
        }

        let def = &self.predicate.build_definition;
        check_uri("buildDefinition.buildType", &def.build_type, &mut errs);
        check_descriptors(
            &def.resolved_dependencies,
            "buildDefinition.resolvedDependencies",
            &mut errs,
        );

        let run = &self.predicate.run_details;
        check_uri("runDetails.builder.id", &run.builder.id, &mut errs);
        check_descriptors(
            &run.builder.builder_dependencies,
            "runDetails.builder.builderDependencies",
            &mut errs,
        );
        check_descriptors(&run.byproducts, "runDetails.byproducts", &mut errs);
        if let Some(meta) = &run.metadata {
            let started = timestamp("startedOn", meta.started_on.as_deref(), &mut errs);
            let finished = timestamp("finishedOn", meta.finished_on.as_deref(), &mut errs);
            if let (Some(s), Some(f)) = (started, finished) {
                if f < s {
                    errs.push(ValidationError::FinishedBeforeStarted {
                        started: meta.started_on.clone().unwrap_or_default(),
                        finished: meta.finished_on.clone().unwrap_or_default(),
                    });
                }
            }
        }
        errs
    }
}

/// Parses an optional metadata timestamp, recording a failure.
fn timestamp(
    field: &'static str,
    value: Option<&str>,
    errs: &mut Vec<ValidationError>,
) -> Option<crate::timestamp::Timestamp> {
    let value = value?;
    parse_rfc3339_utc(value)
        .map_err(|reason| {
            errs.push(ValidationError::BadTimestamp {
                field,
                value: value.into(),
                reason,
            })
        })
        .ok()
}

fn check_descriptors(list: &[ResourceDescriptor], field: &str, errs: &mut Vec<ValidationError>) {
    for (i, rd) in list.iter().enumerate() {
        check_descriptor(rd, &format!("{field}[{i}]"), errs);
    }
}

/// in-toto ResourceDescriptor rules: something to identify it by, well-formed digests and uri.
fn check_descriptor(rd: &ResourceDescriptor, location: &str, errs: &mut Vec<ValidationError>) {
    if rd.uri.is_none() && rd.digest.is_empty() && rd.content.is_none() {
        errs.push(ValidationError::EmptyDescriptor {
            location: location.into(),
        });
    }
    if let Some(uri) = &rd.uri {
        check_uri(&format!("{location}.uri"), uri, errs);
    }
    for (algorithm, value) in &rd.digest {
        if let Err(reason) = check_digest(algorithm, value) {
            errs.push(ValidationError::BadDigest {
                location: location.into(),
                algorithm: algorithm.clone(),
                value: value.clone(),
                reason,
            });
        }
    }
}

/// Hex lengths of the digest algorithms in the in-toto digest set that have a fixed size.
fn expected_hex_lengths(algorithm: &str) -> Option<&'static [usize]> {
    Some(match algorithm {
        DIGEST_SHA256 | "sha512_256" | "sha3_256" => &[64],
        DIGEST_SHA384 | "sha3_384" => &[96],
        DIGEST_SHA512 | "sha3_512" => &[128],
        "sha224" | "sha512_224" | "sha3_224" => &[56],
        DIGEST_SHA1 | "ripemd160" => &[40],
        "md5" => &[32],
        // git ids are SHA-1 (40) or SHA-256 (64) depending on the repository's object format.
        DIGEST_GIT_COMMIT | DIGEST_GIT_TREE | "gitBlob" => &[40, 64],
        _ => return None,
    })
}

fn check_digest(algorithm: &str, value: &str) -> Result<(), String> {
    if algorithm.is_empty() {
        return Err("the algorithm name is empty".into());
    }
    if value.is_empty() {
        return Err("the value is empty".into());
    }
    if let Some(bad) = value.chars().find(|c| !matches!(c, '0'..='9' | 'a'..='f')) {
        return Err(format!("{bad:?} is not a lowercase hex digit"));
    }
    match expected_hex_lengths(algorithm) {
        Some(lengths) if !lengths.contains(&value.len()) => Err(format!(
            "{algorithm} needs {} hex digits, found {}",
            lengths
                .iter()
                .map(usize::to_string)
                .collect::<Vec<_>>()
                .join(" or "),
            value.len()
        )),
        _ => Ok(()),
    }
}

/// RFC 3986 shape: `scheme ":" rest`, scheme = ALPHA *(ALPHA / DIGIT / "+" / "-" / "."),
/// rest non-empty and free of whitespace and control characters.
fn check_uri(field: &str, value: &str, errs: &mut Vec<ValidationError>) {
    let ok = match value.split_once(':') {
        Some((scheme, rest)) => {
            let mut chars = scheme.chars();
            chars.next().is_some_and(|c| c.is_ascii_alphabetic())
                && chars.all(|c| c.is_ascii_alphanumeric() || matches!(c, '+' | '-' | '.'))
                && !rest.is_empty()
                && !value.chars().any(|c| c.is_whitespace() || c.is_control())
        }
        None => false,
    };
    if !ok {
        errs.push(ValidationError::NotAUri {
            field: field.into(),
            value: value.into(),
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::statement::{BuildDefinition, BuildMetadata, Builder, RunDetails};

    const SHA: &str = "2cf24dba5fb0a30e26e83b2ac5b9e29e1b161e5c1fa7425e73043362938b9824";

    fn valid() -> Statement {
        Statement::new(
            vec![
                ResourceDescriptor::for_bytes("bin/a", b"a"),
                ResourceDescriptor::for_bytes("bin/b", b"b"),
            ],
            Provenance {
                build_definition: BuildDefinition {
                    build_type: ids::BUILD_TYPE_CARGO.into(),
                    resolved_dependencies: vec![
                        ResourceDescriptor::from_uri("git+https://github.com/o/r@refs/heads/main")
                            .with_digest(DIGEST_GIT_COMMIT, "a".repeat(40))
                            .with_digest(DIGEST_GIT_TREE, "b".repeat(64)),
                        ResourceDescriptor::from_uri("pkg:cargo/serde@1.0.228")
                            .with_digest(DIGEST_SHA256, SHA),
                    ],
                    ..Default::default()
                },
                run_details: RunDetails {
                    builder: Builder {
                        id: ids::BUILDER_ID_SEV_SNP.into(),
                        builder_dependencies: vec![
                            ResourceDescriptor::default().with_content(b"x".to_vec())
                        ],
                        ..Default::default()
                    },
                    metadata: Some(BuildMetadata {
                        invocation_id: Some("1".into()),
                        started_on: Some("2025-01-01T00:00:00Z".into()),
                        finished_on: Some("2025-01-01T00:00:00.5Z".into()),
                    }),
                    byproducts: vec![ResourceDescriptor::for_bytes("build.log", b"log")],
                },
            },
        )
    }

    fn broken(f: impl FnOnce(&mut Statement)) -> ValidationError {
        let mut st = valid();
        f(&mut st);
        st.validate()
            .expect_err("statement should have been rejected")
    }

    #[test]
    fn sample_is_valid() {
        valid().validate().unwrap();
        assert!(valid().validation_errors().is_empty());
    }

    #[test]
    fn all_broken_rules_are_reported_in_order() {
        let mut st = valid();
        st.type_ = "x".into();
        st.subject[1].name = Some("bin/a".into());
        st.predicate.run_details.builder.id = String::new();
        let errs = st.validation_errors();
        assert_eq!(errs.len(), 3, "{errs:?}");
        assert!(matches!(
            errs[0],
            ValidationError::WrongStatementType { .. }
        ));
        assert!(matches!(
            errs[1],
            ValidationError::DuplicateSubjectName { .. }
        ));
        assert!(matches!(errs[2], ValidationError::NotAUri { .. }));
        assert_eq!(st.validate().unwrap_err(), errs[0]);
    }

    #[test]
    fn wrong_statement_type() {
        let e = broken(|s| s.type_ = "https://in-toto.io/Statement/v0.1".into());
        assert!(
            matches!(e, ValidationError::WrongStatementType { .. }),
            "{e}"
        );
    }

    #[test]
    fn wrong_predicate_type() {
        let e = broken(|s| s.predicate_type = "https://slsa.dev/provenance/v0.2".into());
        assert!(
            matches!(e, ValidationError::WrongPredicateType { .. }),
            "{e}"
        );
    }

    #[test]
    fn empty_subject() {
        assert_eq!(broken(|s| s.subject.clear()), ValidationError::EmptySubject);
    }

    #[test]
    fn subject_without_digest() {
        let e =
            broken(|s| s.subject[1] = ResourceDescriptor::from_uri("pkg:generic/x").with_name("x"));
        assert_eq!(
            e,
            ValidationError::SubjectWithoutDigest {
                location: "subject[1]".into()
            }
        );
    }

    #[test]
    fn digest_lengths_per_algorithm() {
        let with = |alg: &str, value: String| {
            let mut st = valid();
            st.predicate.build_definition.resolved_dependencies[1].digest =
                [(alg.to_string(), value)].into_iter().collect();
            st.validate()
        };
        for (alg, good) in [
            ("sha256", vec![64]),
            ("sha384", vec![96]),
            ("sha512", vec![128]),
            ("sha1", vec![40]),
            ("gitCommit", vec![40, 64]),
            ("gitTree", vec![40, 64]),
        ] {
            for len in [32usize, 40, 63, 64, 65, 96, 128] {
                let r = with(alg, "0".repeat(len));
                assert_eq!(
                    r.is_ok(),
                    good.contains(&len),
                    "{alg} with {len} hex digits: {r:?}"
                );
                if let Err(e) = r {
                    assert!(
                        matches!(&e, ValidationError::BadDigest { location, .. }
                        if location == "buildDefinition.resolvedDependencies[1]"),
                        "{e}"
                    );
                }
            }
        }
        // Unknown algorithms: any length, but lowercase hex.
        assert!(with("blake3", "0a".repeat(7)).is_ok());
        assert!(with("blake3", "0A".repeat(7)).is_err());
    }

    #[test]
    fn digest_must_be_lowercase_hex() {
        for bad in [
            SHA.to_uppercase(),
            format!("{}g", &SHA[..63]),
            String::new(),
        ] {
            let e = broken(|s| {
                s.subject[0].digest.insert("sha256".into(), bad.clone());
            });
            assert!(matches!(e, ValidationError::BadDigest { .. }), "{bad}: {e}");
        }
    }

    /// The first error of a valid statement whose run metadata `f` changed.
    fn broken_metadata(f: impl FnOnce(&mut BuildMetadata)) -> ValidationError {
        broken(|s| f(s.predicate.run_details.metadata.as_mut().unwrap()))
    }

    #[test]
    fn timestamps_must_be_utc_z() {
        for (field, e) in [
            (
                "startedOn",
                broken_metadata(|m| m.started_on = Some("2025-01-01T00:00:00+01:00".into())),
            ),
            (
                "finishedOn",
                broken_metadata(|m| m.finished_on = Some("yesterday".into())),
            ),
        ] {
            assert!(
                matches!(e, ValidationError::BadTimestamp { field: f, .. } if f == field),
                "{field}: {e}"
            );
        }
    }

    #[test]
    fn finished_not_before_started() {
        let e = broken_metadata(|m| m.finished_on = Some("2024-12-31T23:59:59.999Z".into()));
        assert!(
            matches!(e, ValidationError::FinishedBeforeStarted { .. }),
            "{e}"
        );
    }

    #[test]
    fn every_descriptor_needs_uri_digest_or_content() {
        let e = broken(|s| {
            s.predicate
                .build_definition
                .resolved_dependencies
                .push(ResourceDescriptor::default().with_name("x"))
        });
        assert_eq!(
            e,
            ValidationError::EmptyDescriptor {
                location: "buildDefinition.resolvedDependencies[2]".into()
            }
        );
        let e = broken(|s| {
            s.predicate
                .run_details
                .byproducts
                .push(ResourceDescriptor::default())
        });
        assert_eq!(
            e,
            ValidationError::EmptyDescriptor {
                location: "runDetails.byproducts[1]".into()
            }
        );
        let e = broken(|s| s.predicate.run_details.builder.builder_dependencies[0].content = None);
        assert_eq!(
            e,
            ValidationError::EmptyDescriptor {
                location: "runDetails.builder.builderDependencies[0]".into()
            }
        );
    }

    #[test]
    fn descriptor_uri_must_be_a_uri() {
        let e = broken(|s| {
            s.predicate.build_definition.resolved_dependencies[1].uri = Some("serde 1.0".into())
        });
        assert!(matches!(e, ValidationError::NotAUri { .. }), "{e}");
    }

    #[test]
    fn subject_names_unique() {
        let e = broken(|s| s.subject[1].name = Some("bin/a".into()));
        assert_eq!(
            e,
            ValidationError::DuplicateSubjectName {
                name: "bin/a".into()
            }
        );
    }

    #[test]
    fn build_type_and_builder_id_are_uris() {
        for bad in [
            "",
            "cargo-build",
            ":x",
            "1http://x",
            "https:",
            "https://a b",
        ] {
            let e = broken(|s| s.predicate.build_definition.build_type = bad.into());
            assert!(
                matches!(&e, ValidationError::NotAUri { field, .. } if field == "buildDefinition.buildType"),
                "{bad}: {e}"
            );
            let e = broken(|s| s.predicate.run_details.builder.id = bad.into());
            assert!(
                matches!(&e, ValidationError::NotAUri { field, .. } if field == "runDetails.builder.id"),
                "{bad}: {e}"
            );
        }
    }
}
