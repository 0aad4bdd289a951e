//! Stand-ins for what `kettle build` takes from outside, for the host-side tests
//! and benches that boot nothing: bundle bytes that recipes pin, host-launcher's
//! `tests/fake-qemu.py` as QEMU (it plays the guest), and a committed project
//! with its image directory ([`StandInProject`]).

use std::ffi::OsStr;
use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;

use kettle_provenance::Sha256Digest;

use crate::evidence::image_dir;
use crate::git::GitRepo;
use crate::repo_root;

/// The bytes that stand in for a rootfs bundle.
pub const ROOTFS: &[u8] = b"stand-in rootfs bundle";
/// The bytes that stand in for a toolchain bundle.
pub const TOOLCHAIN: &[u8] = b"stand-in toolchain bundle";
/// The launch digest of [`StandInProject`]'s image.
pub const MEASUREMENT: [u8; 48] = [0x42; 48];
/// How long a stand-in build may take unless the test says otherwise (`--timeout`, seconds).
const TIMEOUT_SECONDS: &str = "120";

/// A script/v1 kettle.toml making `out/hello.txt` with `sh -c true`, pinning `rootfs` at `<url_base>/rootfs.tar.gz`.
pub fn script_recipe(url_base: &str, rootfs: &[u8]) -> String {
    format!(
        "[build]\ntype = \"script/v1\"\noutputs = [\"out/hello.txt\"]\ncommand = [\"sh\", \"-c\", \"true\"]\n\n\
         [rootfs]\nurl = \"{url_base}/rootfs.tar.gz\"\nsha256 = \"{}\"\n",
        Sha256Digest::of_bytes(rootfs)
    )
}

/// A cargo-build/v1 kettle.toml declaring `output`, pinning `toolchain` and `rootfs` at `<url_base>/{toolchain,rootfs}.tar.gz`.
pub fn cargo_recipe(output: &str, url_base: &str, toolchain: &[u8], rootfs: &[u8]) -> String {
    format!(
        "[build]\ntype = \"cargo-build/v1\"\noutputs = [\"{output}\"]\n\n\
         [toolchain]\nurl = \"{url_base}/toolchain.tar.gz\"\nsha256 = \"{}\"\n\n\
         [rootfs]\nurl = \"{url_base}/rootfs.tar.gz\"\nsha256 = \"{}\"\n",
        Sha256Digest::of_bytes(toolchain),
        Sha256Digest::of_bytes(rootfs)
    )
}

/// host-launcher's `tests/fake-qemu.py`: a QEMU that plays the guest as `FAKE_QEMU_MODE` says.
pub fn fake_qemu() -> PathBuf {
    repo_root().join("host-launcher/tests/fake-qemu.py")
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
