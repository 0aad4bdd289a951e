//! `kettle image` and `kettle measure --manifest` on the real kernel and
//! firmware (`make kernel`, `make ovmf` in $BUILD): the pinned CA roots, the
//! launch digest table, the image's provenance, and a check of an image
//! against a published manifest that names whichever input was changed.

use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use kettle_image::cpio;
use kettle_image::manifest::ImageManifest;
use kettle_image::table::LaunchDigestTable;
use kettle_provenance::{ids, jcs, Sha256Digest, Statement};
use kettle_testkit::artifacts::{repo_root, require_artifact, Requirement};
use kettle_testkit::cli::text;
use kettle_testkit::initramfs::compile_static_rust;
use kettle_verify::{Artifact, Bundle, CheckId, Expectations, Status};

const KETTLE: &str = env!("CARGO_BIN_EXE_kettle");
/// Where the image's initramfs has the CA roots the guest trusts.
const CA_ROOTS: &str = "etc/kettle/ca-roots.pem";
/// The `rustc -vV` the image's provenance records for kettle-init.
const RUSTC_VV: &str = "rustc 1.95.0 (59807616e 2026-04-14)\ncommit-hash: 59807616e1fa2540724bfbac14d7976d7e4a3860\nhost: x86_64-unknown-linux-gnu\nrelease: 1.95.0\n";

/// The real bzImage and OVMF.fd, or None (skipped) when they are not built.
fn real_kernel_and_firmware() -> Option<(PathBuf, PathBuf)> {
    let req = Requirement::from_env();
    let kernel = require_artifact("bzImage", "kernel", req)?;
    let ovmf = require_artifact("OVMF.fd", "ovmf", req)?;
    Some((kernel, ovmf))
}

fn static_init(dir: &Path, name: &str, greeting: &str) -> PathBuf {
    compile_static_rust(
        &format!("fn main() {{ println!(\"{greeting}\"); }}"),
        dir,
        name,
    )
    .expect("rustc builds a static test init")
}

struct Images {
    tmp: tempfile::TempDir,
    kernel: PathBuf,
    ovmf: PathBuf,
    init: PathBuf,
}

impl Images {
    fn new() -> Option<Images> {
        let (kernel, ovmf) = real_kernel_and_firmware()?;
        let tmp = tempfile::tempdir().unwrap();
        let init = static_init(tmp.path(), "init-a", "kettle test init a");
        Some(Images {
            tmp,
            kernel,
            ovmf,
            init,
        })
    }

    fn path(&self, name: &str) -> PathBuf {
        self.tmp.path().join(name)
    }

    /// `kettle image` into `name` with `extra` options; asserts success.
    fn image(&self, name: &str, extra: &[&str]) -> PathBuf {
        self.image_with_init(name, &self.init, extra)
    }

    fn image_with_init(&self, name: &str, init: &Path, extra: &[&str]) -> PathBuf {
        let out = self.path(name);
        let root = repo_root();
        let o = Command::new(KETTLE)
            .arg("image")
            .arg("--init")
            .arg(init)
            .arg("--kernel")
            .arg(&self.kernel)
            .arg("--ovmf")
            .arg(&self.ovmf)
            .arg("--kernel-pin")
            .arg(root.join("kernel-config/source.pin"))
            .arg("--ovmf-pin")
            .arg(root.join("kernel-config/ovmf.pin"))
            .arg("--out")
            .arg(&out)
            .args(extra)
            .output()
            .unwrap();
        assert!(o.status.success(), "kettle image: {}", text(&o));
        out
    }
}

fn measure(manifest: &Path, extra: &[&str]) -> Output {
    Command::new(KETTLE)
        .arg("measure")
        .arg("--manifest")
        .arg(manifest)
        .args(extra)
        .output()
        .unwrap()
}

/// Copies an image's manifest and table into `dir` (what `make publish-image` commits).
fn publish(image: &Path, dir: &Path) -> PathBuf {
    fs::create_dir_all(dir).unwrap();
    for f in ["manifest.json", "launch-digests.json"] {
        fs::copy(image.join(f), dir.join(f)).unwrap();
    }
    dir.join("manifest.json")
}

