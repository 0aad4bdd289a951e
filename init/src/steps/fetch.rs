//! The fetch step: bring the source commit and every pinned input into reach,
//! from a directory in the cache layout (the extracted cache disk, or local
//! mode's inputs dir) or over HTTPS (upstream mode, trusting only the given CA
//! roots). Nothing fetched is trusted yet: the verify step hashes all of it.

use std::fs::{self, File};
use std::io::Read;
use std::net::{IpAddr, SocketAddr};
use std::path::{Path, PathBuf};

use kettle_wire::cache;
use kettle_wire::inputs::{InputKind, InputPin};
use kettle_wire::request::DEFAULT_CRATES_URL;
use kettle_wire::unpack::{unpack, UnpackError, UnpackLimits};
use kettle_wire::BuildRequest;
use thiserror::Error;

use super::{Tools, WorkDir};
use crate::dns::nameserver_from;
use crate::error::{InStep, Step, StepError};
use crate::http::{load_roots, HttpError, Https};
use crate::refs::{resolve_remote, RefError, ResolvedRef};

/// Largest raw commit object accepted.
pub const MAX_COMMIT_OBJECT_BYTES: u64 = 1 << 20;
/// Largest single download (toolchain bundles are the big ones).
pub const MAX_DOWNLOAD_BYTES: u64 = 16 << 30;

/// Where the inputs come from.
#[derive(Debug, Clone)]
pub enum Inputs {
    /// A directory in the cache layout (see [`kettle_wire::cache`]): the extracted cache disk, or local mode's inputs dir.
    Dir(PathBuf),
    /// HTTPS (upstream mode), trusting only the CA roots in `roots_pem`.
    Https {
        /// PEM file of trusted CA roots.
        roots_pem: PathBuf,
        /// DNS resolver for host names (None: only IP-literal URLs work).
        resolver: Option<SocketAddr>,
    },
}

