//! The verifier against a hostile build host: each case starts from a good
//! simulated output directory, changes what the host controls (files, names,
//! types, sizes, the report, the chain, the provenance), and runs the auditor's
//! `kettle verify` command. Every case must end REJECTED (exit 1) naming the
//! check that refuses it, or could-not-run (exit 2) naming the file, and never
//! VERIFIED; none may hang or read an unbounded amount.

use std::fs;
use std::os::unix::fs::symlink;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::sync::OnceLock;

use kettle_attest::simulated::SimulatedPsp;
use kettle_attest::CertChain;
use kettle_provenance::{ids, jcs, Statement};
use kettle_testkit::evidence::{image_dir, simulated_output_dir, StatementSpec};
use kettle_testkit::text;

const MEASUREMENT: [u8; 48] = [0x5a; 48];

/// The kettle binary this test run built.
fn kettle() -> &'static Path {
    Path::new(env!("CARGO_BIN_EXE_kettle"))
}

fn published_manifest() -> &'static Path {
    static M: OnceLock<(tempfile::TempDir, PathBuf)> = OnceLock::new();
    let (_, p) = M.get_or_init(|| {
        let d = tempfile::tempdir().unwrap();
        let m = image_dir(d.path(), MEASUREMENT);
        (d, m)
    });
    p
}

