use super::*;
use crate::download::RetryPolicy;
use crate::source::{resolve_checkout, tests::repo_with};
use kettle_testkit::stand_in::{self, ROOTFS, TOOLCHAIN};

/// A script/v1 recipe declaring `out/x`, pinning a rootfs of SHA-256 `rootfs_sha`.
fn recipe(rootfs_sha: &str) -> String {
    let rootfs = kettle_wire::Pin {
        url: "https://example.invalid/rootfs.tar.gz".into(),
        sha256: Sha256Digest::from_hex(rootfs_sha).unwrap(),
    };
    kettle_testkit::fixtures::script_recipe("true", &["out/x"], &rootfs, None)
}

/// A fresh store and work directory, and a downloader that tries each URL once.
struct LocalStore {
    _root: tempfile::TempDir,
    store: Store,
    work: tempfile::TempDir,
    dl: Downloader,
}

impl LocalStore {
    fn new() -> Self {
        let root = tempfile::tempdir().unwrap();
        LocalStore {
            store: Store::open(root.path()).unwrap(),
            _root: root,
            work: tempfile::tempdir().unwrap(),
            dl: Downloader::new(RetryPolicy::ONCE),
        }
    }

    /// Resolves `src`'s inputs with nothing delivered on the command line.
    fn resolve(&self, src: &ResolvedSource) -> Result<ResolvedInputs, InputError> {
        resolve(
            src,
            &self.store,
            &self.dl,
            self.work.path(),
            &Delivered::default(),
        )
    }
}

#[test]
fn resolves_a_script_recipe_from_the_store_and_writes_the_cache_layout() {
    let rootfs = b"pretend rootfs tarball";
    let sha = Sha256Digest::of_bytes(rootfs).to_hex();
    let repo = repo_with(&[
        ("kettle.toml", recipe(&sha).as_bytes()),
        ("greeting.txt", b"hi\n"),
    ]);
    let src = resolve_checkout(repo.path(), None, false).unwrap();
    let local = LocalStore::new();
    let store = &local.store;
    // Pre-seeded, as `kettle build --input rootfs.tar.gz` does: no download happens.
    store.insert_bytes("rootfs", rootfs, None).unwrap();
    let inputs = local.resolve(&src).unwrap();
    assert_eq!(inputs.build_type, BuildType::Script);
    assert_eq!(inputs.blobs.len(), 1);
    assert_eq!(inputs.blobs[0].kind, InputKind::Rootfs);
    assert_eq!(inputs.blobs[0].sha256, Sha256Digest::of_bytes(rootfs));

    let out = tempfile::tempdir().unwrap();
    let dir = out.path().join("inputs");
    write_cache(
        &inputs,
        &src.commit,
        store,
        CacheWriter::create_dir(&dir).unwrap(),
        &dir,
    )
    .unwrap();
    assert_eq!(
        std::fs::read(dir.join("git").join(&src.commit)).unwrap(),
        src.commit_object().unwrap()
    );
    assert_eq!(
        std::fs::read(dir.join("sha256").join(&sha)).unwrap(),
        rootfs
    );
    assert!(dir.join("source").join(&src.commit).is_file());

    // And as a disk image: a tar stream, 512-byte aligned for virtio-blk.
    let disk = out.path().join("cache.img");
    write_cache(
        &inputs,
        &src.commit,
        store,
        CacheWriter::create_disk(&disk).unwrap(),
        &disk,
    )
    .unwrap();
    assert_eq!(std::fs::metadata(&disk).unwrap().len() % 512, 0);
}

#[test]
fn a_blob_changed_after_resolve_is_refused_when_the_cache_is_written() {
    let rootfs = b"pretend rootfs tarball";
    let sha = Sha256Digest::of_bytes(rootfs);
    let repo = repo_with(&[("kettle.toml", recipe(&sha.to_hex()).as_bytes())]);
    let src = resolve_checkout(repo.path(), None, false).unwrap();
    let local = LocalStore::new();
    let store = &local.store;
    store.insert_bytes("rootfs", rootfs, None).unwrap();
    let inputs = local.resolve(&src).unwrap();
    std::fs::write(store.path_of(&sha), b"swapped after resolve").unwrap();
    let dir = local.work.path().join("inputs");
    let err = write_cache(
        &inputs,
        &src.commit,
        store,
        CacheWriter::create_dir(&dir).unwrap(),
        &dir,
    )
    .unwrap_err();
    assert!(err.to_string().contains(&sha.to_hex()), "{err}");
    assert!(store.get(&sha).unwrap().is_none(), "the bad entry is gone");
}

#[test]
fn a_missing_pinned_input_says_how_to_supply_it() {
    let repo = repo_with(&[("kettle.toml", recipe(&"ab".repeat(32)).as_bytes())]);
    let src = resolve_checkout(repo.path(), None, false).unwrap();
    let err = LocalStore::new().resolve(&src).unwrap_err();
    assert!(err.to_string().contains("--input FILE"), "{err}");
}

/// A cargo-build/v1 commit locking `n` crates whose .crate bytes are returned (in
/// Cargo.lock order), with its toolchain and rootfs already in `store`.
fn cargo_project(n: usize, store: &Store) -> (kettle_testkit::GitRepo, Vec<(String, Vec<u8>)>) {
    store.insert_bytes("toolchain", TOOLCHAIN, None).unwrap();
    store.insert_bytes("rootfs", ROOTFS, None).unwrap();
    // Sizes and contents differ per crate, so any mix-up changes a digest.
    let crates = (0..n)
        .map(|i| {
            let bytes = (0..(100 + 37 * i))
                .map(|j| ((i * 7 + j) % 256).to_le_bytes()[0])
                .collect();
            (format!("crate{i:03}"), bytes)
        })
        .collect();
    stand_in::cargo_project(crates)
}

