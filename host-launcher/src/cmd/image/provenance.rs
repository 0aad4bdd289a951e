//! The image's own provenance (`provenance.json` next to `manifest.json`): an
//! in-toto Statement v1 with SLSA build provenance v1 saying what the image
//! was built from (the pinned kernel and edk2 sources, every crate kettle-init
//! links, the compiler, the CA roots, the kettle commit) and by which tools.
//!
//! The builder is `kettle image` on the platform team's own machine
//! ([`ids::BUILDER_ID_IMAGE`]): not a TEE builder, and nothing attests this
//! Statement. It is trusted because anyone can rebuild the image bit for bit
//! from these inputs (`make check-reproducible`) and recompute its launch
//! digests (`kettle measure --manifest`). It has no timestamps, so the same
//! inputs give the same bytes.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

use kettle_image::bundle::{AssembledImage, INITRD_FILE, KERNEL_FILE, MANIFEST_FILE, OVMF_FILE};
use kettle_image::table::TABLE_FILE;
use kettle_provenance::merkle::{input_merkle_root_hex, INPUT_MERKLE_ROOT_KEY};
use kettle_provenance::statement::{
    BuildDefinition, Builder, JsonObject, Provenance, RunDetails, DIGEST_GIT_COMMIT, DIGEST_SHA256,
};
use kettle_provenance::{ids, purl, ResourceDescriptor, Statement};
use kettle_wire::lockfile::LockedCrate;
use serde_json::{json, Value};

/// The provenance's file name in the image directory.
pub const PROVENANCE_FILE: &str = "provenance.json";
/// `name` of the kettle source commit's resolvedDependencies entry.
pub const SOURCE_DEPENDENCY: &str = ids::SOURCE_DEPENDENCY;
/// `name` of the compiler's resolvedDependencies entry.
pub const RUSTC_DEPENDENCY: &str = "rustc";

/// A `KEY=VALUE` pin file (kernel-config/source.pin, ovmf.pin); `#` lines are comments.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PinFile {
    /// Where it was read.
    pub path: PathBuf,
    /// Its values.
    pub values: BTreeMap<String, String>,
}

impl PinFile {
    /// Parses pin text.
    pub fn parse(path: &Path, text: &str) -> Result<PinFile, String> {
        let mut values = BTreeMap::new();
        for (n, line) in text.lines().enumerate() {
            let line = line.trim();
            if line.is_empty() || line.starts_with('#') {
                continue;
            }
            let (k, v) = line
                .split_once('=')
                .ok_or_else(|| format!("line {} is not KEY=VALUE: {line:?}", n + 1))?;
            values.insert(k.trim().to_string(), v.trim().to_string());
        }
        Ok(PinFile {
            path: path.to_path_buf(),
            values,
        })
    }

    /// The value of `key`.
    pub fn get(&self, key: &str) -> Result<&str, String> {
        self.values
            .get(key)
            .map(String::as_str)
            .filter(|v| !v.is_empty())
            .ok_or_else(|| format!("{} has no {key}= line", self.path.display()))
    }

    /// `<package> <version>`, the manifest's `versions` value.
    pub fn package_version(&self) -> Result<String, String> {
        Ok(format!("{} {}", self.get("package")?, self.get("version")?))
    }
}

/// A tool record (build/bzImage.tools, build/OVMF.fd.tools): one `name version` a line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ToolRecord {
    /// (name, version) in the file's order.
    pub tools: Vec<(String, String)>,
}

impl ToolRecord {
    /// Parses a tool record.
    pub fn parse(text: &str) -> Result<ToolRecord, String> {
        let mut tools = Vec::new();
        for (n, line) in text.lines().enumerate() {
            let line = line.trim();
            if line.is_empty() {
                continue;
            }
            let (name, version) = line
                .split_once(' ')
                .ok_or_else(|| format!("line {} is not `name version`: {line:?}", n + 1))?;
            tools.push((name.to_string(), version.trim().to_string()));
        }
        if tools.is_empty() {
            return Err("it lists no tool".into());
        }
        Ok(ToolRecord { tools })
    }

    /// `name version, name version, ...` (the manifest's `versions` value).
    pub fn summary(&self) -> String {
        self.tools
            .iter()
            .map(|(n, v)| format!("{n} {v}"))
            .collect::<Vec<_>>()
            .join(", ")
    }

    /// `{name: version}` for internalParameters.
    pub fn as_object(&self) -> Value {
        Value::Object(
            self.tools
                .iter()
                .map(|(n, v)| (n.clone(), Value::String(v.clone())))
                .collect(),
        )
    }
}

