//! `kettle init` runs host-side cargo (`cargo metadata`) on the user's project. The
//! project is not trusted: its `rust-toolchain.toml` can name a `path` toolchain inside
//! the repository, whose `cargo` rustup would run on the user's machine if kettle ran
//! cargo from the project directory. kettle runs it from outside the project instead.

use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::process::Command;

/// A "toolchain" whose every tool records that it ran, then fails.
fn planted_toolchain(root: &Path, marker: &Path) {
    fs::create_dir_all(root.join("bin")).unwrap();
    for tool in ["cargo", "rustc"] {
        let path = root.join("bin").join(tool);
        let script = format!(
            "#!/bin/sh\necho \"{tool} $*\" >> '{}'\nexit 1\n",
            marker.display()
        );
        fs::write(&path, script).unwrap();
        fs::set_permissions(&path, fs::Permissions::from_mode(0o755)).unwrap();
    }
}

#[test]
fn kettle_init_never_runs_the_cargo_of_a_toolchain_the_project_names() {
    let tmp = tempfile::tempdir().unwrap();
    let project = tmp.path().join("project");
    let marker = tmp.path().join("planted-toolchain-ran");
    fs::create_dir_all(project.join("src")).unwrap();
    fs::write(
        project.join("Cargo.toml"),
        "[package]\nname = \"app\"\nversion = \"0.1.0\"\nedition = \"2021\"\n",
    )
    .unwrap();
    fs::write(project.join("Cargo.lock"), "version = 3\n").unwrap();
    fs::write(project.join("src/main.rs"), "fn main() {}\n").unwrap();
    planted_toolchain(&project.join("planted-toolchain"), &marker);
    fs::write(
        project.join("rust-toolchain.toml"),
        format!(
            "[toolchain]\npath = \"{}\"\n",
            project.join("planted-toolchain").display()
        ),
    )
    .unwrap();
    // Control: from the project directory, rustup (where it is the cargo on PATH) runs the
    // planted cargo. Said in the failure message; the test holds either way.
    let rustup_runs_it = Command::new("cargo")
        .arg("--version")
        .current_dir(&project)
        .env_remove("RUSTUP_TOOLCHAIN")
        .env_remove("CARGO")
        .output()
        .is_ok()
        && marker.exists();
    let _ = fs::remove_file(&marker);

    // As a user runs it: in the project directory, without cargo's or rustup's variables.
    let no_image = tmp.path().join("no-image");
    let out = Command::new(env!("CARGO_BIN_EXE_kettle"))
        .args(["init", "--print", "--image"])
        .arg(&no_image)
        .current_dir(&project)
        .env_remove("RUSTUP_TOOLCHAIN")
        .env_remove("CARGO")
        .env_remove("KETTLE_IMAGE")
        .output()
        .unwrap();
    let said = String::from_utf8_lossy(&out.stderr);
    assert!(
        !marker.exists(),
        "kettle init ran the project's toolchain: {} (run from the project dir, rustup runs it: {rustup_runs_it})\n{said}",
        fs::read_to_string(&marker).unwrap_or_default()
    );
    // The project was read (cargo metadata with the user's cargo): only the image's missing
    // pins stop it, which this test leaves out on purpose.
    assert_eq!(out.status.code(), Some(2), "{said}");
    assert!(
        said.contains(&no_image.join("bundles.json").display().to_string()),
        "{said}"
    );
}
