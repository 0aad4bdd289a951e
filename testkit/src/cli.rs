//! Driving the CLIs from a test: build them, run commands, commit a sample project.

use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use crate::artifacts::CargoCvm;
use crate::fixtures::write_sample;
use crate::git::GitRepo;
use crate::{build_dir, repo_root};

/// Runs `cmd`, panicking with its stderr unless it succeeds.
pub fn run(cmd: &mut Command) -> Output {
    let out = cmd.output().unwrap_or_else(|e| panic!("{cmd:?}: {e}"));
    assert!(
        out.status.success(),
        "{cmd:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    out
}

/// stdout followed by stderr, as text.
pub fn text(out: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

/// Builds the kettle CLI with the cargo running this test and returns its path.
pub fn kettle_binary() -> PathBuf {
    workspace_binary("kettle", "kettle")
}

/// Builds kettle-init (the guest's PID 1, run here as `kettle-init --local`) and returns its path.
pub fn kettle_init_binary() -> PathBuf {
    workspace_binary("kettle-init", "kettle-init")
}

/// Builds binary `bin` of workspace package `package` (debug profile) and returns its path.
pub(crate) fn workspace_binary(package: &str, bin: &str) -> PathBuf {
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    run(Command::new(cargo)
        .current_dir(repo_root())
        .args(["build", "-q", "--locked", "-p", package, "--bin", bin]));
    let target = std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| repo_root().join("target"));
    let path = target.join("debug").join(bin);
    assert!(path.is_file(), "{} was not built", path.display());
    path
}

/// `examples/<sample>` (a cargo-build/v1 recipe) committed in `dir/<sample>` with its
/// `@TOOLCHAIN_*@` and `@ROOTFS_*@` pins set to `cvm`'s bundles, named `<url_base>/<file>`.
fn commit_cargo_sample(sample: &str, dir: &Path, cvm: &CargoCvm, url_base: &str) -> PathBuf {
    let (toolchain_url, rootfs_url) = (
        format!("{url_base}/toolchain.tar.gz"),
        format!("{url_base}/rootfs.tar.gz"),
    );
    let (toolchain_sha, rootfs_sha) = (sha256_hex(&cvm.toolchain), sha256_hex(&cvm.rootfs));
    commit_sample(
        sample,
        dir,
        &[
            ("@TOOLCHAIN_URL@", &toolchain_url),
            ("@TOOLCHAIN_SHA256@", &toolchain_sha),
            ("@ROOTFS_URL@", &rootfs_url),
            ("@ROOTFS_SHA256@", &rootfs_sha),
        ],
        &[],
    )
}

/// `kettle verify OUT --manifest M --allow-simulated --ref refs/heads/main --source REPO`;
/// asserts it exits 0 (VERIFIED) and returns what it printed.
fn verify_simulated(kettle: &Path, out: &Path, manifest: &Path, repo: &Path) -> String {
    let verify = Command::new(kettle)
        .arg("verify")
        .arg(out)
        .arg("--manifest")
        .arg(manifest)
        .args(["--allow-simulated", "--ref", "refs/heads/main", "--source"])
        .arg(repo)
        .output()
        .expect("run kettle verify");
    assert_eq!(verify.status.code(), Some(0), "{}", text(&verify));
    text(&verify)
}

/// `examples/<sample>` committed in a scratch directory under build/ with `cvm`'s bundles
/// pinned (URLs `<url_base>/<file>`), built in the CVM by the kettle CLI (`kettle build
/// --tee simulated`, 6 GiB, `timeout` seconds) and verified (VERIFIED (SIMULATED));
/// returns the scratch directory (removed on drop) and the output directory in it.
pub fn cargo_sample_verified_in_cvm(
    cvm: &CargoCvm,
    sample: &str,
    url_base: &str,
    timeout: &str,
) -> (tempfile::TempDir, PathBuf) {
    let kettle = kettle_binary();
    let scratch = tempfile::tempdir_in(build_dir()).expect("a scratch dir under build/");
    let repo = commit_cargo_sample(sample, scratch.path(), cvm, url_base);
    let out = scratch.path().join("out");
    build_simulated(
        &kettle,
        &repo,
        &cvm.image,
        &out,
        &[&cvm.rootfs, &cvm.toolchain],
        &["--memory", "6144", "--timeout", timeout],
    );
    verify_simulated(&kettle, &out, &cvm.manifest, &repo);
    (scratch, out)
}

/// `out/provenance.json` of a cargo build, as text; asserts that it lists each of
/// `crates` as a `pkg:cargo/<crate>@` PURL.
pub fn provenance_with_crates(out: &Path, crates: &[&str]) -> String {
    let provenance = fs::read_to_string(out.join("provenance.json")).expect("read provenance.json");
    for krate in crates {
        let purl = format!("pkg:cargo/{krate}@");
        assert!(
            provenance.contains(&purl),
            "{purl} missing from {provenance}"
        );
    }
    provenance
}

/// Runs the release binary `bin` a cargo build left in `out/artifacts`; returns its stdout.
pub fn run_release_binary(out: &Path, bin: &str) -> String {
    let binary = out.join("artifacts/target/release").join(bin);
    String::from_utf8_lossy(&run(&mut Command::new(binary)).stdout).into_owned()
}

/// `kettle build REPO --tee simulated --accel tcg` into `out` with the image at `image`, each
/// `inputs` file handed to the input cache, `extra` flags last; asserts it exits 0 and
/// shows the console log if not.
pub fn build_simulated(
    kettle: &Path,
    repo: &Path,
    image: &Path,
    out: &Path,
    inputs: &[&Path],
    extra: &[&str],
) -> Output {
    let mut cmd = Command::new(kettle);
    cmd.arg("build")
        .arg(repo)
        .args(["--tee", "simulated", "--accel", "tcg"])
        .arg("--image")
        .arg(image)
        .arg("--out")
        .arg(out);
    for input in inputs {
        cmd.arg("--input").arg(input);
    }
    let build = cmd.args(extra).output().expect("run kettle build");
    assert_built(&build, out);
    build
}

/// Asserts that a `kettle build` into `out` exited 0, showing what it printed and
/// `out/build.log` (the console) if not.
pub fn assert_built(build: &Output, out: &Path) {
    let log = fs::read_to_string(out.join("build.log")).unwrap_or_default();
    assert_eq!(
        build.status.code(),
        Some(0),
        "{}\n--- build.log ---\n{log}",
        text(build)
    );
}

/// The SHA-256 of a file, as lowercase hex.
pub fn sha256_hex(path: &Path) -> String {
    let out = run(Command::new("sha256sum").arg(path));
    String::from_utf8_lossy(&out.stdout)
        .split_whitespace()
        .next()
        .unwrap()
        .to_string()
}

/// `examples/<sample>` committed in a fresh repository `dir/<sample>` (returned): kettle.toml
/// made from kettle.toml.in with each `(@PIN@, value)` substituted, then `overrides`
/// (relative path, contents) written over the sample's files.
pub fn commit_sample(
    sample: &str,
    dir: &Path,
    pins: &[(&str, &str)],
    overrides: &[(&str, &str)],
) -> PathBuf {
    let repo = GitRepo::init(&dir.join(sample));
    write_sample(&repo, sample, pins);
    for (path, contents) in overrides {
        repo.write(path, contents);
    }
    repo.commit_all(sample);
    repo.path().to_path_buf()
}
