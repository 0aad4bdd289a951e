//! Fixtures of the pipeline tests: the test root filesystem, recipes, a build
//! request, a counting report provider, and readers for what a run leaves in
//! its output directory.

use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;

use kettle_attest::{Evidence, ReportProvider, RequestError, Tee};
use kettle_provenance::Sha256Digest;
use kettle_wire::output::{ERROR_FILE, STATUS_FILE};
use kettle_wire::recipe::cargo::lockfile;
use kettle_wire::recipe::{Dependency, RECIPE_FILE};
use kettle_wire::request::REQUEST_SCHEMA;
use kettle_wire::{BuildRequest, BuildStatus, ErrorReport, FetchMode, Limits, ObjectFormat, Pin};

use crate::cli::run;
use crate::git::GitRepo;
use crate::hostroot::host_binaries_tar;
use crate::repo_root;

/// A sample's recipe template: kettle.toml with `@PIN@` placeholders.
pub const RECIPE_TEMPLATE: &str = "kettle.toml.in";

/// The host binaries in [`rootfs`] (besides /bin/sh): what the test recipes run.
pub const ROOTFS_BINARIES: &[&str] = &[
    "bash", "cat", "mkdir", "ls", "id", "tr", "echo", "sleep", "ln",
];
/// Where recipes say their pinned bundles come from when the test hands them over itself.
pub const PLACEHOLDER_BASE_URL: &str = "https://example.invalid";
/// Shell function the probe scripts use: prints "<path> OPEN" or "<path> denied: <why>".
pub const PROBE_FN: &str = r#"probe() { if err=$( { exec 3<"$1"; } 2>&1 ); then echo "$1 OPEN"; else echo "$1 denied: ${err##*: }"; fi; }"#;
/// Length of [`CountingProvider`]'s fake report (an SNP report's size).
pub const FAKE_REPORT_LEN: usize = 1184;
/// The byte [`CountingProvider`]'s fake report is made of.
pub const FAKE_REPORT_BYTE: u8 = 0x5a;

/// The test root filesystem: [`ROOTFS_BINARIES`] from this host with their libraries (built once).
pub fn rootfs() -> &'static [u8] {
    static R: OnceLock<Vec<u8>> = OnceLock::new();
    R.get_or_init(|| host_binaries_tar(ROOTFS_BINARIES).expect("the host has the rootfs binaries"))
}

/// The pin of [`rootfs`] at `url`.
pub fn rootfs_pin(url: &str) -> Pin {
    Pin {
        url: url.into(),
        sha256: Sha256Digest::of_bytes(rootfs()),
    }
}

/// A script/v1 kettle.toml running `bash -c command`, declaring `outputs`, pinning `rootfs` (and `toolchain`).
pub fn script_recipe(
    command: &str,
    outputs: &[&str],
    rootfs: &Pin,
    toolchain: Option<&Pin>,
) -> String {
    format!(
        "[build]\ntype = \"script/v1\"\noutputs = {}\ncommand = {}\n{}{}",
        toml_strings(outputs),
        toml_strings(&["bash", "-c", command]),
        toolchain
            .map(|t| pin_table("toolchain", t))
            .unwrap_or_default(),
        pin_table("rootfs", rootfs)
    )
}

/// A cargo-build/v1 kettle.toml declaring `outputs`, pinning `toolchain` and `rootfs`.
pub fn cargo_recipe(outputs: &[&str], toolchain: &Pin, rootfs: &Pin) -> String {
    format!(
        "[build]\ntype = \"cargo-build/v1\"\noutputs = {}\n{}{}",
        toml_strings(outputs),
        pin_table("toolchain", toolchain),
        pin_table("rootfs", rootfs)
    )
}

/// A recipe's `[table]` pinning `pin`.
fn pin_table(table: &str, pin: &Pin) -> String {
    format!(
        "[{table}]\nurl = \"{}\"\nsha256 = \"{}\"\n",
        pin.url, pin.sha256
    )
}

/// A TOML array of strings, written as a JSON array (the same quoting rules for these).
fn toml_strings(v: &[&str]) -> String {
    serde_json::to_string(v).expect("strings serialize")
}

/// The request the pipeline tests send for `commit`: cached mode, simulated TEE, 600 s.
pub fn test_request(commit: &str) -> BuildRequest {
    BuildRequest {
        schema: REQUEST_SCHEMA.into(),
        repository: "https://github.com/kettle-build/samples".into(),
        git_ref: "refs/heads/main".into(),
        commit: commit.into(),
        object_format: ObjectFormat::Sha1,
        mode: FetchMode::Cached,
        tee: Tee::Simulated,
        invocation_id: "test-invocation-1".into(),
        limits: Limits {
            max_build_seconds: Some(600),
            max_memory_bytes: None,
        },
        upstream: None,
        image: None,
    }
}

/// A report provider that counts requests and answers with a recognizable fake report.
#[derive(Debug, Default)]
pub struct CountingProvider {
    /// How many reports were requested.
    pub calls: usize,
    /// The report_data of the last request.
    pub last_report_data: Option<[u8; 64]>,
}