fn expect_mismatch(out: &Output, needles: &[&str]) {
    let t = text(out);
    assert_eq!(out.status.code(), Some(1), "{t}");
    for n in needles {
        assert!(t.contains(n), "missing {n:?} in:\n{t}");
    }
}

#[test]
fn image_bakes_in_the_pinned_roots_and_writes_valid_provenance() {
    let Some(img) = Images::new() else { return };
    let crates = img.path("init.crates");
    // Three registry crates of the lock file stand in for `cargo tree`'s list.
    let lockfile = repo_root().join("Cargo.lock");
    let lock = fs::read_to_string(&lockfile).unwrap();
    let locked = kettle_wire::recipe::cargo::lockfile::parse(&lock).unwrap();
    let list: String = locked
        .iter()
        .take(3)
        .map(|c| format!("{} v{}\n", c.name, c.version))
        .collect();
    fs::write(
        &crates,
        format!("kettle-init v0.1.0 (/somewhere/init)\n{list}"),
    )
    .unwrap();
    let commit = "0123456789abcdef0123456789abcdef01234567";
    // What the image's provenance records about how kettle-init was built.
    let provenance_inputs = [
        "--lockfile",
        lockfile.to_str().unwrap(),
        "--init-crates",
        crates.to_str().unwrap(),
        "--rustc-vv",
        RUSTC_VV,
        "--source-commit",
        commit,
    ];
    let out = img.image("img", &provenance_inputs);

    // The pinned Mozilla bundle, not the host's CA store.
    let manifest = ImageManifest::load(&out.join("manifest.json")).unwrap();
    let roots = &manifest.versions["ca-roots"];
    assert!(
        roots.starts_with("webpki-root-certs 1.0.11 (Mozilla, "),
        "{roots}"
    );
    let initrd = fs::read(out.join("initramfs.cpio")).unwrap();
    let pem = cpio::read_file(&initrd, CA_ROOTS)
        .unwrap()
        .expect("the initramfs has the CA roots");
    assert!(pem.starts_with(b"# Kettle guest CA roots"));
    if let Ok(host) = fs::read("/etc/ssl/certs/ca-certificates.crt") {
        assert_ne!(pem, host, "the host's CA bundle must not be the default");
    }
    let count = rustls_pemfile::certs(&mut &pem[..]).count();
    assert!(
        roots.contains(&format!("{count} roots")),
        "{roots} vs {count}"
    );
    // Listed once, with the digest of what is in the initramfs.
    let pem_sha256 = Sha256Digest::of_bytes(&pem).to_hex();
    let listed: Vec<Option<&str>> = manifest
        .initramfs
        .iter()
        .filter(|e| e.path == CA_ROOTS)
        .map(|e| e.sha256.as_deref())
        .collect();
    assert_eq!(listed, [Some(pem_sha256.as_str())]);
    assert!(manifest.versions["kernel-source"].starts_with("linux-source-6.12 "));
    assert!(manifest.versions["ovmf-source"].starts_with("edk2 "));
    if img.ovmf.with_extension("fd.tools").is_file() {
        assert!(manifest.versions["ovmf-tools"].contains("nasm "));
    }
    if Path::new(&format!("{}.tools", img.kernel.display())).is_file() {
        assert!(manifest.versions["kernel-tools"].contains("gcc "));
    }

    // The table: 3 types x 4 counts, its EPYC-v4 x 2 row is the manifest's digest.
    let table = LaunchDigestTable::load(&out.join("launch-digests.json")).unwrap();
    assert_eq!(table.launch_digests.len(), 12);
    let types: Vec<String> = table
        .launch_digests
        .iter()
        .map(|r| r.vcpu_type.to_string())
        .collect();
    for t in ["EPYC-v4", "EPYC-Milan", "EPYC-Genoa"] {
        assert_eq!(types.iter().filter(|x| *x == t).count(), 4, "{t}");
    }

    // provenance.json: canonical, valid, every file a subject, kettle-verify's checks pass.
    let bytes = fs::read(out.join("provenance.json")).unwrap();
    assert!(jcs::is_canonical(&bytes));
    let st = Statement::from_json(&bytes).unwrap();
    st.validate().unwrap();
    assert_eq!(
        st.predicate.build_definition.build_type,
        ids::BUILD_TYPE_IMAGE
    );
    assert_eq!(st.predicate.run_details.builder.id, ids::BUILDER_ID_IMAGE);
    let deps = &st.predicate.build_definition.resolved_dependencies;
    let uris: Vec<&str> = deps.iter().filter_map(|d| d.uri.as_deref()).collect();
    assert!(
        uris.contains(&"pkg:cargo/webpki-root-certs@1.0.11"),
        "{uris:?}"
    );
    for c in locked.iter().take(3) {
        let purl = format!("pkg:cargo/{}@{}", c.name, c.version);
        let d = deps
            .iter()
            .find(|d| d.uri.as_deref() == Some(&purl))
            .unwrap();
        assert_eq!(d.sha256(), Some(c.sha256.to_hex().as_str()));
    }
    let names = [
        "bzImage",
        "initramfs.cpio",
        "OVMF.fd",
        "manifest.json",
        "launch-digests.json",
    ];
    let artifacts: Vec<Artifact> = names
        .iter()
        .map(|n| Artifact::from_bytes(*n, Some(n.to_string()), &fs::read(out.join(n)).unwrap()))
        .collect();
    let bundle = Bundle {
        report: Vec::new(),
        chain: Err("an image build has no report".into()),
        provenance: Some(bytes),
        artifacts,
        complete_output: true,
    };
    let mut expect = Expectations::new([0; 48], "none");
    expect.provenance.builder_ids = vec![ids::BUILDER_ID_IMAGE.into()];
    expect.provenance.build_types = vec![ids::BUILD_TYPE_IMAGE.into()];
    expect.provenance.source = kettle_verify::SourcePin::Commit(commit.into());
    let verdict = kettle_verify::verify(&bundle, &expect);
    for id in [
        CheckId::Canonical,
        CheckId::Valid,
        CheckId::Artifact,
        CheckId::ArtifactsComplete,
        CheckId::Source,
        CheckId::BuilderId,
        CheckId::BuildType,
    ] {
        let c = verdict.check(id).unwrap();
        assert_eq!(c.status(), Status::Pass, "{}: {}", c.name(), c.detail());
    }
    assert!(verdict.failures().all(|c| c.id.trust_chain_step() <= 3));

    // The same inputs give the same bytes, provenance included.
    let again = img.image("img-again", &provenance_inputs);
    for f in names.iter().chain(&["provenance.json"]) {
        assert_eq!(
            fs::read(out.join(f)).unwrap(),
            fs::read(again.join(f)).unwrap(),
            "{f}"
        );
    }

    // --ca-roots FILE and --no-ca-roots say what went in.
    let own = img.path("roots.pem");
    fs::write(&own, &pem[..pem.len() / 2]).unwrap();
    let filed = img.image("img-file", &["--ca-roots", own.to_str().unwrap()]);
    let m = ImageManifest::load(&filed.join("manifest.json")).unwrap();
    assert_eq!(
        m.versions["ca-roots"],
        format!("file {}", Sha256Digest::of_file(&own).unwrap().to_hex())
    );
    let none = img.image("img-none", &["--no-ca-roots"]);
    let m = ImageManifest::load(&none.join("manifest.json")).unwrap();
    assert_eq!(m.versions["ca-roots"], "none");
    assert!(m.initramfs.iter().all(|e| e.path != CA_ROOTS));
}

