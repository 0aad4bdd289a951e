//! Driving the `kettle` CLI from a test: build it, run commands, commit a sample project.

use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use crate::repo_root;

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

/// The SHA-256 of a file, as lowercase hex.
pub fn sha256_hex(path: &Path) -> String {
    let out = run(Command::new("sha256sum").arg(path));
    String::from_utf8_lossy(&out.stdout)
        .split_whitespace()
        .next()
        .unwrap()
        .to_string()
}

/// `examples/<sample>` committed in a fresh repository under `dir`: kettle.toml
/// made from kettle.toml.in with each `(@PIN@, value)` substituted, then
/// `overrides` (relative path, contents) written over the sample's files.
pub fn commit_sample(
    sample: &str,
    dir: &Path,
    pins: &[(&str, &str)],
    overrides: &[(&str, &str)],
) -> PathBuf {
    let from = repo_root().join("examples").join(sample);
    let repo = dir.join(sample);
    run(Command::new("cp").arg("-r").arg(&from).arg(&repo));
    let template = repo.join("kettle.toml.in");
    let mut recipe = fs::read_to_string(&template).unwrap();
    for (pin, value) in pins {
        recipe = recipe.replace(pin, value);
    }
    assert!(
        !has_unfilled_pin(&recipe),
        "unfilled pin in {sample}'s kettle.toml:\n{recipe}"
    );
    fs::remove_file(&template).unwrap();
    fs::write(repo.join("kettle.toml"), recipe).unwrap();
    for (path, contents) in overrides {
        fs::write(repo.join(path), contents).unwrap();
    }
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
    git(&["commit", "-q", "-m", sample]);
    repo
}

/// Whether `text` still holds a pin placeholder such as `@ROOTFS_SHA256@`.
fn has_unfilled_pin(text: &str) -> bool {
    let parts: Vec<&str> = text.split('@').collect();
    // A placeholder is a non-empty run of A-Z, 0-9, _ between two '@'.
    parts.len() > 2
        && parts[1..parts.len() - 1].iter().any(|name| {
            !name.is_empty()
                && name
                    .bytes()
                    .all(|b| b.is_ascii_uppercase() || b.is_ascii_digit() || b == b'_')
        })
}

#[cfg(test)]
mod tests {
    #[test]
    fn finds_unfilled_pins_only() {
        assert!(super::has_unfilled_pin("sha256 = \"@ROOTFS_SHA256@\""));
        assert!(!super::has_unfilled_pin(
            "# pins (@...@) are filled in\nsha256 = \"ab\""
        ));
        assert!(!super::has_unfilled_pin("email = t@example.com"));
    }
}
