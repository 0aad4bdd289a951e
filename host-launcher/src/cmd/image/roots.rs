//! The CA roots `kettle image` puts into the initramfs (`/etc/kettle/ca-roots.pem`,
//! trusted by the guest's upstream HTTPS mode). They are measured, so by default
//! they come from a pinned, reviewable source and not from the building machine:
//! Mozilla's root set as shipped in the `webpki-root-certs` crate (data only,
//! pinned by Cargo.lock's checksum), written as one PEM bundle in a fixed order.

use std::path::{Path, PathBuf};

use kettle_provenance::statement::DIGEST_SHA256;
use kettle_provenance::{purl, vocab, ResourceDescriptor};
use sha2::{Digest, Sha256};

use crate::cmd::measure::base64;

/// The `webpki-root-certs` version host-launcher/Cargo.toml pins exactly.
pub const WEBPKI_ROOT_CERTS_VERSION: &str = "1.0.11";
/// Its `.crate` SHA-256 in Cargo.lock (a test keeps both in step with the lock file).
pub const WEBPKI_ROOT_CERTS_CHECKSUM: &str =
    "e49d0e65abc00c142e8f9428da991da9f1a250c39be97459901eb12b9b49f62a";
/// The crate's name.
pub const WEBPKI_ROOT_CERTS: &str = "webpki-root-certs";

/// Where the CA roots come from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CaRootsSource {
    /// Mozilla's root set from the pinned `webpki-root-certs` crate (the default).
    Pinned,
    /// A PEM bundle the caller names (`--ca-roots`).
    File(PathBuf),
    /// No roots (`--no-ca-roots`): upstream HTTPS cannot work in the guest.
    None,
}

/// The roots chosen for an image.
#[derive(Debug, Clone)]
pub struct CaRoots {
    /// The PEM bundle's bytes (None for [`CaRootsSource::None`]).
    pub pem: Option<Vec<u8>>,
    /// The manifest's `versions["ca-roots"]`.
    pub description: String,
    /// The provenance's resolvedDependencies entry (named `ca-roots`).
    pub dependency: Option<ResourceDescriptor>,
}

/// `name` of the CA roots' resolvedDependencies entry.
pub const CA_ROOTS_DEPENDENCY: &str = "ca-roots";

/// Why the roots could not be read.
#[derive(Debug, thiserror::Error)]
#[error("cannot read the CA roots {path}: {source} (pass a PEM bundle with --ca-roots, or --no-ca-roots)")]
pub struct CaRootsError {
    path: PathBuf,
    source: std::io::Error,
}

impl CaRoots {
    /// Loads the roots from `source`.
    pub fn load(source: &CaRootsSource, guest_path: &str) -> Result<CaRoots, CaRootsError> {
        Ok(match source {
            CaRootsSource::Pinned => {
                let (pem, count) = mozilla_bundle();
                let sha = hex::encode(Sha256::digest(&pem));
                let uri = purl::cargo(WEBPKI_ROOT_CERTS, WEBPKI_ROOT_CERTS_VERSION)
                    .expect("a valid crate name and version");
                CaRoots {
                    description: format!(
                        "{WEBPKI_ROOT_CERTS} {WEBPKI_ROOT_CERTS_VERSION} (Mozilla, {count} roots)"
                    ),
                    dependency: Some(
                        ResourceDescriptor::from_uri(uri)
                            .with_name(CA_ROOTS_DEPENDENCY)
                            .with_digest(DIGEST_SHA256, WEBPKI_ROOT_CERTS_CHECKSUM)
                            .with_annotation("kettle_bundleSha256", sha)
                            .with_annotation(vocab::ROOTS, count)
                            .with_annotation(vocab::GUEST_PATH, guest_path),
                    ),
                    pem: Some(pem),
                }
            }
            CaRootsSource::File(path) => {
                let pem = read(path)?;
                let sha = hex::encode(Sha256::digest(&pem));
                CaRoots {
                    description: format!("file {sha}"),
                    dependency: Some(
                        ResourceDescriptor::default()
                            .with_name(CA_ROOTS_DEPENDENCY)
                            .with_digest(DIGEST_SHA256, sha)
                            .with_annotation(vocab::SOURCE, "file (--ca-roots)")
                            .with_annotation(vocab::GUEST_PATH, guest_path),
                    ),
                    pem: Some(pem),
                }
            }
            CaRootsSource::None => CaRoots {
                pem: None,
                description: "none".into(),
                dependency: None,
            },
        })
    }
}

fn read(path: &Path) -> Result<Vec<u8>, CaRootsError> {
    std::fs::read(path).map_err(|source| CaRootsError {
        path: path.to_path_buf(),
        source,
    })
}

