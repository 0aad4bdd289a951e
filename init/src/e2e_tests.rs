//! End-to-end tests of the pipeline in local mode: real git commits, real
//! archives, a root filesystem made from the host's own binaries, the real
//! sandbox (these tests run as root), a counting fake report provider.

use std::collections::HashMap;
use std::fs;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, OnceLock};
use std::time::{Duration, Instant};

use kettle_attest::{Evidence, ProviderKind, ReportProvider, RequestError};
use kettle_provenance::{Provenance, Statement};

use crate::cache::{self, CacheWriter};
use crate::digest::{sha256_bytes, sha256_file};
use crate::output::{self, Status};
use crate::request::{
    BuildRequest, FetchMode, Limits, ObjectFormat, Tee, Upstream, REQUEST_SCHEMA,
};
use crate::{run_local, ErrorReport, LocalOptions, Step, Tools};

/// Counts report requests and returns a recognizable fake report.
#[derive(Default)]
struct CountingProvider {
    calls: usize,
    last_report_data: Option<[u8; 64]>,
}

impl ReportProvider for CountingProvider {
    fn request_report(&mut self, report_data: &[u8; 64]) -> Result<Evidence, RequestError> {
        self.calls += 1;
        self.last_report_data = Some(*report_data);
        Ok(Evidence {
            report: vec![0x5a; 1184],
            cert_chain_pem: Some(b"-----FAKE CHAIN-----\n".to_vec()),
            provider: ProviderKind::Simulated,
        })
    }
}

fn examples_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../examples")
}

fn run(cmd: &mut Command) -> Vec<u8> {
    let out = cmd.output().unwrap_or_else(|e| panic!("{cmd:?}: {e}"));
    assert!(
        out.status.success(),
        "{cmd:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    out.stdout
}

/// A committed git repository made from `files`.
struct Repo {
    commit: String,
    commit_raw: Vec<u8>,
    archive: Vec<u8>,
    _dir: tempfile::TempDir,
}

fn commit_tree(files: &[(&str, Vec<u8>, bool)]) -> Repo {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    for (path, data, exec) in files {
        let p = d.join(path);
        fs::create_dir_all(p.parent().unwrap()).unwrap();
        fs::write(&p, data).unwrap();
        if *exec {
            use std::os::unix::fs::PermissionsExt;
            fs::set_permissions(&p, fs::Permissions::from_mode(0o755)).unwrap();
        }
    }
    let git = |args: &[&str]| {
        run(Command::new("git")
            .args([
                "-c",
                "user.name=Kettle Test",
                "-c",
                "user.email=test@kettle.invalid",
                "-c",
                "init.defaultBranch=main",
                "-c",
                "commit.gpgsign=false",
            ])
            .args(args)
            .current_dir(d)
            .env("GIT_AUTHOR_DATE", "1700000000 +0000")
            .env("GIT_COMMITTER_DATE", "1700000000 +0000"))
    };
    git(&["init", "-q"]);
    git(&["add", "-A"]);
    git(&["commit", "-q", "-m", "sample"]);
    let commit = String::from_utf8(git(&["rev-parse", "HEAD"]))
        .unwrap()
        .trim()
        .to_string();
    let commit_raw = git(&["cat-file", "commit", "HEAD"]);
    let archive = git(&["archive", "--format=tar", "HEAD"]);
    Repo {
        commit,
        commit_raw,
        archive,
        _dir: dir,
    }
}

fn rootfs() -> &'static Vec<u8> {
    static R: OnceLock<Vec<u8>> = OnceLock::new();
    R.get_or_init(|| {
        crate::hostroot::host_binaries_tar(&[
            "bash", "cat", "mkdir", "ls", "id", "tr", "echo", "sleep", "ln",
        ])
        .unwrap()
    })
}

fn request_for(commit: &str) -> BuildRequest {
    BuildRequest {
        schema: REQUEST_SCHEMA.into(),
        repository: "https://github.com/kettle-build/samples".into(),
        git_ref: "refs/heads/main".into(),
        commit: commit.into(),
        object_format: ObjectFormat::Sha1,
        mode: FetchMode::Cached,
        tee: Tee::Simulated,
        invocation_id: "test-invocation-1".into(),
        limits: Limits {
            max_build_seconds: Some(600),
            max_memory_bytes: None,
        },
        upstream: None,
    }
}

fn script_manifest(
    command: &str,
    outputs: &[&str],
    rootfs_sha: &str,
    toolchain: Option<&str>,
) -> String {
    let cmd = serde_json::to_string(&["bash", "-c", command]).unwrap();
    let outs = serde_json::to_string(outputs).unwrap();
    let tool = toolchain
        .map(|t| {
            format!(
                "[toolchain]\nurl = \"https://example.invalid/toolchain.tar\"\nsha256 = \"{t}\"\n"
            )
        })
        .unwrap_or_default();
    format!("[build]\ntype = \"script/v1\"\noutputs = {outs}\ncommand = {cmd}\n{tool}[rootfs]\nurl = \"https://example.invalid/rootfs.tar\"\nsha256 = \"{rootfs_sha}\"\n")
}

/// Inputs dir for `repo` + the rootfs + extra blobs.
fn inputs_for(repo: &Repo, blobs: &[&[u8]]) -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    let mut w = CacheWriter::create_dir(dir.path()).unwrap();
    w.add_commit_object(&repo.commit, &repo.commit_raw).unwrap();
    let archive = dir.path().join("archive.tar");
    fs::write(&archive, &repo.archive).unwrap();
    w.add_source_archive(&repo.commit, &archive).unwrap();
    w.add_blob_bytes(rootfs()).unwrap();
    for b in blobs {
        w.add_blob_bytes(b).unwrap();
    }
    w.finish().unwrap();
    dir
}