/// Every blob in the store: name -> bytes.
fn store_contents(root: &Path) -> std::collections::BTreeMap<String, Vec<u8>> {
    std::fs::read_dir(root.join("sha256"))
        .unwrap()
        .map(|e| e.unwrap())
        .map(|e| {
            (
                e.file_name().to_string_lossy().into_owned(),
                std::fs::read(e.path()).unwrap(),
            )
        })
        .collect()
}

fn test_downloader(server: &kettle_testkit::HttpsServer, dir: &Path) -> Downloader {
    let ca = dir.join("ca.pem");
    server.write_ca(&ca);
    Downloader::with_ca_bundle(RetryPolicy::ONCE, &ca)
}

/// Resolves `src` with `jobs` parallel downloads from `server` into a new store at `root`
/// that holds only the toolchain and rootfs of [`cargo_project`].
fn resolve_from(
    server: &kettle_testkit::HttpsServer,
    src: &ResolvedSource,
    dl: &Downloader,
    root: &Path,
    jobs: usize,
) -> (Store, Result<ResolvedInputs, InputError>) {
    let store = Store::open(root).unwrap();
    cargo_project(0, &store);
    let work = tempfile::tempdir().unwrap();
    let options = ResolveOptions {
        crates_url: format!("{}/crates", server.base_url()),
        jobs,
    };
    let inputs = resolve_with(
        src,
        &store,
        dl,
        work.path(),
        &options,
        &Delivered::default(),
    );
    (store, inputs)
}

#[test]
fn parallel_fetch_gives_exactly_what_sequential_fetch_gives() {
    let server = kettle_testkit::HttpsServer::start();
    let tmp = tempfile::tempdir().unwrap();
    let dl = test_downloader(&server, tmp.path());
    let mut results = Vec::new();
    let seed = Store::open(tmp.path().join("seed")).unwrap();
    let (repo, crates) = cargo_project(40, &seed);
    for (path, bytes) in &crates {
        server.serve(path, bytes.clone());
    }
    let src = resolve_checkout(repo.path(), None, false).unwrap();
    for jobs in [1, 8, 64] {
        let root = tmp.path().join(format!("store-{jobs}"));
        let (store, inputs) = resolve_from(&server, &src, &dl, &root, jobs);
        let inputs = inputs.unwrap();
        let disk = tmp.path().join(format!("cache-{jobs}.img"));
        write_cache(
            &inputs,
            &src.commit,
            &store,
            CacheWriter::create_disk(&disk).unwrap(),
            &disk,
        )
        .unwrap();
        let summary = (
            inputs.blobs.clone(),
            inputs.archive,
            inputs.commit_object.clone(),
            inputs.build_type,
        );
        results.push((
            jobs,
            summary,
            store_contents(&root),
            std::fs::read(&disk).unwrap(),
        ));
    }
    let (_, summary, contents, disk) = &results[0];
    assert_eq!(
        summary.0.len(),
        42,
        "40 crates, the toolchain and the rootfs"
    );
    assert_eq!(contents.len(), 42 + 1, "and the source archive");
    for (jobs, s, c, d) in &results[1..] {
        assert_eq!(s, summary, "jobs={jobs}: resolved inputs differ");
        assert_eq!(c, contents, "jobs={jobs}: store contents differ");
        assert!(d == disk, "jobs={jobs}: cache disks differ");
    }
}

#[test]
fn parallel_fetch_fails_on_the_pin_sequential_fetch_fails_on() {
    let server = kettle_testkit::HttpsServer::start();
    let tmp = tempfile::tempdir().unwrap();
    let dl = test_downloader(&server, tmp.path());
    let seed = Store::open(tmp.path().join("seed")).unwrap();
    let (repo, crates) = cargo_project(30, &seed);
    for (i, (path, bytes)) in crates.iter().enumerate() {
        match i {
            7 | 21 => {}                                                // 404
            15 => server.serve(path, b"not the pinned bytes".to_vec()), // digest mismatch
            _ => server.serve(path, bytes.clone()),
        }
    }
    let src = resolve_checkout(repo.path(), None, false).unwrap();
    let mut errors = Vec::new();
    for jobs in [1, 8] {
        let root = tmp.path().join(format!("store-{jobs}"));
        let err = resolve_from(&server, &src, &dl, &root, jobs).1.unwrap_err();
        errors.push(err.to_string());
    }
    assert!(errors[0].contains("crate007"), "{}", errors[0]);
    assert_eq!(errors[0], errors[1]);
}

#[test]
fn recipe_errors_name_the_commit() {
    let repo = repo_with(&[("README", b"no recipe")]);
    let src = resolve_checkout(repo.path(), None, false).unwrap();
    let local = LocalStore::new();
    let err = local.resolve(&src).unwrap_err();
    assert!(matches!(err, InputError::NoRecipe { .. }), "{err}");

    let repo = repo_with(&[("kettle.toml", b"[build]\ntype = \"make/v1\"\n")]);
    let src = resolve_checkout(repo.path(), None, false).unwrap();
    let err = local.resolve(&src).unwrap_err();
    assert!(matches!(err, InputError::BadRecipe { .. }), "{err}");
}
