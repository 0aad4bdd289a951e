//! A tiny HTTPS server on 127.0.0.1 for upstream-mode tests: it serves byte
//! strings by path with a certificate from its own test CA (made with rcgen),
//! so a client trusts it only when given [`HttpsServer::ca_pem`].

use std::collections::HashMap;
use std::io::{BufRead, BufReader, Write};
use std::net::{TcpListener, TcpStream};
use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

/// How long a server runs at most (a test that forgets to drop it does not hang the run).
const MAX_LIFETIME: Duration = Duration::from_secs(300);

type Files = Arc<Mutex<HashMap<String, Vec<u8>>>>;

/// A running server; stopped when dropped.
pub struct HttpsServer {
    port: u16,
    ca_pem: String,
    files: Files,
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
}

impl HttpsServer {
    /// Starts a server with a fresh CA and a certificate for 127.0.0.1, serving nothing yet.
    pub fn start() -> HttpsServer {
        let ca_key = rcgen::KeyPair::generate().expect("generate the CA key");
        let mut ca_params = rcgen::CertificateParams::new(Vec::<String>::new()).unwrap();
        ca_params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
        ca_params
            .distinguished_name
            .push(rcgen::DnType::CommonName, "Kettle test CA");
        let ca = ca_params.self_signed(&ca_key).expect("self-sign the CA");
        let leaf_key = rcgen::KeyPair::generate().expect("generate the server key");
        let leaf = rcgen::CertificateParams::new(vec!["127.0.0.1".to_string()])
            .unwrap()
            .signed_by(&leaf_key, &ca, &ca_key)
            .expect("sign the server certificate");
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let config = rustls::ServerConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .unwrap()
            .with_no_client_auth()
            .with_single_cert(
                vec![leaf.der().clone()],
                rustls::pki_types::PrivateKeyDer::Pkcs8(leaf_key.serialize_der().into()),
            )
            .expect("a valid server certificate");
        let config = Arc::new(config);
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind 127.0.0.1");
        listener.set_nonblocking(true).unwrap();
        let port = listener.local_addr().unwrap().port();
        let files = Files::default();
        let stop = Arc::new(AtomicBool::new(false));
        let thread = {
            let (files, stop) = (Arc::clone(&files), Arc::clone(&stop));
            std::thread::spawn(move || {
                let deadline = Instant::now() + MAX_LIFETIME;
                while !stop.load(Ordering::Relaxed) && Instant::now() < deadline {
                    match listener.accept() {
                        Ok((tcp, _)) => answer(tcp, &config, &files),
                        Err(_) => std::thread::sleep(Duration::from_millis(10)),
                    }
                }
            })
        };
        HttpsServer {
            port,
            ca_pem: ca.pem(),
            files,
            stop,
            thread: Some(thread),
        }
    }

    /// `https://127.0.0.1:<port>`.
    pub fn base_url(&self) -> String {
        format!("https://127.0.0.1:{}", self.port)
    }

    /// The test CA's certificate (PEM): the only root that makes a client trust this server.
    pub fn ca_pem(&self) -> &str {
        &self.ca_pem
    }

    /// Writes [`HttpsServer::ca_pem`] to `path`.
    pub fn write_ca(&self, path: &Path) {
        std::fs::write(path, &self.ca_pem)
            .unwrap_or_else(|e| panic!("write {}: {e}", path.display()));
    }

    /// Serves `body` at `path` (e.g. `/commit`) from now on.
    pub fn serve(&self, path: &str, body: impl Into<Vec<u8>>) {
        self.files
            .lock()
            .unwrap()
            .insert(path.to_string(), body.into());
    }
}

/// What a git smart-HTTP server sends for `GET <repo>/info/refs?service=git-upload-pack`
/// (protocol v0): the service line, a flush, one pkt-line per `(object id, ref name)` (the
/// first with capabilities after a NUL; `name^{}` for an annotated tag's peeled commit), a flush.
pub fn git_ref_advertisement(refs: &[(&str, &str)]) -> Vec<u8> {
    fn pkt(out: &mut Vec<u8>, payload: &[u8]) {
        out.extend_from_slice(format!("{:04x}", payload.len() + 4).as_bytes());
        out.extend_from_slice(payload);
    }
    let mut out = Vec::new();
    pkt(&mut out, b"# service=git-upload-pack\n");
    out.extend_from_slice(b"0000");
    for (i, (oid, name)) in refs.iter().enumerate() {
        let caps: &[u8] = if i == 0 {
            b"\0multi_ack thin-pack side-band side-band-64k ofs-delta shallow no-progress include-tag agent=git/2.39.5"
        } else {
            b""
        };
        pkt(
            &mut out,
            &[oid.as_bytes(), b" ", name.as_bytes(), caps, b"\n"].concat(),
        );
    }
    out.extend_from_slice(b"0000");
    out
}

/// Answers one connection: a GET for a served path gets 200 and its body, anything else 404.
fn answer(tcp: TcpStream, config: &Arc<rustls::ServerConfig>, files: &Files) {
    tcp.set_nonblocking(false).unwrap();
    tcp.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    let conn = rustls::ServerConnection::new(Arc::clone(config)).unwrap();
    let mut tls = rustls::StreamOwned::new(conn, tcp);
    let mut reader = BufReader::new(&mut tls);
    let mut first = String::new();
    if reader.read_line(&mut first).is_err() {
        return; // e.g. the client refused our certificate
    }
    loop {
        let mut l = String::new();
        if reader.read_line(&mut l).unwrap_or(0) == 0 || l == "\r\n" {
            break;
        }
    }
    let path = first.split_whitespace().nth(1).unwrap_or("").to_string();
    let (status, body) = match files.lock().unwrap().get(&path) {
        Some(b) => ("200 OK", b.clone()),
        None => ("404 Not Found", b"not found".to_vec()),
    };
    let head = format!(
        "HTTP/1.1 {status}\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
        body.len()
    );
    let _ = tls
        .write_all(head.as_bytes())
        .and_then(|_| tls.write_all(&body))
        .and_then(|_| tls.flush());
    tls.conn.send_close_notify();
    let _ = tls.flush();
}

impl Drop for HttpsServer {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}