/// What the verdict must be.
enum Expect {
    /// Exit 1 with this check failed.
    Rejected(&'static str),
    /// Exit 2 with this text in the error.
    CannotRun(&'static str),
}

/// Writes evidence: a report from `psp` at `vmpl` over `report_data`.
fn write_report(dir: &Path, psp: SimulatedPsp, report_data: &[u8; 64], vmpl: u32) {
    fs::write(dir.join("evidence"), psp.report(report_data, vmpl).unwrap()).unwrap();
}

/// A fresh report (from `psp`) over the directory's provenance.json.
fn resign(dir: &Path, psp: SimulatedPsp, vmpl: u32) {
    let prov = fs::read(dir.join("provenance.json")).unwrap();
    write_report(dir, psp, &kettle_attest::report_data_for(&prov), vmpl);
}

/// Rewrites provenance.json with `edit` applied, and a fresh report binding it.
fn reprovenance(dir: &Path, edit: impl Fn(&mut Statement)) {
    let mut st = Statement::from_json(&fs::read(dir.join("provenance.json")).unwrap()).unwrap();
    edit(&mut st);
    let bytes = jcs::to_canonical_bytes(&st).unwrap();
    fs::write(dir.join("provenance.json"), &bytes).unwrap();
    resign(dir, SimulatedPsp::new(MEASUREMENT), 0);
}

/// The mutation [`reprovenance`] with `edit`.
fn provenance_edited(edit: impl Fn(&mut Statement) + 'static) -> Box<dyn Fn(&Path)> {
    Box::new(move |d| reprovenance(d, &edit))
}

/// The mutation setting the provenance's external parameter `key` to `value` (re-signed).
fn external_parameter(key: &'static str, value: serde_json::Value) -> Box<dyn Fn(&Path)> {
    provenance_edited(move |st| {
        let parameters = &mut st.predicate.build_definition.external_parameters;
        parameters.insert(key.into(), value.clone());
    })
}

/// The mutation re-signing the evidence by a PSP whose guest policy also sets `bit`.
fn guest_policy_bit(bit: u32) -> Box<dyn Fn(&Path)> {
    Box::new(move |d| {
        let psp = SimulatedPsp::new(MEASUREMENT).with_guest_policy(0x3_0000 | 1 << bit);
        resign(d, psp, 0)
    })
}

/// Rewrites chain.pem with `edit` applied to the chain it holds.
fn rechain(dir: &Path, edit: impl FnOnce(CertChain) -> CertChain) {
    let path = dir.join("chain.pem");
    let chain = CertChain::from_pem_bundle(&fs::read(&path).unwrap()).unwrap();
    fs::write(&path, edit(chain).to_pem_bundle()).unwrap();
}

fn flip(path: &Path, at: usize) {
    let mut b = fs::read(path).unwrap();
    b[at] ^= 1;
    fs::write(path, b).unwrap();
}

/// Sets the byte at `at` of the file at `path` to `value`.
fn set_byte(path: &Path, at: usize, value: u8) {
    let mut b = fs::read(path).unwrap();
    b[at] = value;
    fs::write(path, b).unwrap();
}

/// Replaces the file at `path` by a FIFO (a reader that opens it blindly hangs).
fn replace_with_fifo(path: &Path) {
    fs::remove_file(path).unwrap();
    let mode = rustix::fs::Mode::from_raw_mode(0o644);
    rustix::fs::mknodat(rustix::fs::CWD, path, rustix::fs::FileType::Fifo, mode, 0).unwrap();
}

/// Replaces the file at `path` by a sparse one of `len` bytes (a reader must bound its read).
fn replace_with_sparse(path: &Path, len: u64) {
    fs::File::create(path).unwrap().set_len(len).unwrap();
}

/// Moves `dir/name` to `dir/aside` and puts a symlink to it in its place.
fn replace_with_symlink(dir: &Path, name: &str, aside: &str) {
    fs::rename(dir.join(name), dir.join(aside)).unwrap();
    symlink(aside, dir.join(name)).unwrap();
}

/// Where the auditor's policy for the case in `dir` is written (beside the output directory).
fn policy_path(dir: &Path) -> PathBuf {
    dir.with_extension("policy.json")
}

/// The mutation writing a policy for the sample's repository accepting `refs`, and simulated
/// evidence when `allow_simulated`: the output directory itself stays good.
fn policy(refs: &'static [&'static str], allow_simulated: bool) -> Box<dyn Fn(&Path)> {
    Box::new(move |d| {
        let spec = StatementSpec::default();
        let policy = serde_json::json!({
            "schema": "kettle.policy/v1",
            "name": "hostile",
            "measurements": [{"launch_digest": hex_of(&MEASUREMENT)}],
            "allow_simulated": allow_simulated,
            "source": {"repository": spec.repository, "refs": refs},
        });
        fs::write(policy_path(d), policy.to_string()).unwrap();
    })
}

fn hex_of(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

fn artifact(dir: &Path) -> PathBuf {
    dir.join("artifacts/out/hello.txt")
}

type Case = (&'static str, Box<dyn Fn(&Path)>, Expect);

fn cases() -> Vec<Case> {
    use Expect::*;
    vec![
        // --- artifacts ---
        (
            "replaced artifact",
            Box::new(|d| fs::write(artifact(d), "evil\n").unwrap()),
            Rejected("artifact:out/hello.txt"),
        ),
        (
            "extra artifact",
            Box::new(|d| fs::write(d.join("artifacts/out/extra"), "x").unwrap()),
            Rejected("artifact:out/extra"),
        ),
        (
            "missing artifact",
            Box::new(|d| fs::remove_file(artifact(d)).unwrap()),
            Rejected("artifacts.complete"),
        ),
        (
            "artifact replaced by a symlink to /dev/zero",
            Box::new(|d| {
                fs::remove_file(artifact(d)).unwrap();
                symlink("/dev/zero", artifact(d)).unwrap();
            }),
            Rejected("artifact:out/hello.txt"),
        ),
        (
            "artifact replaced by a FIFO (must not hang)",
            Box::new(|d| replace_with_fifo(&artifact(d))),
            Rejected("artifact:out/hello.txt"),
        ),
        (
            "artifact dir is a symlink out of the output",
            Box::new(|d| {
                fs::remove_dir_all(d.join("artifacts/out")).unwrap();
                symlink("/etc", d.join("artifacts/out")).unwrap();
            }),
            Rejected("artifacts.complete"),
        ),
        (
            "a newline and escape codes in a file name forge no verdict line",
            Box::new(|d| {
                fs::write(d.join("artifacts/out/x\n\nVERIFIED\x1b[2K"), "x").unwrap();
            }),
            Rejected("artifact:out/x\\u{a}\\u{a}VERIFIED\\u{1b}[2K"),
        ),
        (
            "artifacts is a file",
            Box::new(|d| {
                fs::remove_dir_all(d.join("artifacts")).unwrap();
                fs::write(d.join("artifacts"), "x").unwrap();
            }),
            CannotRun("artifacts directory"),
        ),
        // --- provenance.json ---
        (
            "one whitespace byte added",
            Box::new(|d| {
                let mut b = fs::read(d.join("provenance.json")).unwrap();
                b.push(b' ');
                fs::write(d.join("provenance.json"), b).unwrap();
            }),
            Rejected("binding.report_data"),
        ),
        (
            "provenance re-signed but not canonical",
            Box::new(|d| {
                let v: serde_json::Value =
                    serde_json::from_slice(&fs::read(d.join("provenance.json")).unwrap()).unwrap();
                let pretty = serde_json::to_vec_pretty(&v).unwrap();
                fs::write(d.join("provenance.json"), &pretty).unwrap();
                resign(d, SimulatedPsp::new(MEASUREMENT), 0);
            }),
            Rejected("provenance.canonical"),
        ),
        (
            "provenance is a symlink",
            Box::new(|d| replace_with_symlink(d, "provenance.json", "p")),
            CannotRun("is not a regular file"),
        ),
        (
            "provenance is a FIFO (must not hang)",
            Box::new(|d| replace_with_fifo(&d.join("provenance.json"))),
            CannotRun("is not a regular file"),
        ),
        (
            "provenance is huge (bounded read)",
            Box::new(|d| replace_with_sparse(&d.join("provenance.json"), 1 << 40)), // 1 TiB
            CannotRun("is larger than"),
        ),
        (
            "not JSON at all",
            Box::new(|d| {
                fs::write(d.join("provenance.json"), b"\x00\x01binary").unwrap();
                resign(d, SimulatedPsp::new(MEASUREMENT), 0);
            }),
            Rejected("provenance.parse"),
        ),
        (
            "wrong _type",
            provenance_edited(|st| st.type_ = "https://in-toto.io/Statement/v0.1".into()),
            Rejected("provenance.statement_type"),
        ),
        (
            "wrong predicateType",
            provenance_edited(|st| st.predicate_type = "https://example.com/other".into()),
            Rejected("provenance.predicate_type"),
        ),
        (
            "subject without a digest",
            provenance_edited(|st| st.subject[0].digest.clear()),
            Rejected("provenance.valid"),
        ),
        (
            "the local builder's id",
            provenance_edited(|st| {
                st.predicate.run_details.builder.id = ids::BUILDER_ID_LOCAL.into()
            }),
            Rejected("provenance.builder_id"),
        ),
        (
            "an unknown builder",
            provenance_edited(|st| {
                st.predicate.run_details.builder.id = "https://evil.example/builder".into()
            }),
            Rejected("provenance.builder_id"),
        ),
        (
            "an unknown build type",
            provenance_edited(|st| {
                st.predicate.build_definition.build_type = "https://evil.example/make/v1".into()
            }),
            Rejected("provenance.build_type"),
        ),
        (
            "another repository",
            external_parameter("repository", "https://evil.example/r.git".into()),
            Rejected("provenance.repository"),
        ),
        (
            "another ref",
            external_parameter("ref", "refs/heads/evil".into()),
            Rejected("provenance.ref"),
        ),
        (
            "ref not a string",
            external_parameter("ref", serde_json::json!(["refs/heads/main"])),
            Rejected("provenance.ref"),
        ),
        (
            "another commit built",
            provenance_edited(|st| {
                st.predicate.build_definition.resolved_dependencies[0]
                    .digest
                    .insert("gitCommit".into(), "ab".repeat(20));
            }),
            Rejected("provenance.source"),
        ),
        (
            "two source commits",
            provenance_edited(|st| {
                let dependencies = &mut st.predicate.build_definition.resolved_dependencies;
                let mut second = dependencies[0].clone();
                second.digest.insert("gitCommit".into(), "ab".repeat(20));
                dependencies.push(second);
            }),
            Rejected("provenance.source"),
        ),
        (
            "the provenance names another image",
            provenance_edited(|st| {
                st.predicate.run_details.builder.builder_dependencies.push(
                    kettle_provenance::ResourceDescriptor::from_uri("kettle-image:manifest.json")
                        .with_name(ids::IMAGE_DEPENDENCY)
                        .with_digest("sha384", "77".repeat(48)),
                );
            }),
            Rejected("provenance.image"),
        ),
        (
            "no source commit",
            provenance_edited(|st| st.predicate.build_definition.resolved_dependencies.clear()),
            Rejected("provenance.source"),
        ),
        // Issue 25: the host built its own commit and claimed the victim's repository and ref;
        // the auditor accepts any commit, so nothing witnessed the claim.
        (
            "a host-resolved repository and ref with any commit accepted",
            provenance_edited(|st| {
                let internal = &mut st.predicate.build_definition.internal_parameters;
                internal.insert(ids::REF_RESOLVED_BY.into(), "host".into());
            }),
            Rejected("provenance.repository"),
        ),
        // Issue 25: a short ref says neither branch nor tag (an old tag passed a branch pattern).
        (
            "a short ref recorded as guest-resolved",
            provenance_edited(|st| {
                let bd = &mut st.predicate.build_definition;
                bd.external_parameters.insert("ref".into(), "main".into());
                bd.internal_parameters
                    .insert(ids::REF_RESOLVED_BY.into(), "guest".into());
            }),
            Rejected("provenance.ref"),
        ),
        // --- the report ---
        (
            "report of another build",
            Box::new(|d| {
                let other = StatementSpec {
                    subjects: vec![("out/hello.txt", b"other")],
                    ..StatementSpec::default()
                }
                .bytes();
                let psp = SimulatedPsp::new(MEASUREMENT);
                write_report(d, psp, &kettle_attest::report_data_for(&other), 0);
            }),
            Rejected("binding.report_data"),
        ),
        (
            "report of another image",
            Box::new(|d| resign(d, SimulatedPsp::new([0x77; 48]), 0)),
            Rejected("report.measurement"),
        ),
        (
            "report from VMPL 1",
            Box::new(|d| resign(d, SimulatedPsp::new(MEASUREMENT), 1)),
            Rejected("report.vmpl"),
        ),
        (
            "debuggable guest",
            guest_policy_bit(19),
            Rejected("report.debug_disallowed"),
        ),
        (
            "migration agent allowed",
            guest_policy_bit(18),
            Rejected("report.guest_policy"),
        ),
        (
            "CXL allowed",
            guest_policy_bit(21),
            Rejected("report.guest_policy"),
        ),
        (
            "TCB 0.0.0.0",
            Box::new(|d| {
                let tcb = kettle_attest::report::Tcb::default();
                resign(d, SimulatedPsp::new(MEASUREMENT).with_tcb(tcb), 0)
            }),
            Rejected("report.min_tcb"),
        ),
        (
            "report_data second half non-zero",
            Box::new(|d| {
                let prov = fs::read(d.join("provenance.json")).unwrap();
                let mut rd = kettle_attest::report_data_for(&prov);
                rd[40] = 1;
                write_report(d, SimulatedPsp::new(MEASUREMENT), &rd, 0);
            }),
            Rejected("binding.report_data"),
        ),
        (
            "a signed byte flipped",
            Box::new(|d| flip(&d.join("evidence"), 0x90)),
            Rejected("report.signature"),
        ),
        (
            "a signature byte flipped",
            Box::new(|d| flip(&d.join("evidence"), 0x2A0)),
            Rejected("report.signature"),
        ),
        (
            "reserved tail not zero",
            Box::new(|d| flip(&d.join("evidence"), 0x4A0 - 1)),
            Rejected("report.report_format"),
        ),
        (
            "unknown report version 4",
            Box::new(|d| set_byte(&d.join("evidence"), 0, 4)),
            Rejected("report.report_format"),
        ),
        (
            "report version 6 (a newer SNP ABI's layout is refused, never misread)",
            Box::new(|d| set_byte(&d.join("evidence"), 0, 6)),
            Rejected("report.report_format"),
        ),
        (
            "truncated report",
            Box::new(|d| {
                let b = fs::read(d.join("evidence")).unwrap();
                fs::write(d.join("evidence"), &b[..100]).unwrap();
            }),
            Rejected("report.report_format"),
        ),
        (
            "key_info says unsigned",
            Box::new(|d| set_byte(&d.join("evidence"), 0x48, 7 << 2)),
            Rejected("report.signer"),
        ),
        (
            "evidence is a symlink",
            Box::new(|d| replace_with_symlink(d, "evidence", "e")),
            CannotRun("is not a regular file"),
        ),
        (
            "evidence is huge (bounded read)",
            Box::new(|d| replace_with_sparse(&d.join("evidence"), 1 << 30)),
            CannotRun("is larger than"),
        ),
        (
            "no evidence (a --local build)",
            Box::new(|d| fs::remove_file(d.join("evidence")).unwrap()),
            CannotRun("never hardware-attested"),
        ),
        // --- the chain ---
        (
            "garbled chain",
            Box::new(|d| {
                fs::write(
                    d.join("chain.pem"),
                    "-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n",
                )
                .unwrap()
            }),
            Rejected("report.chain"),
        ),
        (
            "a VCEK byte flipped",
            Box::new(|d| {
                rechain(d, |chain| {
                    let mut vcek = chain.vcek;
                    vcek[200] ^= 1;
                    CertChain::from_der_parts(chain.ark, chain.ask, vcek)
                })
            }),
            Rejected("report.chain"),
        ),
        (
            "the real Milan VCEK instead of the signer's",
            Box::new(|d| {
                let pem =
                    kettle_attest::chain::der_to_pem(&kettle_attest::testdata::milan_vcek_der());
                fs::write(d.join("chain.pem"), pem).unwrap();
            }),
            Rejected("report.signature"),
        ),
        (
            "an unpinned self-signed ARK",
            Box::new(|d| {
                let other_ark = kettle_attest::chain::Product::Milan.pinned_der().unwrap().1; // an ASK, not any root
                rechain(d, |chain| {
                    CertChain::from_der_parts(Some(other_ark), chain.ask, chain.vcek)
                })
            }),
            Rejected("report.chain"),
        ),
        (
            "the VCEK of another chip (same key, another hwID)",
            Box::new(|d| {
                let other = SimulatedPsp::new(MEASUREMENT).with_vcek_hw_id(vec![0xB2; 64]);
                fs::write(d.join("chain.pem"), other.cert_chain_pem().unwrap()).unwrap();
            }),
            Rejected("report.vcek_matches_report"),
        ),
        (
            "chain is a FIFO (must not hang)",
            Box::new(|d| replace_with_fifo(&d.join("chain.pem"))),
            CannotRun("is not a regular file"),
        ),
        // --- flags under a policy (issue 25): they only narrow it ---
        (
            "a branch build under a tags-only policy, --ref naming the branch",
            policy(&["refs/tags/v*"], true),
            Rejected("provenance.ref"),
        ),
        (
            "--allow-simulated under a policy forbidding simulated evidence",
            policy(&["refs/heads/*"], false),
            Rejected("report.simulated"),
        ),
        (
            "--any-source under a policy that has the auditor pin the commit",
            policy(&["refs/heads/*"], true),
            Rejected("provenance.source"),
        ),
        // --- what the host left beside the evidence ---
        (
            "the host's manifest.json copy names another image",
            Box::new(|d| {
                image_dir(&d.join("evil-image"), [0x77; 48]);
                fs::copy(d.join("evil-image/manifest.json"), d.join("manifest.json")).unwrap();
                resign(d, SimulatedPsp::new([0x77; 48]), 0);
            }),
            Rejected("report.measurement"),
        ),
        (
            "a forged status.json claiming hardware attestation changes nothing",
            Box::new(|d| {
                fs::write(
                    d.join("status.json"),
                    r#"{"ok":true,"attested":true,"attestation":"sev-snp","artifacts":[]}"#,
                )
                .unwrap();
                fs::write(artifact(d), "evil\n").unwrap();
            }),
            Rejected("artifact:out/hello.txt"),
        ),
        (
            "the simulated PSP without --allow-simulated",
            Box::new(|_| {}),
            Rejected("report.simulated"),
        ),
        (
            "source not pinned",
            Box::new(|_| {}),
            Rejected("provenance.source"),
        ),
        (
            "commit pinned to another",
            Box::new(|_| {}),
            Rejected("provenance.source"),
        ),
    ]
}

fn verify(dir: &Path, name: &str) -> Output {
    let commit = StatementSpec::default().commit.unwrap();
    let spec = StatementSpec::default();
    let mut cmd = Command::new(kettle());
    cmd.arg("verify")
        .arg(dir)
        .arg("--manifest")
        .arg(published_manifest());
    cmd.args(["--repo", spec.repository, "--ref", spec.git_ref]);
    if policy_path(dir).exists() {
        cmd.arg("--policy").arg(policy_path(dir));
    }
    match name {
        "the simulated PSP without --allow-simulated" => cmd.args(["--commit", commit]),
        "source not pinned" => cmd.arg("--allow-simulated"),
        "commit pinned to another" => cmd.args(["--allow-simulated", "--commit", &"cd".repeat(20)]),
        "a host-resolved repository and ref with any commit accepted" => {
            cmd.args(["--allow-simulated", "--any-source"])
        }
        "--any-source under a policy that has the auditor pin the commit" => {
            cmd.arg("--any-source")
        }
        _ => cmd.args(["--allow-simulated", "--commit", commit]),
    };
    cmd.output().unwrap()
}

#[test]
fn every_hostile_output_directory_is_refused_by_name() {
    let all = cases();
    assert!(all.len() >= 50, "{} cases", all.len());
    // The untouched directory verifies: every refusal below is the mutation's.
    let root = tempfile::tempdir().unwrap();
    let good = root.path().join("good");
    simulated_output_dir(&good, &StatementSpec::default(), MEASUREMENT);
    let ok = verify(&good, "");
    assert_eq!(ok.status.code(), Some(0), "{}", text(&ok));

    let mut failures = Vec::new();
    for (i, (name, mutate, expect)) in all.iter().enumerate() {
        let dir = root.path().join(format!("case{i}"));
        simulated_output_dir(&dir, &StatementSpec::default(), MEASUREMENT);
        mutate(&dir);
        let out = verify(&dir, name);
        let stdout = String::from_utf8_lossy(&out.stdout);
        let all_text = text(&out);
        assert!(
            !stdout.lines().any(|l| l.starts_with("VERIFIED")),
            "{name}: a hostile directory verified:\n{all_text}"
        );
        let ok = match expect {
            Expect::Rejected(check) => {
                out.status.code() == Some(1)
                    && stdout
                        .lines()
                        .any(|l| l.starts_with(&format!("[FAIL] {check} ")))
            }
            Expect::CannotRun(what) => out.status.code() == Some(2) && all_text.contains(what),
        };
        if !ok {
            failures.push(format!(
                "--- {name} (exit {:?}):\n{all_text}",
                out.status.code()
            ));
        }
    }
    assert!(
        failures.is_empty(),
        "{} case(s) not refused as expected:\n{}",
        failures.len(),
        failures.join("\n")
    );
}
