//! kettle-sample: a sample project committed with its rootfs pin, made by the
//! same code as the tests' (for scripts/demo.sh).
//!
//! `kettle-sample SAMPLE --rootfs-out PATH --repo-dir DIR [--rootfs-url URL] [--pin @NAME@=VALUE]...`
//! writes a root filesystem tar of this host's sh, mkdir and cat (with their
//! libraries) to PATH, commits examples/SAMPLE as DIR/SAMPLE with
//! `@ROOTFS_URL@` and `@ROOTFS_SHA256@` (and any `--pin`) filled in, and prints
//! two lines: the repository path, then the rootfs SHA-256.

use std::path::PathBuf;
use std::process::ExitCode;

use kettle_provenance::Sha256Digest;
use kettle_testkit::commit_sample;
use kettle_testkit::fixtures::{examples_dir, RECIPE_TEMPLATE};
use kettle_testkit::hostroot::host_binaries_tar;

const USAGE: &str = "usage: kettle-sample SAMPLE --rootfs-out PATH --repo-dir DIR [--rootfs-url URL] [--pin @NAME@=VALUE]...
  Writes a rootfs tar of this host's sh, mkdir and cat to PATH, commits examples/SAMPLE
  as DIR/SAMPLE (replaced if present) with its pins filled in, and prints the repository
  path and the rootfs SHA-256, one per line.";

/// The rootfs URL the recipe names by default: a placeholder, since the host hands the
/// bundle to the build itself and the guest checks it against the pin.
const DEFAULT_ROOTFS_URL: &str = "https://kettle.invalid/demo/rootfs.tar";
/// The binaries the samples' recipes run (besides /bin/sh, which is always there).
const SAMPLE_BINARIES: &[&str] = &["mkdir", "cat"];

struct Args {
    sample: String,
    rootfs_out: PathBuf,
    repo_dir: PathBuf,
    rootfs_url: String,
    pins: Vec<(String, String)>,
}

fn parse(args: &[String]) -> Result<Args, String> {
    let (mut sample, mut rootfs_out, mut repo_dir) = (None, None, None);
    let mut rootfs_url = DEFAULT_ROOTFS_URL.to_string();
    let mut pins = Vec::new();
    let mut it = args.iter();
    while let Some(a) = it.next() {
        let mut value = || it.next().cloned().ok_or(format!("{a} needs a value"));
        match a.as_str() {
            "--rootfs-out" => rootfs_out = Some(PathBuf::from(value()?)),
            "--repo-dir" => repo_dir = Some(PathBuf::from(value()?)),
            "--rootfs-url" => rootfs_url = value()?,
            "--pin" => {
                let v = value()?;
                let (name, value) = v
                    .split_once('=')
                    .ok_or(format!("--pin {v:?} is not @NAME@=VALUE"))?;
                pins.push((name.to_string(), value.to_string()));
            }
            s if s.starts_with('-') => return Err(format!("unknown option {s:?}")),
            s if sample.is_none() => sample = Some(s.to_string()),
            s => return Err(format!("unexpected argument {s:?}")),
        }
    }
    Ok(Args {
        sample: sample.ok_or("no SAMPLE given")?,
        rootfs_out: rootfs_out.ok_or("--rootfs-out is required")?,
        repo_dir: repo_dir.ok_or("--repo-dir is required")?,
        rootfs_url,
        pins,
    })
}

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    if args.iter().any(|a| a == "-h" || a == "--help") {
        println!("{USAGE}");
        return ExitCode::SUCCESS;
    }
    let args = match parse(&args) {
        Ok(a) => a,
        Err(e) => {
            eprintln!("kettle-sample: {e}\n{USAGE}");
            return ExitCode::from(2);
        }
    };
    match make(&args) {
        Ok((repo, sha)) => {
            println!("{}\n{sha}", repo.display());
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("kettle-sample: {e}");
            ExitCode::from(1)
        }
    }
}

fn make(args: &Args) -> Result<(PathBuf, Sha256Digest), String> {
    let template = examples_dir().join(&args.sample).join(RECIPE_TEMPLATE);
    if !template.is_file() {
        return Err(format!(
            "{} does not exist: SAMPLE names a directory of examples/ (hello-script, hello-cargo)",
            template.display()
        ));
    }
    let tar = host_binaries_tar(SAMPLE_BINARIES).map_err(|e| format!("making the rootfs: {e}"))?;
    if let Some(parent) = args.rootfs_out.parent() {
        std::fs::create_dir_all(parent).map_err(|e| format!("{}: {e}", parent.display()))?;
    }
    std::fs::write(&args.rootfs_out, &tar)
        .map_err(|e| format!("{}: {e}", args.rootfs_out.display()))?;
    let sha = Sha256Digest::of_bytes(&tar);
    let repo = args.repo_dir.join(&args.sample);
    match std::fs::remove_dir_all(&repo) {
        Err(e) if e.kind() != std::io::ErrorKind::NotFound => {
            return Err(format!("removing the old {}: {e}", repo.display()))
        }
        _ => {}
    }
    std::fs::create_dir_all(&args.repo_dir)
        .map_err(|e| format!("{}: {e}", args.repo_dir.display()))?;
    let sha_hex = sha.to_hex();
    let mut pins: Vec<(&str, &str)> = vec![
        ("@ROOTFS_URL@", &args.rootfs_url),
        ("@ROOTFS_SHA256@", &sha_hex),
    ];
    pins.extend(args.pins.iter().map(|(n, v)| (n.as_str(), v.as_str())));
    // commit_sample panics (naming the problem) if git fails: a test helper's contract.
    Ok((commit_sample(&args.sample, &args.repo_dir, &pins, &[]), sha))
}
