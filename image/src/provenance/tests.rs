use super::*;
use crate::manifest::{FileRef, ImageManifest};
use crate::measure::{GuestFeatures, LaunchDigest, VcpuConfig, VmmType};
use crate::table::{LaunchDigestTable, TableRow, TABLE_SCHEMA};
use kettle_provenance::{jcs, Sha256Digest};
use kettle_verify::{Artifact, Bundle, CheckId, Expectations, SourcePin, Status};

const RUSTC_VV: &str = "rustc 1.95.0 (59807616e 2026-04-14)\nbinary: rustc\ncommit-hash: 59807616e1fa2540724bfbac14d7976d7e4a3860\ncommit-date: 2026-04-14\nhost: x86_64-unknown-linux-gnu\nrelease: 1.95.0\nLLVM version: 22.1.2\n";
const COMMIT: &str = "bb47b145add8ab5f66eafbfdc2a2c62fb9570184";
const SUM: &str = "e49d0e65abc00c142e8f9428da991da9f1a250c39be97459901eb12b9b49f62a";

fn image() -> AssembledImage {
    let file =
        |name: &str, bytes: &[u8]| FileRef::new(name, Sha256Digest::of_bytes(bytes).to_hex());
    let vm = VcpuConfig {
        vcpus: 2,
        vcpu_type: "EPYC-v4".parse().unwrap(),
        vmm_type: VmmType::Qemu,
        guest_features: GuestFeatures::default(),
    };
    let manifest = ImageManifest::new(
        file(KERNEL_FILE, b"kernel"),
        file(INITRD_FILE, b"initrd"),
        file(OVMF_FILE, b"ovmf"),
        "console=ttyS0",
        &vm,
        LaunchDigest([7; 48]),
    );
    let table = LaunchDigestTable {
        schema: TABLE_SCHEMA,
        kernel: manifest.kernel.clone(),
        initrd: manifest.initrd.clone(),
        ovmf: manifest.ovmf.clone(),
        cmdline: manifest.cmdline.clone(),
        vmm_type: VmmType::Qemu,
        guest_features: GuestFeatures::default(),
        launch_digests: ["EPYC-v4", "EPYC-Milan"]
            .iter()
            .flat_map(|t| {
                [1u8, 2].map(|n| TableRow {
                    vcpu_type: t.parse().unwrap(),
                    vcpus: n.into(),
                    launch_digest: LaunchDigest([n; 48]),
                })
            })
            .collect(),
    };
    AssembledImage {
        manifest_json: manifest.to_json_pretty().into_bytes(),
        table_json: table.to_json_pretty().into_bytes(),
        manifest,
        table,
        kernel: b"kernel".to_vec(),
        initrd: b"initrd".to_vec(),
        ovmf: b"ovmf".to_vec(),
    }
}

fn pins() -> (PinFile, PinFile) {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../kernel-config");
    let read = |name: &str| {
        let p = root.join(name);
        PinFile::parse(&p, &std::fs::read_to_string(&p).unwrap()).unwrap()
    };
    (read("source.pin"), read("ovmf.pin"))
}

fn crate_(name: &str, version: &str) -> Dependency {
    Dependency {
        build_type: kettle_wire::BuildType::CargoBuild,
        name: name.into(),
        version: version.into(),
        sha256: Sha256Digest::from_hex(SUM).unwrap(),
    }
}

#[test]
fn parses_pins_tool_records_and_rustc() {
    let (kernel, ovmf) = pins();
    assert_eq!(kernel.get("package").unwrap(), "linux-source-6.12");
    assert!(kernel
        .package_version()
        .unwrap()
        .starts_with("linux-source-6.12 "));
    assert!(ovmf.package_version().unwrap().starts_with("edk2 "));
    assert!(kernel.get("nope").unwrap_err().contains("no nope= line"));
    assert!(PinFile::parse(Path::new("x.pin"), "# c\nbad line\n").is_err());

    let t = ToolRecord::parse("gcc 12.2.0-14\nbison 2:3.8.2+dfsg-1+b1\n\n").unwrap();
    assert_eq!(t.summary(), "gcc 12.2.0-14, bison 2:3.8.2+dfsg-1+b1");
    assert_eq!(t.as_object()["bison"], "2:3.8.2+dfsg-1+b1");
    assert!(ToolRecord::parse("").is_err());
    assert!(ToolRecord::parse("gcc\n").is_err());

    let r = RustcVersion::parse(RUSTC_VV).unwrap();
    assert_eq!(r.line, "rustc 1.95.0 (59807616e 2026-04-14)");
    assert_eq!(r.release, "1.95.0");
    assert_eq!(
        r.commit_hash.as_deref(),
        Some("59807616e1fa2540724bfbac14d7976d7e4a3860")
    );
    assert!(RustcVersion::parse("rustc 1.95.0 (59807616e 2026-04-14)")
        .unwrap_err()
        .contains("rustc -vV"));
    assert!(RustcVersion::parse("cargo 1.0").is_err());
}

