//! The guest's pipeline against a hostile host and hostile builds: each case
//! changes what the host hands kettle-init (the request, the cache inputs, the
//! archives inside them) or what the build does, runs the guest's own pipeline
//! (`kettle_init::run_local`, the code the image runs as PID 1) with a report
//! provider that counts requests, and asserts that the named step refused it,
//! that only error.json was written, and that no report was requested.
//! The output disk the host reads back is checked the same way.

use std::fs;
use std::path::Path;

use kettle_init::{LocalOptions, Step};
use kettle_testkit::fixtures::{assert_only_error, rootfs, CountingProvider, PROBE_FN};
use kettle_testkit::hostile::{git_dir_with_fsmonitor, FSMONITOR_PWNED};
use kettle_testkit::tarball::{entry, with_entries};
use kettle_testkit::Scenario;
use kettle_wire::request::Upstream;
use kettle_wire::BuildRequest;

use crate::common::run_scenario;

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
    let mut provider = CountingProvider::default();
    let (result, out) = run_scenario(s, Some(&mut provider), &LocalOptions::default());
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

type Case = (&'static str, Box<dyn Fn(&mut Scenario)>, Step);

/// The case `what`: the host changes the request (unmeasured) with `change`; the request
/// step refuses it.
fn bad_request(what: &'static str, change: impl Fn(&mut BuildRequest) + 'static) -> Case {
    (
        what,
        Box::new(move |s| change(&mut s.request)),
        Step::Request,
    )
}

/// The case `what`: the host adds the `extra` tar entries to the source archive; the
/// verify step refuses it.
fn archive_with(what: &'static str, extra: Vec<Vec<u8>>) -> Case {
    let add = move |s: &mut Scenario| s.archive = with_entries(&s.archive, &extra);
    (what, Box::new(add), Step::Verify)
}

/// [`archive_with`] one entry: `name` of `kind`, linking to `link`, holding `data` ([`entry`]).
fn archive_entry(what: &'static str, name: &str, kind: u8, link: &str, data: &[u8]) -> Case {
    archive_with(what, vec![entry(name, kind, link, data)])
}

fn host_cases() -> Vec<Case> {
    vec![
        // --- the request (unmeasured, from the host) ---
        bad_request("another schema", |r| r.schema = "kettle.request/v9".into()),
        bad_request("commit not hex", |r| r.commit = "z".repeat(40)),
        bad_request("commit of the wrong length", |r| r.commit.push('a')),
        (
            "commit with a path in it",
            Box::new(|s| s.request.commit = format!("../{}", &s.commit[3..])),
            Step::Request,
        ),
        bad_request("ref with ..", |r| r.git_ref = "refs/heads/../../x".into()),
        bad_request("ref with a control character", |r| {
            r.git_ref = "refs/heads/a\u{1b}[2K".into()
        }),
        bad_request("repository with a newline", |r| {
            r.repository = "https://h/r\nVERIFIED".into()
        }),
        bad_request("repository of an unknown scheme", |r| {
            r.repository = "javascript:alert(1)".into()
        }),
        bad_request("invocation id with a slash", |r| {
            r.invocation_id = "../../etc".into()
        }),
        bad_request("zero build time", |r| r.limits.max_build_seconds = Some(0)),
        bad_request("absurd build time", |r| {
            r.limits.max_build_seconds = Some(u64::MAX)
        }),
        bad_request("memory limit too small to run", |r| {
            r.limits.max_memory_bytes = Some(1)
        }),
        bad_request("upstream URLs in cached mode", |r| {
            r.upstream = Some(Upstream {
                source_archive_url: "https://evil.example/a.tar".into(),
                commit_object_url: "https://evil.example/c".into(),
                crates_url: "https://evil.example/crates".into(),
                dns_resolver: None,
            })
        }),
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
        archive_with(
            "a .git/config (core.fsmonitor) beside the tree",
            git_dir_with_fsmonitor(),
        ),
        archive_entry(
            "a nested .git",
            "sub/.git",
            b'0',
            "",
            b"gitdir: /tmp/evil\n",
        ),
        archive_entry(
            "an empty directory beside the tree",
            "empty/",
            b'5',
            "",
            b"",
        ),
        archive_entry("an entry with ..", "../escape", b'0', "", b"x"),
        archive_entry(
            "an absolute entry",
            "/tmp/kettle-hostile-abs",
            b'0',
            "",
            b"x",
        ),
        archive_entry(
            "a symlink out of the tree",
            "link",
            b'2',
            "/etc/passwd",
            b"",
        ),
        archive_entry(
            "a relative symlink climbing out",
            "link",
            b'2',
            "../../../etc",
            b"",
        ),
        archive_with(
            "a write through a symlink",
            vec![
                entry("dir", b'2', "/tmp", b""),
                entry("dir/kettle-hostile-through", b'0', "", b"x"),
            ],
        ),
        archive_entry("a hard link to a host file", "h", b'1', "/etc/passwd", b""),
        archive_entry("a device node", "dev", b'3', "", b""),
        // The archive already holds kettle.toml: this is a second entry of that name.
        archive_entry("a duplicate entry", "kettle.toml", b'0', "", b"[build]\n"),
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
    let (result, _) = run_scenario(&good, Some(&mut provider), &LocalOptions::default());
    result.unwrap_or_else(|e| panic!("the unchanged scenario fails: {}", e.message()));
    assert_eq!(provider.calls, 1);
    for (what, mutate, step) in cases {
        let mut s = project().commit();
        mutate(&mut s);
        refused_at(&s, step, what);
    }
    for outside in [
        "/tmp/kettle-hostile-abs",
        "/tmp/kettle-hostile-through",
        FSMONITOR_PWNED,
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
    // (what the build does, its command, the step that refuses it); each declares out/a.txt.
    let cases: Vec<(&str, &str, Step)> = vec![
        ("the build fails", "exit 3", Step::Build),
        (
            "the build runs past its time limit",
            "sleep 30",
            Step::Build,
        ),
        ("the declared output is not produced", "true", Step::Hash),
        (
            "the output is a symlink to a host file",
            "mkdir -p out && ln -s /etc/passwd out/a.txt",
            Step::Hash,
        ),
        (
            "the output is reached through a symlinked directory",
            "mkdir -p real && echo x > real/a.txt && ln -s real out",
            Step::Hash,
        ),
        (
            "the output is a directory",
            "mkdir -p out/a.txt",
            Step::Hash,
        ),
    ];
    for (what, command, step) in cases {
        let mut s = Scenario::script(command, &["out/a.txt"]).commit();
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
    let (result, out) = run_scenario(&s, None, &LocalOptions::default());
    result.unwrap_or_else(|e| panic!("the probe build failed: {}", e.message()));
    let text = fs::read_to_string(out.join("artifacts/out/probe.txt")).unwrap();
    assert!(
        !text.contains("OPEN") && !text.contains("made"),
        "the build got out:\n{text}"
    );
    assert!(text.lines().count() == 5, "{text}");
}