fn read_status(out: &Path) -> Status {
    serde_json::from_slice(&fs::read(out.join(output::STATUS_FILE)).unwrap()).unwrap()
}

fn read_error(out: &Path) -> ErrorReport {
    serde_json::from_slice(&fs::read(out.join(output::ERROR_FILE)).unwrap()).unwrap()
}

/// Only error.json is left after a failure.
fn assert_only_error(out: &Path) {
    let names: Vec<_> = fs::read_dir(out)
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .collect();
    assert_eq!(names, vec![output::ERROR_FILE.to_string()]);
}

#[test]
fn script_build_end_to_end() {
    let rootfs_sha = sha256_bytes(rootfs());
    let manifest = script_manifest("mkdir -p out && { echo hello; cat greeting.txt; ./tool.sh; } > out/hello.txt && echo second > out/two.txt", &["out/hello.txt", "out/two.txt"], &rootfs_sha, None);
    let repo = commit_tree(&[
        ("kettle.toml", manifest.into_bytes(), false),
        ("greeting.txt", b"from a test\n".to_vec(), false),
        ("tool.sh", b"#!/bin/sh\necho tool ran\n".to_vec(), true),
    ]);
    let inputs = inputs_for(&repo, &[]);
    let out = tempfile::tempdir().unwrap().keep().join("out");
    let mut provider = CountingProvider::default();
    let req = request_for(&repo.commit);
    let outcome = run_local(
        &req,
        inputs.path(),
        Some(&mut provider),
        &out,
        &LocalOptions::default(),
    )
    .unwrap();

    let hello = fs::read_to_string(out.join("artifacts/out/hello.txt")).unwrap();
    assert_eq!(hello, "hello\nfrom a test\ntool ran\n");
    let provenance = fs::read(out.join(output::PROVENANCE_FILE)).unwrap();
    assert_eq!(provenance, outcome.provenance);
    assert!(kettle_provenance::jcs::is_canonical(&provenance));
    let st: Statement<Provenance> = Statement::from_json(&provenance).unwrap();
    st.validate().unwrap();
    kettle_provenance::merkle::check_input_merkle_root(&st.predicate).unwrap();
    // Subjects are exactly the outputs, with the hashes of the emitted files.
    assert_eq!(st.subject.len(), 2);
    for (subject, name) in st.subject.iter().zip(["out/hello.txt", "out/two.txt"]) {
        assert_eq!(subject.name.as_deref(), Some(name));
        assert_eq!(
            subject.digest["sha256"],
            sha256_file(&out.join("artifacts").join(name)).unwrap()
        );
    }
    let def = &st.predicate.build_definition;
    assert_eq!(def.build_type, kettle_provenance::ids::BUILD_TYPE_SCRIPT);
    assert_eq!(def.external_parameters["repository"], req.repository);
    assert_eq!(def.external_parameters["ref"], req.git_ref);
    assert_eq!(def.internal_parameters["hermetic"], true);
    assert_eq!(def.internal_parameters["tee_platform"], "simulated");
    let src = &def.resolved_dependencies[0];
    assert_eq!(
        src.uri.as_deref(),
        Some(format!("git+{}@{}", req.repository, req.git_ref).as_str())
    );
    assert_eq!(src.digest["gitCommit"], repo.commit);
    let git_tree = String::from_utf8(repo.commit_raw.clone())
        .unwrap()
        .lines()
        .next()
        .unwrap()
        .strip_prefix("tree ")
        .unwrap()
        .to_string();
    assert_eq!(src.digest["gitTree"], git_tree);
    let rootfs_dep = def
        .resolved_dependencies
        .iter()
        .find(|d| d.name.as_deref() == Some("rootfs"))
        .unwrap();
    assert_eq!(rootfs_dep.digest["sha256"], rootfs_sha);
    let meta = st.predicate.run_details.metadata.as_ref().unwrap();
    assert_eq!(meta.invocation_id.as_deref(), Some("test-invocation-1"));
    assert_eq!(
        st.predicate.run_details.builder.id,
        kettle_provenance::ids::BUILDER_ID
    );
    // One report, bound to exactly these bytes.
    assert_eq!(provider.calls, 1);
    assert_eq!(
        provider.last_report_data.unwrap(),
        kettle_attest::binding::report_data_for(&provenance)
    );
    assert_eq!(
        fs::read(out.join(output::EVIDENCE_FILE)).unwrap(),
        vec![0x5a; 1184]
    );
    assert!(out.join(output::CHAIN_FILE).is_file());
    let status = read_status(&out);
    assert!(status.ok && status.attested);
    assert_eq!(status.artifacts, vec!["out/hello.txt", "out/two.txt"]);
    // Local mode leaves the caller's inputs alone.
    assert!(cache::source_path(inputs.path(), &repo.commit).is_file());
    assert!(cache::blob_path(inputs.path(), &rootfs_sha).is_file());
    fs::remove_dir_all(out.parent().unwrap()).unwrap();
}

