//! A tiny HTTPS server on 127.0.0.1 for upstream-mode tests and the fetch bench:
//! it serves byte strings by path with a certificate from its own test CA (made
//! with rcgen), so a client trusts it only when given [`HttpsServer::ca_pem`].

use std::collections::HashMap;
use std::io::{BufRead, BufReader, Write};
use std::net::{TcpListener, TcpStream};
use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

/// How long a server waits for a new connection before it stops accepting (a test that
/// forgets to drop it does not hang the run).
const MAX_IDLE: Duration = Duration::from_secs(300);

type Files = Arc<Mutex<HashMap<String, Arc<[u8]>>>>;

/// How an [`HttpsServer`] answers; the default is one request per connection, answered at once.
#[derive(Clone, Copy, Debug, Default)]
pub struct ServerOptions {
    /// Serve many requests on a connection (HTTP/1.1 keep-alive), as a crates mirror does;
    /// each connection then has its own thread, so that an idle one blocks no other.
    pub keep_alive: bool,
    /// How long to wait before each answer: the round trip to a mirror that far away.
    pub latency: Duration,
}

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
        HttpsServer::start_with(ServerOptions::default())
    }

    /// [`HttpsServer::start`] answering as `options` say.
    pub fn start_with(options: ServerOptions) -> HttpsServer {
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
                let mut last_connection = Instant::now();
                while !stop.load(Ordering::Relaxed) && last_connection.elapsed() < MAX_IDLE {
                    let Ok((tcp, _)) = listener.accept() else {
                        std::thread::sleep(Duration::from_millis(10));
                        continue;
                    };
                    last_connection = Instant::now();
                    if options.keep_alive {
                        let (config, files) = (Arc::clone(&config), Arc::clone(&files));
                        std::thread::spawn(move || answer(tcp, &config, &files, options));
                    } else {
                        answer(tcp, &config, &files, options);
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
            .insert(path.to_string(), body.into().into());
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

/// Answers one connection: a GET for a served path gets 200 and its body, anything else
/// 404; then the next request if `options` keep connections alive and the client does too.
fn answer(
    tcp: TcpStream,
    config: &Arc<rustls::ServerConfig>,
    files: &Files,
    options: ServerOptions,
) {
    tcp.set_nonblocking(false).unwrap();
    tcp.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    // An answer goes out in two writes (head, body): Nagle would hold the body back until
    // the client's delayed ACK, a pause per request that no real mirror has.
    let _ = tcp.set_nodelay(true);
    let conn = rustls::ServerConnection::new(Arc::clone(config)).unwrap();
    let mut tls = BufReader::new(rustls::StreamOwned::new(conn, tcp));
    // None: the client went away, or refused our certificate.
    while let Some((path, client_closes)) = read_request(&mut tls) {
        if !options.latency.is_zero() {
            std::thread::sleep(options.latency);
        }
        let body = files.lock().unwrap().get(&path).cloned();
        let (status, body) = match &body {
            Some(b) => ("200 OK", &b[..]),
            None => ("404 Not Found", &b"not found"[..]),
        };
        let keep_alive = options.keep_alive && !client_closes;
        let head = format!(
            "HTTP/1.1 {status}\r\nContent-Length: {}\r\n{}\r\n",
            body.len(),
            if keep_alive {
                ""
            } else {
                "Connection: close\r\n"
            }
        );
        let out = tls.get_mut();
        let written = out
            .write_all(head.as_bytes())
            .and_then(|_| out.write_all(body))
            .and_then(|_| out.flush());
        if written.is_err() || !keep_alive {
            out.conn.send_close_notify();
            let _ = out.flush();
            return;
        }
    }
}

/// Reads a request's line and headers: its path, and whether the client asked to close.
fn read_request(tls: &mut impl BufRead) -> Option<(String, bool)> {
    let mut first = String::new();
    if tls.read_line(&mut first).unwrap_or(0) == 0 {
        return None;
    }
    let mut client_closes = false;
    loop {
        let mut header = String::new();
        if tls.read_line(&mut header).unwrap_or(0) == 0 || header == "\r\n" {
            break;
        }
        client_closes |= header.to_ascii_lowercase().starts_with("connection: close");
    }
    let path = first.split_whitespace().nth(1).unwrap_or("").to_string();
    Some((path, client_closes))
}

impl Drop for HttpsServer {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}
