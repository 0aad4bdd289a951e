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

use crate::bundle::{AssembledImage, INITRD_FILE, KERNEL_FILE, MANIFEST_FILE, OVMF_FILE};
use crate::table::TABLE_FILE;
use kettle_provenance::merkle::input_merkle_root_hex;
use kettle_provenance::statement::{
    BuildDefinition, Builder, JsonObject, Provenance, RunDetails, DIGEST_GIT_COMMIT, DIGEST_SHA256,
};
use kettle_provenance::vocab;
use kettle_provenance::{ids, purl, ResourceDescriptor, Statement};
use kettle_wire::recipe::Dependency;
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
pub fn crates_from_tree(tree: &str, lock: &[Dependency]) -> Result<Vec<Dependency>, String> {
    let by_key: BTreeMap<(&str, &str), &Dependency> = lock
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
    pub crates: &'a [Dependency],
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
            d = d.with_annotation(vocab::WORKTREE_MODIFIED, true);
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
                .with_annotation(vocab::ROLE, "kernel source (Debian package tarball)")
                .with_annotation(vocab::BUILD_TIMESTAMP, pin.get("build_timestamp")?),
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
                        vocab::ROLE,
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
            .with_annotation(vocab::VERSION, r.line.clone());
        if let Some(h) = &r.commit_hash {
            d = d.with_digest(DIGEST_GIT_COMMIT, h.clone());
        }
        if let Some(h) = &r.host {
            d = d.with_annotation(vocab::HOST, h.clone());
        }
        if let Some(l) = &r.llvm {
            d = d.with_annotation(vocab::LLVM, l.clone());
        }
        deps.push(d);
    }
    for c in p.crates {
        deps.push(
            ResourceDescriptor::from_uri(
                purl::cargo(&c.name, &c.version).map_err(|e| e.to_string())?,
            )
            .with_digest(DIGEST_SHA256, c.sha256.to_hex()),
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
    internal.insert(vocab::VERSION.into(), json!(env!("CARGO_PKG_VERSION")));
    if let Some(t) = p.kernel_tools {
        internal.insert(vocab::KERNEL_TOOLS.into(), t.as_object());
    }
    if let Some(t) = p.ovmf_tools {
        internal.insert(vocab::OVMF_TOOLS.into(), t.as_object());
    }
    internal.insert(
        vocab::INPUT_MERKLE_ROOT.into(),
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
                    .with_annotation(vocab::GUEST_PATH, "/init")],
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
mod tests;
