//! Writes small valid seed inputs for every fuzz target, generated with
//! Kettle's own writers (the simulated PSP, the request disk writer, the tar
//! crate, the initramfs writer...), so no third-party data file is copied:
//!
//! ```sh
//! cargo run --example seeds -- corpus    # writes corpus/<target>/seed-*
//! ```
//!
//! The examples' kettle.toml and Cargo.lock are read from the repository, and
//! the real Milan report and chain from the `sev` crate in the cargo registry.

use std::fs;
use std::path::{Path, PathBuf};

use kettle_attest::simulated::protocol::{
    write_request, write_response, ErrorCode, ReportRequest, Response,
};
use kettle_attest::simulated::SimulatedPsp;
use kettle_attest::{report_data_for, testdata};
use kettle_fuzz::{
    BundleInput, COMMIT, FLAG_ALLOW_SIMULATED, FLAG_COMPLETE_OUTPUT, FLAG_EXPECT_SOURCE,
    FLAG_PIN_COMMIT, GIT_REF, MEASUREMENT, REPOSITORY,
};
use kettle_image::cpio::Initramfs;
use kettle_provenance::statement::{DIGEST_GIT_COMMIT, DIGEST_GIT_TREE, DIGEST_SHA256};
use kettle_provenance::{
    ids, jcs, merkle, purl, vocab, BuildDefinition, BuildMetadata, Builder, JsonObject, Provenance,
    ResourceDescriptor, RunDetails, Sha256Digest, Statement,
};
use kettle_wire::console;
use kettle_wire::request::{
    write_request_disk, BuildRequest, FetchMode, ImageRef, Limits, ObjectFormat, Tee, Upstream,
    REQUEST_SCHEMA,
};
use kettle_wire::steps::Step;

const PIN: &str = "2cf24dba5fb0a30e26e83b2ac5b9e29e1b161e5c1fa7425e73043362938b9824";

struct Out(PathBuf);

impl Out {
    fn put(&self, target: &str, name: &str, bytes: &[u8]) {
        let dir = self.0.join(target);
        fs::create_dir_all(&dir).expect("create the corpus dir");
        fs::write(dir.join(format!("seed-{name}")), bytes).expect("write a seed");
    }
}

fn repo_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("fuzz/ is in the repository")
        .to_path_buf()
}

/// A Kettle-shaped provenance Statement about `subjects`.
fn statement(subjects: &[(&str, &[u8])], builder_id: &str, full: bool) -> Statement {
    let mut ext = JsonObject::new();
    ext.insert("repository".into(), REPOSITORY.into());
    ext.insert("ref".into(), GIT_REF.into());
    let mut deps = vec![
        ResourceDescriptor::from_uri(format!("git+{REPOSITORY}@{GIT_REF}"))
            .with_name(ids::SOURCE_DEPENDENCY)
            .with_digest(DIGEST_GIT_COMMIT, COMMIT)
            .with_digest(DIGEST_GIT_TREE, "b".repeat(40)),
    ];
    let mut internal = JsonObject::new();
    let mut metadata = None;
    if full {
        deps.push(
            ResourceDescriptor::from_uri(purl::cargo("hex", "0.4.3").expect("a purl"))
                .with_digest(DIGEST_SHA256, PIN),
        );
        deps.push(
            ResourceDescriptor::from_uri("https://example.org/rootfs.tar.gz")
                .with_name("rootfs")
                .with_digest(DIGEST_SHA256, PIN)
                .with_annotation(vocab::LISTED_BY_BUNDLE, "rootfs"),
        );
        internal.insert(
            vocab::INPUT_MERKLE_ROOT.into(),
            merkle::input_merkle_root_hex(&deps)
                .expect("merkle root")
                .into(),
        );
        internal.insert(vocab::TEE_PLATFORM.into(), "simulated".into());
        internal.insert("build_seconds".into(), 3600.into());
        metadata = Some(BuildMetadata {
            invocation_id: Some("inv-1".into()),
            started_on: Some("2025-01-01T00:00:00Z".into()),
            finished_on: Some("2025-01-01T00:01:02.5Z".into()),
        });
    }
    Statement::new(
        subjects
            .iter()
            .map(|(name, bytes)| ResourceDescriptor::for_bytes(*name, bytes))
            .collect(),
        Provenance {
            build_definition: BuildDefinition {
                build_type: ids::BUILD_TYPE_SCRIPT.into(),
                external_parameters: ext,
                internal_parameters: internal,
                resolved_dependencies: deps,
            },
            run_details: RunDetails {
                builder: Builder {
                    id: builder_id.into(),
                    builder_dependencies: if full {
                        vec![
                            ResourceDescriptor::from_uri("kettle-image:manifest.json")
                                .with_name(ids::IMAGE_DEPENDENCY)
                                .with_digest(DIGEST_SHA256, PIN)
                                .with_digest("sha384", hex::encode(MEASUREMENT))
                                .with_annotation(vocab::CLAIMED_BY, "host"),
                            ResourceDescriptor::default().with_content(b"kettle".to_vec()),
                        ]
                    } else {
                        Vec::new()
                    },
                    ..Default::default()
                },
                metadata,
                byproducts: if full {
                    vec![ResourceDescriptor::for_bytes("build.log", b"log")]
                } else {
                    Vec::new()
                },
            },
        },
    )
}