/// `rustc -vV`, the compiler of kettle-init.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RustcVersion {
    /// The first line, e.g. `rustc 1.95.0 (59807616e 2026-04-14)` (what `rustc -V` prints).
    pub line: String,
    /// `release:`, e.g. `1.95.0`.
    pub release: String,
    /// `commit-hash:` (a rust-lang/rust commit), when known.
    pub commit_hash: Option<String>,
    /// `host:`.
    pub host: Option<String>,
    /// `LLVM version:`.
    pub llvm: Option<String>,
}

impl RustcVersion {
    /// Parses `rustc -vV` output.
    pub fn parse(text: &str) -> Result<RustcVersion, String> {
        let mut lines = text.lines().map(str::trim).filter(|l| !l.is_empty());
        let line = lines
            .next()
            .filter(|l| l.starts_with("rustc "))
            .ok_or("it does not start with `rustc <version>` (pass the output of `rustc -vV`)")?
            .to_string();
        let mut fields = BTreeMap::new();
        for l in lines {
            if let Some((k, v)) = l.split_once(':') {
                fields.insert(k.trim().to_string(), v.trim().to_string());
            }
        }
        let release = fields
            .get("release")
            .cloned()
            .ok_or("it has no `release:` line (pass `rustc -vV`, not `rustc -V`)")?;
        let commit_hash = fields
            .get("commit-hash")
            .filter(|h| h.len() == 40 && h.bytes().all(|b| b.is_ascii_hexdigit()))
            .map(|h| h.to_ascii_lowercase());
        Ok(RustcVersion {
            line,
            release,
            commit_hash,
            host: fields.get("host").cloned(),
            llvm: fields.get("LLVM version").cloned(),
        })
    }
}

/// The kettle commit the image was built from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SourceCommit {
    /// The repository URL.
    pub repository: String,
    /// The full commit id.
    pub commit: String,
    /// Whether the work tree had uncommitted changes (then the commit does not describe the build).
    pub modified: bool,
}

/// The registry crates among `cargo tree --prefix none` lines, each with its
/// Cargo.lock checksum; workspace (path) crates are skipped: they are the source.
pub fn crates_from_tree(tree: &str, lock: &[LockedCrate]) -> Result<Vec<LockedCrate>, String> {
    let by_key: BTreeMap<(&str, &str), &LockedCrate> = lock
        .iter()
        .map(|c| ((c.name.as_str(), c.version.as_str()), c))
        .collect();
    let mut out = BTreeSet::new();
    for line in tree.lines() {
        let line = line.trim();
        if line.is_empty() {
            continue;
        }
        let mut parts = line.split_whitespace();
        let (Some(name), Some(version)) = (parts.next(), parts.next()) else {
            return Err(format!(
                "{line:?} is not `name vVERSION` (cargo tree --prefix none)"
            ));
        };
        let version = version.strip_prefix('v').unwrap_or(version);
        let rest: Vec<&str> = parts.collect();
        if rest
            .iter()
            .any(|p| p.starts_with("(/") || p.starts_with("(file:"))
        {
            continue; // a path crate of the workspace
        }
        match by_key.get(&(name, version)) {
            Some(c) => {
                out.insert((*c).clone());
            }
            None => {
                return Err(format!(
                    "crate {name} {version} is not a registry crate of Cargo.lock (is the crate list from this lock file?)"
                ))
            }
        }
    }
    if out.is_empty() {
        return Err("it names no registry crate".into());
    }
    Ok(out.into_iter().collect())
}

/// Everything the image's Statement is made from.
pub struct ImageProvenance<'a> {
    /// The assembled image (subjects, manifest).
    pub image: &'a AssembledImage,
    /// The kettle-init binary (a byproduct: it is built from the crates, the source and rustc).
    pub init: &'a [u8],
    /// kernel-config/source.pin.
    pub kernel_pin: Option<&'a PinFile>,
    /// kernel-config/ovmf.pin.
    pub ovmf_pin: Option<&'a PinFile>,
    /// The crates kettle-init links.
    pub crates: &'a [LockedCrate],
    /// The compiler.
    pub rustc: Option<&'a RustcVersion>,
    /// The CA roots' dependency entry.
    pub ca_roots: Option<&'a ResourceDescriptor>,
    /// The kettle commit.
    pub source: Option<&'a SourceCommit>,
    /// The kernel's tool record.
    pub kernel_tools: Option<&'a ToolRecord>,
    /// The firmware's tool record.
    pub ovmf_tools: Option<&'a ToolRecord>,
}

