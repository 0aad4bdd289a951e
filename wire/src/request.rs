//! The build request: what the host asks the guest to build, read from the
//! unmeasured request disk (never the measured kernel command line).
//!
//! Disk format: a tar stream (ustar) whose single entry is `request.json`, a
//! [`BuildRequest`] as JSON. The host writes it with [`write_request_disk`]; the
//! guest reads it with [`read_request_disk`]. The request is untrusted: it only
//! names what to build, and everything it leads to is verified against the
//! requested commit. Every field is checked here, unknown fields are refused.

use std::fs::File;
use std::io::{self, Read, Write};
use std::net::Ipv4Addr;
use std::path::Path;

use serde::{Deserialize, Serialize};
use thiserror::Error;

pub use kettle_attest::Tee;
pub use kettle_provenance::git::ObjectFormat;

/// The only `schema` value this guest accepts.
pub const REQUEST_SCHEMA: &str = "kettle.request/v1";
/// Name of the request entry in the request disk's tar stream.
pub const REQUEST_ENTRY: &str = "request.json";
/// Largest request.json accepted, in bytes.
pub const MAX_REQUEST_BYTES: u64 = 64 * 1024;
/// How much of the request disk is read at most (the tar framing around request.json).
pub const MAX_REQUEST_DISK_READ: u64 = MAX_REQUEST_BYTES + 16 * 1024;

/// A build request (request.json on the request disk).
#[serde_with_macros::skip_serializing_none]
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BuildRequest {
    /// Must be [`REQUEST_SCHEMA`].
    pub schema: String,
    /// Repository URL, recorded verbatim in externalParameters.repository.
    pub repository: String,
    /// Git ref that was resolved to `commit`, recorded verbatim in externalParameters.ref.
    #[serde(rename = "ref")]
    pub git_ref: String,
    /// The commit id to build (lowercase hex, 40 for sha1 and 64 for sha256 repositories).
    pub commit: String,
    /// The repository's git object format.
    pub object_format: ObjectFormat,
    /// Where inputs come from.
    pub mode: FetchMode,
    /// Which attestation provider to use.
    pub tee: Tee,
    /// Identifier of this invocation (recorded in runDetails.metadata.invocationId).
    pub invocation_id: String,
    /// Optional resource limits for the build step.
    #[serde(default)]
    pub limits: Limits,
    /// Required in upstream mode: where to fetch from (untrusted hints).
    pub upstream: Option<Upstream>,
    /// The image the host says it booted (a claim: the report's measurement is what counts;
    /// the guest records it in the provenance's builderDependencies, the verifier compares).
    pub image: Option<ImageRef>,
}

/// The image a build ran in, as the host names it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ImageRef {
    /// SHA-256 of the image's manifest.json.
    pub manifest_sha256: kettle_provenance::Sha256Digest,
    /// Its SNP launch digest, 96 lowercase hex digits.
    pub launch_digest: String,
}

/// Where the guest gets its inputs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum FetchMode {
    /// From the content-addressed cache disk the host filled (see `cache`).
    Cached,
    /// Over HTTPS, with the CA roots baked into the image.
    Upstream,
}

/// Resource limits for the build step (defaults apply when absent).
#[serde_with_macros::skip_serializing_none]
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Limits {
    /// Wall-clock and CPU-time limit of the build command, in seconds (default 3600):
    /// `kettle build --timeout`, the one number the guest's sandbox enforces and the host's
    /// VM deadline is counted from.
    pub max_build_seconds: Option<u64>,
    /// Data-segment limit of each build process, in bytes (default: none).
    pub max_memory_bytes: Option<u64>,
}

/// Default wall-clock/CPU limit of a build.
pub const DEFAULT_BUILD_SECONDS: u64 = 3600;
/// Longest build a request may ask for (one week).
pub const MAX_BUILD_SECONDS: u64 = 7 * 24 * 3600;
/// Smallest memory limit a request may set (below this nothing useful runs).
pub const MIN_MEMORY_BYTES: u64 = 64 << 20;

impl Limits {
    /// The effective build time limit.
    pub fn build_seconds(&self) -> u64 {
        self.max_build_seconds.unwrap_or(DEFAULT_BUILD_SECONDS)
    }
}

/// Upstream-mode locations. All untrusted: whatever they serve is verified.
#[serde_with_macros::skip_serializing_none]
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Upstream {
    /// HTTPS URL of a tar or tar.gz of the commit's tree (like `git archive`).
    pub source_archive_url: String,
    /// HTTPS URL of the raw commit object (the bytes `git cat-file commit <id>` prints).
    pub commit_object_url: String,
    /// Base URL of .crate downloads; `{base}/{name}/{name}-{version}.crate` is fetched.
    #[serde(default = "default_crates_url")]
    pub crates_url: String,
    /// IPv4 DNS resolver to query (default: the kernel's DHCP answer in /proc/net/pnp).
    pub dns_resolver: Option<Ipv4Addr>,
}