#[test]
fn crates_come_from_the_tree_with_lock_checksums() {
    let lock = [
        crate_("ring", "0.17.14"),
        crate_("serde", "1.0.229"),
        crate_("hex", "0.4.3"),
    ];
    let tree = "kettle-init v0.1.0 (/work/main/init)\nring v0.17.14\nkettle-wire v0.1.0 (/tmp/x/wire)\nserde v1.0.229\nring v0.17.14 (*)\n";
    let got = crates_from_tree(tree, &lock).unwrap();
    assert_eq!(
        got.iter().map(|c| c.name.as_str()).collect::<Vec<_>>(),
        ["ring", "serde"],
        "sorted, deduplicated, path crates and unlinked lock entries left out"
    );
    assert!(crates_from_tree("tokio v1.0.0\n", &lock)
        .unwrap_err()
        .contains("tokio 1.0.0"));
    assert!(crates_from_tree("kettle-init v0.1.0 (/x)\n", &lock).is_err());
}

fn inputs<'a>(
    image: &'a AssembledImage,
    pins: &'a (PinFile, PinFile),
    crates: &'a [Dependency],
    rustc: &'a RustcVersion,
    source: &'a SourceCommit,
    ca: &'a ResourceDescriptor,
    tools: &'a ToolRecord,
) -> ImageProvenance<'a> {
    ImageProvenance {
        image,
        init: b"\x7fELF init",
        kernel_pin: Some(&pins.0),
        ovmf_pin: Some(&pins.1),
        crates,
        rustc: Some(rustc),
        ca_roots: Some(ca),
        source: Some(source),
        kernel_tools: Some(tools),
        ovmf_tools: Some(tools),
    }
}