/// The resolvedDependencies, in a fixed order: source, kernel source, edk2
/// tarballs, rustc, crates (sorted), CA roots.
pub fn resolved_dependencies(p: &ImageProvenance<'_>) -> Result<Vec<ResourceDescriptor>, String> {
    let mut deps = Vec::new();
    if let Some(s) = p.source {
        let mut d = ResourceDescriptor::from_uri(format!("git+{}", s.repository))
            .with_name(SOURCE_DEPENDENCY)
            .with_digest(DIGEST_GIT_COMMIT, s.commit.to_ascii_lowercase());
        if s.modified {
            d = d.with_annotation("kettle_worktreeModified", true);
        }
        deps.push(d);
    }
    if let Some(pin) = p.kernel_pin {
        let tarball = pin.get("tarball")?;
        let file = Path::new(tarball)
            .file_name()
            .map_or(tarball.to_string(), |f| f.to_string_lossy().into_owned());
        deps.push(
            ResourceDescriptor::from_uri(generic(pin.get("package")?, pin.get("version")?)?)
                .with_name(file)
                .with_digest(DIGEST_SHA256, pin.get("sha256")?.to_ascii_lowercase())
                .with_annotation("kettle_role", "kernel source (Debian package tarball)")
                .with_annotation("kettle_buildTimestamp", pin.get("build_timestamp")?),
        );
    }
    if let Some(pin) = p.ovmf_pin {
        let uri = generic(pin.get("package")?, pin.get("version")?)?;
        for (file, sha) in [("orig", "orig_sha256"), ("debian", "debian_sha256")] {
            deps.push(
                ResourceDescriptor::from_uri(uri.clone())
                    .with_name(pin.get(file)?)
                    .with_digest(DIGEST_SHA256, pin.get(sha)?.to_ascii_lowercase())
                    .with_annotation(
                        "kettle_role",
                        format!(
                            "firmware source (Debian {} source package)",
                            pin.get("suite")?
                        ),
                    ),
            );
        }
    }
    if let Some(r) = p.rustc {
        let mut d = ResourceDescriptor::from_uri(generic("rustc", &r.release)?)
            .with_name(RUSTC_DEPENDENCY)
            .with_annotation("kettle_version", r.line.clone());
        if let Some(h) = &r.commit_hash {
            d = d.with_digest(DIGEST_GIT_COMMIT, h.clone());
        }
        if let Some(h) = &r.host {
            d = d.with_annotation("kettle_host", h.clone());
        }
        if let Some(l) = &r.llvm {
            d = d.with_annotation("kettle_llvm", l.clone());
        }
        deps.push(d);
    }
    for c in p.crates {
        deps.push(
            ResourceDescriptor::from_uri(
                purl::cargo(&c.name, &c.version).map_err(|e| e.to_string())?,
            )
            .with_digest(DIGEST_SHA256, c.checksum.to_hex()),
        );
    }
    if let Some(r) = p.ca_roots {
        deps.push(r.clone());
    }
    Ok(deps)
}

fn generic(name: &str, version: &str) -> Result<String, String> {
    purl::generic(name, version, &[]).map_err(|e| e.to_string())
}

