//! What a release carries besides the image, and the CI recipe that uses it:
//! `kettle generate` (completions and man pages, the same bytes every run) and
//! `scripts/ci-build.sh` + `scripts/ci-verify.sh`, the scripts the GitHub
//! composite actions and the GitLab example call, run here as a pipeline would
//! with the stand-in QEMU (kettle-fake-qemu) and the simulated PSP.

use std::collections::BTreeMap;
use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use kettle_testkit::artifacts::repo_root;
use kettle_testkit::cli::text;
use kettle_testkit::git::BRANCH;
use kettle_testkit::stand_in::{fake_qemu, StandInProject};

const KETTLE: &str = env!("CARGO_BIN_EXE_kettle");
/// The variables the CI scripts read besides GITHUB_REF, GITHUB_SHA, KETTLE and KETTLE_OUT.
const SCRIPT_VARS: [&str; 9] = [
    "KETTLE_REF",
    "KETTLE_COMMIT",
    "KETTLE_IMAGE",
    "KETTLE_SOURCE",
    "KETTLE_TEE",
    "KETTLE_BUILD_ARGS",
    "KETTLE_POLICY",
    "KETTLE_VSA",
    "KETTLE_VERIFY_ARGS",
];

/// Every file under `dir` (relative name -> bytes).
fn tree(dir: &Path) -> BTreeMap<String, Vec<u8>> {
    fs::read_dir(dir)
        .unwrap()
        .map(|e| {
            let e = e.unwrap();
            (
                e.file_name().to_string_lossy().into_owned(),
                fs::read(e.path()).unwrap(),
            )
        })
        .collect()
}

fn generate(what: &str, out: &Path) {
    let run = Command::new(KETTLE)
        .args(["generate", what, "--out"])
        .arg(out)
        .output()
        .unwrap();
    assert_eq!(run.status.code(), Some(0), "{}", text(&run));
}

#[test]
fn completions_and_man_pages_are_generated_the_same_twice() {
    let dir = tempfile::tempdir().unwrap();
    for what in ["completions", "man"] {
        let (a, b) = (dir.path().join(format!("{what}-a")), dir.path().join(what));
        generate(what, &a);
        generate(what, &b);
        assert_eq!(tree(&a), tree(&b), "{what}: two runs differ");
    }
    let completions = tree(&dir.path().join("completions"));
    assert_eq!(
        completions.keys().collect::<Vec<_>>(),
        ["_kettle", "kettle.bash", "kettle.fish"]
    );
    let man = tree(&dir.path().join("man"));
    for page in [
        "kettle.1",
        "kettle-build.1",
        "kettle-verify.1",
        "kettle-policy-init.1",
    ] {
        assert!(man.contains_key(page), "{page} missing: {:?}", man.keys());
    }
    assert!(
        !man.keys().any(|p| p.contains("generate")),
        "the generator is hidden: {:?}",
        man.keys()
    );
    let verify = String::from_utf8_lossy(&man["kettle-verify.1"]);
    assert!(verify.contains("\\-\\-policy"), "{verify}");
    // The help says `generate` exists nowhere a user looks.
    let help = Command::new(KETTLE).arg("--help").output().unwrap();
    assert!(!text(&help).contains("generate"), "{}", text(&help));
}

/// A stand-in project, and a published policy for it, as a platform team would write.
struct Pipeline {
    f: StandInProject,
    policy: PathBuf,
    out: PathBuf,
}

impl Pipeline {
    fn new() -> Pipeline {
        let f = StandInProject::create();
        let policy = f.root.path().join("policy.json");
        let out = f.root.path().join("outputs/kettle-out");
        let p = Pipeline { f, policy, out };
        p.write_policy(&p.policy, true);
        p
    }

    /// `kettle policy init` for the project's repository and branches, at `path`.
    fn write_policy(&self, path: &Path, allow_simulated: bool) {
        let repo = format!("file://{}", self.f.repo.canonicalize().unwrap().display());
        let mut init = Command::new(KETTLE);
        init.args(["policy", "init", "--manifest"])
            .arg(self.f.image.join("manifest.json"))
            .args(["--repo", &repo, "--ref", "refs/heads/*", "--out"])
            .arg(path);
        if allow_simulated {
            init.arg("--allow-simulated");
        }
        let made = init.output().unwrap();
        assert_eq!(made.status.code(), Some(0), "{}", text(&made));
    }

