//! Stand-ins for what `kettle build` takes from outside, for the host-side tests
//! and benches that boot nothing: bundle bytes that recipes pin, this crate's
//! `kettle-fake-qemu` binary as QEMU (it plays the guest with the contract's own
//! code: [`fake_qemu`]), and a committed project with its image directory
//! ([`StandInProject`]).

use std::ffi::OsStr;
use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;

use kettle_provenance::Sha256Digest;
use kettle_wire::Pin;

use crate::evidence::image_dir;
use crate::fixtures::{self, PLACEHOLDER_BASE_URL};
use crate::git::GitRepo;

/// The bytes that stand in for a rootfs bundle.
pub const ROOTFS: &[u8] = b"stand-in rootfs bundle";
/// The bytes that stand in for a toolchain bundle.
pub const TOOLCHAIN: &[u8] = b"stand-in toolchain bundle";
/// The launch digest of [`StandInProject`]'s image.
pub const MEASUREMENT: [u8; 48] = [0x42; 48];
/// How long a stand-in build may take unless the test says otherwise (`--timeout`, seconds).
const TIMEOUT_SECONDS: &str = "120";

/// A script/v1 kettle.toml declaring `out/hello.txt` (the stand-in QEMU makes it; the command
/// never runs), pinning `rootfs` at `<url_base>/rootfs.tar.gz`.
pub fn script_recipe(url_base: &str, rootfs: &[u8]) -> String {
    let rootfs = bundle_pin(url_base, "rootfs", rootfs);
    fixtures::script_recipe("true", &["out/hello.txt"], &rootfs, None)
}

/// A cargo-build/v1 kettle.toml declaring `output`, pinning `toolchain` and `rootfs` at `<url_base>/{toolchain,rootfs}.tar.gz`.
pub fn cargo_recipe(output: &str, url_base: &str, toolchain: &[u8], rootfs: &[u8]) -> String {
    fixtures::cargo_recipe(
        &[output],
        &bundle_pin(url_base, "toolchain", toolchain),
        &bundle_pin(url_base, "rootfs", rootfs),
    )
}

/// A committed cargo-build/v1 project: a [`cargo_recipe`] declaring `target/release/x` and
/// pinning [`TOOLCHAIN`] and [`ROOTFS`], and a Cargo.lock locking each of `crates` (name,
/// .crate bytes) as version `1.0.<index>` from crates.io. Returns the repository and, in
/// Cargo.lock order, each crate's path under a crates mirror (crates.io's layout,
/// `/crates/<name>/<name>-<version>.crate`) with its bytes.
pub fn cargo_project(crates: Vec<(String, Vec<u8>)>) -> (GitRepo, Vec<(String, Vec<u8>)>) {
    let mut lock = String::from("version = 4\n");
    let mut files = Vec::new();
    for (i, (name, bytes)) in crates.into_iter().enumerate() {
        let version = format!("1.0.{i}");
        lock.push_str(&format!(
            "\n[[package]]\nname = \"{name}\"\nversion = \"{version}\"\nsource = \"registry+https://github.com/rust-lang/crates.io-index\"\nchecksum = \"{}\"\n",
            Sha256Digest::of_bytes(&bytes)
        ));
        files.push((format!("/crates/{name}/{name}-{version}.crate"), bytes));
    }
    let repo = GitRepo::new();
    let recipe = cargo_recipe("target/release/x", PLACEHOLDER_BASE_URL, TOOLCHAIN, ROOTFS);
    repo.write("kettle.toml", recipe)
        .write("Cargo.lock", lock)
        .write("src/main.rs", "fn main() {}\n")
        .commit_all("a cargo project");
    (repo, files)
}

/// The pin of a bundle made of `bytes` at `<url_base>/<name>.tar.gz`.
fn bundle_pin(url_base: &str, name: &str, bytes: &[u8]) -> Pin {
    Pin {
        url: format!("{url_base}/{name}.tar.gz"),
        sha256: Sha256Digest::of_bytes(bytes),
    }
}

/// The stand-in QEMU's behaviour: `ok` (default), `fail`, `tamper`, `hang` or `crash`.
pub const MODE_VAR: &str = "FAKE_QEMU_MODE";
/// Seconds the stand-in's build step takes (one compiler line, then silence).
pub const SLEEP_VAR: &str = "FAKE_QEMU_SLEEP";
/// Where the stand-in records its pid, a helper's in its process group and the PSP socket.
pub const PIDFILE_VAR: &str = "FAKE_QEMU_PIDFILE";
/// `1`: the stand-in guest's words carry escape sequences aimed at the operator's terminal.
pub const HOSTILE_VAR: &str = "FAKE_QEMU_HOSTILE";