#[test]
fn without_a_provider_the_output_says_not_attested() {
    let manifest = script_manifest(
        "mkdir -p out && echo x > out/x",
        &["out/x"],
        &sha256_bytes(rootfs()),
        None,
    );
    let repo = commit_tree(&[("kettle.toml", manifest.into_bytes(), false)]);
    let inputs = inputs_for(&repo, &[]);
    let tmp = tempfile::tempdir().unwrap();
    let out = tmp.path().join("out");
    let outcome = run_local(
        &request_for(&repo.commit),
        inputs.path(),
        None,
        &out,
        &LocalOptions::default(),
    )
    .unwrap();
    assert!(outcome.evidence.is_none());
    let status = read_status(&out);
    assert!(status.ok && !status.attested);
    assert!(
        status.attestation.contains("nothing is hardware-attested"),
        "{}",
        status.attestation
    );
    assert!(!out.join(output::EVIDENCE_FILE).exists());
}

#[test]
fn the_sandbox_denies_devices_proc_mem_and_network() {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    listener.set_nonblocking(true).unwrap();
    let port = listener.local_addr().unwrap().port();
    // Each probe records why it failed, so a probe that fails for an unrelated reason cannot pass.
    let script = format!(
        r#"set -u; mkdir -p out
probe() {{ if err=$( {{ exec 3<"$1"; }} 2>&1 ); then echo "$1 OPEN"; else echo "$1 denied: ${{err##*: }}"; fi; }}
{{
probe /dev/sev-guest
probe /dev/vda
probe /dev/virtio-ports/kettle.psp
probe /dev/vport0p1
probe /proc/1/mem
probe /proc/1/environ
probe /sys/kernel/config/tsm/report
if err=$( {{ exec 3<>/dev/tcp/127.0.0.1/{port}; }} 2>&1 ); then echo "net OPEN"; else echo "net denied: ${{err##*: }}"; fi
if err=$( {{ echo x > /bin/owned; }} 2>&1 ); then echo "rootfs OPEN"; else echo "rootfs denied: ${{err##*: }}"; fi
echo "uid=$(id -u) gid=$(id -g) groups=$(id -G)"
echo "dev=$(ls /dev | tr '\n' ' ')"
echo "pid=$$"
}} > out/probe.txt"#
    );
    let manifest = script_manifest(&script, &["out/probe.txt"], &sha256_bytes(rootfs()), None);
    let repo = commit_tree(&[("kettle.toml", manifest.into_bytes(), false)]);
    let inputs = inputs_for(&repo, &[]);
    let tmp = tempfile::tempdir().unwrap();
    let out = tmp.path().join("out");
    run_local(
        &request_for(&repo.commit),
        inputs.path(),
        None,
        &out,
        &LocalOptions::default(),
    )
    .unwrap();
    let probe = fs::read_to_string(out.join("artifacts/out/probe.txt")).unwrap();
    for (what, why) in [
        // Not in the private /dev at all (the host's /dev/vda, the disks and ports, never exist there).
        ("/dev/sev-guest", "No such file or directory"),
        ("/dev/vda", "No such file or directory"),
        ("/dev/virtio-ports/kettle.psp", "No such file or directory"),
        ("/dev/vport0p1", "No such file or directory"),
        // pid 1 of the sandbox is root and non-dumpable.
        ("/proc/1/mem", "Permission denied"),
        ("/proc/1/environ", "Permission denied"),
        // No /sys (and so no configfs-tsm) is mounted.
        ("/sys/kernel/config/tsm/report", "No such file or directory"),
        // Own network namespace, loopback down.
        ("net", "Network is unreachable"),
        ("rootfs", "Read-only file system"),
    ] {
        assert!(
            probe.contains(&format!("{what} denied: {why}\n")),
            "{what} was not denied with {why:?}:\n{probe}"
        );
    }
    assert!(probe.contains("uid=1000 gid=1000 groups=1000\n"), "{probe}");
    assert!(
        probe.contains("dev=fd full null random stderr stdin stdout tty urandom zero \n"),
        "{probe}"
    );
    // The build is not pid 1 of its namespace: the non-dumpable sandbox init is.
    assert!(!probe.contains("pid=1\n"), "{probe}");
    // Nothing reached the host's listener.
    assert!(
        listener.accept().is_err(),
        "the sandbox connected to the host network"
    );
}

#[test]
fn a_failing_build_writes_error_json_and_requests_no_report() {
    let manifest = script_manifest(
        "echo about to fail; exit 3",
        &["out/x"],
        &sha256_bytes(rootfs()),
        None,
    );
    let repo = commit_tree(&[("kettle.toml", manifest.into_bytes(), false)]);
    let inputs = inputs_for(&repo, &[]);
    let tmp = tempfile::tempdir().unwrap();
    let out = tmp.path().join("out");
    let mut provider = CountingProvider::default();
    let err = run_local(
        &request_for(&repo.commit),
        inputs.path(),
        Some(&mut provider),
        &out,
        &LocalOptions::default(),
    )
    .unwrap_err();
    assert_eq!(err.step, Step::Build);
    assert!(
        err.message().contains("exited with status 3") && err.message().contains("about to fail"),
        "{}",
        err.message()
    );
    assert_eq!(provider.calls, 0);
    assert_only_error(&out);
    let report = read_error(&out);
    assert!(!report.ok);
    assert_eq!(report.step, Step::Build);
}

