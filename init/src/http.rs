//! HTTPS downloads for upstream mode: ureq over rustls, trusting only the CA
//! roots in a PEM file (the image's /etc/kettle/ca-roots.pem in the guest; the
//! caller's choice in local mode), resolving names with our own DNS client.

use std::fs::File;
use std::io::{self, BufReader, Read, Write};
use std::net::{IpAddr, SocketAddr, ToSocketAddrs};
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use sha2::{Digest, Sha256};
use thiserror::Error;

use crate::dns;

/// Where the guest image keeps its CA roots.
pub const GUEST_CA_ROOTS: &str = "/etc/kettle/ca-roots.pem";

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
    /// TLS configuration failed.
    #[error("TLS setup: {0}")]
    Tls(#[from] rustls::Error),
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

/// Loads every certificate in a PEM file into a root store.
pub fn load_roots(pem_path: &Path) -> Result<rustls::RootCertStore, HttpError> {
    let bad = |reason: String| HttpError::CaRoots { path: pem_path.display().to_string(), reason };
    let f = File::open(pem_path).map_err(|e| bad(e.to_string()))?;
    let mut roots = rustls::RootCertStore::empty();
    for cert in rustls_pemfile::certs(&mut BufReader::new(f)) {
        let cert = cert.map_err(|e| bad(e.to_string()))?;
        // Skip individual unparsable roots (as system bundles sometimes hold) rather than fail.
        let _ = roots.add(cert);
    }
    if roots.is_empty() {
        return Err(bad("no usable certificate".into()));
    }
    Ok(roots)
}

/// An HTTPS client bound to one set of CA roots and one DNS resolver.
pub struct Https {
    agent: ureq::Agent,
}

impl Https {
    /// A client trusting only `roots`; `resolver` answers names (None: IP-literal hosts only).
    pub fn new(roots: rustls::RootCertStore, resolver: Option<SocketAddr>) -> Result<Https, HttpError> {
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let tls = rustls::ClientConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()?
            .with_root_certificates(roots)
            .with_no_client_auth();
        let agent = ureq::AgentBuilder::new()
            .tls_config(Arc::new(tls))
            .timeout_connect(Duration::from_secs(20))
            .timeout_read(Duration::from_secs(120))
            .redirects(5)
            .resolver(move |netloc: &str| resolve(netloc, resolver))
            .build();
        Ok(Https { agent })
    }

    /// Streams `url` into `out`, at most `limit` bytes; returns (sha256 hex, length).
    pub fn download(&self, url: &str, out: &mut dyn Write, limit: u64) -> Result<(String, u64), HttpError> {
        let resp = self.agent.get(url).call().map_err(|e| HttpError::Request { url: url.into(), reason: e.to_string() })?;
        let mut body = resp.into_reader().take(limit + 1);
        let mut hasher = Sha256::new();
        let mut buf = vec![0u8; 64 * 1024];
        let mut total = 0u64;
        loop {
            let n = body.read(&mut buf).map_err(|e| HttpError::Request { url: url.into(), reason: e.to_string() })?;
            if n == 0 {
                break;
            }
            total += n as u64;
            if total > limit {
                return Err(HttpError::TooLarge { url: url.into(), limit });
            }
            hasher.update(&buf[..n]);
            out.write_all(&buf[..n]).map_err(|source| HttpError::Io { url: url.into(), source })?;
        }
        out.flush().map_err(|source| HttpError::Io { url: url.into(), source })?;
        Ok((hex::encode(hasher.finalize()), total))
    }

    /// Downloads `url` into memory (at most `limit` bytes).
    pub fn get_bytes(&self, url: &str, limit: u64) -> Result<Vec<u8>, HttpError> {
        let mut v = Vec::new();
        self.download(url, &mut v, limit)?;
        Ok(v)
    }
}

/// ureq resolver: IP literals as-is, names through our DNS client (never getaddrinfo).
fn resolve(netloc: &str, resolver: Option<SocketAddr>) -> io::Result<Vec<SocketAddr>> {
    let (host, port) = netloc
        .rsplit_once(':')
        .and_then(|(h, p)| p.parse::<u16>().ok().map(|p| (h, p)))
        .ok_or_else(|| io::Error::new(io::ErrorKind::InvalidInput, format!("bad host:port {netloc:?}")))?;
    let host = host.trim_start_matches('[').trim_end_matches(']');
    if let Ok(ip) = host.parse::<IpAddr>() {
        return (ip, port).to_socket_addrs().map(|i| i.collect());
    }
    let resolver = resolver.ok_or_else(|| {
        io::Error::new(io::ErrorKind::NotFound, format!("{host}: no DNS resolver configured (request upstream.dns_resolver)"))
    })?;
    dns::resolve_a(resolver, host)
        .map(|ips| ips.into_iter().map(|ip| SocketAddr::new(IpAddr::V4(ip), port)).collect())
        .map_err(|e| io::Error::new(io::ErrorKind::NotFound, e.to_string()))
}