fn report_and_bundles(out: &Out) {
    let subjects: [(&str, &[u8]); 2] = [
        ("out/hello.txt", b"hello from a kettle build\n"),
        ("bin/tool", b"\x7fELF"),
    ];
    let psp = SimulatedPsp::new(MEASUREMENT);
    let chain = psp.cert_chain_pem().expect("the simulated chain");
    for version in [2u32, 3, 5] {
        let psp = SimulatedPsp::new(MEASUREMENT).with_report_version(version);
        let report = psp.report(&[0x11; 64], 0).expect("a simulated report");
        out.put("report", &format!("simulated-v{version}"), &report);
    }
    let milan = testdata::milan_report();
    out.put("report", "milan", &milan);

    for (name, builder, full) in [
        ("simulated", ids::BUILDER_ID_SIMULATED, false),
        ("simulated-full", ids::BUILDER_ID_SIMULATED, true),
        ("snp-builder", ids::BUILDER_ID_SEV_SNP, true),
    ] {
        let prov = jcs::to_canonical_bytes(&statement(&subjects, builder, full))
            .expect("canonical provenance");
        out.put("provenance", name, &prov);
        let report = psp
            .report(&report_data_for(&prov), 0)
            .expect("a simulated report");
        let bundle = BundleInput {
            flags: FLAG_COMPLETE_OUTPUT
                | FLAG_PIN_COMMIT
                | FLAG_EXPECT_SOURCE
                | FLAG_ALLOW_SIMULATED,
            report,
            chain: Some(chain.clone()),
            provenance: Some(prov),
            artifacts: subjects
                .iter()
                .map(|(n, b)| (n.as_bytes().to_vec(), b.to_vec()))
                .collect(),
        };
        // The seeds reach the end of the check list: they verify.
        let (b, expect) = BundleInput::decode(&bundle.encode()).to_bundle();
        let verdict = kettle_verify::verify(&b, &expect);
        assert!(verdict.verified(), "seed {name} does not verify:\n{verdict}");
        out.put("verify_bundle", name, &bundle.encode());
    }
    // A report alone (no provenance), and the real Milan evidence.
    let alone = BundleInput {
        flags: FLAG_ALLOW_SIMULATED,
        report: psp.report(&[0; 64], 0).expect("a simulated report"),
        chain: Some(chain),
        provenance: None,
        artifacts: Vec::new(),
    };
    out.put("verify_bundle", "report-only", &alone.encode());
    let mut milan_chain =
        kettle_attest::chain::der_to_pem(&testdata::milan_vcek_der()).into_bytes();
    milan_chain.extend_from_slice(&testdata::milan_ca_bundle());
    let real = BundleInput {
        flags: 0,
        report: milan,
        chain: Some(milan_chain),
        provenance: None,
        artifacts: Vec::new(),
    };
    out.put("verify_bundle", "milan", &real.encode());
}