#[test]
fn a_build_over_its_time_limit_is_killed() {
    let manifest = script_manifest(
        "sleep 600 & sleep 600; echo never",
        &["out/x"],
        &sha256_bytes(rootfs()),
        None,
    );
    let repo = commit_tree(&[("kettle.toml", manifest.into_bytes(), false)]);
    let inputs = inputs_for(&repo, &[]);
    let tmp = tempfile::tempdir().unwrap();
    let out = tmp.path().join("out");
    let mut req = request_for(&repo.commit);
    req.limits.max_build_seconds = Some(1);
    let mut provider = CountingProvider::default();
    let err = run_local(
        &req,
        inputs.path(),
        Some(&mut provider),
        &out,
        &LocalOptions::default(),
    )
    .unwrap_err();
    assert_eq!(err.step, Step::Build);
    assert!(
        err.message().contains("exceeded its 1 s time limit"),
        "{}",
        err.message()
    );
    assert_eq!(provider.calls, 0);
    assert_only_error(&out);
}

#[test]
fn outputs_that_are_symlinks_are_refused_not_followed() {
    // Inside the sandbox these links point at the build's own rootfs; outside, hashing
    // them would read the guest's files (or the host's, in local mode).
    for (script, output) in [
        ("mkdir -p out && ln -s /etc/hostname out/x", "out/x"),
        (
            "mkdir -p real && echo data > real/f && ln -s real out",
            "out/f",
        ),
    ] {
        let manifest = script_manifest(script, &[output], &sha256_bytes(rootfs()), None);
        let repo = commit_tree(&[("kettle.toml", manifest.into_bytes(), false)]);
        let inputs = inputs_for(&repo, &[]);
        let tmp = tempfile::tempdir().unwrap();
        let out = tmp.path().join("out");
        let mut provider = CountingProvider::default();
        let err = run_local(
            &request_for(&repo.commit),
            inputs.path(),
            Some(&mut provider),
            &out,
            &LocalOptions::default(),
        )
        .unwrap_err();
        assert_eq!(
            (err.step, err.input.as_deref()),
            (Step::Hash, Some(output)),
            "{}",
            err.message()
        );
        assert!(
            err.message().contains("not a regular file"),
            "{}",
            err.message()
        );
        assert_eq!(provider.calls, 0);
        assert_only_error(&out);
    }
}

#[test]
fn a_source_archive_under_one_top_directory_is_accepted() {
    // As forges serve archives: every path under "samples-<sha>/".
    let manifest = script_manifest(
        "mkdir -p out && cat data.txt > out/x",
        &["out/x"],
        &sha256_bytes(rootfs()),
        None,
    );
    let mut repo = commit_tree(&[
        ("kettle.toml", manifest.into_bytes(), false),
        ("data.txt", b"prefixed\n".to_vec(), false),
    ]);
    repo.archive = run(Command::new("git")
        .args([
            "archive",
            "--format=tar.gz",
            "--prefix=samples-main/",
            &repo.commit,
        ])
        .current_dir(repo._dir.path()));
    let inputs = inputs_for(&repo, &[]);
    let tmp = tempfile::tempdir().unwrap();
    let out = tmp.path().join("out");
    run_local(
        &request_for(&repo.commit),
        inputs.path(),
        None,
        &out,
        &LocalOptions::default(),
    )
    .unwrap();
    assert_eq!(
        fs::read_to_string(out.join("artifacts/out/x")).unwrap(),
        "prefixed\n"
    );
}

/// Runs a tampered build and checks it stopped at verify, naming `input`, with no report requested.
fn expect_verify_failure(
    req: &BuildRequest,
    inputs: &Path,
    tools: Tools,
    input: &str,
    message_has: &str,
) {
    let tmp = tempfile::tempdir().unwrap();
    let out = tmp.path().join("out");
    let mut provider = CountingProvider::default();
    let options = LocalOptions {
        tools,
        ..LocalOptions::default()
    };
    let err = run_local(req, inputs, Some(&mut provider), &out, &options).unwrap_err();
    assert_eq!(err.step, Step::Verify, "{}", err.message());
    assert_eq!(err.input.as_deref(), Some(input), "{}", err.message());
    assert!(err.message().contains(message_has), "{}", err.message());
    assert_eq!(
        provider.calls, 0,
        "a report was requested for a failed build"
    );
    assert_only_error(&out);
    let report = read_error(&out);
    assert_eq!(
        (report.step, report.input.as_deref()),
        (Step::Verify, Some(input))
    );
}

