//! The whole pipeline with a real boot: `kettle build` boots build/image under
//! QEMU (TCG + the simulated PSP), kettle-init builds the hello-script sample,
//! and `kettle verify` accepts the output directory only with
//! --allow-simulated and rejects it once an artifact is replaced. Skips off
//! CI when the image has not been built (`make image`); fails on CI.

use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use kettle_tests::{build_dir, repo_root, require_artifact, Requirement};

fn run(cmd: &mut Command) -> Output {
    let out = cmd.output().unwrap_or_else(|e| panic!("{cmd:?}: {e}"));
    assert!(
        out.status.success(),
        "{cmd:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    out
}

fn text(out: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

/// Builds the kettle CLI with the cargo running this test and returns its path.
fn kettle_binary() -> PathBuf {
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    run(Command::new(cargo)
        .current_dir(repo_root())
        .args(["build", "-q", "--locked", "-p", "kettle"]));
    let target = std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| repo_root().join("target"));
    let bin = target.join("debug").join("kettle");
    assert!(bin.is_file(), "{} was not built", bin.display());
    bin
}

/// A deterministic tar.gz root filesystem with this host's sh, mkdir and cat (and their libraries).
fn host_rootfs(dir: &Path) -> PathBuf {
    let root = dir.join("rootfs");
    for b in ["sh", "mkdir", "cat"] {
        let bin = String::from_utf8(
            run(Command::new("sh").args(["-c", &format!("command -v {b}")])).stdout,
        )
        .unwrap();
        let bin = bin.trim();
        for d in ["bin", "usr/bin"] {
            fs::create_dir_all(root.join(d)).unwrap();
            fs::copy(bin, root.join(d).join(b)).unwrap();
        }
        let ldd = run(Command::new("ldd").arg(bin));
        for lib in String::from_utf8_lossy(&ldd.stdout)
            .split_whitespace()
            .filter(|w| w.starts_with('/'))
        {
            let dest = root.join(lib.trim_start_matches('/'));
            fs::create_dir_all(dest.parent().unwrap()).unwrap();
            fs::copy(lib, dest).unwrap();
        }
    }
    let tarball = dir.join("rootfs.tar.gz");
    run(Command::new("sh").arg("-c").arg(format!(
        "LC_ALL=C tar --sort=name --mtime=@0 --owner=0 --group=0 --numeric-owner -C '{}' -cf - . | gzip -n > '{}'",
        root.display(),
        tarball.display()
    )));
    tarball
}

fn sha256_hex(path: &Path) -> String {
    let out = run(Command::new("sha256sum").arg(path));
    String::from_utf8_lossy(&out.stdout)
        .split_whitespace()
        .next()
        .unwrap()
        .to_string()
}

/// examples/hello-script committed in a fresh repository with its rootfs pin filled in.
fn sample_repo(dir: &Path, rootfs_sha: &str) -> PathBuf {
    let sample = repo_root().join("examples/hello-script");
    let repo = dir.join("hello-script");
    fs::create_dir_all(&repo).unwrap();
    for entry in fs::read_dir(&sample).unwrap() {
        let entry = entry.unwrap();
        if entry.file_name() != "kettle.toml.in" && entry.file_type().unwrap().is_file() {
            fs::copy(entry.path(), repo.join(entry.file_name())).unwrap();
        }
    }
    let recipe = fs::read_to_string(sample.join("kettle.toml.in"))
        .unwrap()
        .replace("@ROOTFS_URL@", "https://kettle.invalid/test/rootfs.tar.gz")
        .replace("@ROOTFS_SHA256@", rootfs_sha);
    fs::write(repo.join("kettle.toml"), recipe).unwrap();
    let git = |args: &[&str]| {
        run(Command::new("git")
            .arg("-C")
            .arg(&repo)
            .args(["-c", "user.name=T", "-c", "user.email=t@example.com"])
            .args(args)
            .env("GIT_AUTHOR_DATE", "2025-01-01T00:00:00Z")
            .env("GIT_COMMITTER_DATE", "2025-01-01T00:00:00Z"));
    };
    git(&["init", "-q", "-b", "main"]);
    git(&["add", "-A"]);
    git(&["commit", "-q", "-m", "sample"]);
    repo
}

#[test]
fn build_in_the_cvm_then_verify_and_reject_tampering() {
    let Some(manifest) = require_artifact("image/manifest.json", "image", Requirement::from_env())
    else {
        return;
    };
    let image = manifest.parent().unwrap().to_path_buf();
    let kettle = kettle_binary();
    let tmp = tempfile::tempdir_in(build_dir()).unwrap();
    let rootfs = host_rootfs(tmp.path());
    let repo = sample_repo(tmp.path(), &sha256_hex(&rootfs));
    let out = tmp.path().join("out");

    let build = Command::new(&kettle)
        .arg("build")
        .arg(&repo)
        .args([
            "--tee",
            "simulated",
            "--accel",
            "tcg",
            "--memory",
            "1024",
            "--timeout",
            "900",
        ])
        .arg("--image")
        .arg(&image)
        .arg("--out")
        .arg(&out)
        .arg("--cache-dir")
        .arg(tmp.path().join("cache"))
        .arg("--input")
        .arg(&rootfs)
        .output()
        .unwrap();
    let log = fs::read_to_string(out.join("build.log")).unwrap_or_default();
    assert_eq!(
        build.status.code(),
        Some(0),
        "{}\n--- build.log ---\n{log}",
        text(&build)
    );
    let hello = fs::read_to_string(out.join("artifacts/out/hello.txt")).unwrap();
    assert!(hello.starts_with("hello from a kettle build"), "{hello}");
    for f in [
        "provenance.json",
        "evidence",
        "chain.pem",
        "manifest.json",
        "build.log",
    ] {
        assert!(out.join(f).is_file(), "{f} missing");
    }

    let verify = |extra: &[&str]| {
        Command::new(&kettle)
            .arg("verify")
            .arg(&out)
            .args(extra)
            .output()
            .unwrap()
    };
    let ok = verify(&["--allow-simulated", "--ref", "refs/heads/main"]);
    assert_eq!(ok.status.code(), Some(0), "{}", text(&ok));
    let strict = verify(&[]);
    assert_eq!(strict.status.code(), Some(1), "{}", text(&strict));
    assert!(
        text(&strict).contains("[FAIL] report.simulated"),
        "{}",
        text(&strict)
    );

    fs::write(out.join("artifacts/out/hello.txt"), "tampered\n").unwrap();
    let tampered = verify(&["--allow-simulated"]);
    assert_eq!(tampered.status.code(), Some(1), "{}", text(&tampered));
    assert!(
        text(&tampered).contains("[FAIL] artifact:out/hello.txt"),
        "{}",
        text(&tampered)
    );
}
