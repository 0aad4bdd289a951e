//! The toolchain and root filesystem bundles that go with an image, as
//! published artifacts: each bundle carries a manifest of what is in it
//! (the Debian packages as `pkg:deb` PURLs, the rustc version and
//! components), kept both beside it (`<bundle>.manifest.json`) and inside it
//! ([`ROOTFS_MANIFEST_PATH`], [`TOOLCHAIN_MANIFEST_PATH`]), and the image
//! directory holds their pins ([`BUNDLES_FILE`]), so `kettle init` writes a
//! recipe no one has to invent URLs or digests for.
//!
//! A bundle's URL is a marker, not a download: `https://kettle-bundle.invalid/<file>`.
//! `.invalid` never resolves (RFC 6761), so nobody can ever serve something
//! else under it, and anyone reading a provenance sees that the bundle was
//! delivered with the build (`kettle build` finds it beside the image, or
//! takes it with `--input FILE`), identified by its SHA-256 alone. Whoever
//! publishes bundles at a real URL writes that URL instead (`kettle bundle
//! pins --url-base`, `BUNDLE_URL_BASE` for `make bundles`).

use std::fs;
use std::path::{Path, PathBuf};

pub mod disk;

use kettle_provenance::{purl, Sha256Digest};
pub use kettle_wire::bundle_manifest::{
    BundleManifest, Package, RustcInfo, MANIFEST_SCHEMA, ROOTFS_MANIFEST_PATH,
    TOOLCHAIN_MANIFEST_PATH,
};
use serde::{Deserialize, Serialize};

/// The pins file in an image directory.
pub const BUNDLES_FILE: &str = "bundles.json";
/// `schema` of [`BUNDLES_FILE`].
pub const BUNDLES_SCHEMA: &str = "kettle.bundles/v1";
/// The URL base of bundles delivered with the build rather than downloaded.
pub const MARKER_URL_BASE: &str = "https://kettle-bundle.invalid/";
/// The suffix of the manifest beside a bundle: `rootfs.tar.gz.manifest.json`.
pub const MANIFEST_SUFFIX: &str = ".manifest.json";

/// Why bundle pins or manifests could not be read or made.
#[derive(Debug, thiserror::Error)]
pub enum BundlesError {
    /// The image directory has no pins file.
    #[error("{0} is missing: the image directory does not say which bundles go with it (run `make bundles`, which writes it, or `kettle bundle pins`; or pass --image DIR of a published image, or set KETTLE_IMAGE)")]
    NoPins(PathBuf),
    /// A file could not be read or written.
    #[error("{path}: {source}")]
    Io {
        /// The file.
        path: PathBuf,
        /// Why.
        #[source]
        source: std::io::Error,
    },
    /// A file is not what it should be.
    #[error("{path}: {message}")]
    Invalid {
        /// The file.
        path: PathBuf,
        /// What is wrong.
        message: String,
    },
    /// A package line could not be made a PURL.
    #[error("package {line:?}: {source}")]
    Purl {
        /// The dpkg-query line.
        line: String,
        /// Why.
        #[source]
        source: purl::PurlError,
    },
}

fn io(path: &Path) -> impl FnOnce(std::io::Error) -> BundlesError + '_ {
    move |source| BundlesError::Io {
        path: path.into(),
        source,
    }
}

/// `bundles.json`: the default bundles of an image.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BundlePins {
    /// [`BUNDLES_SCHEMA`].
    pub schema: String,
    /// How the bundles reach a build (said to whoever opens the file).
    pub delivery: String,
    /// The Rust toolchain bundle.
    pub toolchain: BundlePin,
    /// The build root filesystem bundle.
    pub rootfs: BundlePin,
}

/// One bundle's pin.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BundlePin {
    /// The bundle's file name (looked for in the image directory and its parent).
    pub file: String,
    /// The URL to write in kettle.toml ([`MARKER_URL_BASE`] unless published elsewhere).
    pub url: String,
    /// SHA-256 of the bundle, lowercase hex.
    pub sha256: String,
    /// Size in bytes.
    pub size: u64,
    /// One line on what it is (rustc version, distribution and package count).
    pub summary: String,
    /// Its manifest, when the bundle was made with one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub manifest: Option<ManifestPin>,
    /// Its read-only disk (EROFS with a dm-verity tree), when one was made beside it
    /// (`kettle bundle disk`). Not yet read by the guest, which unpacks the bundle.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub disk: Option<disk::DiskPin>,
}

/// Where a bundle's manifest is and its digest.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ManifestPin {
    /// The manifest beside the bundle (`<file>.manifest.json`).
    pub file: String,
    /// SHA-256 of its bytes (the same bytes are inside the bundle at `inside`).
    pub sha256: String,
    /// The path of the same file inside the bundle.
    pub inside: String,
}