#[test]
fn measure_manifest_recomputes_everything_and_names_the_changed_input() {
    let Some(img) = Images::new() else { return };
    let image = img.image("img", &[]);
    let published = publish(&image, &img.path("published"));

    // Everything matches: the image's own manifest, and the published one with --image.
    let same = measure(&image.join("manifest.json"), &[]);
    assert_eq!(same.status.code(), Some(0), "{}", text(&same));
    let o = measure(&published, &["--image", image.to_str().unwrap()]);
    assert_eq!(o.status.code(), Some(0), "{}", text(&o));
    let t = text(&o);
    assert!(t.contains("all 18 checks match"), "{t}");
    assert!(
        t.contains("identical to the published manifest in every field"),
        "{t}"
    );

    // Another command line: the image's manifest says so and its digest follows.
    let cmdline = img.image("img-cmdline", &["--cmdline", "console=ttyS0 panic=-1"]);
    expect_mismatch(
        &measure(&published, &["--image", cmdline.to_str().unwrap()]),
        &[
            "manifest.json: cmdline: differs from the published manifest",
            r#"cmdline is "console=ttyS0 panic=-1" here, "console=ttyS0 panic=-1 quiet" in the published manifest"#,
            "its cmdline differs (above), and the cmdline is measured",
        ],
    );

    // Another kettle-init: the initrd, down to the entry, explains every digest.
    let other_init = static_init(img.tmp.path(), "init-b", "kettle test init b");
    let initrd = img.image_with_init("img-initrd", &other_init, &[]);
    expect_mismatch(
        &measure(&published, &["--image", initrd.to_str().unwrap()]),
        &[
            "MISMATCH initrd: ",
            "because: entry init has sha256 ",
            "launch digest 4 x EPYC-Milan (launch-digests.json): recomputed",
            "the initrd is not the published one",
            "the differing initrd alone explains it",
        ],
    );

    // Another vCPU type: named in the image's manifest; and a published manifest
    // whose vcpu_type was edited (digest kept) is told which type its digest is for.
    let milan = img.image("img-milan", &["--vcpu-type", "EPYC-Milan"]);
    expect_mismatch(
        &measure(&published, &["--image", milan.to_str().unwrap()]),
        &[
            "manifest.json: vcpu_type: differs from the published manifest",
            r#"vcpu_type is "EPYC-Milan" here, "EPYC-v4" in the published manifest"#,
            "its vcpu_type differs (above), and the vcpu_type is measured",
        ],
    );
    let edited = img.path("edited");
    let edited_manifest = publish(&image, &edited);
    let text_of = fs::read_to_string(&edited_manifest).unwrap();
    fs::write(
        &edited_manifest,
        text_of.replace(r#""vcpu_type": "EPYC-v4""#, r#""vcpu_type": "EPYC-Genoa""#),
    )
    .unwrap();
    expect_mismatch(
        &measure(&edited_manifest, &["--image", image.to_str().unwrap()]),
        &[
            "MISMATCH launch digest 2 x EPYC-Genoa (manifest)",
            "the recorded digest is that of 2 vCPU(s) of type EPYC-v4 under QEMU: the vCPU type (EPYC-Genoa there, EPYC-v4 in the recorded digest",
        ],
    );

    // A table row relabelled (8 vCPUs, the digest of 4): the count is named.
    let table_dir = img.path("table");
    let table_manifest = publish(&image, &table_dir);
    let table_path = table_dir.join("launch-digests.json");
    let mut table = LaunchDigestTable::load(&table_path).unwrap();
    let four = table
        .launch_digests
        .iter()
        .find(|r| r.vcpus == 4 && r.vcpu_type.to_string() == "EPYC-Genoa")
        .unwrap()
        .launch_digest;
    table
        .launch_digests
        .iter_mut()
        .find(|r| r.vcpus == 8 && r.vcpu_type.to_string() == "EPYC-Genoa")
        .unwrap()
        .launch_digest = four;
    fs::write(&table_path, table.to_json_pretty()).unwrap();
    let o = measure(&table_manifest, &["--image", image.to_str().unwrap()]);
    expect_mismatch(
        &o,
        &[
            "MISMATCH launch digest 8 x EPYC-Genoa (launch-digests.json)",
            "the vCPU count (8 there, 4 in the recorded digest)",
        ],
    );
    assert!(text(&o).contains("1 of 18 checks differ"), "{}", text(&o));

    // Missing files cannot be checked at all.
    let o = measure(
        &published,
        &["--image", img.path("nowhere").to_str().unwrap()],
    );
    assert_eq!(o.status.code(), Some(2), "{}", text(&o));
}
