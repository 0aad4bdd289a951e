//! Host-side input resolution for a lockfile of 200 crates from a local mirror
//! (`make bench`): [`kettle::inputs::resolve_with`] into an empty store, one
//! download at a time (`jobs1`, what `kettle build` did before) and
//! [`DEFAULT_FETCH_JOBS`] at a time (`jobs8`), against a local HTTPS stand-in
//! that serves crates.io-style paths with keep-alive and answers each request
//! after an optional delay: `lat0ms` is the loopback mirror itself, `lat10ms` a
//! mirror one 10 ms round trip away.
//!
//! Env: `KETTLE_BENCH_CRATES` (default 200).

use std::collections::HashMap;
use std::io::{BufRead, BufReader, Write};
use std::net::{TcpListener, TcpStream};
use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use criterion::{criterion_group, criterion_main, BatchSize, Criterion, Throughput};
use kettle::download::{Downloader, RetryPolicy};
use kettle::inputs::{resolve_with, ResolveOptions, DEFAULT_FETCH_JOBS};
use kettle::source::resolve_checkout;
use kettle::store::{Sha256Digest, Store};

/// A crates mirror on 127.0.0.1: TLS from its own CA, a thread per connection,
/// HTTP/1.1 keep-alive, each answer after `latency`.
struct Mirror {
    port: u16,
    ca_pem: String,
    stop: Arc<AtomicBool>,
}

impl Mirror {
    fn start(files: HashMap<String, Vec<u8>>, latency: Duration) -> Mirror {
        let ca_key = rcgen::KeyPair::generate().unwrap();
        let mut ca_params = rcgen::CertificateParams::new(Vec::<String>::new()).unwrap();
        ca_params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
        ca_params
            .distinguished_name
            .push(rcgen::DnType::CommonName, "Kettle bench CA");
        let ca = ca_params.self_signed(&ca_key).unwrap();
        let leaf_key = rcgen::KeyPair::generate().unwrap();
        let leaf = rcgen::CertificateParams::new(vec!["127.0.0.1".to_string()])
            .unwrap()
            .signed_by(&leaf_key, &ca, &ca_key)
            .unwrap();
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let config = rustls::ServerConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .unwrap()
            .with_no_client_auth()
            .with_single_cert(
                vec![leaf.der().clone()],
                rustls::pki_types::PrivateKeyDer::Pkcs8(leaf_key.serialize_der().into()),
            )
            .unwrap();
        let config = Arc::new(config);
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        let stop = Arc::new(AtomicBool::new(false));
        let files = Arc::new(files);
        {
            let stop = stop.clone();
            std::thread::spawn(move || {
                for tcp in listener.incoming() {
                    if stop.load(Ordering::SeqCst) {
                        return;
                    }
                    let Ok(tcp) = tcp else { continue };
                    let (config, files) = (config.clone(), files.clone());
                    std::thread::spawn(move || serve(tcp, config, &files, latency));
                }
            });
        }
        Mirror {
            port,
            ca_pem: ca.pem(),
            stop,
        }
    }
}

impl Drop for Mirror {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        let _ = TcpStream::connect(("127.0.0.1", self.port)); // wakes the accept loop
    }
}

fn serve(
    tcp: TcpStream,
    config: Arc<rustls::ServerConfig>,
    files: &HashMap<String, Vec<u8>>,
    latency: Duration,
) {
    let _ = tcp.set_read_timeout(Some(Duration::from_secs(20)));
    let _ = tcp.set_nodelay(true);
    let Ok(conn) = rustls::ServerConnection::new(config) else {
        return;
    };
    let mut tls = BufReader::new(rustls::StreamOwned::new(conn, tcp));
    loop {
        let mut first = String::new();
        if tls.read_line(&mut first).unwrap_or(0) == 0 {
            return;
        }
        let mut close = false;
        loop {
            let mut h = String::new();
            if tls.read_line(&mut h).unwrap_or(0) == 0 {
                return;
            }
            if h == "\r\n" {
                break;
            }
            close |= h.to_ascii_lowercase().starts_with("connection: close");
        }
        if !latency.is_zero() {
            std::thread::sleep(latency);
        }
        let path = first.split_whitespace().nth(1).unwrap_or("");
        let (status, body): (&str, &[u8]) = match files.get(path) {
            Some(b) => ("200 OK", b),
            None => ("404 Not Found", b"not found"),
        };
        let head = format!(
            "HTTP/1.1 {status}\r\nContent-Length: {}\r\nContent-Type: application/x-tar\r\n\r\n",
            body.len()
        );
        let out = tls.get_mut();
        if out
            .write_all(head.as_bytes())
            .and_then(|_| out.write_all(body))
            .and_then(|_| out.flush())
            .is_err()
            || close
        {
            return;
        }
    }
}

