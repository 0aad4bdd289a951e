//! Peer test: a realistic Kettle Statement produced with this library must pass
//! independent checkers (the in-toto-attestation package and the rfc8785
//! package, driven by peer_check.py), and those checkers must reject broken input.

use std::path::{Path, PathBuf};
use std::process::Command;

use kettle_provenance::git::ObjectFormat;
use kettle_provenance::merkle::input_merkle_root_hex;
use kettle_provenance::statement::{DIGEST_GIT_COMMIT, DIGEST_GIT_TREE, DIGEST_SHA256};
use kettle_provenance::{
    git, ids, jcs, purl, vocab, BuildDefinition, BuildMetadata, Builder, JsonObject, Provenance,
    ResourceDescriptor, RunDetails, Statement,
};
use serde_json::json;

/// The venv's python, or None (after saying why) when the peers are absent outside CI.
fn peer_python() -> Option<PathBuf> {
    let venv = std::env::var("KETTLE_VENV").unwrap_or_else(|_| "/opt/kettle-venv".into());
    let python = Path::new(&venv).join("bin/python");
    if python.exists() {
        return Some(python);
    }
    let msg = format!(
        "peer venv missing: {} not found (set KETTLE_VENV or run the setup script)",
        python.display()
    );
    if std::env::var("CI").as_deref() == Ok("true") {
        panic!("{msg}");
    }
    eprintln!("SKIPPED peer test: {msg}");
    None
}

/// Runs peer_check.py on `bytes`; returns (exit code, stdout+stderr).
fn peer_check(python: &Path, bytes: &[u8]) -> (i32, String) {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("provenance.json");
    std::fs::write(&file, bytes).unwrap();
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/peer_check.py");
    let out = Command::new(python)
        .arg(&script)
        .arg(&file)
        .output()
        .expect("run peer_check.py");
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    (out.status.code().unwrap_or(-1), text)
}

fn sha256_hex(data: &[u8]) -> String {
    use sha2::{Digest, Sha256};
    hex::encode(Sha256::digest(data))
}

/// A Statement like the guest writes after a cargo build.
fn sample_statement() -> Statement {
    let commit_raw = b"tree 4b825dc642cb6eb9a060e54bf8d69288fbee4904\nauthor K <k@kettle.invalid> 1700000000 +0000\ncommitter K <k@kettle.invalid> 1700000000 +0000\n\nrelease\n";
    let commit = git::commit_id(commit_raw, ObjectFormat::Sha1).unwrap();
    let tree = git::verify_commit(commit_raw, &commit, ObjectFormat::Sha1).unwrap();

    let toolchain_sha = sha256_hex(b"rust toolchain tarball");
    let rootfs_sha = sha256_hex(b"rootfs tarball");
    let resolved = vec![
        ResourceDescriptor::from_uri("git+https://github.com/kettle-build/example@refs/heads/main")
            .with_digest(DIGEST_GIT_COMMIT, commit)
            .with_digest(DIGEST_GIT_TREE, tree.into_string()),
        ResourceDescriptor::from_uri(purl::cargo("serde", "1.0.228").unwrap())
            .with_digest(DIGEST_SHA256, sha256_hex(b"serde crate")),
        ResourceDescriptor::from_uri(purl::cargo("serde_json", "1.0.145").unwrap())
            .with_digest(DIGEST_SHA256, sha256_hex(b"serde_json crate")),
        ResourceDescriptor::from_uri(purl::cargo("zstd-sys", "2.0.13+zstd.1.5.6").unwrap())
            .with_digest(DIGEST_SHA256, sha256_hex(b"zstd-sys crate")),
        ResourceDescriptor::from_uri(
            purl::generic(
                "rust",
                "1.85.0",
                &[
                    (purl::QUALIFIER_CHECKSUM, &purl::sha256_checksum(&toolchain_sha)),
                    (purl::QUALIFIER_DOWNLOAD_URL, "https://static.rust-lang.org/dist/rust-1.85.0-x86_64-unknown-linux-gnu.tar.xz"),
                ],
            )
            .unwrap(),
        )
        .with_name("toolchain")
        .with_digest(DIGEST_SHA256, toolchain_sha),
        ResourceDescriptor::from_uri(purl::generic("kettle-rootfs", "2025.11", &[]).unwrap())
            .with_name("rootfs")
            .with_digest(DIGEST_SHA256, rootfs_sha)
            .with_media_type("application/x-tar"),
    ];

    let mut external = JsonObject::new();
    external.insert(
        "repository".into(),
        json!("https://github.com/kettle-build/example"),
    );
    external.insert("ref".into(), json!("refs/heads/main"));
    external.insert("profile".into(), json!("release"));
    let mut internal = JsonObject::new();
    internal.insert(vocab::TEE_PLATFORM.into(), json!("sev-snp"));
    internal.insert(vocab::VERSION.into(), json!("0.1.0"));
    internal.insert(
        vocab::INPUT_MERKLE_ROOT.into(),
        json!(input_merkle_root_hex(&resolved).unwrap()),
    );
    internal.insert(vocab::HERMETIC.into(), json!(true));
    internal.insert("vcpus".into(), json!(4));

    Statement::new(
        vec![
            ResourceDescriptor::for_bytes("target/release/example", b"\x7fELF example binary"),
            ResourceDescriptor::for_bytes("target/release/libexample.rlib", b"rlib"),
        ],
        Provenance {
            build_definition: BuildDefinition {
                build_type: ids::BUILD_TYPE_CARGO.into(),
                external_parameters: external,
                internal_parameters: internal,
                resolved_dependencies: resolved,
            },
            run_details: RunDetails {
                builder: Builder {
                    id: ids::BUILDER_ID_SEV_SNP.into(),
                    version: [("kettle-init".to_string(), "0.1.0".to_string())]
                        .into_iter()
                        .collect(),
                    // The image the host says the build ran in, as the guest records it.
                    builder_dependencies: vec![ResourceDescriptor::from_uri(
                        "kettle-image:manifest.json",
                    )
                    .with_name(ids::IMAGE_DEPENDENCY)
                    .with_digest(DIGEST_SHA256, sha256_hex(b"image manifest"))
                    .with_digest("sha384", "ab".repeat(48))
                    .with_annotation(vocab::CLAIMED_BY, "host")],
                },
                metadata: Some(BuildMetadata {
                    invocation_id: Some("0f0e0d0c-0b0a-4908-8706-050403020100".into()),
                    started_on: Some("2025-11-23T10:00:00Z".into()),
                    finished_on: Some("2025-11-23T10:04:31Z".into()),
                }),
                byproducts: vec![ResourceDescriptor::default()
                    .with_name("build.log")
                    .with_media_type("text/plain")
                    .with_content(b"Compiling example v0.1.0\n".to_vec())],
            },
        },
    )
}