/// crates.io's static download host.
pub const DEFAULT_CRATES_URL: &str = "https://static.crates.io/crates";

fn default_crates_url() -> String {
    DEFAULT_CRATES_URL.to_string()
}

/// Why a request was refused.
#[derive(Debug, Error)]
pub enum RequestError {
    /// The request disk could not be read.
    #[error("cannot read the request disk: {0}")]
    Io(#[from] io::Error),
    /// The tar stream does not hold exactly one regular `request.json`.
    #[error("request disk layout: {0} (expected a tar stream holding only a regular file {REQUEST_ENTRY})")]
    Layout(String),
    /// request.json exceeds [`MAX_REQUEST_BYTES`].
    #[error("request.json is {0} bytes; the limit is {MAX_REQUEST_BYTES}")]
    TooLarge(u64),
    /// request.json is not valid JSON for [`BuildRequest`] (unknown or missing fields included).
    #[error("request.json is not a valid kettle request: {0}")]
    Json(#[from] serde_json::Error),
    /// A field has an invalid value.
    #[error("request field {field}: {reason}")]
    Field {
        /// The offending field.
        field: &'static str,
        /// What is wrong and what is expected.
        reason: String,
    },
}

fn field(field: &'static str, reason: impl Into<String>) -> RequestError {
    RequestError::Field {
        field,
        reason: reason.into(),
    }
}

impl BuildRequest {
    /// Checks every field; returns the first problem found.
    pub fn validate(&self) -> Result<(), RequestError> {
        if self.schema != REQUEST_SCHEMA {
            return Err(field(
                "schema",
                format!(
                    "is {:?}; this guest understands {REQUEST_SCHEMA:?}",
                    self.schema
                ),
            ));
        }
        check_url(
            "repository",
            &self.repository,
            &["https://", "http://", "ssh://", "git://", "file://"],
        )?;
        check_ref(&self.git_ref)?;
        let want = self.object_format.hex_len();
        if self.commit.len() != want
            || !self
                .commit
                .bytes()
                .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
        {
            return Err(field(
                "commit",
                format!(
                    "{:?} is not a {want}-digit lowercase hex {:?} object id",
                    self.commit, self.object_format
                ),
            ));
        }
        if self.invocation_id.is_empty()
            || self.invocation_id.len() > 128
            || !self
                .invocation_id
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b"._:-".contains(&b))
        {
            return Err(field(
                "invocation_id",
                "must be 1-128 characters of [A-Za-z0-9._:-]",
            ));
        }
        if let Some(s) = self.limits.max_build_seconds {
            if s == 0 || s > MAX_BUILD_SECONDS {
                return Err(field(
                    "limits.max_build_seconds",
                    format!("{s} is outside 1..={MAX_BUILD_SECONDS}"),
                ));
            }
        }
        if let Some(m) = self.limits.max_memory_bytes {
            if m < MIN_MEMORY_BYTES {
                return Err(field(
                    "limits.max_memory_bytes",
                    format!("{m} is below the minimum {MIN_MEMORY_BYTES}"),
                ));
            }
        }
        if let Some(image) = &self.image {
            let hex96 = image.launch_digest.len() == 96
                && image
                    .launch_digest
                    .bytes()
                    .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b));
            if !hex96 {
                return Err(field(
                    "image.launch_digest",
                    "must be 96 lowercase hex digits (an SNP launch digest)",
                ));
            }
        }
        match (self.mode, &self.upstream) {
            (FetchMode::Upstream, None) => {
                return Err(field(
                    "upstream",
                    "upstream mode needs the upstream section (archive and commit URLs)",
                ))
            }
            (FetchMode::Cached, Some(_)) => {
                return Err(field(
                    "upstream",
                    "must be absent in cached mode (inputs come from the cache disk)",
                ))
            }
            (FetchMode::Upstream, Some(up)) => {
                check_url(
                    "upstream.source_archive_url",
                    &up.source_archive_url,
                    &["https://"],
                )?;
                check_url(
                    "upstream.commit_object_url",
                    &up.commit_object_url,
                    &["https://"],
                )?;
                check_url("upstream.crates_url", &up.crates_url, &["https://"])?;
            }
            (FetchMode::Cached, None) => {}
        }
        Ok(())
    }
}

