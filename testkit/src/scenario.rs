//! A pipeline test's setup in a few lines: a committed project, the request for
//! it, and its inputs in the cache layout (as a directory, a cache disk, a
//! `kettle-init --local` directory, or served over HTTPS).
//!
//! ```no_run
//! use kettle_testkit::Scenario;
//! let sc = Scenario::script("mkdir -p out && echo hi > out/x", &["out/x"]).commit();
//! let (inputs, out) = (sc.inputs(), sc.out());
//! // kettle_init::run_local(&sc.request, &inputs, None, &out, &Default::default())
//! ```

use std::cell::Cell;
use std::fs;
use std::path::{Path, PathBuf};

use kettle_provenance::Sha256Digest;
use kettle_wire::cache::CacheWriter;
use kettle_wire::request::REQUEST_ENTRY;
use kettle_wire::{BuildRequest, FetchMode, Pin, Upstream};

use crate::fixtures::{
    rootfs, script_recipe, test_request, write_sample, PLACEHOLDER_BASE_URL, ROOTFS_BINARIES,
};
use crate::git::GitRepo;
use crate::hostroot::host_binaries_tar;
use crate::https::{git_ref_advertisement, HttpsServer};

/// Where a [`Scenario`] serves the commit object.
pub const COMMIT_PATH: &str = "/commit";
/// Where a [`Scenario`] serves the source archive.
pub const SOURCE_PATH: &str = "/source.tar";
/// Where a [`Scenario`] serves the test rootfs.
pub const ROOTFS_PATH: &str = "/rootfs.tar";
/// The repository path of [`Scenario::upstream_request`] on the test server.
pub const REPO_PATH: &str = "/repo.git";
/// The ref discovery path of [`REPO_PATH`] (what git's smart-HTTP clients GET first).
pub const INFO_REFS_PATH: &str = "/repo.git/info/refs?service=git-upload-pack";

/// A committed project and everything a run of it needs.
pub struct Scenario {
    /// The project's repository.
    pub repo: GitRepo,
    /// The commit built.
    pub commit: String,
    /// Its raw commit object.
    pub commit_raw: Vec<u8>,
    /// The source archive the inputs hold (a tar of the commit; tests may replace it).
    pub archive: Vec<u8>,
    /// The SHA-256-addressed inputs: the rootfs (first), then the toolchain and extra inputs.
    pub blobs: Vec<Vec<u8>>,
    /// The request for `commit` ([`test_request`]).
    pub request: BuildRequest,
    dir: tempfile::TempDir,
    made: Cell<u32>,
}

/// What a [`Scenario`] is made of, before it is committed.
pub struct ScenarioBuilder {
    repo: GitRepo,
    script: Option<(String, Vec<String>)>,
    rootfs_url: String,
    rootfs: Option<Vec<u8>>,
    toolchain: Option<Vec<u8>>,
    blobs: Vec<Vec<u8>>,
}

impl Scenario {
    /// A script/v1 project running `bash -c command` and declaring `outputs`, on the test rootfs.
    pub fn script(command: &str, outputs: &[&str]) -> ScenarioBuilder {
        let mut b = ScenarioBuilder::new(GitRepo::new());
        b.script = Some((
            command.to_string(),
            outputs.iter().map(|o| o.to_string()).collect(),
        ));
        b
    }

    /// The sample project examples/`sample`, its kettle.toml filled in with `pins` (see [`write_sample`]).
    pub fn sample(sample: &str, pins: &[(&str, &str)]) -> ScenarioBuilder {
        let repo = GitRepo::new();
        write_sample(&repo, sample, pins);
        ScenarioBuilder::new(repo)
    }

    /// examples/hello-cargo with placeholder pins (host-tools builds do not use them).
    pub fn hello_cargo() -> ScenarioBuilder {
        let zero = "0".repeat(64);
        Scenario::sample(
            "hello-cargo",
            &[
                (
                    "@TOOLCHAIN_URL@",
                    &format!("{PLACEHOLDER_BASE_URL}/host-toolchain.tar"),
                ),
                (
                    "@ROOTFS_URL@",
                    &format!("{PLACEHOLDER_BASE_URL}/host-rootfs.tar"),
                ),
                ("@TOOLCHAIN_SHA256@", &zero),
                ("@ROOTFS_SHA256@", &zero),
            ],
        )
    }

    /// A fresh directory in the cache layout holding the commit, the archive and the blobs.
    pub fn inputs(&self) -> PathBuf {
        let dir = self.fresh("inputs");
        self.fill(CacheWriter::create_dir(&dir).expect("create the inputs dir"));
        dir
    }

    /// Writes the inputs as a cache disk image at `path`.
    pub fn write_cache_disk(&self, path: &Path) {
        self.fill(CacheWriter::create_disk(path).expect("create the cache disk"));
    }

    /// Fills `dir` for `kettle-init --local dir`: request.json and the inputs; returns `dir`.
    pub fn write_local_dir(&self, dir: &Path) -> PathBuf {
        self.fill(CacheWriter::create_dir(dir).expect("create the local dir"));
        fs::write(
            dir.join(REQUEST_ENTRY),
            serde_json::to_vec(&self.request).expect("json"),
        )
        .expect("write request.json");
        dir.to_path_buf()
    }

    /// A fresh path (not yet created) for a run's output directory.
    pub fn out(&self) -> PathBuf {
        self.fresh("out")
    }

    /// The scenario's own scratch directory (removed with it).
    pub fn dir(&self) -> &Path {
        self.dir.path()
    }

