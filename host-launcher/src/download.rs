//! HTTPS downloads for the host: the system's CA roots (/etc/ssl/certs, where
//! a site's TLS proxy CA lives), retries with exponential backoff on transient
//! failures, and a progress bar per download. The same HTTP stack as the
//! guest's (ureq 3 over rustls with the ring provider), with the host's roots.

use std::io::Read;
use std::path::{Path, PathBuf};
use std::sync::OnceLock;
use std::time::Duration;

use indicatif::{MultiProgress, ProgressBar, ProgressDrawTarget, ProgressStyle};

use crate::store::{Sha256Digest, Store, StoreError};

/// The system's CA bundle on Debian (it includes any local TLS proxy's CA).
pub const SYSTEM_CA_BUNDLE: &str = "/etc/ssl/certs/ca-certificates.crt";

/// Why a download failed for good.
#[derive(Debug, thiserror::Error)]
pub enum DownloadError {
    /// The server answered with an error status that retrying will not fix.
    #[error("GET {url}: HTTP {status}{hint}")]
    Status {
        /// The URL.
        url: String,
        /// The HTTP status.
        status: u16,
        /// What to do about it.
        hint: &'static str,
    },
    /// Transient failures persisted through every attempt.
    #[error("GET {url}: failed {attempts} times, last: {last} (check the network, or that the host's CA roots in /etc/ssl/certs trust the TLS proxy)")]
    GaveUp {
        /// The URL.
        url: String,
        /// How many attempts were made.
        attempts: u32,
        /// The last error.
        last: String,
    },
    /// The body was larger than allowed.
    #[error("GET {url}: body exceeds the {limit}-byte limit")]
    TooLarge {
        /// The URL.
        url: String,
        /// The limit.
        limit: u64,
    },
    /// Storing the body failed, or it did not hash to its pin.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// The system CA bundle could not be loaded.
    #[error("CA roots {path}: {reason} (install Debian's ca-certificates package)")]
    CaRoots {
        /// The bundle.
        path: String,
        /// What is wrong.
        reason: String,
    },
}

/// How hard to try.
#[derive(Debug, Clone, Copy)]
pub struct RetryPolicy {
    /// Attempts in total (at least 1).
    pub attempts: u32,
    /// Wait before the second attempt; doubled for each further one.
    pub first_backoff: Duration,
}

impl RetryPolicy {
    /// One attempt, no retries: for tests and local servers, where a failure is final.
    pub const ONCE: RetryPolicy = RetryPolicy {
        attempts: 1,
        first_backoff: Duration::ZERO,
    };
}

impl Default for RetryPolicy {
    fn default() -> Self {
        RetryPolicy {
            attempts: 4,
            first_backoff: Duration::from_secs(1),
        }
    }
}

/// Idle connections kept per host: one per parallel download
/// ([`crate::inputs::DEFAULT_FETCH_JOBS`]) and some, so a parallel fetch reuses its TLS sessions.
const IDLE_CONNECTIONS_PER_HOST: usize = 16;

/// Downloads files with retries and progress bars. Shareable between threads
/// (`&Downloader` is `Sync`): one agent, one connection pool, one progress display.
pub struct Downloader {
    agent: OnceLock<Result<ureq::Agent, (String, String)>>,
    roots: PathBuf,
    retry: RetryPolicy,
    bars: MultiProgress,
}

impl Downloader {
    /// A downloader using the system roots and `retry`; progress goes to stderr when it is a terminal.
    /// The roots are loaded at the first download (a missing bundle fails that download).
    pub fn new(retry: RetryPolicy) -> Downloader {
        Downloader::with_ca_bundle(retry, Path::new(SYSTEM_CA_BUNDLE))
    }

    /// Like [`Downloader::new`], trusting only the PEM roots in `roots` (a mirror's own
    /// CA, a test server's).
    pub fn with_ca_bundle(retry: RetryPolicy, roots: &Path) -> Downloader {
        Downloader {
            agent: OnceLock::new(),
            roots: roots.to_path_buf(),
            retry,
            bars: MultiProgress::with_draw_target(ProgressDrawTarget::stderr()),
        }
    }