fn check_url(name: &'static str, url: &str, schemes: &[&str]) -> Result<(), RequestError> {
    if url.len() > 2048 {
        return Err(field(name, "is longer than 2048 bytes"));
    }
    if url.bytes().any(|b| b.is_ascii_control() || b == b' ') {
        return Err(field(name, "contains spaces or control characters"));
    }
    match schemes.iter().find(|s| url.starts_with(*s)) {
        Some(s) if url.len() > s.len() => Ok(()),
        _ => Err(field(
            name,
            format!("{url:?} must start with one of {schemes:?} and name a host"),
        )),
    }
}

/// git check-ref-format's rules, for a ref given short (`main`) or full (`refs/heads/main`).
fn check_ref(r: &str) -> Result<(), RequestError> {
    let bad = |why: &str| Err(field("ref", format!("{r:?} is not a valid git ref: {why}")));
    if r.is_empty() || r.len() > 1024 {
        return bad("must be 1-1024 bytes");
    }
    if r.bytes()
        .any(|b| b.is_ascii_control() || b" ~^:?*[\\".contains(&b))
    {
        return bad("contains a space, control character or one of ~^:?*[\\");
    }
    if r.contains("..") || r.contains("@{") || r.contains("//") || r == "@" {
        return bad("contains '..', '@{' or '//', or is '@'");
    }
    if r.starts_with('/') || r.ends_with('/') || r.ends_with('.') || r.ends_with(".lock") {
        return bad("starts or ends with '/', or ends with '.' or '.lock'");
    }
    if r.split('/').any(|c| c.starts_with('.')) {
        return bad("a component starts with '.'");
    }
    Ok(())
}

/// Writes `request` as the request disk image at `path` (a tar stream holding request.json).
pub fn write_request_disk(path: &Path, request: &BuildRequest) -> Result<(), RequestError> {
    request.validate()?;
    let json = serde_json::to_vec_pretty(request)?;
    if json.len() as u64 > MAX_REQUEST_BYTES {
        return Err(RequestError::TooLarge(json.len() as u64));
    }
    let mut builder = tar::Builder::new(File::create(path)?);
    let mut header = tar::Header::new_ustar();
    header.set_size(json.len() as u64);
    header.set_mode(0o644);
    header.set_mtime(0);
    header.set_entry_type(tar::EntryType::Regular);
    builder.append_data(&mut header, REQUEST_ENTRY, json.as_slice())?;
    let mut file = builder.into_inner()?;
    file.flush()?;
    file.sync_all()?;
    Ok(())
}

/// Reads and checks the request from a request disk (or its image file).
pub fn read_request_disk(disk: impl Read) -> Result<BuildRequest, RequestError> {
    let mut archive = tar::Archive::new(disk.take(MAX_REQUEST_DISK_READ));
    let mut entries = archive.entries()?;
    let mut entry = match entries.next() {
        Some(e) => e?,
        None => return Err(RequestError::Layout("the tar stream is empty".into())),
    };
    let path = entry.path()?.to_string_lossy().into_owned();
    if path != REQUEST_ENTRY || entry.header().entry_type() != tar::EntryType::Regular {
        return Err(RequestError::Layout(format!("first entry is {path:?}")));
    }
    let size = entry.header().size()?;
    if size > MAX_REQUEST_BYTES {
        return Err(RequestError::TooLarge(size));
    }
    // size <= MAX_REQUEST_BYTES, checked above.
    let mut json = Vec::with_capacity(usize::try_from(size).unwrap_or(0));
    entry
        .by_ref()
        .take(MAX_REQUEST_BYTES + 1)
        .read_to_end(&mut json)?;
    drop(entry);
    if let Some(next) = entries.next() {
        let next = next?;
        return Err(RequestError::Layout(format!(
            "unexpected extra entry {:?}",
            next.path()?.to_string_lossy()
        )));
    }
    parse_request(&json)
}

