//! The guest's pipeline against a hostile host and hostile builds: each case
//! changes what the host hands kettle-init (the request, the cache inputs, the
//! archives inside them) or what the build does, runs the guest's own pipeline
//! (`kettle_init::run_local`, the code the image runs as PID 1) with a report
//! provider that counts requests, and asserts that the named step refused it,
//! that only error.json was written, and that no report was requested.
//! The output disk the host reads back is checked the same way.

use std::fs;
use std::path::Path;

use kettle_init::{run_local, LocalOptions, Step};
use kettle_testkit::fixtures::{assert_only_error, rootfs, CountingProvider, PROBE_FN};
use kettle_testkit::tarball::{entry, with_entries};
use kettle_testkit::Scenario;
use kettle_wire::request::Upstream;

const MARKER: &str = "BUILD-RAN";

/// A project that writes the declared output and a marker a test can look for.
fn project() -> kettle_testkit::scenario::ScenarioBuilder {
    Scenario::script(
        &format!("mkdir -p out && echo {MARKER} > out/a.txt"),
        &["out/a.txt"],
    )
}

/// Runs the scenario as the guest would and asserts `step` refused it with no report.
fn refused_at(s: &Scenario, step: Step, what: &str) {
    let out = s.out();
    let mut provider = CountingProvider::default();
    let result = run_local(
        &s.request,
        &s.inputs(),
        Some(&mut provider),
        &out,
        &LocalOptions::default(),
    );
    let err = result
        .err()
        .unwrap_or_else(|| panic!("{what}: the pipeline succeeded"));
    assert_eq!(err.step, step, "{what}: {}", err.message());
    let report = assert_only_error(&out);
    assert_eq!(report.step, step, "{what}");
    assert_eq!(
        provider.calls, 0,
        "{what}: a report was requested for a failed build"
    );
}

fn archive_with(extra: &[Vec<u8>]) -> impl Fn(&mut Scenario) {
    let extra = extra.to_vec();
    move |s: &mut Scenario| s.archive = with_entries(&s.archive, &extra)
}

