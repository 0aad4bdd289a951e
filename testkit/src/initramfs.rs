//! Throwaway initramfs for tests: a static binary compiled from Rust source
//! and a newc cpio packed with the system `cpio`.
//! (The image crate's own cpio writer replaces the latter once it lands.)

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use crate::TestError;

/// Compiles `source` (a single-file Rust program without dependencies) into a
/// statically linked executable `workdir/name`, with `$RUSTC` or `rustc`.
pub fn compile_static_rust(source: &str, workdir: &Path, name: &str) -> Result<PathBuf, TestError> {
    let src = workdir.join(format!("{name}.rs"));
    std::fs::write(&src, source).map_err(|e| TestError::io("write", &src, e))?;
    let out = workdir.join(name);
    let rustc = std::env::var("RUSTC").unwrap_or_else(|_| "rustc".to_owned());
    let output = Command::new(&rustc)
        .args([
            "--edition",
            "2021",
            "-O",
            "-C",
            "target-feature=+crt-static",
            "-C",
            "panic=abort",
            "-C",
            "strip=symbols",
            "-o",
        ])
        .arg(&out)
        .arg(&src)
        .output()
        .map_err(|source| TestError::Spawn {
            program: rustc.clone(),
            source,
        })?;
    if !output.status.success() {
        return Err(TestError::ToolFailed {
            program: rustc,
            status: output.status,
            stderr: String::from_utf8_lossy(&output.stderr).into_owned(),
        });
    }
    Ok(out)
}

/// Every path under `root`, relative to it, sorted so the archive order is stable.
fn sorted_entries(root: &Path) -> Result<Vec<PathBuf>, TestError> {
    let mut entries = Vec::new();
    let mut pending = vec![PathBuf::new()];
    while let Some(rel) = pending.pop() {
        let dir = root.join(&rel);
        for entry in
            std::fs::read_dir(&dir).map_err(|e| TestError::io("read directory", &dir, e))?
        {
            let entry = entry.map_err(|e| TestError::io("read directory", &dir, e))?;
            let child = rel.join(entry.file_name());
            let is_dir = entry
                .file_type()
                .map_err(|e| TestError::io("stat", entry.path(), e))?
                .is_dir();
            if is_dir {
                pending.push(child.clone());
            }
            entries.push(child);
        }
    }
    entries.sort();
    Ok(entries)
}

/// Packs the tree under `root` into a newc cpio archive at `out` (owner 0:0)
/// with the system `cpio -o -H newc`.
pub fn pack_newc_with_system_cpio(root: &Path, out: &Path) -> Result<(), TestError> {
    let list: String = sorted_entries(root)?
        .iter()
        .map(|p| format!("{}\n", p.display()))
        .collect();
    let archive = std::fs::File::create(out).map_err(|e| TestError::io("create", out, e))?;
    let mut child = Command::new("cpio")
        .args(["-o", "-H", "newc", "-R", "0:0", "--reproducible", "--quiet"])
        .current_dir(root)
        .stdin(Stdio::piped())
        .stdout(archive)
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|source| TestError::Spawn {
            program: "cpio".to_owned(),
            source,
        })?;
    child
        .stdin
        .take()
        .expect("stdin is piped")
        .write_all(list.as_bytes())
        .map_err(|e| TestError::io("write the file list to cpio for", root, e))?;
    let output = child
        .wait_with_output()
        .map_err(|source| TestError::Spawn {
            program: "cpio".to_owned(),
            source,
        })?;
    if !output.status.success() {
        return Err(TestError::ToolFailed {
            program: "cpio".to_owned(),
            status: output.status,
            stderr: String::from_utf8_lossy(&output.stderr).into_owned(),
        });
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn packs_a_sorted_newc_archive_of_the_tree() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path().join("root");
        std::fs::create_dir_all(root.join("b/c")).unwrap();
        std::fs::write(root.join("init"), b"#!/bin/sh\n").unwrap();
        std::fs::write(root.join("b/c/file"), b"x").unwrap();
        let out = dir.path().join("initrd.cpio");
        pack_newc_with_system_cpio(&root, &out).unwrap();

        let bytes = std::fs::read(&out).unwrap();
        assert_eq!(&bytes[..6], b"070701", "newc magic");
        // Names in archive order: each header is 110 bytes, the name follows.
        let names: Vec<String> = bytes
            .windows(6)
            .enumerate()
            .filter(|(_, w)| *w == b"070701")
            .map(|(at, _)| {
                let namesize = usize::from_str_radix(
                    std::str::from_utf8(&bytes[at + 94..at + 102]).unwrap(),
                    16,
                )
                .unwrap();
                String::from_utf8(bytes[at + 110..at + 110 + namesize - 1].to_vec()).unwrap()
            })
            .collect();
        assert_eq!(names, ["b", "b/c", "b/c/file", "init", "TRAILER!!!"]);
        // c_uid and c_gid (header bytes 22..38) are zero for every entry.
        for (at, _) in bytes
            .windows(6)
            .enumerate()
            .filter(|(_, w)| *w == b"070701")
        {
            assert_eq!(&bytes[at + 22..at + 38], b"0000000000000000", "owner 0:0");
        }
    }

    #[test]
    fn compile_errors_are_reported_with_rustc_output() {
        let dir = tempfile::tempdir().unwrap();
        let err =
            compile_static_rust("fn main() { not_a_function(); }", dir.path(), "bad").unwrap_err();
        match err {
            TestError::ToolFailed { stderr, .. } => {
                assert!(stderr.contains("not_a_function"), "{stderr}")
            }
            other => panic!("unexpected error {other}"),
        }
    }
}