/// Parses and checks request.json bytes.
pub fn parse_request(json: &[u8]) -> Result<BuildRequest, RequestError> {
    if json.len() as u64 > MAX_REQUEST_BYTES {
        return Err(RequestError::TooLarge(json.len() as u64));
    }
    let request: BuildRequest = serde_json::from_slice(json)?;
    request.validate()?;
    Ok(request)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A valid cached-mode request: each test changes what it is about.
    fn sample() -> BuildRequest {
        BuildRequest {
            schema: REQUEST_SCHEMA.into(),
            repository: "https://github.com/kettle-build/hello".into(),
            git_ref: "refs/heads/main".into(),
            commit: "0123456789abcdef0123456789abcdef01234567".into(),
            object_format: ObjectFormat::Sha1,
            mode: FetchMode::Cached,
            tee: Tee::Simulated,
            invocation_id: "inv-1".into(),
            limits: Limits::default(),
            upstream: None,
            image: None,
        }
    }

    #[test]
    fn disk_round_trip() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("request.img");
        let req = sample();
        write_request_disk(&path, &req).unwrap();
        let len = std::fs::metadata(&path).unwrap().len();
        assert_eq!(len % 512, 0, "a disk image is whole sectors");
        // A real disk is larger than the tar: trailing zeros must not matter.
        let mut bytes = std::fs::read(&path).unwrap();
        bytes.resize(bytes.len() + (1 << 20), 0);
        assert_eq!(read_request_disk(bytes.as_slice()).unwrap(), req);
    }

    #[test]
    fn unknown_and_missing_fields_are_refused() {
        let mut v = serde_json::to_value(sample()).unwrap();
        v["outputs"] = serde_json::json!(["x"]);
        let err = parse_request(&serde_json::to_vec(&v).unwrap()).unwrap_err();
        assert!(err.to_string().contains("unknown field `outputs`"), "{err}");
        let mut v = serde_json::to_value(sample()).unwrap();
        v.as_object_mut().unwrap().remove("commit");
        let err = parse_request(&serde_json::to_vec(&v).unwrap()).unwrap_err();
        assert!(err.to_string().contains("missing field `commit`"), "{err}");
    }

    #[test]
    fn each_field_is_checked() {
        type Mutation = Box<dyn Fn(&mut BuildRequest)>;
        let cases: Vec<(&str, Mutation)> = vec![
            (
                "schema",
                Box::new(|r| r.schema = "kettle.request/v2".into()),
            ),
            ("repository", Box::new(|r| r.repository = "ftp://x".into())),
            (
                "repository",
                Box::new(|r| r.repository = "https://a b".into()),
            ),
            ("ref", Box::new(|r| r.git_ref = "main..x".into())),
            ("ref", Box::new(|r| r.git_ref = "".into())),
            ("ref", Box::new(|r| r.git_ref = "refs/heads/x.lock".into())),
            (
                "commit",
                Box::new(|r| r.commit = "ABCDEF0123456789abcdef0123456789abcdef01".into()),
            ),
            (
                "commit",
                Box::new(|r| r.object_format = ObjectFormat::Sha256),
            ),
            (
                "invocation_id",
                Box::new(|r| r.invocation_id = "a/b".into()),
            ),
            (
                "limits.max_build_seconds",
                Box::new(|r| r.limits.max_build_seconds = Some(0)),
            ),
            (
                "limits.max_memory_bytes",
                Box::new(|r| r.limits.max_memory_bytes = Some(1024)),
            ),
            ("upstream", Box::new(|r| r.mode = FetchMode::Upstream)),
            (
                "upstream.source_archive_url",
                Box::new(|r| {
                    r.mode = FetchMode::Upstream;
                    r.upstream = Some(Upstream {
                        source_archive_url: "http://plain/x.tar".into(),
                        commit_object_url: "https://h/c".into(),
                        crates_url: default_crates_url(),
                        dns_resolver: None,
                    });
                }),
            ),
        ];
        for (name, mutate) in cases {
            let mut r = sample();
            mutate(&mut r);
            match r.validate() {
                Err(RequestError::Field { field, .. }) => assert_eq!(field, name),
                other => panic!("{name}: expected a field error, got {other:?}"),
            }
        }
        sample().validate().unwrap();
    }

    #[test]
    fn hostile_disks_are_refused() {
        // Wrong entry name.
        let mut b = tar::Builder::new(Vec::new());
        let mut h = tar::Header::new_ustar();
        h.set_size(2);
        b.append_data(&mut h, "other.json", &b"{}"[..]).unwrap();
        let err = read_request_disk(b.into_inner().unwrap().as_slice()).unwrap_err();
        assert!(matches!(err, RequestError::Layout(_)), "{err}");
        // Oversized request.json.
        let big = vec![b' '; MAX_REQUEST_BYTES as usize + 10];
        let mut b = tar::Builder::new(Vec::new());
        let mut h = tar::Header::new_ustar();
        h.set_size(big.len() as u64);
        b.append_data(&mut h, REQUEST_ENTRY, big.as_slice())
            .unwrap();
        let err = read_request_disk(b.into_inner().unwrap().as_slice()).unwrap_err();
        assert!(matches!(err, RequestError::TooLarge(_)), "{err}");
        // Empty disk.
        assert!(matches!(
            read_request_disk(&[0u8; 4096][..]).unwrap_err(),
            RequestError::Layout(_)
        ));
    }
}