#[test]
fn sample_statement_passes_peer_checks() {
    let st = sample_statement();
    st.validate().expect("our own validator accepts the sample");
    let bytes = jcs::to_canonical_bytes(&st).unwrap();
    assert!(jcs::is_canonical(&bytes));
    let Some(python) = peer_python() else { return };
    let (code, text) = peer_check(&python, &bytes);
    assert_eq!(code, 0, "peer check rejected our Statement:\n{text}");
    assert!(text.contains("OK:"), "{text}");
}

#[test]
fn peer_checks_reject_broken_statements() {
    let Some(python) = peer_python() else { return };
    let st = sample_statement();
    let canonical = jcs::to_canonical_bytes(&st).unwrap();

    // Same content, not canonical (pretty-printed; trailing newline).
    let pretty = serde_json::to_vec_pretty(&st).unwrap();
    let (code, text) = peer_check(&python, &pretty);
    assert_eq!(code, 1, "{text}");
    assert!(text.contains("not RFC 8785 canonical"), "{text}");
    let mut trailing = canonical.clone();
    trailing.push(b'\n');
    assert_eq!(peer_check(&python, &trailing).0, 1);

    // Canonical but invalid Statements: each must be rejected by the peers.
    // (what is broken, the peer's reason it must give, how to break it)
    type Breaker = Box<dyn Fn(&mut serde_json::Value)>;
    let cases: Vec<(&str, &str, Breaker)> = vec![
        (
            "wrong _type",
            "Wrong statement type",
            Box::new(|v| v["_type"] = json!("https://in-toto.io/Statement/v0.1")),
        ),
        (
            "empty subject",
            "At least one subject required",
            Box::new(|v| v["subject"] = json!([])),
        ),
        (
            "subject without digest",
            "At least one digest required",
            Box::new(|v| v["subject"][0] = json!({"name": "x"})),
        ),
        (
            "wrong predicateType",
            "predicateType is",
            Box::new(|v| v["predicateType"] = json!("https://slsa.dev/provenance/v0.2")),
        ),
        (
            "unknown predicate field",
            "has no field named \"bogus\"",
            Box::new(|v| v["predicate"]["buildDefinition"]["bogus"] = json!(1)),
        ),
        (
            "non-UTC timestamp",
            "startedOn",
            Box::new(|v| {
                v["predicate"]["runDetails"]["metadata"]["startedOn"] = json!("yesterday")
            }),
        ),
        (
            "empty dependency",
            "resolvedDependencies[0]",
            Box::new(|v| v["predicate"]["buildDefinition"]["resolvedDependencies"][0] = json!({})),
        ),
        (
            "finished before started",
            "finishedOn is before startedOn",
            Box::new(|v| {
                v["predicate"]["runDetails"]["metadata"]["finishedOn"] =
                    json!("2025-11-23T09:00:00Z")
            }),
        ),
    ];
    for (what, reason, break_it) in cases {
        let mut v: serde_json::Value = serde_json::from_slice(&canonical).unwrap();
        break_it(&mut v);
        let bytes = jcs::canonicalize_json(&serde_json::to_vec(&v).unwrap()).unwrap();
        let (code, text) = peer_check(&python, &bytes);
        assert_eq!(
            code, 1,
            "{what}: peers accepted a broken Statement:\n{text}"
        );
        assert!(
            text.contains("REJECTED") && text.contains(reason),
            "{what}: expected {reason:?} in:\n{text}"
        );
    }
}