/// A QEMU that plays the guest as [`MODE_VAR`] and its siblings say: this crate's
/// `kettle-fake-qemu` binary (`src/bin/kettle-fake-qemu.rs`), built on first use with the
/// cargo running the test.
pub fn fake_qemu() -> PathBuf {
    static BINARY: OnceLock<PathBuf> = OnceLock::new();
    BINARY
        .get_or_init(|| crate::cli::workspace_binary("kettle-testkit", "kettle-fake-qemu"))
        .clone()
}

/// `kettle build REPO --tee simulated --accel tcg` with [`fake_qemu`] as QEMU, into `out`,
/// with a 1 MiB output disk; `kettle` is the binary under test.
pub fn build_command(
    kettle: impl AsRef<OsStr>,
    repo: &Path,
    image: &Path,
    out: &Path,
    cache: &Path,
) -> Command {
    let mut cmd = Command::new(kettle);
    cmd.arg("build")
        .arg(repo)
        .args(["--tee", "simulated", "--accel", "tcg", "--qemu"])
        .arg(fake_qemu())
        .arg("--image")
        .arg(image)
        .arg("--out")
        .arg(out)
        .arg("--cache-dir")
        .arg(cache)
        .args(["--output-size", "1"])
        // The test names its image; the caller's environment must not.
        .env_remove("KETTLE_IMAGE");
    cmd
}

/// Dot-names beside `out`: what a build leaves there only while it runs (work and staging dirs).
/// The directory must exist: a check of a directory that is not there could never fail.
pub fn leftovers(out: &Path) -> Vec<String> {
    let parent = out.parent().expect("--out has a parent directory");
    fs::read_dir(parent)
        .unwrap_or_else(|e| panic!("read {}: {e}", parent.display()))
        .map(|e| e.expect("read a directory entry").file_name())
        .map(|name| name.to_string_lossy().into_owned())
        .filter(|name| name.starts_with('.'))
        .collect()
}

/// A project committed in a temporary directory: a [`script_recipe`] pinning [`ROOTFS`], the
/// bundle beside it, and an image directory (the stand-in never reads its files, the launcher
/// checks they exist).
pub struct StandInProject {
    /// The temporary directory holding everything below (removed when this is dropped).
    pub root: tempfile::TempDir,
    /// The project's working tree.
    pub repo: PathBuf,
    /// The commit the project's HEAD is.
    pub commit: String,
    /// The image directory, its manifest of [`MEASUREMENT`].
    pub image: PathBuf,
    /// The rootfs bundle, given with `--input`.
    pub rootfs: PathBuf,
    /// The input cache (`--cache-dir`).
    pub cache: PathBuf,
    /// Where the build writes (`--out`), alone in its parent so that [`leftovers`] sees only the build's.
    pub out: PathBuf,
}

impl StandInProject {
    /// Commits the project and writes its bundle and image in a fresh temporary directory.
    pub fn create() -> StandInProject {
        let root = tempfile::tempdir().expect("create a temporary directory");
        let r = root.path();
        let repo = r.join("hello");
        let commit = GitRepo::init(&repo)
            .write(
                "kettle.toml",
                script_recipe("https://example.invalid", ROOTFS),
            )
            .commit_all("hello");
        let rootfs = r.join("rootfs.tar.gz");
        fs::write(&rootfs, ROOTFS).expect("write the rootfs bundle");
        let image = r.join("image");
        image_dir(&image, MEASUREMENT);
        // --out's own directory, so that what a build leaves beside it is all [`leftovers`] sees.
        let out = r.join("outputs").join("out");
        fs::create_dir(r.join("outputs")).expect("create the outputs directory");
        StandInProject {
            repo,
            commit,
            image,
            rootfs,
            cache: r.join("cache"),
            out,
            root,
        }
    }

    /// [`build_command`] for this project with its rootfs as `--input`, then `extra`, and a
    /// 120 s timeout unless `extra` sets one.
    pub fn build(&self, kettle: impl AsRef<OsStr>, extra: &[&str]) -> Command {
        let mut cmd = build_command(kettle, &self.repo, &self.image, &self.out, &self.cache);
        cmd.arg("--input").arg(&self.rootfs).args(extra);
        if !extra.contains(&"--timeout") {
            cmd.args(["--timeout", TIMEOUT_SECONDS]);
        }
        cmd
    }
}