/// A cargo-build/v1 commit locking `n` crates (4 to 64 KiB each, distinct bytes), the
/// mirror's files, and the toolchain and rootfs bytes (pre-seeded in each store).
fn project(n: usize) -> (kettle_testkit::GitRepo, HashMap<String, Vec<u8>>, u64) {
    let recipe = format!(
        "[build]\ntype = \"cargo-build/v1\"\noutputs = [\"target/release/x\"]\n\n\
         [toolchain]\nurl = \"https://example.invalid/t.tar.gz\"\nsha256 = \"{}\"\n\n\
         [rootfs]\nurl = \"https://example.invalid/r.tar.gz\"\nsha256 = \"{}\"\n",
        Sha256Digest::of_bytes(TOOLCHAIN),
        Sha256Digest::of_bytes(ROOTFS)
    );
    let mut lock = String::from("version = 4\n");
    let mut files = HashMap::new();
    let mut total = 0u64;
    let mut seed = 0x2545_f491_4f6c_dd1du64;
    for i in 0..n {
        let name = format!("bench-crate-{i:03}");
        let len = 4096 + (i * 7919) % (60 * 1024);
        let bytes: Vec<u8> = (0..len)
            .map(|_| {
                seed ^= seed << 13;
                seed ^= seed >> 7;
                seed ^= seed << 17;
                seed as u8
            })
            .collect();
        total += len as u64;
        lock.push_str(&format!(
            "\n[[package]]\nname = \"{name}\"\nversion = \"1.0.{i}\"\nsource = \"registry+https://github.com/rust-lang/crates.io-index\"\nchecksum = \"{}\"\n",
            Sha256Digest::of_bytes(&bytes)
        ));
        files.insert(format!("/crates/{name}/{name}-1.0.{i}.crate"), bytes);
    }
    let repo = kettle_testkit::GitRepo::new();
    repo.write("kettle.toml", recipe);
    repo.write("Cargo.lock", lock);
    repo.write("src/main.rs", "fn main() {}\n");
    repo.commit_all("bench");
    (repo, files, total)
}

const TOOLCHAIN: &[u8] = b"pretend toolchain bundle";
const ROOTFS: &[u8] = b"pretend rootfs bundle";

fn fresh_store(dir: &Path) -> Store {
    let _ = std::fs::remove_dir_all(dir);
    let store = Store::open(dir).unwrap();
    store.insert_bytes("toolchain", TOOLCHAIN, None).unwrap();
    store.insert_bytes("rootfs", ROOTFS, None).unwrap();
    store
}

fn fetch(c: &mut Criterion) {
    let n: usize = std::env::var("KETTLE_BENCH_CRATES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(200);
    let (repo, files, total) = project(n);
    let src = resolve_checkout(repo.path(), None, false).unwrap();
    let tmp = tempfile::tempdir().unwrap();
    let mut g = c.benchmark_group("fetch");
    g.sample_size(10);
    g.measurement_time(Duration::from_secs(10));
    g.warm_up_time(Duration::from_secs(1));
    g.throughput(Throughput::Elements(n as u64));
    eprintln!("fetch: {n} crates, {total} bytes");
    for latency_ms in [0u64, 10] {
        let mirror = Mirror::start(files.clone(), Duration::from_millis(latency_ms));
        let ca = tmp.path().join("ca.pem");
        std::fs::write(&ca, &mirror.ca_pem).unwrap();
        for jobs in [1, DEFAULT_FETCH_JOBS] {
            let options = ResolveOptions {
                crates_url: format!("https://127.0.0.1:{}/crates", mirror.port),
                jobs,
            };
            // One downloader per case, as one `kettle build` has: its pool warms up once.
            let dl = Downloader::with_ca_bundle(RetryPolicy::default(), &ca);
            let store_dir = tmp.path().join("store");
            let work = tmp.path().join("work");
            std::fs::create_dir_all(&work).unwrap();
            g.bench_function(format!("lat{latency_ms}ms/jobs{jobs}"), |b| {
                b.iter_batched(
                    || fresh_store(&store_dir),
                    |store| {
                        let r = resolve_with(&src, &store, &dl, &work, &options).unwrap();
                        assert_eq!(r.blobs.len(), n + 2);
                    },
                    BatchSize::PerIteration,
                )
            });
        }
    }
    g.finish();
}

criterion_group!(benches, fetch);
criterion_main!(benches);