/// The manifest of a Debian root filesystem from `dpkg-query -W -f '${Package}\t${Version}\t${Architecture}\n'`
/// run inside it (tab- or space-separated lines).
pub fn rootfs_manifest(
    dpkg_query: &str,
    distribution: &str,
) -> Result<BundleManifest, BundlesError> {
    let mut packages = Vec::new();
    for line in dpkg_query.lines().filter(|l| !l.trim().is_empty()) {
        let fields: Vec<&str> = line.split(['\t', ' ']).filter(|f| !f.is_empty()).collect();
        let [name, version, arch] = fields[..] else {
            return Err(BundlesError::Invalid {
                path: "dpkg-query output".into(),
                message: format!("{line:?} is not `name version architecture`"),
            });
        };
        let purl = purl::deb(
            kettle_wire::bundle_manifest::DEB_VENDOR,
            name,
            version,
            arch,
        )
        .map_err(|source| BundlesError::Purl {
            line: line.into(),
            source,
        })?;
        packages.push(Package {
            name: name.into(),
            version: version.into(),
            arch: arch.into(),
            purl,
        });
    }
    packages.sort_by(|a, b| (&a.name, &a.arch).cmp(&(&b.name, &b.arch)));
    Ok(BundleManifest {
        schema: MANIFEST_SCHEMA.into(),
        kind: "rootfs".into(),
        summary: format!("Debian {distribution}, {} packages", packages.len()),
        packages,
        rustc: None,
        components: Vec::new(),
    })
}

/// The manifest of a toolchain root (`bin/rustc`, `bin/cargo`, `lib/rustlib/<target>/`):
/// `rustc -vV` and `cargo -V` as its binaries say, and what it carries.
pub fn toolchain_manifest(root: &Path) -> Result<BundleManifest, BundlesError> {
    let run = |bin: &str, arg: &str| -> Result<String, BundlesError> {
        let path = root.join("bin").join(bin);
        let out = std::process::Command::new(&path)
            .arg(arg)
            .output()
            .map_err(io(&path))?;
        if !out.status.success() {
            return Err(BundlesError::Invalid {
                path,
                message: format!(
                    "`{bin} {arg}` failed: {}",
                    String::from_utf8_lossy(&out.stderr)
                ),
            });
        }
        Ok(String::from_utf8_lossy(&out.stdout).into_owned())
    };
    let vv = run("rustc", "-vV")?;
    let cargo = run("cargo", "-V")?.trim().to_string();
    let rustc = parse_rustc_vv(&vv, cargo).ok_or_else(|| BundlesError::Invalid {
        path: root.join("bin/rustc"),
        message: format!("unexpected `rustc -vV` output {vv:?}"),
    })?;
    let mut components = Vec::new();
    for bin in [
        "cargo",
        "rustc",
        "rustdoc",
        "rustfmt",
        "cargo-clippy",
        "clippy-driver",
    ] {
        if root.join("bin").join(bin).is_file() {
            components.push(bin.to_string());
        }
    }
    let rustlib = root.join("lib/rustlib");
    let mut targets: Vec<String> = fs::read_dir(&rustlib)
        .map_err(io(&rustlib))?
        .filter_map(|e| e.ok())
        .filter(|e| e.path().join("lib").is_dir())
        .map(|e| format!("rust-std-{}", e.file_name().to_string_lossy()))
        .collect();
    targets.sort();
    components.extend(targets);
    Ok(BundleManifest {
        schema: MANIFEST_SCHEMA.into(),
        kind: "toolchain".into(),
        summary: format!("{} with {}", rustc.version, components.join(", ")),
        packages: Vec::new(),
        rustc: Some(rustc),
        components,
    })
}

fn parse_rustc_vv(vv: &str, cargo: String) -> Option<RustcInfo> {
    let mut lines = vv.lines();
    let version = lines.next()?.trim().to_string();
    let field = |key: &str| {
        vv.lines()
            .find_map(|l| l.strip_prefix(key))
            .map(|v| v.trim().to_string())
            .unwrap_or_default()
    };
    Some(RustcInfo {
        release: field("release:"),
        commit_hash: field("commit-hash:"),
        host: field("host:"),
        llvm_version: field("LLVM version:"),
        version: version.starts_with("rustc ").then_some(version)?,
        cargo,
    })
}

