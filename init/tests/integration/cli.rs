//! `kettle-init --local DIR [--out OUT] [--work WORK]`, the way `kettle build
//! --local` runs local mode: exit 0 built, 1 the build failed (error.json
//! written), 2 could not run (usage, unreadable request, unusable directories).

use std::fs;
use std::path::Path;
use std::process::{Command, Output};

use kettle_provenance::vocab;
use kettle_testkit::fixtures::{assert_only_error, read_status};
use kettle_testkit::Scenario;
use kettle_wire::Step;

fn kettle_init(args: &[&Path]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_kettle-init"))
        .args(args)
        .output()
        .unwrap()
}

/// `--local dir`, then `--out out` and `--work work` where given.
fn local_args<'a>(dir: &'a Path, out: Option<&'a Path>, work: Option<&'a Path>) -> Vec<&'a Path> {
    let mut args = vec![Path::new("--local"), dir];
    for (flag, value) in [("--out", out), ("--work", work)] {
        if let Some(value) = value {
            args.extend([Path::new(flag), value]);
        }
    }
    args
}

fn stderr(out: &Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

#[test]
fn builds_into_out_with_its_own_work_dir() {
    let sc = Scenario::script("mkdir -p out && echo cli > out/c.txt", &["out/c.txt"]).commit();
    let dir = sc.write_local_dir(&sc.dir().join("local"));
    let (out, work) = (sc.out(), sc.dir().join("work"));
    let run = kettle_init(&local_args(&dir, Some(&out), Some(&work)));
    assert_eq!(run.status.code(), Some(0), "{}", stderr(&run));
    assert!(
        String::from_utf8_lossy(&run.stdout).contains("NOT hardware-attested"),
        "{run:?}"
    );
    assert_eq!(
        fs::read_to_string(out.join("artifacts/out/c.txt")).unwrap(),
        "cli\n"
    );
    assert!(read_status(&out).ok && !read_status(&out).attested);
    assert!(
        work.join("src/kettle.toml").is_file(),
        "the scratch is in --work"
    );
    // `kettle build --local` runs exactly this: the local builder, under no TEE.
    let st: kettle_provenance::Statement<kettle_provenance::Provenance> =
        kettle_provenance::Statement::from_json(&fs::read(out.join("provenance.json")).unwrap())
            .unwrap();
    assert_eq!(
        st.predicate.run_details.builder.id,
        kettle_provenance::ids::BUILDER_ID_LOCAL
    );
    assert_eq!(
        st.predicate.build_definition.internal_parameters[vocab::TEE_PLATFORM],
        "none"
    );
}

#[test]
fn a_failed_build_exits_1_with_error_json() {
    let sc = Scenario::script("exit 7", &["out/x"]).commit();
    let dir = sc.write_local_dir(&sc.dir().join("local"));
    let out = sc.out();
    let run = kettle_init(&local_args(&dir, Some(&out), None));
    assert_eq!(run.status.code(), Some(1), "{}", stderr(&run));
    assert!(
        stderr(&run).contains("step build failed"),
        "{}",
        stderr(&run)
    );
    assert_eq!(assert_only_error(&out).step, Step::Build);
}

#[test]
fn what_cannot_run_exits_2_and_writes_nothing() {
    let sc = Scenario::script("true", &["out/x"]).commit();
    let dir = sc.write_local_dir(&sc.dir().join("local"));
    let busy = sc.dir().join("busy");
    fs::create_dir_all(&busy).unwrap();
    fs::write(busy.join("old"), "older results").unwrap();
    let no_request = sc.dir().join("empty");
    fs::create_dir_all(&no_request).unwrap();
    let fresh = sc.out();
    for (args, why) in [
        (vec![Path::new("--bogus")], "unknown argument"),
        (vec![Path::new("--local")], "--local needs a value"),
        (vec![], "no --local DIR"),
        (local_args(&no_request, None, None), "request.json"),
        (local_args(&dir, Some(&busy), None), "is not empty"),
        (local_args(&dir, Some(&fresh), Some(&busy)), "is not empty"),
    ] {
        let run = kettle_init(&args);
        assert_eq!(run.status.code(), Some(2), "{args:?}: {}", stderr(&run));
        assert!(stderr(&run).contains(why), "{args:?}: {}", stderr(&run));
    }
    assert!(!fresh.exists(), "nothing written when it could not run");
    assert_eq!(fs::read_dir(&busy).unwrap().count(), 1);
}
