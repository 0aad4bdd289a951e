//! HTTPS downloads for upstream mode: ureq over rustls, trusting only the CA
//! roots in a PEM file (the image's `kettle_wire::devices::GUEST_CA_ROOTS` in the guest; the
//! caller's choice in local mode), resolving names with our own DNS client.

use std::io::{self, Read, Write};
use std::net::{IpAddr, SocketAddr};
use std::path::Path;
use std::time::Duration;

use kettle_provenance::Sha256Digest;
use sha2::{Digest, Sha256};
use thiserror::Error;
use ureq::config::Config;
use ureq::http::Uri;
use ureq::tls::Certificate;
use ureq::unversioned::resolver::{ResolvedSocketAddrs, Resolver};
use ureq::unversioned::transport::{DefaultConnector, NextTimeout};

use crate::dns;

/// Why a download failed.
#[derive(Debug, Error)]
pub enum HttpError {
    /// The CA roots file is missing, unreadable or holds no certificate.
    #[error("CA roots {path}: {reason}")]
    CaRoots {
        /// The PEM file.
        path: String,
        /// What is wrong.
        reason: String,
    },
    /// The request failed (connection, TLS handshake, HTTP status).
    #[error("GET {url}: {reason}")]
    Request {
        /// The URL.
        url: String,
        /// What failed.
        reason: String,
    },
    /// The body is larger than allowed.
    #[error("GET {url}: body exceeds {limit} bytes")]
    TooLarge {
        /// The URL.
        url: String,
        /// The limit.
        limit: u64,
    },
    /// Writing the body failed.
    #[error("GET {url}: writing the body: {source}")]
    Io {
        /// The URL.
        url: String,
        /// The cause.
        #[source]
        source: io::Error,
    },
}

/// Loads every certificate in a PEM file (the only roots the client will trust).
pub fn load_roots(pem_path: &Path) -> Result<Vec<Certificate<'static>>, HttpError> {
    let bad = |reason: String| HttpError::CaRoots {
        path: pem_path.display().to_string(),
        reason,
    };
    kettle_wire::https::load_pem_roots(pem_path).map_err(bad)
}

/// An HTTPS client bound to one set of CA roots and one DNS resolver.
pub struct Https {
    agent: ureq::Agent,
}

impl Https {
    /// A client trusting only `roots`; `resolver` answers names (None: IP-literal hosts only).
    pub fn new(
        roots: Vec<Certificate<'static>>,
        resolver: Option<SocketAddr>,
    ) -> Result<Https, HttpError> {
        let tls = kettle_wire::https::tls_config(roots);
        let config = ureq::Agent::config_builder()
            .tls_config(tls)
            .https_only(true)
            .timeout_connect(Some(Duration::from_secs(20)))
            .timeout_recv_body(Some(Duration::from_secs(300)))
            .max_redirects(5)
            .build();
        let agent = ureq::Agent::with_parts(
            config,
            DefaultConnector::new(),
            OwnResolver { dns: resolver },
        );
        Ok(Https { agent })
    }

    /// Streams `url` into `out`, at most `limit` bytes; returns the body's SHA-256 and length.
    pub fn download(
        &self,
        url: &str,
        out: &mut dyn Write,
        limit: u64,
    ) -> Result<(Sha256Digest, u64), HttpError> {
        self.download_with_headers(url, &[], out, limit)
    }

    /// Downloads `url` into memory (at most `limit` bytes), sending `headers` with the request.
    pub fn get_bytes_with_headers(
        &self,
        url: &str,
        limit: u64,
        headers: &[(&str, &str)],
    ) -> Result<Vec<u8>, HttpError> {
        let mut v = Vec::new();
        self.download_with_headers(url, headers, &mut v, limit)?;
        Ok(v)
    }

    fn download_with_headers(
        &self,
        url: &str,
        headers: &[(&str, &str)],
        out: &mut dyn Write,
        limit: u64,
    ) -> Result<(Sha256Digest, u64), HttpError> {
        let mut req = self.agent.get(url);
        for (name, value) in headers {
            req = req.header(*name, *value);
        }
        let resp = req.call().map_err(|e| HttpError::Request {
            url: url.into(),
            reason: e.to_string(),
        })?;
        let mut body = resp
            .into_body()
            .into_with_config()
            .limit(limit.saturating_add(1))
            .reader();
        let mut hasher = Sha256::new();
        let mut buf = vec![0u8; 64 * 1024];
        let mut total = 0u64;
        loop {
            let n = body.read(&mut buf).map_err(|e| HttpError::Request {
                url: url.into(),
                reason: e.to_string(),
            })?;
            if n == 0 {
                break;
            }
            total += n as u64;
            if total > limit {
                return Err(HttpError::TooLarge {
                    url: url.into(),
                    limit,
                });
            }
            hasher.update(&buf[..n]);
            out.write_all(&buf[..n]).map_err(|source| HttpError::Io {
                url: url.into(),
                source,
            })?;
        }
        out.flush().map_err(|source| HttpError::Io {
            url: url.into(),
            source,
        })?;
        Ok((Sha256Digest(hasher.finalize().into()), total))
    }

    /// Downloads `url` into memory (at most `limit` bytes).
    pub fn get_bytes(&self, url: &str, limit: u64) -> Result<Vec<u8>, HttpError> {
        let mut v = Vec::new();
        self.download(url, &mut v, limit)?;
        Ok(v)
    }
}

/// ureq resolver: IP literals as-is, names through our DNS client (never getaddrinfo).
#[derive(Debug)]
struct OwnResolver {
    dns: Option<SocketAddr>,
}

impl Resolver for OwnResolver {
    fn resolve(
        &self,
        uri: &Uri,
        _config: &Config,
        _timeout: NextTimeout,
    ) -> Result<ResolvedSocketAddrs, ureq::Error> {
        let host = uri.host().ok_or(ureq::Error::HostNotFound)?;
        let port = uri
            .port_u16()
            .unwrap_or(if uri.scheme_str() == Some("http") {
                80
            } else {
                443
            });
        let mut out = self.empty();
        for addr in resolve(host, port, self.dns).map_err(ureq::Error::Io)? {
            out.push(addr);
        }
        if out.is_empty() {
            return Err(ureq::Error::HostNotFound);
        }
        Ok(out)
    }
}

fn resolve(host: &str, port: u16, resolver: Option<SocketAddr>) -> io::Result<Vec<SocketAddr>> {
    let host = host.trim_start_matches('[').trim_end_matches(']');
    if let Ok(ip) = host.parse::<IpAddr>() {
        return Ok(vec![SocketAddr::new(ip, port)]);
    }
    let resolver = resolver.ok_or_else(|| {
        io::Error::new(
            io::ErrorKind::NotFound,
            format!("{host}: no DNS resolver configured (request upstream.dns_resolver)"),
        )
    })?;
    let ips = dns::resolve_a(resolver, host)
        .map_err(|e| io::Error::new(io::ErrorKind::NotFound, e.to_string()))?;
    Ok(ips
        .into_iter()
        .take(16)
        .map(|ip| SocketAddr::new(IpAddr::V4(ip), port))
        .collect())
}