/// The pin of the bundle at `path`: its digest and size, and its manifest beside it if there is one.
pub fn pin_for(path: &Path, inside: &str, url_base: &str) -> Result<BundlePin, BundlesError> {
    let file = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .ok_or_else(|| BundlesError::Invalid {
            path: path.into(),
            message: "not a file name".into(),
        })?;
    let digest = Sha256Digest::of_file(path).map_err(io(path))?;
    let sha256 = digest.to_hex();
    let size = fs::metadata(path).map_err(io(path))?.len();
    let manifest_path = PathBuf::from(format!("{}{MANIFEST_SUFFIX}", path.display()));
    let (manifest, summary) = match fs::read(&manifest_path) {
        Ok(bytes) => {
            let m: BundleManifest =
                serde_json::from_slice(&bytes).map_err(|e| BundlesError::Invalid {
                    path: manifest_path.clone(),
                    message: e.to_string(),
                })?;
            (
                Some(ManifestPin {
                    file: format!("{file}{MANIFEST_SUFFIX}"),
                    sha256: Sha256Digest::of_bytes(&bytes).to_hex(),
                    inside: inside.into(),
                }),
                m.summary,
            )
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            (None, format!("{file} (made without a manifest)"))
        }
        Err(e) => return Err(io(&manifest_path)(e)),
    };
    let disk = disk::pin_beside(path, &file, &digest)?;
    Ok(BundlePin {
        url: format!("{}/{file}", url_base.trim_end_matches('/')),
        file,
        sha256,
        size,
        summary,
        manifest,
        disk,
    })
}

impl BundlePins {
    /// The pins of a toolchain and a rootfs bundle (and their manifests beside them).
    pub fn for_files(
        toolchain: &Path,
        rootfs: &Path,
        url_base: &str,
    ) -> Result<BundlePins, BundlesError> {
        Ok(BundlePins {
            schema: BUNDLES_SCHEMA.into(),
            delivery: if url_base == MARKER_URL_BASE {
                format!("{MARKER_URL_BASE} never resolves (RFC 6761): the bundles are delivered with the build (found beside the image, or given with `kettle build --input FILE`) and identified by their sha256")
            } else {
                format!("downloadable under {url_base}; identified by their sha256")
            },
            toolchain: pin_for(toolchain, TOOLCHAIN_MANIFEST_PATH, url_base)?,
            rootfs: pin_for(rootfs, ROOTFS_MANIFEST_PATH, url_base)?,
        })
    }

    /// Reads `<image_dir>/bundles.json`.
    pub fn load(image_dir: &Path) -> Result<BundlePins, BundlesError> {
        let path = image_dir.join(BUNDLES_FILE);
        let bytes = match fs::read(&path) {
            Ok(b) => b,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                return Err(BundlesError::NoPins(path))
            }
            Err(e) => return Err(io(&path)(e)),
        };
        let pins: BundlePins =
            serde_json::from_slice(&bytes).map_err(|e| BundlesError::Invalid {
                path: path.clone(),
                message: e.to_string(),
            })?;
        if pins.schema != BUNDLES_SCHEMA {
            return Err(BundlesError::Invalid {
                path,
                message: format!("schema {:?}, expected {BUNDLES_SCHEMA:?}", pins.schema),
            });
        }
        for p in [&pins.toolchain, &pins.rootfs] {
            if Sha256Digest::from_hex(&p.sha256).is_err() || p.file.contains('/') {
                return Err(BundlesError::Invalid {
                    path,
                    message: format!("bundle {:?}: bad sha256 or file name", p.file),
                });
            }
        }
        Ok(pins)
    }

    /// The pins as written: pretty JSON and a final newline.
    pub fn to_bytes(&self) -> Vec<u8> {
        let mut b = serde_json::to_vec_pretty(self).expect("pins serialize");
        b.push(b'\n');
        b
    }
}

/// True for a URL under a `.invalid` host (RFC 6761): a marker that nobody can serve,
/// so the host never tries to download it and says how to deliver the file instead.
pub fn is_marker_url(url: &str) -> bool {
    let Some(rest) = url.split_once("://").map(|(_, r)| r) else {
        return false;
    };
    let host = rest.split(['/', ':']).next().unwrap_or("");
    let host = host.rsplit_once('@').map_or(host, |(_, h)| h);
    host.eq_ignore_ascii_case("invalid") || host.to_ascii_lowercase().ends_with(".invalid")
}