    fn agent(&self) -> Result<&ureq::Agent, DownloadError> {
        match self.agent.get_or_init(|| build_agent(&self.roots)) {
            Ok(a) => Ok(a),
            Err((path, reason)) => Err(DownloadError::CaRoots {
                path: path.clone(),
                reason: reason.clone(),
            }),
        }
    }

    /// The progress display, to add other bars next to the downloads'.
    pub fn progress(&self) -> &MultiProgress {
        &self.bars
    }

    /// GETs `url` into memory (at most `limit` bytes).
    pub fn get_bytes(&self, url: &str, limit: u64) -> Result<Vec<u8>, DownloadError> {
        self.with_retries(url, |response, bar| {
            let mut body = Vec::new();
            let n = bar
                .wrap_read(body_reader(response).take(limit + 1))
                .read_to_end(&mut body)
                .map_err(|e| Attempt::Transient(e.to_string()))?;
            if n as u64 > limit {
                return Err(Attempt::Fatal(DownloadError::TooLarge {
                    url: url.to_string(),
                    limit,
                }));
            }
            Ok(body)
        })
    }

    /// GETs `url` into `store`; with `expected`, a body with another SHA-256 is refused (and not retried).
    pub fn fetch_into(
        &self,
        store: &Store,
        url: &str,
        expected: Option<&Sha256Digest>,
    ) -> Result<Sha256Digest, DownloadError> {
        if let Some(d) = expected {
            if store.get(d)?.is_some() {
                log::debug!("{url}: cached");
                return Ok(*d);
            }
        }
        self.with_retries(url, |response, bar| {
            store
                .insert_reader(url, bar.wrap_read(body_reader(response)), expected)
                .map_err(|e| match e {
                    StoreError::Io { ref source, .. } if is_network_error(source) => {
                        Attempt::Transient(e.to_string())
                    }
                    other => Attempt::Fatal(other.into()),
                })
        })
    }

    /// Runs `body` on a successful response, retrying transient failures with backoff.
    fn with_retries<T>(
        &self,
        url: &str,
        mut body: impl FnMut(Response, &ProgressBar) -> Result<T, Attempt>,
    ) -> Result<T, DownloadError> {
        let attempts = self.retry.attempts.max(1);
        let mut backoff = self.retry.first_backoff;
        let mut last = String::new();
        for attempt in 1..=attempts {
            if attempt > 1 {
                log::warn!(
                    "GET {url}: {last}; retrying in {backoff:?} (attempt {attempt}/{attempts})"
                );
                std::thread::sleep(backoff);
                backoff = backoff.saturating_mul(2);
            }
            let outcome = match self.agent()?.get(url).call() {
                Ok(response) if response.status().is_success() => {
                    let bar = self.bar_for(url, &response);
                    let r = body(response, &bar);
                    bar.finish_and_clear();
                    r
                }
                Ok(response) => Err(classify_status(url, response.status().as_u16())),
                Err(e) => Err(Attempt::Transient(e.to_string())),
            };
            match outcome {
                Ok(v) => return Ok(v),
                Err(Attempt::Fatal(e)) => return Err(e),
                Err(Attempt::Transient(msg)) => last = msg,
            }
        }
        Err(DownloadError::GaveUp {
            url: url.to_string(),
            attempts,
            last,
        })
    }

    fn bar_for(&self, url: &str, response: &Response) -> ProgressBar {
        let len = response
            .headers()
            .get("content-length")
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.parse::<u64>().ok());
        let name = url.rsplit('/').next().unwrap_or(url).to_string();
        let bar = match len {
            Some(n) => ProgressBar::new(n).with_style(
                ProgressStyle::with_template(
                    "{msg:32!} [{bar:30}] {bytes}/{total_bytes} {bytes_per_sec}",
                )
                .expect("valid template")
                .progress_chars("=> "),
            ),
            None => ProgressBar::new_spinner().with_style(
                ProgressStyle::with_template("{spinner} {msg:32!} {bytes} {bytes_per_sec}")
                    .expect("valid template"),
            ),
        };
        self.bars.add(bar.with_message(name))
    }
}