#[test]
fn tampered_source_archive_commit_object_and_toolchain_stop_at_verify() {
    let toolchain = b"pretend toolchain bundle".to_vec();
    let toolchain_sha = sha256_bytes(&toolchain);
    let manifest = script_manifest(
        "mkdir -p out && echo x > out/x",
        &["out/x"],
        &sha256_bytes(rootfs()),
        Some(&toolchain_sha),
    );
    let repo = commit_tree(&[
        ("kettle.toml", manifest.into_bytes(), false),
        ("data.txt", b"original\n".to_vec(), false),
    ]);
    let req = request_for(&repo.commit);

    // Source archive: same paths, one file's content changed.
    let inputs = inputs_for(&repo, &[&toolchain]);
    let mut evil = Vec::new();
    {
        let mut a = tar::Archive::new(repo.archive.as_slice());
        let mut b = tar::Builder::new(&mut evil);
        for e in a.entries().unwrap() {
            let mut e = e.unwrap();
            let mut data = Vec::new();
            e.read_to_end(&mut data).unwrap();
            let mut h = e.header().clone();
            if e.path().unwrap().as_ref() == Path::new("data.txt") {
                data = b"tampered\n".to_vec();
                h.set_size(data.len() as u64);
                h.set_cksum();
            }
            b.append(&h, data.as_slice()).unwrap();
        }
        b.finish().unwrap();
    }
    fs::write(cache::source_path(inputs.path(), &repo.commit), &evil).unwrap();
    expect_verify_failure(
        &req,
        inputs.path(),
        Tools::Pinned,
        "source archive",
        "does not hold that commit",
    );

    // Commit object: one byte of the message changed.
    let inputs = inputs_for(&repo, &[&toolchain]);
    let mut raw = repo.commit_raw.clone();
    *raw.last_mut().unwrap() = b'!';
    fs::write(cache::commit_path(inputs.path(), &repo.commit), &raw).unwrap();
    expect_verify_failure(
        &req,
        inputs.path(),
        Tools::Pinned,
        "commit object",
        "not the pinned commit",
    );

    // Toolchain: different bytes stored under the pinned name.
    let inputs = inputs_for(&repo, &[&toolchain]);
    fs::write(
        cache::blob_path(inputs.path(), &toolchain_sha),
        b"a trojaned toolchain",
    )
    .unwrap();
    expect_verify_failure(
        &req,
        inputs.path(),
        Tools::Pinned,
        "toolchain",
        "kettle.toml [toolchain] pins",
    );

    // Rootfs likewise.
    let inputs = inputs_for(&repo, &[&toolchain]);
    fs::write(
        cache::blob_path(inputs.path(), &sha256_bytes(rootfs())),
        b"another rootfs",
    )
    .unwrap();
    expect_verify_failure(
        &req,
        inputs.path(),
        Tools::Pinned,
        "rootfs",
        "kettle.toml [rootfs] pins",
    );
}

// ---- cargo-build/v1 -------------------------------------------------------

/// The hello-cargo sample's files, with kettle.toml filled for host tools (pins unused there).
fn hello_cargo_files() -> Vec<(&'static str, Vec<u8>, bool)> {
    let ex = examples_dir().join("hello-cargo");
    let zero = "0".repeat(64);
    let manifest = fs::read_to_string(ex.join("kettle.toml.in"))
        .unwrap()
        .replace(
            "@TOOLCHAIN_URL@",
            "https://example.invalid/host-toolchain.tar",
        )
        .replace("@ROOTFS_URL@", "https://example.invalid/host-rootfs.tar")
        .replace("@TOOLCHAIN_SHA256@", &zero)
        .replace("@ROOTFS_SHA256@", &zero);
    vec![
        (
            "Cargo.toml",
            fs::read(ex.join("Cargo.toml")).unwrap(),
            false,
        ),
        (
            "Cargo.lock",
            fs::read(ex.join("Cargo.lock")).unwrap(),
            false,
        ),
        (
            "src/main.rs",
            fs::read(ex.join("src/main.rs")).unwrap(),
            false,
        ),
        ("kettle.toml", manifest.into_bytes(), false),
    ]
}

/// The .crate files of hello-cargo's Cargo.lock, downloaded once from crates.io
/// with our own HTTPS client, the host's CA bundle and our own DNS client.
fn hello_cargo_crates() -> &'static Vec<Vec<u8>> {
    static C: OnceLock<Vec<Vec<u8>>> = OnceLock::new();
    C.get_or_init(|| {
        let locked = crate::lockfile::load(&examples_dir().join("hello-cargo")).unwrap();
        assert_eq!(locked.len(), 3);
        let resolver =
            crate::dns::nameserver_from(&fs::read_to_string("/etc/resolv.conf").unwrap())
                .map(|ip| (ip, 53).into());
        let client = crate::http::Https::new(
            crate::http::load_roots(Path::new(crate::HOST_CA_BUNDLE)).unwrap(),
            resolver,
        )
        .unwrap();
        locked
            .iter()
            .map(|k| {
                let url = format!(
                    "{}/{}/{}-{}.crate",
                    crate::request::DEFAULT_CRATES_URL,
                    k.name,
                    k.name,
                    k.version
                );
                let bytes = client
                    .get_bytes(&url, 16 << 20)
                    .unwrap_or_else(|e| panic!("{e}"));
                assert_eq!(sha256_bytes(&bytes), k.checksum, "{url}");
                bytes
            })
            .collect()
    })
}

fn host_toolchain() -> PathBuf {
    PathBuf::from(
        String::from_utf8(run(Command::new("rustc").args(["--print", "sysroot"])))
            .unwrap()
            .trim(),
    )
}

