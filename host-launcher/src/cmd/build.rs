//! `kettle build`: its flags, parsed into [`kettle::build_pipeline::BuildOptions`]
//! and handed to the pipeline ([`kettle::build_pipeline::run`]).

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Args, ValueEnum};
use kettle::build_pipeline::{self, BuildOptions};
use kettle::qemu::{self, Accel};
use kettle_wire::request::{FetchMode, DEFAULT_BUILD_SECONDS};
use kettle_wire::Tee;

pub use kettle::build_pipeline::{DEFAULT_IMAGE_DIR, VM_ALLOWANCE_SECONDS};

/// Where inputs come from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum ModeArg {
    /// The host resolves every input into a read-only cache disk (no network in the guest).
    Cached,
    /// The guest fetches over HTTPS with the CA roots baked into the image.
    Upstream,
}

/// QEMU accelerator choice.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum AccelArg {
    /// KVM when /dev/kvm is usable, TCG otherwise (SNP always needs KVM).
    Auto,
    /// Hardware virtualization.
    Kvm,
    /// Software emulation.
    Tcg,
}

/// Options of `kettle build`.
#[derive(Args, Debug)]
#[command(
    after_long_help = "Examples:\n  kettle build . --tee simulated --out out/hello\n  \
kettle build https://example.com/r.git --ref v1.2.0 --tee snp\n  kettle build . --local --out out/local\n\n\
The image directory is --image, else $KETTLE_IMAGE, else build/image (where `make image` puts it in a \
Kettle checkout): bzImage, initramfs.cpio, OVMF.fd, manifest.json and bundles.json; the bundles it names \
(toolchain.tar.gz, rootfs.tar.gz) are looked for there and in its parent directory.\n\n\
Exit status: 0 built and verified, 1 the build failed or its outputs did not verify, 2 could not run, \
128+N interrupted by signal N (130 SIGINT, 143 SIGTERM, 129 SIGHUP)."
)]
pub struct BuildArgs {
    /// A local git checkout (HEAD is built; default: the current directory), or a repository URL (with --ref).
    #[arg(value_name = "SOURCE", default_value = ".")]
    pub source: String,
    /// The ref to build (default for a checkout: its current branch).
    #[arg(long = "ref", value_name = "REF")]
    pub git_ref: Option<String>,
    /// The commit REF must be at (CI's checked-out SHA): if REF names another, nothing is built.
    #[arg(long, value_name = "SHA")]
    pub commit: Option<String>,
    /// The repository URL to record (default: the checkout's origin remote, else its
    /// file:// path; for a URL SOURCE, that URL), normalized: https, no credentials, no
    /// `.git`, host lowercased (`git@github.com:o/r.git` and `github.com/o/r` are `https://github.com/o/r`).
    #[arg(long = "repo", value_name = "URL")]
    pub repo: Option<String>,
    /// The image directory (bzImage, initramfs.cpio, OVMF.fd, manifest.json, bundles.json).
    #[arg(long, value_name = "DIR", env = "KETTLE_IMAGE", default_value = DEFAULT_IMAGE_DIR)]
    pub image: PathBuf,
    /// Where the outputs go (created whole at the end, never half-written).
    #[arg(long, value_name = "DIR", default_value = "out")]
    pub out: PathBuf,
    /// Replace --out if it exists.
    #[arg(long)]
    pub force: bool,
    /// Where the guest gets its inputs.
    #[arg(long, value_enum, default_value = "cached")]
    pub mode: ModeArg,
    /// Which TEE signs the evidence: snp (AMD SEV-SNP hardware, needs an SNP host and
    /// QEMU >= 9.1) or simulated (the host's software PSP: test keys, nothing
    /// hardware-attested; CI, laptops).
    #[arg(long, default_value = "snp", value_name = "snp|simulated")]
    pub tee: Tee,
    /// QEMU accelerator.
    #[arg(long, value_enum, default_value = "auto")]
    pub accel: AccelArg,
    /// vCPUs (default: the manifest's; under SNP it is measured and must match).
    #[arg(long)]
    pub vcpus: Option<u32>,
    /// Guest memory in MiB (the build runs in RAM: toolchain, rootfs and sources).
    #[arg(long, default_value_t = 4096, value_name = "MIB")]
    pub memory: u64,
    /// The build's time limit: the guest kills the build command after this many seconds
    /// (the request carries it), and the host kills the VM --vm-allowance seconds after that.
    #[arg(long, default_value_t = DEFAULT_BUILD_SECONDS, value_name = "SECONDS")]
    pub timeout: u64,
    /// How much longer than --timeout the VM may run before the host kills it: booting,
    /// fetching, verifying, unpacking, hashing and attesting take time of their own.
    #[arg(long, default_value_t = VM_ALLOWANCE_SECONDS, value_name = "SECONDS")]
    pub vm_allowance: u64,
    /// Size of the output disk in MiB (sparse).
    #[arg(long, default_value_t = 2048, value_name = "MIB")]
    pub output_size: u64,
    /// Run the pipeline on this host with no VM and no TEE (nothing is hardware-attested).
    #[arg(long)]
    pub local: bool,
    /// Print result.json (outcome, artifacts and digests, the verify command) on stdout; the verdict goes to stderr.
    #[arg(long)]
    pub json: bool,
    /// Add a local file to the input cache (e.g. a toolchain or rootfs bundle that kettle.toml pins).
    #[arg(long = "input", value_name = "FILE")]
    pub inputs: Vec<PathBuf>,
    /// The content-addressed input cache (default $KETTLE_CACHE_DIR, ~/.cache/kettle).
    #[arg(long, value_name = "DIR")]
    pub cache_dir: Option<PathBuf>,
    /// Build a checkout even if it has uncommitted changes (they are not built).
    #[arg(long)]
    pub allow_dirty: bool,
    /// Upstream mode: HTTPS URL of a tar(.gz) of the commit's tree.
    #[arg(long, value_name = "URL")]
    pub source_archive_url: Option<String>,
    /// Upstream mode: HTTPS URL of the raw commit object.
    #[arg(long, value_name = "URL")]
    pub commit_object_url: Option<String>,
    /// The QEMU binary.
    #[arg(long, value_name = "PATH", default_value = qemu::DEFAULT_QEMU)]
    pub qemu: String,
    /// Without a terminal: say the build is alive (step, elapsed time, last console line)
    /// when nothing was printed for this long.
    #[arg(long, default_value_t = 30, value_name = "SECONDS")]
    pub heartbeat: u64,
    /// With --local: the kettle-init binary to run (default: /init of the image's
    /// initramfs, checked against its manifest, so local mode runs the measured code).
    #[arg(long, value_name = "PATH", requires = "local")]
    pub init: Option<PathBuf>,
}