type Response = ureq::http::Response<ureq::Body>;

/// The whole body as a stream (the caller bounds it; ureq's own default limit is for in-memory reads).
fn body_reader(response: Response) -> impl Read {
    response
        .into_body()
        .into_with_config()
        .limit(u64::MAX)
        .reader()
}

/// An agent trusting the PEM roots at `roots_pem`, or (path, reason) why it cannot be had.
fn build_agent(roots_pem: &Path) -> Result<ureq::Agent, (String, String)> {
    let roots = kettle_wire::https::load_pem_roots(roots_pem)
        .map_err(|reason| (roots_pem.display().to_string(), reason))?;
    let tls = kettle_wire::https::tls_config(roots);
    let config = ureq::Agent::config_builder()
        .tls_config(tls)
        .timeout_connect(Some(Duration::from_secs(30)))
        .timeout_recv_response(Some(Duration::from_secs(60)))
        .user_agent(concat!("kettle/", env!("CARGO_PKG_VERSION")))
        .http_status_as_error(false)
        .max_redirects(5)
        .max_idle_connections(2 * IDLE_CONNECTIONS_PER_HOST)
        .max_idle_connections_per_host(IDLE_CONNECTIONS_PER_HOST)
        .build();
    Ok(config.into())
}

/// The outcome of one failed attempt.
enum Attempt {
    /// Worth retrying (network trouble, 5xx, 429).
    Transient(String),
    /// Retrying will not help.
    Fatal(DownloadError),
}

fn classify_status(url: &str, status: u16) -> Attempt {
    match status {
        408 | 425 | 429 | 500..=599 => Attempt::Transient(format!("HTTP {status}")),
        404 | 410 => Attempt::Fatal(DownloadError::Status {
            url: url.to_string(),
            status,
            hint: " (not found: check the name, version or URL)",
        }),
        _ => Attempt::Fatal(DownloadError::Status {
            url: url.to_string(),
            status,
            hint: "",
        }),
    }
}