/// Errors of the fetch step.
#[derive(Debug, Error)]
pub enum FetchError {
    /// An input is not in the cache.
    #[error("{what} is not in the inputs ({path}); the host must put it there")]
    Missing {
        /// Which input.
        what: String,
        /// Where it was expected.
        path: String,
    },
    /// Reading a cached input failed.
    #[error("reading {path}: {source}")]
    Io {
        /// Path.
        path: String,
        /// Cause.
        #[source]
        source: std::io::Error,
    },
    /// A download failed.
    #[error(transparent)]
    Http(#[from] HttpError),
    /// A file read into memory is larger than its limit.
    #[error("{what} is larger than {limit} bytes, the most accepted for it")]
    TooLarge {
        /// Which input (e.g. `commit object`, `crate hex 0.4.3`).
        what: String,
        /// Its limit in bytes.
        limit: u64,
    },
    /// Upstream mode without its configuration.
    #[error("upstream mode needs the request's upstream section")]
    NoUpstream,
    /// The cache disk is not a safe tar stream in the cache layout.
    #[error("the cache disk was refused: {0}")]
    CacheDisk(#[source] UnpackError),
    /// The requested ref could not be resolved in the repository.
    #[error(transparent)]
    Ref(#[from] RefError),
}

/// The source commit as fetched: its raw object (in memory) and its archive (a file).
#[derive(Debug)]
pub struct FetchedSource {
    /// The raw commit object, as `git cat-file commit` prints it.
    pub commit_raw: Vec<u8>,
    /// The source archive (tar or tar.gz of the commit's tree).
    pub archive: PathBuf,
}

/// A pinned input as fetched: the pin that asked for it and where its bytes are now.
#[derive(Debug, Clone)]
pub struct FetchedInput {
    /// What the input is and the digest it must have.
    pub pin: InputPin,
    /// The file holding its (not yet verified) bytes.
    pub path: PathBuf,
}

/// An opened source of inputs: a directory, or an HTTPS client with its roots loaded.
pub enum Fetcher<'a> {
    /// A directory in the cache layout.
    Dir(&'a Path),
    /// An HTTPS client (upstream mode).
    Https(Https),
}

impl Fetcher<'_> {
    /// Opens `inputs` (for HTTPS: loads the CA roots).
    pub fn open(inputs: &Inputs) -> Result<Fetcher<'_>, StepError> {
        match inputs {
            Inputs::Dir(d) => Ok(Fetcher::Dir(d)),
            Inputs::Https {
                roots_pem,
                resolver,
            } => {
                let client = load_roots(roots_pem)
                    .and_then(|roots| Https::new(roots, *resolver))
                    .map_err(FetchError::from)
                    .in_step(Step::Fetch)?;
                Ok(Fetcher::Https(client))
            }
        }
    }
}

/// Upstream mode's inputs: HTTPS trusting `roots_pem`, resolving names with the first of
/// `resolver`, the request's `upstream.dns_resolver`, or the nameserver named in `nameserver_file`.
pub fn https_inputs(
    request: &BuildRequest,
    roots_pem: &Path,
    resolver: Option<SocketAddr>,
    nameserver_file: &Path,
) -> Inputs {
    let on_port_53 = |ip| SocketAddr::new(IpAddr::V4(ip), 53);
    let resolver = resolver
        .or_else(|| {
            request
                .upstream
                .as_ref()
                .and_then(|u| u.dns_resolver)
                .map(on_port_53)
        })
        .or_else(|| {
            fs::read_to_string(nameserver_file)
                .ok()
                .and_then(|t| nameserver_from(&t))
                .map(on_port_53)
        });
    Inputs::Https {
        roots_pem: roots_pem.to_path_buf(),
        resolver,
    }
}

/// Cached mode in the guest: extracts the cache disk (`shown_as` in the summary) into `dir`.
pub fn cache_disk(
    disk: File,
    shown_as: &Path,
    dir: PathBuf,
) -> Result<(Inputs, String), StepError> {
    let stats = unpack(disk, &dir, &UnpackLimits::CACHE_DISK)
        .map_err(FetchError::CacheDisk)
        .in_step_for(Step::Fetch, "cache disk")?;
    let summary = format!(
        "{} entries, {} bytes from {}",
        stats.entries,
        stats.bytes,
        shown_as.display()
    );
    Ok((Inputs::Dir(dir), summary))
}

/// The commit object and source archive of the requested commit.
pub fn source(
    fetcher: &Fetcher<'_>,
    req: &BuildRequest,
    work: &WorkDir,
) -> Result<(FetchedSource, String), StepError> {
    let fetched = match fetcher {
        Fetcher::Dir(root) => {
            let commit_raw = read_bounded(
                &cache::commit_path(root, &req.commit),
                "the commit object",
                MAX_COMMIT_OBJECT_BYTES,
            )
            .in_step_for(Step::Fetch, "commit object")?;
            let archive = cache::source_path(root, &req.commit);
            if !archive.is_file() {
                return Err(StepError::new(
                    Step::Fetch,
                    FetchError::Missing {
                        what: "source archive".into(),
                        path: archive.display().to_string(),
                    },
                )
                .with_input("source archive"));
            }
            FetchedSource {
                commit_raw,
                archive,
            }
        }
        Fetcher::Https(client) => {
            let up = req
                .upstream
                .as_ref()
                .ok_or(FetchError::NoUpstream)
                .in_step(Step::Fetch)?;
            let commit_raw = client
                .get_bytes(&up.commit_object_url, MAX_COMMIT_OBJECT_BYTES)
                .map_err(FetchError::from)
                .in_step_for(Step::Fetch, "commit object")?;
            let archive = work.downloads().join("source-archive");
            download_to(client, &up.source_archive_url, &archive)
                .in_step_for(Step::Fetch, "source archive")?;
            FetchedSource {
                commit_raw,
                archive,
            }
        }
    };
    let summary = format!("commit object and source archive of {}", req.commit);
    Ok((fetched, summary))
}

/// Upstream mode: what the repository itself says the requested ref names (the verify
/// step then requires it to be the requested commit).
pub fn resolve_ref(client: &Https, req: &BuildRequest) -> Result<(ResolvedRef, String), StepError> {
    let resolved = resolve_remote(
        client,
        &req.repository,
        &req.git_ref,
        req.object_format.hex_len(),
    )
    .map_err(FetchError::from)
    .in_step_for(Step::Fetch, "ref")?;
    let summary = format!(
        "{} {} is {} (asked {})",
        req.repository, resolved.name, resolved.commit, req.git_ref
    );
    Ok((resolved, summary))
}

/// Where the request says crates are downloaded from (a hint: Cargo.lock's checksums decide).
pub fn crates_url(req: &BuildRequest) -> &str {
    req.upstream
        .as_ref()
        .map_or(DEFAULT_CRATES_URL, |u| u.crates_url.as_str())
}

/// Every pinned input, from the cache layout by digest or downloaded from its URL.
pub fn inputs(
    fetcher: &Fetcher<'_>,
    pins: &[InputPin],
    tools: &Tools,
    work: &WorkDir,
) -> Result<(Vec<FetchedInput>, String), StepError> {
    let mut fetched = Vec::with_capacity(pins.len());
    for pin in pins {
        let label = pin.label();
        let path = match fetcher {
            Fetcher::Dir(root) => {
                let p = cache::blob_path(root, &pin.sha256);
                if !p.is_file() {
                    return Err(StepError::new(
                        Step::Fetch,
                        FetchError::Missing {
                            what: label.clone(),
                            path: p.display().to_string(),
                        },
                    )
                    .with_input(label));
                }
                p
            }
            Fetcher::Https(client) => {
                let p = work.downloads().join(pin.sha256.to_hex());
                download_to(client, &pin.url, &p).in_step_for(Step::Fetch, label)?;
                p
            }
        };
        fetched.push(FetchedInput {
            pin: pin.clone(),
            path,
        });
    }
    let dependencies: Vec<_> = pins
        .iter()
        .filter_map(|p| match &p.kind {
            InputKind::Dependency(d) => Some(d),
            _ => None,
        })
        .collect();
    let packages = match dependencies.first() {
        Some(d) => format!("{} {}s", dependencies.len(), d.ecosystem().package_noun()),
        None => "no dependencies".to_string(),
    };
    let has_toolchain = pins.iter().any(|p| p.kind == InputKind::Toolchain);
    let tools = match (tools, has_toolchain) {
        (Tools::Host { .. }, _) => " (host tools, not fetched)",
        (Tools::Pinned, true) => ", toolchain, rootfs",
        (Tools::Pinned, false) => ", rootfs",
    };
    Ok((fetched, format!("{packages}{tools}")))
}

/// Reads at most `limit` bytes of `path` into memory; `what` names the file in errors.
pub fn read_bounded(path: &Path, what: &str, limit: u64) -> Result<Vec<u8>, FetchError> {
    let io = |source| FetchError::Io {
        path: path.display().to_string(),
        source,
    };
    let f = File::open(path).map_err(|source| {
        if source.kind() == std::io::ErrorKind::NotFound {
            FetchError::Missing {
                what: what.to_string(),
                path: path.display().to_string(),
            }
        } else {
            io(source)
        }
    })?;
    let mut v = Vec::new();
    f.take(limit + 1).read_to_end(&mut v).map_err(io)?;
    if v.len() as u64 > limit {
        return Err(FetchError::TooLarge {
            what: what.to_string(),
            limit,
        });
    }
    Ok(v)
}

fn download_to(client: &Https, url: &str, path: &Path) -> Result<(), FetchError> {
    let io = |source| FetchError::Io {
        path: path.display().to_string(),
        source,
    };
    if let Some(p) = path.parent() {
        fs::create_dir_all(p).map_err(io)?;
    }
    let mut f = File::create(path).map_err(io)?;
    client.download(url, &mut f, MAX_DOWNLOAD_BYTES)?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_oversized_file_is_named_with_its_own_limit() {
        let big = tempfile::NamedTempFile::new().unwrap();
        let big = big.path();
        fs::write(big, vec![0u8; 2048]).unwrap();
        let err = read_bounded(big, "crate big 1.0.0", 1024).unwrap_err();
        let msg = err.to_string();
        assert!(
            matches!(&err, FetchError::TooLarge { what, limit: 1024 } if what == "crate big 1.0.0"),
            "{err:?}"
        );
        assert!(
            msg.contains("crate big 1.0.0") && msg.contains("1024"),
            "{msg}"
        );
        assert!(!msg.contains("commit object"), "{msg}");
        // At the limit is fine.
        assert_eq!(
            read_bounded(big, "crate big 1.0.0", 2048).unwrap().len(),
            2048
        );
    }

    #[test]
    fn a_missing_file_is_named() {
        let tmp = tempfile::tempdir().unwrap();
        let err = read_bounded(&tmp.path().join("nope"), "the commit object", 10).unwrap_err();
        assert!(
            matches!(&err, FetchError::Missing { what, .. } if what == "the commit object"),
            "{err:?}"
        );
    }
}