#[test]
fn cargo_build_of_hello_cargo_with_vendored_crates() {
    let crates = hello_cargo_crates();
    let repo = commit_tree(&hello_cargo_files());
    let blobs: Vec<&[u8]> = crates.iter().map(|c| c.as_slice()).collect();
    let inputs = inputs_for(&repo, &blobs);
    let tmp = tempfile::tempdir().unwrap();
    let out = tmp.path().join("out");
    let mut provider = CountingProvider::default();
    let options = LocalOptions {
        tools: Tools::Host {
            toolchain_root: host_toolchain(),
        },
        ..LocalOptions::default()
    };
    let start = Instant::now();
    let outcome = run_local(
        &request_for(&repo.commit),
        inputs.path(),
        Some(&mut provider),
        &out,
        &options,
    )
    .unwrap();
    eprintln!(
        "hello-cargo local build took {:.1}s",
        start.elapsed().as_secs_f64()
    );
    let bin = out.join("artifacts/target/release/hello-cargo");
    let printed = String::from_utf8(run(&mut Command::new(&bin))).unwrap();
    assert!(
        printed.starts_with("hello from a kettle build (fnv1a64 "),
        "{printed}"
    );
    let st: Statement<Provenance> = Statement::from_json(&outcome.provenance).unwrap();
    st.validate().unwrap();
    assert_eq!(st.subject[0].digest["sha256"], sha256_file(&bin).unwrap());
    let def = &st.predicate.build_definition;
    assert_eq!(def.build_type, kettle_provenance::ids::BUILD_TYPE_CARGO);
    // Local host tools are declared, not hidden.
    assert_eq!(def.internal_parameters["hermetic"], false);
    assert_eq!(def.internal_parameters["kettle_hostTools"], true);
    let purls: Vec<_> = def
        .resolved_dependencies
        .iter()
        .filter_map(|d| d.uri.clone())
        .filter(|u| u.starts_with("pkg:cargo/"))
        .collect();
    assert_eq!(
        purls,
        vec![
            "pkg:cargo/fnv@1.0.7",
            "pkg:cargo/hex@0.4.3",
            "pkg:cargo/itoa@1.0.19"
        ]
    );
    for d in def.resolved_dependencies.iter().filter(|d| {
        d.uri
            .as_deref()
            .is_some_and(|u| u.starts_with("pkg:cargo/"))
    }) {
        assert_eq!(d.digest["sha256"].len(), 64);
    }
    assert_eq!(provider.calls, 1);
}

#[test]
fn tampered_crate_stops_at_verify() {
    let crates = hello_cargo_crates();
    let repo = commit_tree(&hello_cargo_files());
    let blobs: Vec<&[u8]> = crates.iter().map(|c| c.as_slice()).collect();
    let inputs = inputs_for(&repo, &blobs);
    let locked =
        crate::lockfile::parse(&String::from_utf8(hello_cargo_files()[1].1.clone()).unwrap())
            .unwrap();
    let hex = locked.iter().find(|k| k.name == "hex").unwrap();
    let mut evil = fs::read(cache::blob_path(inputs.path(), &hex.checksum)).unwrap();
    let n = evil.len();
    evil[n / 2] ^= 0xff;
    fs::write(cache::blob_path(inputs.path(), &hex.checksum), evil).unwrap();
    let tools = Tools::Host {
        toolchain_root: host_toolchain(),
    };
    expect_verify_failure(
        &request_for(&repo.commit),
        inputs.path(),
        tools,
        "crate hex 0.4.3",
        "Cargo.lock pins",
    );
}

// ---- upstream mode ----------------------------------------------------------