/// Errors while reading a body that a new attempt may not hit.
fn is_network_error(e: &std::io::Error) -> bool {
    use std::io::ErrorKind::*;
    matches!(
        e.kind(),
        ConnectionReset
            | ConnectionAborted
            | BrokenPipe
            | TimedOut
            | UnexpectedEof
            | Interrupted
            | WouldBlock
            | Other
    )
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    use std::io::{BufRead, BufReader, Write};
    use std::net::TcpListener;
    use std::sync::{Arc, Mutex};

    /// A canned HTTP/1.1 server on 127.0.0.1 answering each request with the next response in turn.
    pub(crate) struct StandIn {
        /// Base URL (`http://127.0.0.1:PORT`).
        pub base: String,
        /// Request lines received (`GET /path HTTP/1.1`).
        pub requests: Arc<Mutex<Vec<String>>>,
    }

    /// Starts a stand-in serving `responses` (status, body) once each, then closing.
    pub(crate) fn stand_in(responses: Vec<(u16, Vec<u8>)>) -> StandIn {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let base = format!("http://{}", listener.local_addr().unwrap());
        let requests = Arc::new(Mutex::new(Vec::new()));
        let seen = requests.clone();
        std::thread::spawn(move || {
            for (status, body) in responses {
                let Ok((stream, _)) = listener.accept() else {
                    return;
                };
                let mut reader = BufReader::new(stream.try_clone().unwrap());
                let mut line = String::new();
                reader.read_line(&mut line).unwrap();
                seen.lock().unwrap().push(line.trim().to_string());
                loop {
                    let mut h = String::new();
                    if reader.read_line(&mut h).unwrap() == 0 || h == "\r\n" {
                        break;
                    }
                }
                let mut stream = stream;
                let head = format!(
                    "HTTP/1.1 {status} X\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
                    body.len()
                );
                stream.write_all(head.as_bytes()).unwrap();
                stream.write_all(&body).unwrap();
            }
        });
        StandIn { base, requests }
    }

    fn fast() -> RetryPolicy {
        RetryPolicy {
            attempts: 3,
            first_backoff: Duration::from_millis(1),
        }
    }

    /// How getting `path` (at most `limit` bytes) from `server` fails, with [`fast`] retries.
    fn get_bytes_err(server: &StandIn, path: &str, limit: u64) -> DownloadError {
        Downloader::new(fast())
            .get_bytes(&format!("{}{path}", server.base), limit)
            .unwrap_err()
    }

    #[test]
    fn retries_server_errors_then_stores_the_pinned_body() {
        let server = stand_in(vec![
            (503, b"busy".to_vec()),
            (200, b"crate bytes".to_vec()),
        ]);
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path()).unwrap();
        let want: Sha256Digest = Sha256Digest::of_bytes(b"crate bytes");
        let got = Downloader::new(fast()).fetch_into(
            &store,
            &format!("{}/c/x-1.crate", server.base),
            Some(&want),
        );
        assert_eq!(got.unwrap(), want);
        assert_eq!(server.requests.lock().unwrap().len(), 2);
        assert!(store.get(&want).unwrap().is_some());
    }

    #[test]
    fn pinned_digest_mismatch_is_fatal() {
        let server = stand_in(vec![(200, b"evil".to_vec()), (200, b"evil".to_vec())]);
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path()).unwrap();
        let want: Sha256Digest = Sha256Digest::of_bytes(b"good");
        let err = Downloader::new(fast())
            .fetch_into(&store, &format!("{}/x", server.base), Some(&want))
            .unwrap_err();
        assert!(
            matches!(err, DownloadError::Store(StoreError::DigestMismatch { .. })),
            "{err}"
        );
        assert_eq!(
            server.requests.lock().unwrap().len(),
            1,
            "a wrong body is not retried"
        );
    }

    #[test]
    fn not_found_is_not_retried_and_says_so() {
        let server = stand_in(vec![(404, Vec::new())]);
        let err = get_bytes_err(&server, "/missing", 1024);
        assert!(err.to_string().contains("HTTP 404"), "{err}");
        assert!(err.to_string().contains("not found"), "{err}");
    }

    #[test]
    fn gives_up_after_the_last_attempt() {
        let server = stand_in(vec![
            (500, Vec::new()),
            (502, Vec::new()),
            (503, Vec::new()),
        ]);
        let err = get_bytes_err(&server, "/x", 1024);
        assert!(
            matches!(err, DownloadError::GaveUp { attempts: 3, .. }),
            "{err}"
        );
        assert_eq!(server.requests.lock().unwrap().len(), 3);
    }

    /// Needs crates.io (run with `--ignored`): proves the system roots, not webpki's, are used.
    #[test]
    #[ignore = "network: reaches static.crates.io"]
    fn downloads_a_real_crate_through_the_system_roots() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path()).unwrap();
        let want = Sha256Digest::from_hex(
            "7f24254aa9a54b5c858eaee2f5bccdb46aaf0e486a595ed5fd8f86ba55232a70",
        )
        .unwrap();
        let got = Downloader::new(RetryPolicy::default())
            .fetch_into(
                &store,
                "https://static.crates.io/crates/hex/hex-0.4.3.crate",
                Some(&want),
            )
            .unwrap();
        assert_eq!(got, want);
    }

    #[test]
    fn refuses_oversized_bodies() {
        let server = stand_in(vec![(200, vec![b'x'; 100])]);
        let err = get_bytes_err(&server, "/x", 10);
        assert!(
            matches!(err, DownloadError::TooLarge { limit: 10, .. }),
            "{err}"
        );
    }
}