/// The Statement (validated).
pub fn statement(p: &ImageProvenance<'_>) -> Result<Statement, String> {
    let m = &p.image.manifest;
    let subjects = p
        .image
        .files()
        .iter()
        .filter(|(name, _)| {
            [
                KERNEL_FILE,
                INITRD_FILE,
                OVMF_FILE,
                MANIFEST_FILE,
                TABLE_FILE,
            ]
            .contains(name)
        })
        .map(|(name, bytes)| ResourceDescriptor::for_bytes(*name, bytes))
        .collect();
    let deps = resolved_dependencies(p)?;

    let mut external = JsonObject::new();
    external.insert("cmdline".into(), json!(m.cmdline));
    external.insert("vcpus".into(), json!(m.vcpus));
    external.insert("vcpuType".into(), json!(m.vcpu_type.to_string()));
    external.insert("vmmType".into(), json!(m.vmm_type.to_string()));
    external.insert("guestFeatures".into(), json!(m.guest_features.to_string()));
    let mut types: Vec<String> = Vec::new();
    let mut counts: BTreeSet<u32> = BTreeSet::new();
    for row in &p.image.table.launch_digests {
        let t = row.vcpu_type.to_string();
        if !types.contains(&t) {
            types.push(t);
        }
        counts.insert(row.vcpus);
    }
    external.insert("publishedVcpuTypes".into(), json!(types));
    external.insert("publishedVcpuCounts".into(), json!(counts));
    if let Some(s) = p.source {
        external.insert("repository".into(), json!(s.repository));
    }

    let mut internal = JsonObject::new();
    internal.insert("kettle_version".into(), json!(env!("CARGO_PKG_VERSION")));
    if let Some(t) = p.kernel_tools {
        internal.insert("kettle_kernelTools".into(), t.as_object());
    }
    if let Some(t) = p.ovmf_tools {
        internal.insert("kettle_ovmfTools".into(), t.as_object());
    }
    internal.insert(
        INPUT_MERKLE_ROOT_KEY.into(),
        json!(input_merkle_root_hex(&deps).map_err(|e| e.to_string())?),
    );

    let statement = Statement::new(
        subjects,
        Provenance {
            build_definition: BuildDefinition {
                build_type: ids::BUILD_TYPE_IMAGE.into(),
                external_parameters: external,
                internal_parameters: internal,
                resolved_dependencies: deps,
            },
            run_details: RunDetails {
                builder: Builder {
                    // The platform team's machine running `kettle image`: not a TEE builder.
                    id: ids::BUILDER_ID_IMAGE.into(),
                    version: BTreeMap::from([(
                        "kettle".to_string(),
                        env!("CARGO_PKG_VERSION").to_string(),
                    )]),
                    builder_dependencies: Vec::new(),
                },
                metadata: None,
                byproducts: vec![ResourceDescriptor::for_bytes("kettle-init", p.init)
                    .with_annotation("kettle_guestPath", "/init")],
            },
        },
    );
    statement.validate().map_err(|e| e.to_string())?;
    Ok(statement)
}

/// The canonical (RFC 8785) bytes of the Statement, as written to provenance.json.
pub fn to_bytes(statement: &Statement) -> Result<Vec<u8>, String> {
    statement.to_canonical_bytes().map_err(|e| e.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;
    use kettle_image::manifest::{FileRef, ImageManifest, MANIFEST_SCHEMA};
    use kettle_image::measure::{GuestFeatures, LaunchDigest, VmmType};
    use kettle_image::table::{LaunchDigestTable, TableRow, TABLE_SCHEMA};
    use kettle_provenance::{jcs, Sha256Digest};
    use kettle_verify::{Artifact, Bundle, CheckId, Expectations, SourcePin, Status};

    const RUSTC_VV: &str = "rustc 1.95.0 (59807616e 2026-04-14)\nbinary: rustc\ncommit-hash: 59807616e1fa2540724bfbac14d7976d7e4a3860\ncommit-date: 2026-04-14\nhost: x86_64-unknown-linux-gnu\nrelease: 1.95.0\nLLVM version: 22.1.2\n";
    const COMMIT: &str = "bb47b145add8ab5f66eafbfdc2a2c62fb9570184";
    const SUM: &str = "e49d0e65abc00c142e8f9428da991da9f1a250c39be97459901eb12b9b49f62a";

    fn image() -> AssembledImage {
        let file = |name: &str, bytes: &[u8]| FileRef {
            file: name.into(),
            sha256: Sha256Digest::of_bytes(bytes).to_hex(),
        };
        let manifest = ImageManifest {
            schema: MANIFEST_SCHEMA,
            kernel: file(KERNEL_FILE, b"kernel"),
            initrd: file(INITRD_FILE, b"initrd"),
            ovmf: file(OVMF_FILE, b"ovmf"),
            cmdline: "console=ttyS0".into(),
            vcpus: 2,
            vcpu_type: "EPYC-v4".parse().unwrap(),
            vmm_type: VmmType::Qemu,
            guest_features: GuestFeatures::default(),
            launch_digest: LaunchDigest([7; 48]),
            initramfs: Vec::new(),
            versions: BTreeMap::new(),
        };
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
                    [1, 2].map(|n| TableRow {
                        vcpu_type: t.parse().unwrap(),
                        vcpus: n,
                        launch_digest: LaunchDigest([n as u8; 48]),
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

    fn crate_(name: &str, version: &str) -> LockedCrate {
        LockedCrate {
            name: name.into(),
            version: version.into(),
            checksum: Sha256Digest::from_hex(SUM).unwrap(),
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
        crates: &'a [LockedCrate],
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
}