/// A tiny HTTPS server on 127.0.0.1 serving `files` by path, with a certificate from a test CA.
struct TestServer {
    port: u16,
    ca_pem: String,
    stop: Arc<AtomicBool>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl TestServer {
    fn start(files_for_port: impl FnOnce(u16) -> HashMap<String, Vec<u8>>) -> TestServer {
        let ca_key = rcgen::KeyPair::generate().unwrap();
        let mut ca_params = rcgen::CertificateParams::new(Vec::<String>::new()).unwrap();
        ca_params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
        ca_params
            .distinguished_name
            .push(rcgen::DnType::CommonName, "Kettle test CA");
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
        listener.set_nonblocking(true).unwrap();
        let port = listener.local_addr().unwrap().port();
        let files = files_for_port(port);
        let stop = Arc::new(AtomicBool::new(false));
        let stop2 = Arc::clone(&stop);
        let thread = std::thread::spawn(move || {
            let deadline = Instant::now() + Duration::from_secs(300);
            while !stop2.load(Ordering::Relaxed) && Instant::now() < deadline {
                match listener.accept() {
                    Ok((tcp, _)) => {
                        tcp.set_nonblocking(false).unwrap();
                        tcp.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
                        let conn = rustls::ServerConnection::new(Arc::clone(&config)).unwrap();
                        let mut tls = rustls::StreamOwned::new(conn, tcp);
                        let mut reader = BufReader::new(&mut tls);
                        let mut first = String::new();
                        if reader.read_line(&mut first).is_err() {
                            continue; // e.g. the client refused our certificate
                        }
                        loop {
                            let mut l = String::new();
                            if reader.read_line(&mut l).unwrap_or(0) == 0 || l == "\r\n" {
                                break;
                            }
                        }
                        let path = first.split_whitespace().nth(1).unwrap_or("").to_string();
                        let (status, body) = match files.get(&path) {
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
                    Err(_) => std::thread::sleep(Duration::from_millis(10)),
                }
            }
        });
        TestServer {
            port,
            ca_pem: ca.pem(),
            stop,
            thread: Some(thread),
        }
    }
}

impl Drop for TestServer {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

fn upstream_setup() -> (TestServer, Repo) {
    let mut repo_slot = None;
    let server = TestServer::start(|port| {
        let base = format!("https://127.0.0.1:{port}");
        let manifest = script_manifest(
            "mkdir -p out && echo fetched upstream > out/up.txt",
            &["out/up.txt"],
            &sha256_bytes(rootfs()),
            None,
        )
        .replace(
            "https://example.invalid/rootfs.tar",
            &format!("{base}/rootfs.tar"),
        );
        let repo = commit_tree(&[("kettle.toml", manifest.into_bytes(), false)]);
        let files = HashMap::from([
            ("/commit".to_string(), repo.commit_raw.clone()),
            ("/source.tar".to_string(), repo.archive.clone()),
            ("/rootfs.tar".to_string(), rootfs().clone()),
        ]);
        repo_slot = Some(repo);
        files
    });
    (server, repo_slot.unwrap())
}

fn upstream_request(server: &TestServer, repo: &Repo) -> BuildRequest {
    let base = format!("https://127.0.0.1:{}", server.port);
    BuildRequest {
        mode: FetchMode::Upstream,
        upstream: Some(Upstream {
            source_archive_url: format!("{base}/source.tar"),
            commit_object_url: format!("{base}/commit"),
            crates_url: format!("{base}/crates"),
            dns_resolver: None,
        }),
        ..request_for(&repo.commit)
    }
}

#[test]
fn upstream_mode_fetches_over_https_with_the_given_roots_only() {
    let (server, repo) = upstream_setup();
    let tmp = tempfile::tempdir().unwrap();
    let ca = tmp.path().join("ca.pem");
    fs::write(&ca, &server.ca_pem).unwrap();
    let req = upstream_request(&server, &repo);
    let options = LocalOptions {
        ca_roots: ca.clone(),
        ..LocalOptions::default()
    };
    let out = tmp.path().join("out");
    let mut provider = CountingProvider::default();
    run_local(
        &req,
        Path::new("/nonexistent"),
        Some(&mut provider),
        &out,
        &options,
    )
    .unwrap();
    assert_eq!(
        fs::read_to_string(out.join("artifacts/out/up.txt")).unwrap(),
        "fetched upstream\n"
    );
    assert_eq!(provider.calls, 1);

    // A different CA (here: the host's public roots) must not be trusted for the test server.
    let out = tmp.path().join("out-wrong-ca");
    let options = LocalOptions {
        ca_roots: crate::HOST_CA_BUNDLE.into(),
        ..LocalOptions::default()
    };
    let mut provider = CountingProvider::default();
    let err = run_local(
        &req,
        Path::new("/nonexistent"),
        Some(&mut provider),
        &out,
        &options,
    )
    .unwrap_err();
    assert_eq!(err.step, Step::Fetch, "{}", err.message());
    assert_eq!(err.input.as_deref(), Some("commit object"));
    assert!(
        err.message().to_lowercase().contains("certificate"),
        "{}",
        err.message()
    );
    assert_eq!(provider.calls, 0);
    assert_only_error(&out);
}

#[test]
fn upstream_content_is_verified_like_cached_content() {
    let (server, repo) = upstream_setup();
    let tmp = tempfile::tempdir().unwrap();
    let ca = tmp.path().join("ca.pem");
    fs::write(&ca, &server.ca_pem).unwrap();
    // The request names a commit the server's commit object does not hash to.
    let mut req = upstream_request(&server, &repo);
    req.commit = "1".repeat(40);
    let options = LocalOptions {
        ca_roots: ca,
        ..LocalOptions::default()
    };
    let mut provider = CountingProvider::default();
    let err = run_local(
        &req,
        Path::new("/nonexistent"),
        Some(&mut provider),
        &tmp.path().join("out"),
        &options,
    )
    .unwrap_err();
    assert_eq!(
        (err.step, err.input.as_deref()),
        (Step::Verify, Some("commit object")),
        "{}",
        err.message()
    );
    assert_eq!(provider.calls, 0);
}

// ---- the guest's disk path (everything but boot and power-off) ---------------

#[test]
fn guest_disks_request_cache_and_output_round_trip() {
    use crate::disk::{CACHE_SERIAL, OUTPUT_SERIAL, REQUEST_SERIAL};
    use crate::guest::{build_from_disks, write_output_disk, DiskError};
    use crate::pipeline::Attestor;

    let manifest = script_manifest(
        "mkdir -p out && echo from disks > out/d.txt",
        &["out/d.txt"],
        &sha256_bytes(rootfs()),
        None,
    );
    let repo = commit_tree(&[("kettle.toml", manifest.into_bytes(), false)]);
    let tmp = tempfile::tempdir().unwrap();
    let disks = tmp.path();
    let archive = disks.join("archive.tar");
    fs::write(&archive, &repo.archive).unwrap();
    let mut cache = CacheWriter::create_disk(&disks.join("cache.img")).unwrap();
    cache
        .add_commit_object(&repo.commit, &repo.commit_raw)
        .unwrap();
    cache.add_source_archive(&repo.commit, &archive).unwrap();
    cache.add_blob_bytes(rootfs()).unwrap();
    cache.finish().unwrap();
    let new_output_disk = |name: &str| {
        let p = disks.join(name);
        fs::File::create(&p).unwrap().set_len(64 << 20).unwrap();
        p
    };

    // Success: outputs, provenance, evidence and status.json on the output disk.
    crate::request::write_request_disk(&disks.join("request.img"), &request_for(&repo.commit))
        .unwrap();
    let output_img = new_output_disk("output.img");
    // The guest's disk lookup by serial: request and cache disks in `disks`, the given output image.
    let locator = |output_img: PathBuf| {
        move |serial: &'static str| -> Result<PathBuf, DiskError> {
            match serial {
                REQUEST_SERIAL => Ok(disks.join("request.img")),
                CACHE_SERIAL => Ok(disks.join("cache.img")),
                OUTPUT_SERIAL => Ok(output_img.clone()),
                _ => Err(DiskError::Missing(serial)),
            }
        }
    };
    let locate = locator(output_img.clone());
    let mut provider = CountingProvider::default();
    let built = build_from_disks(
        &locate,
        &disks.join("work"),
        Path::new("/nonexistent.pem"),
        Attestor::Given(&mut provider),
    );
    write_output_disk(&locate, &built).unwrap();
    let got = disks.join("got");
    crate::output::read_output_disk(&output_img, &got).unwrap();
    assert_eq!(
        fs::read_to_string(got.join("artifacts/out/d.txt")).unwrap(),
        "from disks\n"
    );
    assert_eq!(
        fs::read(got.join(output::PROVENANCE_FILE)).unwrap(),
        built.as_ref().unwrap().provenance
    );
    assert_eq!(
        fs::read(got.join(output::EVIDENCE_FILE)).unwrap().len(),
        1184
    );
    assert!(read_status(&got).ok);
    assert_eq!(provider.calls, 1);
    // The guest frees its RAM copy of each input once unpacked.
    let cached = disks.join("work/cache");
    assert!(!cache::source_path(&cached, &repo.commit).exists());
    assert!(!cache::blob_path(&cached, &sha256_bytes(rootfs())).exists());

    // Failure: a request for a commit the cache disk does not hold leaves only error.json.
    crate::request::write_request_disk(&disks.join("request.img"), &request_for(&"9".repeat(40)))
        .unwrap();
    let output_img = new_output_disk("output2.img");
    let locate = locator(output_img.clone());
    let mut provider = CountingProvider::default();
    let built = build_from_disks(
        &locate,
        &disks.join("work2"),
        Path::new("/nonexistent.pem"),
        Attestor::Given(&mut provider),
    );
    assert!(built.is_err());
    write_output_disk(&locate, &built).unwrap();
    let got = disks.join("got2");
    crate::output::read_output_disk(&output_img, &got).unwrap();
    assert_only_error(&got);
    let report = read_error(&got);
    assert_eq!(
        (report.step, report.input.as_deref()),
        (Step::Fetch, Some("commit object"))
    );
    assert_eq!(provider.calls, 0);
}

#[test]
fn local_build_attested_by_the_simulated_psp_binds_the_provenance() {
    use kettle_attest::simulated::{PspClient, SimulatedPsp};
    let (guest_end, host_end) = std::os::unix::net::UnixStream::pair().unwrap();
    let measurement = [0x42u8; 48];
    let psp = std::thread::spawn(move || SimulatedPsp::new(measurement).serve(host_end));
    let mut client = PspClient::new(guest_end);

    let manifest = script_manifest(
        "mkdir -p out && echo attested > out/a.txt",
        &["out/a.txt"],
        &sha256_bytes(rootfs()),
        None,
    );
    let repo = commit_tree(&[("kettle.toml", manifest.into_bytes(), false)]);
    let inputs = inputs_for(&repo, &[]);
    let tmp = tempfile::tempdir().unwrap();
    let out = tmp.path().join("out");
    let outcome = run_local(
        &request_for(&repo.commit),
        inputs.path(),
        Some(&mut client),
        &out,
        &LocalOptions::default(),
    )
    .unwrap();
    drop(client);
    psp.join().unwrap().unwrap();

    let evidence = fs::read(out.join(output::EVIDENCE_FILE)).unwrap();
    let report = kettle_attest::report::Report::parse(&evidence).unwrap();
    let provenance = fs::read(out.join(output::PROVENANCE_FILE)).unwrap();
    assert_eq!(provenance, outcome.provenance);
    assert_eq!(
        report.report_data(),
        kettle_attest::binding::report_data_for(&provenance)
    );
    assert_eq!(report.measurement(), measurement);
    assert_eq!(report.vmpl(), 0);
    assert_eq!(outcome.evidence.unwrap().provider, ProviderKind::Simulated);
    assert!(fs::read_to_string(out.join(output::CHAIN_FILE))
        .unwrap()
        .contains("BEGIN CERTIFICATE"));
    assert_eq!(read_status(&out).attestation, "simulated");
}

#[test]
fn upstream_mode_fetches_and_verifies_crates() {
    let crates = hello_cargo_crates();
    let locked = crate::lockfile::load(&examples_dir().join("hello-cargo")).unwrap();
    let mut repo_slot = None;
    let server = TestServer::start(|_port| {
        let repo = commit_tree(&hello_cargo_files());
        let mut files = HashMap::from([
            ("/commit".to_string(), repo.commit_raw.clone()),
            ("/source.tar".to_string(), repo.archive.clone()),
        ]);
        for (k, bytes) in locked.iter().zip(crates) {
            let mut served = bytes.clone();
            if k.name == "itoa" {
                // The mirror serves a tampered itoa: verification must catch it.
                let n = served.len();
                served[n - 100] ^= 1;
            }
            files.insert(
                format!("/crates/{}/{}-{}.crate", k.name, k.name, k.version),
                served,
            );
        }
        repo_slot = Some(repo);
        files
    });
    let repo = repo_slot.unwrap();
    let tmp = tempfile::tempdir().unwrap();
    let ca = tmp.path().join("ca.pem");
    fs::write(&ca, &server.ca_pem).unwrap();
    let options = LocalOptions {
        ca_roots: ca,
        tools: Tools::Host {
            toolchain_root: host_toolchain(),
        },
        ..LocalOptions::default()
    };
    let mut provider = CountingProvider::default();
    let err = run_local(
        &upstream_request(&server, &repo),
        Path::new("/nonexistent"),
        Some(&mut provider),
        &tmp.path().join("out"),
        &options,
    )
    .unwrap_err();
    assert_eq!(
        (err.step, err.input.as_deref()),
        (Step::Verify, Some("crate itoa 1.0.19")),
        "{}",
        err.message()
    );
    assert!(
        err.message().contains("Cargo.lock pins"),
        "{}",
        err.message()
    );
    assert_eq!(provider.calls, 0);
}