type Case = (&'static str, Box<dyn Fn(&mut Scenario)>, Step);

fn host_cases() -> Vec<Case> {
    vec![
        // --- the request (unmeasured, from the host) ---
        (
            "another schema",
            Box::new(|s| s.request.schema = "kettle.request/v9".into()),
            Step::Request,
        ),
        (
            "commit not hex",
            Box::new(|s| s.request.commit = "z".repeat(40)),
            Step::Request,
        ),
        (
            "commit of the wrong length",
            Box::new(|s| s.request.commit.push('a')),
            Step::Request,
        ),
        (
            "commit with a path in it",
            Box::new(|s| s.request.commit = format!("../{}", &s.commit[3..])),
            Step::Request,
        ),
        (
            "ref with ..",
            Box::new(|s| s.request.git_ref = "refs/heads/../../x".into()),
            Step::Request,
        ),
        (
            "ref with a control character",
            Box::new(|s| s.request.git_ref = "refs/heads/a\u{1b}[2K".into()),
            Step::Request,
        ),
        (
            "repository with a newline",
            Box::new(|s| s.request.repository = "https://h/r\nVERIFIED".into()),
            Step::Request,
        ),
        (
            "repository of an unknown scheme",
            Box::new(|s| s.request.repository = "javascript:alert(1)".into()),
            Step::Request,
        ),
        (
            "invocation id with a slash",
            Box::new(|s| s.request.invocation_id = "../../etc".into()),
            Step::Request,
        ),
        (
            "zero build time",
            Box::new(|s| s.request.limits.max_build_seconds = Some(0)),
            Step::Request,
        ),
        (
            "absurd build time",
            Box::new(|s| s.request.limits.max_build_seconds = Some(u64::MAX)),
            Step::Request,
        ),
        (
            "memory limit too small to run",
            Box::new(|s| s.request.limits.max_memory_bytes = Some(1)),
            Step::Request,
        ),
        (
            "upstream URLs in cached mode",
            Box::new(|s| {
                s.request.upstream = Some(Upstream {
                    source_archive_url: "https://evil.example/a.tar".into(),
                    commit_object_url: "https://evil.example/c".into(),
                    crates_url: "https://evil.example/crates".into(),
                    dns_resolver: None,
                })
            }),
            Step::Request,
        ),
        // --- the commit and the source archive ---
        (
            "commit object of another commit",
            Box::new(|s| {
                s.commit_raw = b"tree 4b825dc642cb6eb9a060e54bf8d69288fbee4904\n\nother\n".to_vec()
            }),
            Step::Verify,
        ),
        (
            "commit object missing",
            Box::new(|s| {
                // Request a commit the inputs do not hold.
                s.request.commit = "1".repeat(40);
            }),
            Step::Fetch,
        ),
        (
            "source archive of another tree",
            Box::new(|s| s.archive = with_entries(&[0u8; 0], &[entry("x", b'0', "", b"other")])),
            Step::Verify,
        ),
        (
            "source archive not a tar",
            Box::new(|s| s.archive = b"GARBAGE".repeat(100)),
            Step::Verify,
        ),
        (
            "a .git/config (core.fsmonitor) beside the tree",
            Box::new(archive_with(&[
                entry(".git/", b'5', "", b""),
                entry(
                    ".git/config",
                    b'0',
                    "",
                    b"[core]\n\tfsmonitor = touch /tmp/pwned\n",
                ),
            ])),
            Step::Verify,
        ),
        (
            "a nested .git",
            Box::new(archive_with(&[entry(
                "sub/.git",
                b'0',
                "",
                b"gitdir: /tmp/evil\n",
            )])),
            Step::Verify,
        ),
        (
            "an empty directory beside the tree",
            Box::new(archive_with(&[entry("empty/", b'5', "", b"")])),
            Step::Verify,
        ),
        (
            "an entry with ..",
            Box::new(archive_with(&[entry("../escape", b'0', "", b"x")])),
            Step::Verify,
        ),
        (
            "an absolute entry",
            Box::new(archive_with(&[entry(
                "/tmp/kettle-hostile-abs",
                b'0',
                "",
                b"x",
            )])),
            Step::Verify,
        ),
        (
            "a symlink out of the tree",
            Box::new(archive_with(&[entry("link", b'2', "/etc/passwd", b"")])),
            Step::Verify,
        ),
        (
            "a relative symlink climbing out",
            Box::new(archive_with(&[entry("link", b'2', "../../../etc", b"")])),
            Step::Verify,
        ),
        (
            "a write through a symlink",
            Box::new(archive_with(&[
                entry("dir", b'2', "/tmp", b""),
                entry("dir/kettle-hostile-through", b'0', "", b"x"),
            ])),
            Step::Verify,
        ),
        (
            "a hard link to a host file",
            Box::new(archive_with(&[entry("h", b'1', "/etc/passwd", b"")])),
            Step::Verify,
        ),
        (
            "a device node",
            Box::new(archive_with(&[entry("dev", b'3', "", b"")])),
            Step::Verify,
        ),
        (
            "a duplicate entry",
            Box::new(|s| {
                let first = entry("kettle.toml", b'0', "", b"[build]\n");
                s.archive = with_entries(&s.archive, &[first]);
            }),
            Step::Verify,
        ),
        // --- the pinned inputs ---
        (
            "the rootfs is missing",
            Box::new(|s| s.blobs.clear()),
            Step::Fetch,
        ),
        (
            "the rootfs is another file under its pin's name",
            Box::new(|s| {
                // The cache layout names blobs by digest; the host lies about the content.
                s.blobs[0].push(0);
            }),
            Step::Fetch,
        ),
    ]
}

#[test]
fn every_hostile_host_input_is_refused_by_the_step_that_checks_it() {
    let cases = host_cases();
    assert!(cases.len() >= 30, "{} cases", cases.len());
    // The untouched scenario builds: every refusal below is the mutation's.
    let good = project().commit();
    let mut provider = CountingProvider::default();
    run_local(
        &good.request,
        &good.inputs(),
        Some(&mut provider),
        &good.out(),
        &LocalOptions::default(),
    )
    .unwrap_or_else(|e| panic!("the unchanged scenario fails: {}", e.message()));
    assert_eq!(provider.calls, 1);
    for (what, mutate, step) in cases {
        let mut s = project().commit();
        mutate(&mut s);
        refused_at(&s, step, what);
    }
    for outside in [
        "/tmp/kettle-hostile-abs",
        "/tmp/kettle-hostile-through",
        "/tmp/pwned",
    ] {
        assert!(!Path::new(outside).exists(), "{outside} was written");
    }
}

#[test]
fn hostile_root_filesystems_are_refused_at_unpack() {
    let cases: Vec<(&str, Vec<Vec<u8>>)> = vec![
        (
            "an entry with ..",
            vec![entry("../rootfs-escape", b'0', "", b"x")],
        ),
        (
            "an absolute symlink then a write through it",
            vec![
                entry("evil", b'2', "/tmp", b""),
                entry("evil/kettle-hostile-rootfs", b'0', "", b"x"),
            ],
        ),
        (
            "a link chain only the kernel sees leaving",
            vec![
                entry("a", b'2', "b/..", b""),
                entry("b", b'2', "..", b""),
                entry("a/kettle-hostile-chain", b'0', "", b"x"),
            ],
        ),
        ("a device node", vec![entry("dev/kmsg", b'3', "", b"")]),
    ];
    for (what, extra) in cases {
        let hostile = with_entries(rootfs(), &extra);
        let s = project().rootfs_bytes(&hostile).commit();
        refused_at(&s, Step::Unpack, what);
    }
    assert!(!Path::new("/tmp/kettle-hostile-rootfs").exists());
}

#[test]
fn malicious_builds_fail_their_own_step_and_are_never_attested() {
    let cases: Vec<(&str, &str, &[&str], Step)> = vec![
        ("the build fails", "exit 3", &["out/a.txt"], Step::Build),
        (
            "the build runs past its time limit",
            "sleep 30",
            &["out/a.txt"],
            Step::Build,
        ),
        (
            "the declared output is not produced",
            "true",
            &["out/a.txt"],
            Step::Hash,
        ),
        (
            "the output is a symlink to a host file",
            "mkdir -p out && ln -s /etc/passwd out/a.txt",
            &["out/a.txt"],
            Step::Hash,
        ),
        (
            "the output is reached through a symlinked directory",
            "mkdir -p real && echo x > real/a.txt && ln -s real out",
            &["out/a.txt"],
            Step::Hash,
        ),
        (
            "the output is a directory",
            "mkdir -p out/a.txt",
            &["out/a.txt"],
            Step::Hash,
        ),
    ];
    for (what, command, outputs, step) in cases {
        let mut s = Scenario::script(command, outputs).commit();
        s.request.limits.max_build_seconds = Some(5);
        refused_at(&s, step, what);
    }
}

#[test]
fn a_build_cannot_reach_out_of_its_sandbox() {
    // Each probe prints one line per attempt; a build that gets through would say OPEN / made.
    let probe = format!(
        "{PROBE_FN}\nmkdir -p out; {{ probe /dev/tty; probe /dev/virtio-ports/kettle.psp; probe /dev/sev-guest; \
         probe /proc/1/mem; echo \"userns: $(unshare -U true 2>&1 && echo made)\"; }} > out/probe.txt"
    );
    let s = Scenario::script(&probe, &["out/probe.txt"])
        .rootfs_binaries(&["unshare"])
        .commit();
    let out = s.out();
    run_local(
        &s.request,
        &s.inputs(),
        None,
        &out,
        &LocalOptions::default(),
    )
    .unwrap_or_else(|e| panic!("the probe build failed: {}", e.message()));
    let text = fs::read_to_string(out.join("artifacts/out/probe.txt")).unwrap();
    assert!(
        !text.contains("OPEN") && !text.contains("made"),
        "the build got out:\n{text}"
    );
    assert!(text.lines().count() == 5, "{text}");
}
