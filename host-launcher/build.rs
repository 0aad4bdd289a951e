//! Names the commit `kettle --version` was built from (KETTLE_COMMIT): from the
//! environment when the build sets it (Kettle's sandbox sets it to the verified commit,
//! since the guest builds from a source archive), else from git; with neither, the
//! version says so instead of guessing.

use std::process::Command;

fn git(args: &[&str]) -> Option<String> {
    let out = Command::new("git").args(args).output().ok()?;
    let text = String::from_utf8(out.stdout).ok()?;
    (out.status.success() && !text.trim().is_empty()).then(|| text.trim().to_string())
}

fn main() {
    println!("cargo:rerun-if-env-changed=KETTLE_COMMIT");
    let commit = std::env::var("KETTLE_COMMIT")
        .ok()
        .filter(|c| !c.is_empty())
        .or_else(|| {
            // Rebuild when HEAD moves: HEAD itself, the branch it names, packed refs.
            let mut watched = vec!["HEAD".to_string(), "packed-refs".to_string()];
            watched.extend(git(&["symbolic-ref", "-q", "HEAD"]));
            for name in watched {
                if let Some(path) = git(&["rev-parse", "--git-path", &name]) {
                    if std::path::Path::new(&path).exists() {
                        println!("cargo:rerun-if-changed={path}");
                    }
                }
            }
            git(&["rev-parse", "HEAD"])
        });
    let commit = commit.unwrap_or_else(|| "unknown: not built from a git checkout".into());
    println!("cargo:rustc-env=KETTLE_COMMIT={commit}");
}