fn requests(out: &Out) {
    let cached = BuildRequest {
        schema: REQUEST_SCHEMA.into(),
        repository: "https://github.com/kettle-build/hello".into(),
        git_ref: "refs/heads/main".into(),
        commit: COMMIT.into(),
        object_format: ObjectFormat::Sha1,
        mode: FetchMode::Cached,
        tee: Tee::Simulated,
        invocation_id: "inv-1".into(),
        limits: Limits::default(),
        upstream: None,
        image: None,
    };
    let upstream = BuildRequest {
        commit: "ab".repeat(32),
        object_format: ObjectFormat::Sha256,
        mode: FetchMode::Upstream,
        tee: Tee::SevSnp,
        limits: Limits {
            max_build_seconds: Some(600),
            max_memory_bytes: Some(1 << 30),
        },
        upstream: Some(Upstream {
            source_archive_url: "https://example.org/src.tar.gz".into(),
            commit_object_url: "https://example.org/commit".into(),
            crates_url: "https://static.crates.io/crates".into(),
            dns_resolver: Some("10.0.2.3".parse().expect("an IPv4 address")),
        }),
        image: Some(ImageRef {
            manifest_sha256: Sha256Digest::from_hex(PIN).expect("a digest"),
            launch_digest: hex::encode(MEASUREMENT),
        }),
        ..cached.clone()
    };
    let dir = tempfile::tempdir().expect("tempdir");
    for (name, req) in [("cached", &cached), ("upstream", &upstream)] {
        out.put(
            "request",
            &format!("{name}-json"),
            &serde_json::to_vec_pretty(req).expect("json"),
        );
        let path = dir.path().join(format!("{name}.img"));
        write_request_disk(&path, req).expect("a request disk");
        out.put(
            "request",
            &format!("{name}-disk"),
            &fs::read(&path).expect("read it back"),
        );
    }
}

fn tar_seeds(out: &Out) {
    let mut b = tar::Builder::new(Vec::new());
    let mut dir = tar::Header::new_ustar();
    dir.set_entry_type(tar::EntryType::Directory);
    dir.set_mode(0o755);
    dir.set_size(0);
    b.append_data(&mut dir.clone(), "src/", &b""[..])
        .expect("dir");
    let mut file = tar::Header::new_ustar();
    file.set_mode(0o644);
    file.set_size(5);
    b.append_data(&mut file.clone(), "src/main.rs", &b"fn(){"[..])
        .expect("file");
    let mut exe = tar::Header::new_gnu();
    exe.set_mode(0o755);
    exe.set_size(3);
    b.append_data(&mut exe, "bin/run", &b"#!x"[..])
        .expect("exe");
    let mut link = tar::Header::new_ustar();
    link.set_entry_type(tar::EntryType::Symlink);
    link.set_size(0);
    b.append_link(&mut link.clone(), "src/lib.rs", "main.rs")
        .expect("symlink");
    b.append_link(&mut link.clone(), "up", "src/../bin/run")
        .expect("symlink");
    let mut hard = tar::Header::new_ustar();
    hard.set_entry_type(tar::EntryType::Link);
    hard.set_size(0);
    b.append_link(&mut hard, "src/copy.rs", "src/main.rs")
        .expect("hard link");
    // A long name (GNU long-name extension) and a PAX header.
    let long = format!("{}/deep.txt", "d".repeat(120));
    let mut gnu = tar::Header::new_gnu();
    gnu.set_size(1);
    b.append_data(&mut gnu, &long, &b"x"[..])
        .expect("long name");
    b.append_pax_extensions([("comment", &b"0123456789abcdef"[..])])
        .expect("pax");
    b.append_data(&mut file, "pax.txt", &b"after"[..])
        .expect("file");
    let tree = b.into_inner().expect("a tar");
    out.put("unpack", "tree", &tree);

    let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    std::io::Write::write_all(&mut gz, &tree).expect("gzip");
    out.put("unpack", "tree-gz", &gz.finish().expect("gzip"));

    // A one-file cache-disk-like archive.
    let mut b = tar::Builder::new(Vec::new());
    let mut h = tar::Header::new_ustar();
    h.set_mode(0o644);
    h.set_size(4);
    b.append_data(&mut h, format!("sha256-{PIN}"), &b"data"[..])
        .expect("file");
    out.put("unpack", "flat", &b.into_inner().expect("a tar"));
}