    /// `bash scripts/<script>` in the project's checkout, with a CI system's variables.
    fn script(&self, script: &str, sha: &str, env: &[(&str, &str)]) -> Output {
        let mut cmd = Command::new("bash");
        cmd.arg(repo_root().join("scripts").join(script))
            .current_dir(&self.f.repo)
            .env("GITHUB_REF", format!("refs/heads/{BRANCH}"))
            .env("GITHUB_SHA", sha)
            .env("KETTLE", KETTLE)
            .env("KETTLE_OUT", &self.out);
        // Only what the test sets: nothing from the caller's environment.
        for var in SCRIPT_VARS {
            cmd.env_remove(var);
        }
        cmd.envs(env.iter().copied()).output().unwrap()
    }

    /// scripts/ci-build.sh with the stand-in QEMU and the simulated PSP.
    fn build(&self, sha: &str) -> Output {
        let args = format!(
            "--accel tcg --qemu {} --cache-dir {} --input {} --output-size 1 --timeout 120",
            fake_qemu().display(),
            self.f.cache.display(),
            self.f.rootfs.display()
        );
        self.script(
            "ci-build.sh",
            sha,
            &[
                ("KETTLE_IMAGE", self.f.image.to_str().unwrap()),
                ("KETTLE_TEE", "simulated"),
                ("KETTLE_BUILD_ARGS", &args),
            ],
        )
    }

    fn verify(&self, sha: &str, env: &[(&str, &str)]) -> Output {
        let mut all = vec![("KETTLE_POLICY", self.policy.to_str().unwrap())];
        all.extend_from_slice(env);
        self.script("ci-verify.sh", sha, &all)
    }
}

#[test]
fn the_ci_recipe_builds_then_verifies_under_the_published_policy() {
    let p = Pipeline::new();
    let sha = p.f.commit.trim();
    let built = p.build(sha);
    assert_eq!(built.status.code(), Some(0), "{}", text(&built));
    assert!(text(&built).contains(&format!("building refs/heads/{BRANCH} at {sha}")));
    assert!(p.out.join("provenance.json").is_file(), "{}", text(&built));
    assert!(p.out.join("artifacts/out/hello.txt").is_file());

    let vsa = p.f.root.path().join("vsa.json");
    let verified = p.verify(sha, &[("KETTLE_VSA", vsa.to_str().unwrap())]);
    let t = text(&verified);
    assert_eq!(verified.status.code(), Some(0), "{t}");
    assert!(t.contains(&format!("built commit: {sha}")), "{t}");
    assert!(
        t.lines()
            .any(|l| l.starts_with("VERIFIED (SIMULATED: signed with test keys")),
        "{t}"
    );
    let vsa: serde_json::Value = serde_json::from_slice(&fs::read(&vsa).unwrap()).unwrap();
    assert_eq!(vsa["predicate"]["verificationResult"], "PASSED", "{vsa}");

    // Another commit than the one built: rejected (1), as is simulated evidence under a
    // policy that does not accept it (a release's policy never does).
    let other = "0".repeat(sha.len());
    let wrong = p.verify(&other, &[]);
    assert_eq!(wrong.status.code(), Some(1), "{}", text(&wrong));
    let strict = p.f.root.path().join("release-policy.json");
    p.write_policy(&strict, false);
    let refused = p.verify(sha, &[("KETTLE_POLICY", strict.to_str().unwrap())]);
    assert_eq!(refused.status.code(), Some(1), "{}", text(&refused));
    assert!(!text(&refused).contains("\nVERIFIED"), "{}", text(&refused));
}

#[test]
fn the_ci_build_refuses_a_ref_that_is_not_at_the_pinned_commit() {
    let p = Pipeline::new();
    let other = "1".repeat(p.f.commit.trim().len());
    let refused = p.build(&other);
    let t = text(&refused);
    assert_eq!(refused.status.code(), Some(2), "{t}");
    assert!(
        t.contains(&format!(
            "kettle build: --commit {other}: refs/heads/{BRANCH} is at {}, not {other}: the ref moved (or names another commit); nothing was built",
            p.f.commit.trim()
        )),
        "{t}"
    );
    assert!(!p.out.exists());

    let no_image = p.script("ci-build.sh", p.f.commit.trim(), &[]);
    let t = text(&no_image);
    assert_eq!(no_image.status.code(), Some(2), "{t}");
    assert!(t.contains("KETTLE_IMAGE is not set"), "{t}");

    let no_policy = p.script("ci-verify.sh", p.f.commit.trim(), &[]);
    let t = text(&no_policy);
    assert_eq!(no_policy.status.code(), Some(2), "{t}");
    assert!(t.contains("KETTLE_POLICY is not set"), "{t}");
}