#[test]
fn the_statement_passes_kettle_verifys_statement_checks() {
    let image = image();
    let pins = pins();
    let crates = [crate_("ring", "0.17.14"), crate_("serde", "1.0.229")];
    let rustc = RustcVersion::parse(RUSTC_VV).unwrap();
    let source = SourceCommit {
        repository: "https://github.com/kettle-build/kettle".into(),
        commit: COMMIT.into(),
        modified: false,
    };
    let ca = ResourceDescriptor::from_uri("pkg:cargo/webpki-root-certs@1.0.11")
        .with_name("ca-roots")
        .with_digest(DIGEST_SHA256, SUM);
    let tools = ToolRecord::parse("gcc 12.2.0-14\n").unwrap();
    let p = inputs(&image, &pins, &crates, &rustc, &source, &ca, &tools);
    let st = statement(&p).unwrap();
    let bytes = to_bytes(&st).unwrap();
    assert!(jcs::is_canonical(&bytes));
    assert_eq!(
        to_bytes(&statement(&p).unwrap()).unwrap(),
        bytes,
        "deterministic"
    );
    assert_eq!(
        st.predicate.build_definition.build_type,
        ids::BUILD_TYPE_IMAGE
    );
    assert_eq!(st.predicate.run_details.builder.id, ids::BUILDER_ID_IMAGE);
    for id in [ids::BUILD_TYPE_IMAGE, ids::BUILDER_ID_IMAGE] {
        assert!(id.starts_with(ids::BASE) && id.ends_with("/v1"), "{id}");
    }
    let names: Vec<&str> = st
        .subject
        .iter()
        .filter_map(|s| s.name.as_deref())
        .collect();
    assert_eq!(
        names,
        [
            KERNEL_FILE,
            INITRD_FILE,
            OVMF_FILE,
            MANIFEST_FILE,
            TABLE_FILE
        ]
    );
    let deps = &st.predicate.build_definition.resolved_dependencies;
    let uris: Vec<&str> = deps.iter().filter_map(|d| d.uri.as_deref()).collect();
    assert_eq!(uris[0], "git+https://github.com/kettle-build/kettle");
    assert!(uris[1].starts_with("pkg:generic/linux-source-6.12@"));
    assert!(uris[2].starts_with("pkg:generic/edk2@") && uris[3] == uris[2]);
    assert_eq!(uris[4], "pkg:generic/rustc@1.95.0");
    assert_eq!(
        &uris[5..7],
        ["pkg:cargo/ring@0.17.14", "pkg:cargo/serde@1.0.229"]
    );
    assert_eq!(uris[7], "pkg:cargo/webpki-root-certs@1.0.11");
    assert_eq!(
        deps[1].sha256(),
        pins.0.values.get("sha256").map(String::as_str)
    );
    assert!(st.predicate.run_details.metadata.is_none(), "no timestamps");
    kettle_provenance::merkle::check_input_merkle_root(&st.predicate).unwrap();

    // kettle-verify's own checks (trust-chain steps 4 to 6) over the bytes and the subjects.
    let bundle = Bundle {
        report: Vec::new(),
        chain: Err("no report: an image build is not attested".into()),
        provenance: Some(bytes.clone()),
        artifacts: image
            .files()
            .iter()
            .map(|(n, b)| Artifact::from_bytes(*n, Some(n.to_string()), b))
            .collect(),
        complete_output: true,
    };
    let mut expect = Expectations::new([0; 48], "none");
    expect.provenance.builder_ids = vec![ids::BUILDER_ID_IMAGE.into()];
    expect.provenance.build_types = vec![ids::BUILD_TYPE_IMAGE.into()];
    expect.provenance.repository = Some(source.repository.clone());
    expect.provenance.source = SourcePin::Commit(COMMIT.into());
    let verdict = kettle_verify::verify(&bundle, &expect);
    for id in [
        CheckId::Canonical,
        CheckId::Parse,
        CheckId::StatementType,
        CheckId::PredicateType,
        CheckId::Valid,
        CheckId::Artifact,
        CheckId::ArtifactsComplete,
        CheckId::Repository,
        CheckId::Source,
        CheckId::BuilderId,
        CheckId::BuildType,
    ] {
        let c = verdict
            .check(id)
            .unwrap_or_else(|| panic!("{id:?} not run"));
        assert_eq!(c.status(), Status::Pass, "{}: {}", c.name(), c.detail());
    }
    let later: Vec<String> = verdict
        .failures()
        .filter(|c| c.id.trust_chain_step() >= 4)
        .map(|c| format!("{}: {}", c.name(), c.detail()))
        .collect();
    assert!(later.is_empty(), "{later:?}");
    // A changed subject is caught by the same checks.
    let mut tampered = bundle.clone();
    tampered.artifacts[1] = Artifact::from_bytes(INITRD_FILE, Some(INITRD_FILE.into()), b"x");
    let v = kettle_verify::verify(&tampered, &expect);
    assert!(v
        .failures()
        .any(|c| c.name() == format!("artifact:{INITRD_FILE}")));
}

#[test]
fn a_modified_tree_and_missing_inputs_are_said() {
    let image = image();
    let source = SourceCommit {
        repository: "https://github.com/kettle-build/kettle".into(),
        commit: COMMIT.into(),
        modified: true,
    };
    let p = ImageProvenance {
        image: &image,
        init: b"init",
        kernel_pin: None,
        ovmf_pin: None,
        crates: &[],
        rustc: None,
        ca_roots: None,
        source: Some(&source),
        kernel_tools: None,
        ovmf_tools: None,
    };
    let st = statement(&p).unwrap();
    let deps = &st.predicate.build_definition.resolved_dependencies;
    assert_eq!(deps.len(), 1);
    assert_eq!(deps[0].annotations["kettle_worktreeModified"], true);
    // A pin without its values is an error, not a silently shorter list.
    let bad = PinFile::parse(Path::new("source.pin"), "package=linux\n").unwrap();
    let p = ImageProvenance {
        kernel_pin: Some(&bad),
        ..p
    };
    assert!(statement(&p).unwrap_err().contains("source.pin has no"));
}