impl ReportProvider for CountingProvider {
    fn request_report(&mut self, report_data: &[u8; 64]) -> Result<Evidence, RequestError> {
        self.calls += 1;
        self.last_report_data = Some(*report_data);
        Ok(Evidence {
            report: vec![FAKE_REPORT_BYTE; FAKE_REPORT_LEN],
            cert_chain_pem: Some(b"-----FAKE CHAIN-----\n".to_vec()),
            provider: Tee::Simulated,
        })
    }
}

/// status.json of an output directory.
pub fn read_status(out: &Path) -> BuildStatus {
    read_json(&out.join(STATUS_FILE))
}

/// error.json of an output directory.
pub fn read_error(out: &Path) -> ErrorReport {
    read_json(&out.join(ERROR_FILE))
}

fn read_json<T: serde::de::DeserializeOwned>(path: &Path) -> T {
    let bytes = fs::read(path).unwrap_or_else(|e| panic!("read {}: {e}", path.display()));
    serde_json::from_slice(&bytes).unwrap_or_else(|e| panic!("parse {}: {e}", path.display()))
}

/// Asserts a failed run left only error.json in `out`, and returns it.
pub fn assert_only_error(out: &Path) -> ErrorReport {
    let names: Vec<_> = fs::read_dir(out)
        .unwrap_or_else(|e| panic!("read {}: {e}", out.display()))
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .collect();
    assert_eq!(names, vec![ERROR_FILE.to_string()], "in {}", out.display());
    read_error(out)
}

/// This host's Rust toolchain root (`rustc --print sysroot`), for host-tools builds.
pub fn host_toolchain() -> PathBuf {
    let out = run(Command::new("rustc").args(["--print", "sysroot"]));
    PathBuf::from(String::from_utf8_lossy(&out.stdout).trim())
}

/// The directory of the bundled sample projects.
pub fn examples_dir() -> PathBuf {
    repo_root().join("examples")
}

/// The registry crates examples/hello-cargo's Cargo.lock pins.
pub fn hello_cargo_lock() -> Vec<Dependency> {
    let lock = fs::read_to_string(examples_dir().join("hello-cargo/Cargo.lock"))
        .expect("hello-cargo has a Cargo.lock");
    lockfile::parse(&lock).expect("hello-cargo's Cargo.lock parses")
}

/// Copies examples/`sample` into `repo`'s working tree, its kettle.toml.in written as
/// kettle.toml with each `(@PIN@, value)` substituted (nothing is committed).
pub fn write_sample(repo: &GitRepo, sample: &str, pins: &[(&str, &str)]) {
    copy_tree(&examples_dir().join(sample), repo.path());
    fs::remove_file(repo.path().join(RECIPE_TEMPLATE)).expect("the sample has a recipe template");
    repo.write(RECIPE_FILE, fill_recipe_template(sample, pins));
}

/// Copies the files under `from` into `to` (directories recreated).
fn copy_tree(from: &Path, to: &Path) {
    for entry in fs::read_dir(from).unwrap_or_else(|e| panic!("read {}: {e}", from.display())) {
        let entry = entry.unwrap();
        let (src, dst) = (entry.path(), to.join(entry.file_name()));
        if entry.file_type().unwrap().is_dir() {
            fs::create_dir_all(&dst).unwrap();
            copy_tree(&src, &dst);
        } else {
            fs::copy(&src, &dst).unwrap_or_else(|e| panic!("copy {}: {e}", src.display()));
        }
    }
}

/// examples/`sample`/kettle.toml.in with each `(@PIN@, value)` substituted; panics on a pin left unfilled.
pub fn fill_recipe_template(sample: &str, pins: &[(&str, &str)]) -> String {
    let template = examples_dir().join(sample).join(RECIPE_TEMPLATE);
    let mut recipe = fs::read_to_string(&template)
        .unwrap_or_else(|e| panic!("read {}: {e}", template.display()));
    for (pin, value) in pins {
        recipe = recipe.replace(pin, value);
    }
    assert!(
        !has_unfilled_pin(&recipe),
        "unfilled pin in {sample}'s kettle.toml:\n{recipe}"
    );
    recipe
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
    use super::*;

    #[test]
    fn finds_unfilled_pins_only() {
        assert!(has_unfilled_pin("sha256 = \"@ROOTFS_SHA256@\""));
        assert!(!has_unfilled_pin(
            "# pins (@...@) are filled in\nsha256 = \"ab\""
        ));
        assert!(!has_unfilled_pin("email = t@example.com"));
    }

    #[test]
    fn script_recipes_parse_with_their_pins() {
        let rootfs = rootfs_pin("https://h/r.tar");
        let toolchain = Pin {
            url: "https://h/t.tar".into(),
            sha256: Sha256Digest::of_bytes(b"t"),
        };
        let text = script_recipe("echo \"hi\" > out/x", &["out/x"], &rootfs, Some(&toolchain));
        let recipe = kettle_wire::Recipe::parse(&text).unwrap();
        assert_eq!(
            recipe.command.unwrap(),
            ["bash", "-c", "echo \"hi\" > out/x"]
        );
        assert_eq!(recipe.rootfs, rootfs);
        assert_eq!(recipe.toolchain, Some(toolchain));
    }
}