impl BuildArgs {
    /// The pipeline's options these flags ask for.
    pub fn options(&self) -> BuildOptions {
        BuildOptions {
            source: self.source.clone(),
            git_ref: self.git_ref.clone(),
            repo: self.repo.clone(),
            image: self.image.clone(),
            out: self.out.clone(),
            force: self.force,
            mode: match self.mode {
                ModeArg::Cached => FetchMode::Cached,
                ModeArg::Upstream => FetchMode::Upstream,
            },
            tee: self.tee,
            accel: match self.accel {
                AccelArg::Auto => None,
                AccelArg::Kvm => Some(Accel::Kvm),
                AccelArg::Tcg => Some(Accel::Tcg),
            },
            vcpus: self.vcpus,
            memory: self.memory,
            timeout: self.timeout,
            vm_allowance: self.vm_allowance,
            output_size: self.output_size,
            local: self.local,
            inputs: self.inputs.clone(),
            cache_dir: self.cache_dir.clone(),
            allow_dirty: self.allow_dirty,
            source_archive_url: self.source_archive_url.clone(),
            json: self.json,
            commit: self.commit.clone(),
            commit_object_url: self.commit_object_url.clone(),
            qemu: self.qemu.clone(),
            heartbeat: self.heartbeat,
            init: self.init.clone(),
        }
    }
}

/// Runs `kettle build`.
pub fn run(args: BuildArgs) -> ExitCode {
    build_pipeline::run(&args.options(), |dir| {
        super::init::recipe_for(dir, &args.image)
            .map(|(text, _)| text)
            .map_err(|e| e.to_string())
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::Parser;
    use kettle::build_pipeline::request::{build_limits, make_request, vm_deadline};
    use kettle::build_pipeline::BuildError;
    use kettle::source::{self, ResolvedSource};
    use kettle_wire::request::{write_request_disk, MAX_BUILD_SECONDS};
    use std::fs::File;
    use std::time::Duration;

    #[derive(Parser)]
    struct Cli {
        #[command(flatten)]
        build: BuildArgs,
    }

    fn args(flags: &[&str]) -> BuildArgs {
        let argv = ["kettle", "."].iter().chain(flags);
        Cli::try_parse_from(argv).unwrap().build
    }

    fn source() -> ResolvedSource {
        ResolvedSource {
            repository: "https://example.com/r.git".into(),
            repository_from: source::RepoOrigin::Flag,
            worktree: None,
            git_ref: "refs/heads/main".into(),
            commit: "a".repeat(40),
            object_format: kettle_wire::ObjectFormat::Sha1,
            git_dir: PathBuf::from("/nonexistent"),
        }
    }

    #[test]
    fn the_timeout_is_the_guests_build_limit_and_the_vm_deadline_starts_from_it() {
        let cases: [(&[&str], u64); 3] = [
            (&[], DEFAULT_BUILD_SECONDS),
            (&["--timeout", "7200"], 7200),
            (&["--timeout", "60"], 60),
        ];
        for (flags, secs) in cases {
            let request = make_request(&args(flags).options(), &source(), Tee::Simulated).unwrap();
            // What the guest reads back from the request disk is the one number.
            let disk = tempfile::NamedTempFile::new().unwrap();
            write_request_disk(disk.path(), &request).unwrap();
            let read =
                kettle_wire::request::read_request_disk(File::open(disk.path()).unwrap()).unwrap();
            assert_eq!(read.limits.max_build_seconds, Some(secs), "{flags:?}");
            assert_eq!(read.limits.build_seconds(), secs, "{flags:?}");
            assert_eq!(
                vm_deadline(&read.limits, VM_ALLOWANCE_SECONDS),
                Duration::from_secs(secs + VM_ALLOWANCE_SECONDS),
                "{flags:?}"
            );
        }
        let quick = args(&["--timeout", "5", "--vm-allowance", "0"]);
        assert_eq!(quick.vm_allowance, 0);
        let limits = build_limits(quick.timeout).unwrap();
        assert_eq!(
            vm_deadline(&limits, quick.vm_allowance),
            Duration::from_secs(5)
        );
        let too_long = (MAX_BUILD_SECONDS + 1).to_string();
        for bad in ["0", too_long.as_str()] {
            match make_request(
                &args(&["--timeout", bad]).options(),
                &source(),
                Tee::Simulated,
            ) {
                Err(BuildError::Args(m)) => assert!(
                    m.starts_with(&format!(
                        "--timeout {bad} is outside 1..={MAX_BUILD_SECONDS}"
                    )),
                    "{m}"
                ),
                other => panic!("--timeout {bad}: expected an argument error, got {other:?}"),
            }
        }
    }
}
