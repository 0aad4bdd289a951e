//! The verifier reading an output directory that a hostile build host wrote:
//! what it reads is bounded by what the provenance names, never by what the
//! host put in artifacts/, and a name is compared as the string the subject is.

use std::fs;
use std::os::unix::ffi::OsStrExt;
use std::path::Path;
use std::sync::mpsc;
use std::time::Duration;

use kettle_testkit::evidence::{simulated_output_dir, StatementSpec};
use kettle_verify::bundle::{MAX_ARTIFACT_BYTES, MAX_PROVENANCE_BYTES};
use kettle_verify::{
    Bundle, BundleFiles, Expectations, LoadError, ProvenanceExpectations, SourcePin, Status,
    Verdict,
};

const MEASUREMENT: [u8; 48] = [0x5a; 48];
/// 8 TiB: hashing it would take hours; refusing it takes nothing.
const HUGE: u64 = 8 << 40;
/// Longer than refusing anything takes, far shorter than hashing [`HUGE`] bytes.
const PATIENCE: Duration = Duration::from_secs(60);

fn expectations() -> Expectations {
    let spec = StatementSpec::default();
    Expectations {
        provenance: ProvenanceExpectations {
            repository: Some(spec.repository.into()),
            git_ref: Some(spec.git_ref.into()),
            source: SourcePin::Commit(spec.commit.unwrap().into()),
            ..Default::default()
        },
        ..Expectations::new(MEASUREMENT, "the test measurement")
    }
    .accepting_simulated()
}

/// Verifies `dir` on another thread; fails the test when that takes longer than [`PATIENCE`]
/// (an unbounded read would take hours: the thread is left to the end of the process).
fn verify_in_time(dir: &Path) -> Verdict {
    let (tx, rx) = mpsc::channel();
    let dir = dir.to_path_buf();
    std::thread::spawn(move || {
        let _ = tx.send(kettle_verify::verify_output_dir(&dir, &expectations()));
    });
    rx.recv_timeout(PATIENCE)
        .unwrap_or_else(|_| {
            panic!("verification still running after {PATIENCE:?}: an unbounded read")
        })
        .expect("the directory loads")
}

/// The failed check named `name`, with its detail.
fn failed(v: &Verdict, name: &str) -> String {
    let c = v
        .check_named(name)
        .unwrap_or_else(|| panic!("no check {name}:\n{v}"));
    assert_eq!(c.status(), Status::Fail, "{name} did not fail:\n{v}");
    c.detail()
}

#[test]
fn the_untouched_directory_verifies() {
    let root = tempfile::tempdir().unwrap();
    simulated_output_dir(root.path(), &StatementSpec::default(), MEASUREMENT);
    let v = verify_in_time(root.path());
    assert!(v.verified(), "{v}");
}

/// Makes `artifacts/NAME` a sparse file of [`HUGE`] bytes in the output directory `d`;
/// the verdict must reject it, and the failed check's detail is returned.
fn huge_artifact_fails(d: &Path, name: &str) -> String {
    fs::File::create(d.join("artifacts").join(name))
        .unwrap()
        .set_len(HUGE)
        .unwrap();
    let v = verify_in_time(d);
    assert!(!v.verified(), "{v}");
    failed(&v, &format!("artifact:{name}"))
}

#[test]
fn a_huge_file_no_subject_names_fails_without_being_read() {
    let root = tempfile::tempdir().unwrap();
    let d = root.path();
    simulated_output_dir(d, &StatementSpec::default(), MEASUREMENT);
    let detail = huge_artifact_fails(d, "extra.img");
    assert!(
        detail.contains("no subject of the provenance is named \"extra.img\": not read"),
        "{detail}"
    );
}

#[test]
fn a_huge_file_a_subject_names_is_refused_by_its_size() {
    let root = tempfile::tempdir().unwrap();
    let d = root.path();
    let spec = StatementSpec {
        subjects: vec![("big.img", b"small when it was built")],
        ..Default::default()
    };
    simulated_output_dir(d, &spec, MEASUREMENT);
    let detail = huge_artifact_fails(d, "big.img");
    assert!(
        detail.contains(&format!(
            "{HUGE} bytes, more than the {MAX_ARTIFACT_BYTES} left of the {MAX_ARTIFACT_BYTES} bytes hashed per verification: not read"
        )),
        "{detail}"
    );
}

#[test]
fn names_that_are_not_utf8_match_no_subject() {
    let root = tempfile::tempdir().unwrap();
    let d = root.path();
    let bytes: &[u8] = b"the same bytes";
    // Subject U+FFFD: what a lossy conversion makes of any invalid name.
    let spec = StatementSpec {
        subjects: vec![("\u{fffd}", bytes)],
        ..Default::default()
    };
    simulated_output_dir(d, &spec, MEASUREMENT);
    fs::remove_file(d.join("artifacts/\u{fffd}")).unwrap();
    for name in [&b"\xff"[..], &b"\xfe"[..]] {
        let p = d.join("artifacts").join(std::ffi::OsStr::from_bytes(name));
        fs::write(p, bytes).unwrap();
    }
    let v = verify_in_time(d);
    assert!(!v.verified(), "{v}");
    let refused: Vec<String> = v
        .failures()
        .filter(|c| c.name() == "artifact:\u{fffd}")
        .map(|c| c.detail())
        .collect();
    assert_eq!(refused.len(), 2, "{v}");
    for detail in refused {
        assert!(
            detail.contains("is not UTF-8, and an in-toto subject name is a string"),
            "{detail}"
        );
    }
    // The subject has no file: neither invalid name counts as its.
    let detail = failed(&v, "artifacts.complete");
    assert!(detail.contains("\"\u{fffd}\""), "{detail}");
}

#[test]
fn a_provenance_of_several_mib_is_refused_before_it_is_parsed() {
    let root = tempfile::tempdir().unwrap();
    let d = root.path();
    simulated_output_dir(d, &StatementSpec::default(), MEASUREMENT);
    // Valid JSON, a few MiB of whitespace: parsing and hashing would accept its shape.
    let mut prov = fs::read(d.join("provenance.json")).unwrap();
    let size = MAX_PROVENANCE_BYTES + 1;
    prov.resize(usize::try_from(size).unwrap(), b' ');
    fs::write(d.join("provenance.json"), &prov).unwrap();
    let err = Bundle::load(&BundleFiles::output_dir(d).unwrap()).unwrap_err();
    match &err {
        LoadError::TooLarge {
            what: "provenance",
            size: s,
            limit,
            ..
        } => {
            assert_eq!((*s, *limit), (size, MAX_PROVENANCE_BYTES), "{err}");
            assert!(*limit <= 8 << 20, "a real provenance is a few KiB: {err}");
        }
        other => panic!("expected TooLarge for the provenance, got {other}"),
    }
}
