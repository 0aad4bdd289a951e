//! The one TLS set-up of Kettle's HTTPS clients, host and guest alike: rustls with
//! the ring provider, trusting exactly the roots given (the guest's are baked into
//! the measured image, the host's are the system's), never a platform store chosen
//! behind the caller's back. Timeouts, redirects and name resolution differ between
//! the two and stay with each client.

use std::fs::File;
use std::io::BufReader;
use std::path::Path;
use std::sync::Arc;

use ureq::tls::{Certificate, RootCerts, TlsConfig, TlsProvider};

/// The certificates of the PEM bundle at `path`; an empty bundle is an error.
pub fn load_pem_roots(path: &Path) -> Result<Vec<Certificate<'static>>, String> {
    let f = File::open(path).map_err(|e| e.to_string())?;
    let roots = rustls_pemfile::certs(&mut BufReader::new(f))
        .map(|c| c.map(|c| Certificate::from_der(c.as_ref()).to_owned()))
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| e.to_string())?;
    if roots.is_empty() {
        return Err("no certificate in the file".into());
    }
    Ok(roots)
}

/// rustls (ring) trusting exactly `roots`.
pub fn tls_config(roots: Vec<Certificate<'static>>) -> TlsConfig {
    TlsConfig::builder()
        .provider(TlsProvider::Rustls)
        .root_certs(RootCerts::Specific(Arc::new(roots)))
        .unversioned_rustls_crypto_provider(Arc::new(rustls::crypto::ring::default_provider()))
        .build()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_bundle_without_certificates_is_refused() {
        let d = std::env::temp_dir().join(format!("kettle-wire-https-{}", std::process::id()));
        std::fs::write(&d, "not a certificate\n").unwrap();
        assert_eq!(
            load_pem_roots(&d).unwrap_err(),
            "no certificate in the file"
        );
        std::fs::remove_file(&d).unwrap();
        assert!(load_pem_roots(Path::new("/nonexistent/roots.pem")).is_err());
    }
}