/// The directories a bundle named in an image's pins is looked for in: the image directory and its parent.
pub fn search_dirs(image_dir: &Path) -> Vec<PathBuf> {
    let mut dirs = vec![image_dir.to_path_buf()];
    if let Some(parent) = image_dir.parent().filter(|p| !p.as_os_str().is_empty()) {
        dirs.push(parent.to_path_buf());
    } else {
        dirs.push(PathBuf::from(".."));
    }
    dirs
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_rootfs_manifest_lists_every_package_as_a_deb_purl() {
        let dpkg = "gcc-12\t12.2.0-14+deb12u1\tamd64\nbase-files 12.4+deb12u11 amd64\ntzdata\t2025b-0+deb12u1\tall\nlibc6\t2.36-9+deb12u10\tamd64\nperl-base\t5.36.0-7+deb12u2\tamd64\nlibgcc-s1\t12.2.0-14+deb12u1\tamd64\nlibpam0g\t1.5.2-6+deb12u1\tamd64\nmawk\t1.3.4.20200120-3.1\tamd64\nlibsemanage2\t3.4-1+b5\tamd64\nsensible-utils\t0.0.17+nmu1\tall\nlibdb5.3\t5.3.28+dfsg2-1\tamd64\ne2fsprogs\t1.47.0-2\tamd64\nlibuuid1\t2.38.1-5+deb12u3\tamd64\nlibudev1\t252.38-1~deb12u1\tamd64\nbsdutils\t1:2.38.1-5+deb12u3\tamd64\n";
        let m = rootfs_manifest(dpkg, "bookworm").unwrap();
        assert_eq!(m.kind, "rootfs");
        assert_eq!(m.packages.len(), 15);
        assert_eq!(m.packages[0].name, "base-files", "sorted by name");
        let purl_of = |n: &str| {
            m.packages
                .iter()
                .find(|p| p.name == n)
                .unwrap()
                .purl
                .clone()
        };
        assert_eq!(
            purl_of("gcc-12"),
            "pkg:deb/debian/gcc-12@12.2.0-14%2Bdeb12u1?arch=amd64"
        );
        assert_eq!(
            purl_of("tzdata"),
            "pkg:deb/debian/tzdata@2025b-0%2Bdeb12u1?arch=all"
        );
        assert_eq!(
            purl_of("bsdutils"),
            "pkg:deb/debian/bsdutils@1:2.38.1-5%2Bdeb12u3?arch=amd64"
        );
        assert_eq!(
            purl_of("libudev1"),
            "pkg:deb/debian/libudev1@252.38-1~deb12u1?arch=amd64"
        );
        assert!(m.summary.contains("15 packages"), "{}", m.summary);
        assert!(rootfs_manifest("just-a-name\n", "bookworm").is_err());
    }

    #[test]
    fn rustc_vv_parses() {
        let vv = "rustc 1.85.0 (4d91de4e4 2025-02-17)\nbinary: rustc\ncommit-hash: 4d91de4e48198da2e33413efdcd9cd2cc0c46688\ncommit-date: 2025-02-17\nhost: x86_64-unknown-linux-gnu\nrelease: 1.85.0\nLLVM version: 19.1.7\n";
        let r = parse_rustc_vv(vv, "cargo 1.85.0".into()).unwrap();
        assert_eq!(r.release, "1.85.0");
        assert_eq!(r.host, "x86_64-unknown-linux-gnu");
        assert_eq!(r.llvm_version, "19.1.7");
        assert!(parse_rustc_vv("nonsense", String::new()).is_none());
    }

    #[test]
    fn pins_are_made_from_files_and_read_back() {
        let dir = tempfile::tempdir().unwrap();
        let (tc, rf) = (
            dir.path().join("toolchain.tar.gz"),
            dir.path().join("rootfs.tar.gz"),
        );
        fs::write(&tc, b"toolchain").unwrap();
        fs::write(&rf, b"rootfs").unwrap();
        let manifest = rootfs_manifest("libc6 2.36-9 amd64\n", "bookworm").unwrap();
        fs::write(
            dir.path().join("rootfs.tar.gz.manifest.json"),
            manifest.to_bytes(),
        )
        .unwrap();
        let pins = BundlePins::for_files(&tc, &rf, MARKER_URL_BASE).unwrap();
        assert_eq!(
            pins.rootfs.url,
            "https://kettle-bundle.invalid/rootfs.tar.gz"
        );
        assert_eq!(
            pins.rootfs.sha256,
            Sha256Digest::of_bytes(b"rootfs").to_hex()
        );
        assert_eq!(
            pins.rootfs.manifest.as_ref().unwrap().sha256,
            Sha256Digest::of_bytes(&manifest.to_bytes()).to_hex()
        );
        assert!(pins.toolchain.manifest.is_none());
        let image = dir.path().join("image");
        fs::create_dir(&image).unwrap();
        let err = BundlePins::load(&image).unwrap_err();
        assert!(err.to_string().contains("make bundles"), "{err}");
        fs::write(image.join(BUNDLES_FILE), pins.to_bytes()).unwrap();
        assert_eq!(BundlePins::load(&image).unwrap(), pins);
        assert_eq!(
            search_dirs(&image),
            [image.clone(), dir.path().to_path_buf()]
        );
    }

    #[test]
    fn marker_urls_are_the_invalid_domain() {
        assert!(is_marker_url("https://kettle-bundle.invalid/rootfs.tar.gz"));
        assert!(is_marker_url("https://example.invalid/x"));
        assert!(is_marker_url("https://u@X.INVALID:443/x"));
        assert!(!is_marker_url("https://static.rust-lang.org/x"));
        assert!(!is_marker_url("https://invalid.example.com/x"));
    }
}