/// Mozilla's roots from the pinned crate as one PEM bundle, ordered by the
/// SHA-256 of each certificate's DER (so the bytes do not depend on the
/// crate's own order), each preceded by a `# sha256 <hex>` line; and the count.
pub fn mozilla_bundle() -> (Vec<u8>, usize) {
    let mut certs: Vec<(String, &[u8])> = webpki_root_certs::TLS_SERVER_ROOT_CERTS
        .iter()
        .map(|c| (hex::encode(Sha256::digest(c.as_ref())), c.as_ref()))
        .collect();
    certs.sort();
    certs.dedup_by(|a, b| a.0 == b.0);
    let mut out = format!(
        "# Kettle guest CA roots (/etc/kettle/ca-roots.pem): Mozilla's root set from the\n\
         # {WEBPKI_ROOT_CERTS} {WEBPKI_ROOT_CERTS_VERSION} crate (sha256 {WEBPKI_ROOT_CERTS_CHECKSUM}),\n\
         # {} roots ordered by the SHA-256 of their DER encoding.\n",
        certs.len()
    );
    for (sha, der) in &certs {
        out.push_str(&format!("# sha256 {sha}\n"));
        out.push_str(&pem("CERTIFICATE", der));
    }
    (out.into_bytes(), certs.len())
}

/// RFC 7468 PEM: base64 in 64-character lines between BEGIN and END.
fn pem(label: &str, der: &[u8]) -> String {
    let b64 = base64(der);
    let mut s = format!("-----BEGIN {label}-----\n");
    for line in b64.as_bytes().chunks(64) {
        s.push_str(std::str::from_utf8(line).expect("base64 is ASCII"));
        s.push('\n');
    }
    s.push_str(&format!("-----END {label}-----\n"));
    s
}

#[cfg(test)]
mod tests {
    use super::*;
    use kettle_wire::devices::GUEST_CA_ROOTS;

    #[test]
    fn pinned_version_and_checksum_are_cargo_locks() {
        let lock =
            std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("../Cargo.lock"))
                .unwrap();
        let crates = kettle_wire::recipe::cargo::lockfile::parse(&lock).unwrap();
        let pinned: Vec<_> = crates
            .iter()
            .filter(|c| c.name == WEBPKI_ROOT_CERTS)
            .collect();
        assert_eq!(pinned.len(), 1, "one {WEBPKI_ROOT_CERTS} in Cargo.lock");
        assert_eq!(
            (pinned[0].version.as_str(), pinned[0].sha256.to_hex()),
            (WEBPKI_ROOT_CERTS_VERSION, WEBPKI_ROOT_CERTS_CHECKSUM.to_string()),
            "moved webpki-root-certs? update WEBPKI_ROOT_CERTS_VERSION/CHECKSUM (and Cargo.toml's =version)"
        );
    }

    #[test]
    fn the_bundle_is_every_root_in_a_fixed_order_and_parses() {
        let (pem_bytes, count) = mozilla_bundle();
        assert_eq!(count, webpki_root_certs::TLS_SERVER_ROOT_CERTS.len());
        assert!(count > 100, "{count} roots");
        assert_eq!(mozilla_bundle().0, pem_bytes, "deterministic");
        // What the guest does (init/src/http.rs): rustls-pemfile over the whole file.
        let parsed: Vec<Vec<u8>> = rustls_pemfile::certs(&mut &pem_bytes[..])
            .map(|c| c.unwrap().as_ref().to_vec())
            .collect();
        assert_eq!(parsed.len(), count);
        let mut want: Vec<Vec<u8>> = webpki_root_certs::TLS_SERVER_ROOT_CERTS
            .iter()
            .map(|c| c.as_ref().to_vec())
            .collect();
        want.sort_by_key(|d| Sha256::digest(d).to_vec());
        assert_eq!(parsed, want);
        let text = String::from_utf8(pem_bytes).unwrap();
        assert!(text.lines().all(|l| l.len() <= 110));
        assert!(text.contains(&format!("{WEBPKI_ROOT_CERTS} {WEBPKI_ROOT_CERTS_VERSION}")));
    }

    #[test]
    fn descriptions_and_dependencies() {
        let pinned = CaRoots::load(&CaRootsSource::Pinned, GUEST_CA_ROOTS).unwrap();
        assert!(pinned
            .description
            .starts_with("webpki-root-certs 1.0.11 (Mozilla, "));
        let dep = pinned.dependency.unwrap();
        assert_eq!(
            dep.uri.as_deref(),
            Some("pkg:cargo/webpki-root-certs@1.0.11")
        );
        assert_eq!(dep.sha256(), Some(WEBPKI_ROOT_CERTS_CHECKSUM));
        assert_eq!(
            dep.annotations["kettle_bundleSha256"],
            hex::encode(Sha256::digest(pinned.pem.as_ref().unwrap()))
        );

        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("roots.pem");
        std::fs::write(&path, b"pem").unwrap();
        let file = CaRoots::load(&CaRootsSource::File(path), "/x").unwrap();
        let sha = hex::encode(Sha256::digest(b"pem"));
        assert_eq!(file.description, format!("file {sha}"));
        assert_eq!(file.dependency.unwrap().sha256(), Some(sha.as_str()));
        let none = CaRoots::load(&CaRootsSource::None, "/x").unwrap();
        assert_eq!((none.pem, none.description.as_str()), (None, "none"));
        let err = CaRoots::load(&CaRootsSource::File(dir.path().join("nope")), "/x").unwrap_err();
        assert!(err.to_string().contains("--no-ca-roots"), "{err}");
    }
}