    /// Serves the commit object, the archive, the test rootfs, and the ref advertisement
    /// of [`REPO_PATH`] (the request's ref naming the commit) on `server`.
    pub fn serve(&self, server: &HttpsServer) {
        server.serve(COMMIT_PATH, self.commit_raw.clone());
        server.serve(SOURCE_PATH, self.archive.clone());
        // blobs[0] is the rootfs the recipe pins (the shared one, or the builder's own).
        server.serve(ROOTFS_PATH, self.blobs[0].clone());
        self.serve_refs(server, &[(&self.commit, &self.request.git_ref)]);
    }

    /// Serves `refs` ((object id, ref name) pairs) as [`REPO_PATH`]'s ref advertisement.
    pub fn serve_refs(&self, server: &HttpsServer, refs: &[(&str, &str)]) {
        server.serve(INFO_REFS_PATH, git_ref_advertisement(refs));
    }

    /// The request in upstream mode against `server` (repository [`REPO_PATH`], crates under `/crates`).
    pub fn upstream_request(&self, server: &HttpsServer) -> BuildRequest {
        let base = server.base_url();
        BuildRequest {
            mode: FetchMode::Upstream,
            repository: format!("{base}{REPO_PATH}"),
            upstream: Some(Upstream {
                source_archive_url: format!("{base}{SOURCE_PATH}"),
                commit_object_url: format!("{base}{COMMIT_PATH}"),
                crates_url: format!("{base}/crates"),
                dns_resolver: None,
            }),
            ..self.request.clone()
        }
    }

    fn fill(&self, mut w: CacheWriter) {
        let archive = self.fresh("archive.tar");
        fs::write(&archive, &self.archive).expect("write the archive");
        w.add_commit_object(&self.commit, &self.commit_raw)
            .and_then(|()| w.add_source_archive(&self.commit, &archive))
            .expect("add the source");
        for b in &self.blobs {
            w.add_blob_bytes(b).expect("add a blob");
        }
        w.finish().expect("finish the inputs");
    }

    /// `<dir>/<name>-<n>`, a path no earlier call returned.
    fn fresh(&self, name: &str) -> PathBuf {
        let n = self.made.get() + 1;
        self.made.set(n);
        self.dir.path().join(format!("{name}-{n}"))
    }
}

impl ScenarioBuilder {
    fn new(repo: GitRepo) -> ScenarioBuilder {
        ScenarioBuilder {
            repo,
            script: None,
            rootfs_url: format!("{PLACEHOLDER_BASE_URL}/rootfs.tar"),
            rootfs: None,
            toolchain: None,
            blobs: Vec::new(),
        }
    }

    /// Adds a file to the project.
    pub fn file(self, rel: &str, contents: impl AsRef<[u8]>) -> Self {
        self.repo.write(rel, contents);
        self
    }

    /// Adds an executable file to the project.
    pub fn executable(self, rel: &str, contents: impl AsRef<[u8]>) -> Self {
        self.repo.write_executable(rel, contents);
        self
    }

    /// Pins `bundle` as the script recipe's toolchain and adds it to the inputs.
    pub fn toolchain(mut self, bundle: &[u8]) -> Self {
        self.toolchain = Some(bundle.to_vec());
        self
    }

    /// Adds an input (in sha256/) that no pin asks for by itself (e.g. crates).
    pub fn input(mut self, bytes: &[u8]) -> Self {
        self.blobs.push(bytes.to_vec());
        self
    }

    /// Adds inputs (in sha256/) that no pin asks for by themselves.
    pub fn inputs(mut self, all: &[Vec<u8>]) -> Self {
        self.blobs.extend_from_slice(all);
        self
    }

    /// Where the script recipe says its rootfs comes from (default a placeholder).
    pub fn rootfs_url(mut self, url: &str) -> Self {
        self.rootfs_url = url.to_string();
        self
    }

    /// Builds on a rootfs of the test binaries ([`crate::fixtures::ROOTFS_BINARIES`]) plus
    /// `extra` host binaries (e.g. `unshare`), instead of the shared test rootfs.
    pub fn rootfs_binaries(mut self, extra: &[&str]) -> Self {
        let mut all: Vec<&str> = ROOTFS_BINARIES.to_vec();
        all.extend_from_slice(extra);
        self.rootfs =
            Some(host_binaries_tar(&all).expect("the host has the extra rootfs binaries"));
        self
    }

    /// Builds on exactly this root filesystem archive (pinned by its SHA-256), e.g. a hostile one.
    pub fn rootfs_bytes(mut self, bytes: &[u8]) -> Self {
        self.rootfs = Some(bytes.to_vec());
        self
    }

    /// Writes the script recipe (if any), commits, and makes the request.
    pub fn commit(self) -> Scenario {
        let rootfs_bytes = self.rootfs.unwrap_or_else(|| rootfs().to_vec());
        let mut blobs = vec![rootfs_bytes.clone()];
        if let Some((command, outputs)) = &self.script {
            let toolchain = self.toolchain.as_ref().map(|t| Pin {
                url: format!("{PLACEHOLDER_BASE_URL}/toolchain.tar"),
                sha256: Sha256Digest::of_bytes(t),
            });
            let outputs: Vec<&str> = outputs.iter().map(String::as_str).collect();
            let rootfs_pin = Pin {
                url: self.rootfs_url.clone(),
                sha256: Sha256Digest::of_bytes(&rootfs_bytes),
            };
            let recipe = script_recipe(command, &outputs, &rootfs_pin, toolchain.as_ref());
            self.repo.write("kettle.toml", recipe);
        }
        blobs.extend(self.toolchain);
        blobs.extend(self.blobs);
        let commit = self.repo.commit_all("sample");
        Scenario {
            commit_raw: self.repo.commit_object(&commit),
            archive: self.repo.archive(&commit),
            request: test_request(&commit),
            commit,
            blobs,
            repo: self.repo,
            dir: tempfile::tempdir().expect("create the scenario dir"),
            made: Cell::new(0),
        }
    }
}