fn psp_frames(out: &Out) {
    let mut reqs = Vec::new();
    for vmpl in [0, 3] {
        write_request(
            &mut reqs,
            &ReportRequest {
                report_data: [0x42; 64],
                vmpl,
            },
        )
        .expect("a request frame");
    }
    out.put("psp_protocol", "requests", &reqs);
    let psp = SimulatedPsp::new(MEASUREMENT);
    let mut resp = Vec::new();
    write_response(
        &mut resp,
        &Response::Report {
            report: psp.report(&[0x42; 64], 0).expect("a report"),
            cert_chain_pem: psp.cert_chain_pem().expect("the chain"),
        },
    )
    .expect("a response frame");
    out.put("psp_protocol", "report-response", &resp);
    let mut err = Vec::new();
    write_response(
        &mut err,
        &Response::Error {
            code: ErrorCode::InvalidParameter,
            message: "unsupported request: VMPL 9".into(),
        },
    )
    .expect("an error frame");
    out.put("psp_protocol", "error-response", &err);
}

fn recipes_and_locks(out: &Out) {
    let root = repo_root();
    for sample in ["hello-script", "hello-cargo"] {
        let text = fs::read_to_string(root.join("examples").join(sample).join("kettle.toml.in"))
            .expect("the sample's kettle.toml.in");
        let filled = text
            .replace("@ROOTFS_URL@", "https://example.org/rootfs.tar.gz")
            .replace("@TOOLCHAIN_URL@", "https://example.org/rust.tar.gz")
            .replace("@ROOTFS_SHA256@", PIN)
            .replace("@TOOLCHAIN_SHA256@", PIN);
        out.put("recipe", sample, filled.as_bytes());
    }
    let lock = fs::read(root.join("examples/hello-cargo/Cargo.lock")).expect("the sample lock");
    out.put("lockfile", "hello-cargo", &lock);
    let sparse = format!(
        "version = 3\n[[package]]\nname = \"a\"\nversion = \"0.1.0\"\n\n[[package]]\nname = \"b_c\"\nversion = \"1.0.0+build.1\"\nsource = \"sparse+https://index.crates.io/\"\nchecksum = \"{PIN}\"\n\n[metadata]\nnote = \"x\"\n"
    );
    out.put("lockfile", "sparse", sparse.as_bytes());
}

fn initramfs(out: &Out) {
    let mut fs_ = Initramfs::new();
    fs_.file("init", 0o755, b"\x7fELF init".to_vec())
        .expect("init")
        .file("etc/kettle/roots.pem", 0o644, b"-----BEGIN".to_vec())
        .expect("roots")
        .dir_with_mode("tmp", 0o1777)
        .expect("tmp")
        .char_device("dev/console", 0o600, 5, 1)
        .expect("console");
    out.put("cpio", "initramfs", &fs_.to_bytes());
    out.put("cpio", "empty", &Initramfs::new().to_bytes());
}

fn console_lines(out: &Out) {
    let lines = [
        console::step_ok(Step::Fetch, 1.2, "cache disk", "12 entries"),
        format!(
            "10:01:02 [ERROR] {}",
            console::step_failed(
                Step::Verify,
                0.1,
                "inputs",
                "sha256 mismatch",
                Some("crate hex 0.4.3")
            )
        ),
        format!("[INFO] {}", console::build_output("Compiling hello v0.1.0")),
        console::succeeded("1 artifacts, attested"),
        "[    0.000000] Linux version 6.12".to_string(),
    ];
    out.put("console", "lines", lines.join("\n").as_bytes());
}

fn main() {
    let dest = std::env::args_os()
        .nth(1)
        .map(PathBuf::from)
        .unwrap_or_else(|| Path::new(env!("CARGO_MANIFEST_DIR")).join("corpus"));
    let out = Out(dest.clone());
    report_and_bundles(&out);
    requests(&out);
    tar_seeds(&out);
    psp_frames(&out);
    recipes_and_locks(&out);
    initramfs(&out);
    console_lines(&out);
    println!("seeds written under {}", dest.display());
}
