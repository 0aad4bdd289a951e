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
use kettle_provenance::{ids, jcs, vocab, Statement};
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

/// Every case: what the host can do to the output files, and to the evidence.
fn cases() -> Vec<Case> {
    let mut all = outputs::cases();
    all.extend(evidence::cases());
    all
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

mod evidence;
mod outputs;
