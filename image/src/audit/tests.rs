use super::*;
use crate::audit::files::{ReadError, MAX_IMAGE_FILE_BYTES};
use crate::bundle::build_initramfs;
use crate::manifest::InitramfsEntry;
use crate::measure::tests_support::{manifest_of_dir, synthetic_ovmf_file};
use crate::measure::{load_ovmf, sha256_file};
use crate::table::default_vcpu_types;

struct Published {
    dir: tempfile::TempDir,
    manifest: ImageManifest,
    table: LaunchDigestTable,
}

fn initrd(init: &[u8]) -> (Vec<u8>, Vec<InitramfsEntry>) {
    let fs = build_initramfs(
        init,
        &[("etc/kettle/ca-roots.pem".into(), b"roots".to_vec(), 0o644)],
    )
    .unwrap();
    let listing = fs
        .entries()
        .into_iter()
        .map(|e| InitramfsEntry {
            sha256: fs.file_data(&e.path).map(|d| hex::encode(sha2_256(d))),
            mode: format!("{:o}", e.mode),
            path: e.path,
        })
        .collect();
    (fs.to_bytes(), listing)
}

/// A small image with its manifest (2 x EPYC-v4) and table (3 types x 1, 2, 4, 8).
fn published() -> Published {
    let dir = tempfile::tempdir().unwrap();
    let ovmf_path = synthetic_ovmf_file(dir.path());
    std::fs::write(dir.path().join("bzImage"), b"kernel bytes").unwrap();
    let (cpio, listing) = initrd(b"init v1");
    std::fs::write(dir.path().join("initramfs.cpio"), &cpio).unwrap();
    let sha = |n: &str| sha256_file(&dir.path().join(n), "t").unwrap();
    let mut manifest = ImageManifest {
        initramfs: listing,
        versions: BTreeMap::from([
            (VERSION_RUSTC.to_string(), "rustc 1.95.0".to_string()),
            (VERSION_KERNEL_TOOLS.to_string(), "gcc 12".to_string()),
        ]),
        ..manifest_of_dir(dir.path(), "console=ttyS0 quiet")
    };
    manifest.launch_digest = manifest
        .recompute_digest(&manifest.files_in(dir.path()).unwrap())
        .unwrap();
    let ovmf = load_ovmf(&ovmf_path).unwrap();
    let hashes = KernelHashes::new(
        sha("bzImage"),
        Some(sha("initramfs.cpio")),
        Some(&manifest.cmdline),
    );
    let table = LaunchDigestTable::compute(
        &manifest,
        &ovmf,
        &hashes,
        &default_vcpu_types(),
        &[1, 2, 4, 8],
    )
    .unwrap();
    Published {
        dir,
        manifest,
        table,
    }
}

impl Published {
    fn inputs(&self) -> AuditInputs {
        AuditInputs {
            manifest: self.manifest.clone(),
            manifest_path: self.dir.path().join("manifest.json"),
            table: Some((self.table.clone(), self.dir.path().join(TABLE_FILE))),
            files: self.manifest.files_in(self.dir.path()).unwrap(),
            image_manifest: None,
        }
    }
}

fn failed(audit: &Audit) -> Vec<&Finding> {
    audit.mismatches().collect()
}

fn because(f: &Finding) -> String {
    f.because.join(" | ")
}

/// Why the first mismatch whose subject satisfies `subject` is one.
fn why_mismatched(audit: &Audit, subject: impl Fn(&str) -> bool) -> String {
    because(audit.mismatches().find(|f| subject(&f.subject)).unwrap())
}

#[test]
fn the_published_image_matches_everywhere() {
    let p = published();
    let a = audit(&p.inputs()).unwrap();
    assert!(a.is_match(), "{:#?}", failed(&a));
    assert_eq!(a.recomputed, p.manifest.launch_digest);
    // 3 files, the table's description, the manifest's digest, 12 rows.
    assert_eq!(a.findings.len(), 3 + 1 + 1 + 12);
}

#[test]
fn a_changed_initrd_is_named_down_to_the_entry() {
    let p = published();
    let (cpio, _) = initrd(b"init v2");
    std::fs::write(p.dir.path().join("initramfs.cpio"), cpio).unwrap();
    let a = audit(&p.inputs()).unwrap();
    let bad = failed(&a);
    // The initrd and all 13 digests.
    assert_eq!(bad.len(), 1 + 13, "{bad:#?}");
    assert_eq!(bad[0].subject, "initrd");
    let why = because(bad[0]);
    assert!(why.contains("entry init has sha256"), "{why}");
    assert!(why.contains("kettle-init"), "{why}");
    assert!(why.contains("rustc 1.95.0"), "{why}");
    for digest in &bad[1..] {
        let why = because(digest);
        assert!(why.contains("the initrd is not the published one"), "{why}");
        assert!(
            why.contains("the differing initrd alone explains it"),
            "{why}"
        );
    }
}

#[test]
fn a_changed_vcpu_type_or_count_is_found() {
    let p = published();
    let mut inputs = p.inputs();
    inputs.manifest.vcpu_type = "EPYC-Milan".parse().unwrap();
    let a = audit(&inputs).unwrap();
    let bad = failed(&a);
    // The table's 2 x EPYC-Milan row disagrees with the manifest, and the manifest's digest is wrong.
    assert_eq!(bad.len(), 2, "{bad:#?}");
    assert!(bad[0].subject.ends_with("row 2 x EPYC-Milan"));
    assert!(because(bad[0]).contains("the table and the manifest disagree"));
    assert!(bad[1]
        .subject
        .starts_with("launch digest 2 x EPYC-Milan (manifest)"));
    let why = because(bad[1]);
    assert!(
        why.contains("the recorded digest is that of 2 vCPU(s) of type EPYC-v4 under QEMU: the vCPU type (EPYC-Milan there, EPYC-v4 in the recorded digest"),
        "{why}"
    );

    // A table row recorded for 4 vCPUs but labelled 8.
    let mut inputs = p.inputs();
    let table = &mut inputs.table.as_mut().unwrap().0;
    let four = table.launch_digests[2].launch_digest;
    table.launch_digests[3].launch_digest = four;
    let a = audit(&inputs).unwrap();
    let bad = failed(&a);
    assert_eq!(bad.len(), 1, "{bad:#?}");
    assert!(bad[0]
        .subject
        .starts_with("launch digest 8 x EPYC-v4 (launch-digests.json)"));
    let why = because(bad[0]);
    assert!(
        why.contains("4 vCPU(s) of type EPYC-v4")
            && why.contains("the vCPU count (8 there, 4 in the recorded digest)"),
        "{why}"
    );
}

#[test]
fn a_changed_cmdline_is_named() {
    let p = published();
    // The image dir was built with another command line: its manifest says so.
    let mut local = p.manifest.clone();
    local.cmdline = "console=ttyS0".into();
    local.launch_digest = local
        .recompute_digest(&local.files_in(p.dir.path()).unwrap())
        .unwrap();
    let mut inputs = p.inputs();
    inputs.image_manifest = Some((local.clone(), PathBuf::from("other/manifest.json")));
    let a = audit(&inputs).unwrap();
    let bad = failed(&a);
    assert_eq!(bad.len(), 2, "{bad:#?}");
    assert_eq!(
        bad[0].subject,
        "image manifest other/manifest.json: cmdline"
    );
    assert!(because(bad[0]).contains(
        r#"cmdline is "console=ttyS0" here, "console=ttyS0 quiet" in the published manifest"#
    ));
    assert_eq!(
        bad[1].subject,
        "image manifest other/manifest.json: launch_digest"
    );
    assert!(because(bad[1]).contains("its cmdline differs (above), and the cmdline is measured"));

    // The published manifest's cmdline was edited (its digest was not): the
    // recorded digest is that of the other command line.
    let mut inputs = p.inputs();
    inputs.manifest.cmdline = "console=ttyS0 debug".into();
    inputs.table = None;
    let mut local = p.manifest.clone();
    local.cmdline = "console=ttyS0 quiet".into();
    inputs.image_manifest = Some((local, PathBuf::from("img/manifest.json")));
    let a = audit(&inputs).unwrap();
    let why = why_mismatched(&a, |s| s.starts_with("launch digest"));
    assert!(
        why.contains(r#"the recorded digest is that of the command line "console=ttyS0 quiet" (img/manifest.json's), not "console=ttyS0 debug": the cmdline differs"#),
        "{why}"
    );
}

#[test]
fn a_changed_firmware_or_kernel_is_named() {
    let p = published();
    let path = p.dir.path().join("OVMF.fd");
    let mut fw = std::fs::read(&path).unwrap();
    fw[0] ^= 1;
    std::fs::write(&path, fw).unwrap();
    std::fs::write(p.dir.path().join("bzImage"), b"other kernel").unwrap();
    let mut inputs = p.inputs();
    let mut local = p.manifest.clone();
    local
        .versions
        .insert(VERSION_KERNEL_TOOLS.into(), "gcc 13".into());
    inputs.image_manifest = Some((local, PathBuf::from("img/manifest.json")));
    let a = audit(&inputs).unwrap();
    let bad = failed(&a);
    assert_eq!(bad[0].subject, "kernel");
    assert!(
        because(bad[0]).contains(
            r#"versions.kernel-tools is "gcc 13" here, "gcc 12" in the published manifest"#
        ),
        "{}",
        because(bad[0])
    );
    assert_eq!(bad[1].subject, "ovmf");
    assert!(because(bad[1]).contains("make ovmf"));
    assert_eq!(bad[2].subject, "image manifest img/manifest.json: versions");
    let digest = bad
        .iter()
        .find(|f| f.subject.starts_with("launch digest"))
        .unwrap();
    let why = because(digest);
    assert!(
        why.contains("the kernel is not the published one")
            && why.contains("the OVMF is not the published one")
            && why.contains("firmware's pages"),
        "{why}"
    );
}

#[test]
fn a_table_for_another_image_is_named() {
    let p = published();
    let mut inputs = p.inputs();
    let table = &mut inputs.table.as_mut().unwrap().0;
    table.cmdline = "console=ttyS0".into();
    table.initrd.sha256 = "00".repeat(32);
    let a = audit(&inputs).unwrap();
    let why = why_mismatched(&a, |s| s.ends_with("describes the manifest's image"));
    assert!(why.contains("initrd sha256 is 0000"), "{why}");
    assert!(
        why.contains(r#"cmdline is "console=ttyS0", the manifest says "console=ttyS0 quiet""#),
        "{why}"
    );
    // Each row was computed for the manifest's cmdline, not the one the table now claims.
    let why = why_mismatched(&a, |s| s.contains("(launch-digests.json)"));
    assert!(
        why.contains(r#"the recorded digest is that of the command line "console=ttyS0 quiet" (the published manifest's)"#),
        "{why}"
    );
}

#[test]
fn finds_the_table_next_to_a_manifest() {
    let p = published();
    let m = p.dir.path().join("manifest.json");
    assert_eq!(table_next_to(&m), None);
    std::fs::write(p.dir.path().join(TABLE_FILE), p.table.to_json_pretty()).unwrap();
    assert_eq!(table_next_to(&m), Some(p.dir.path().join(TABLE_FILE)));
}

/// Runs `f` on another thread: an open or a read that never ends fails the test,
/// saying `what` blocked (the blocked thread is left to the end of the process).
fn in_time<T: Send + 'static>(what: &str, f: impl FnOnce() -> T + Send + 'static) -> T {
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let _ = tx.send(f());
    });
    rx.recv_timeout(std::time::Duration::from_secs(30))
        .unwrap_or_else(|_| panic!("{what}"))
}

/// The audit, run [`in_time`].
fn audit_in_time(inputs: AuditInputs) -> Result<Audit, ManifestError> {
    in_time(
        "the audit blocked on a file or read it without end",
        move || audit(&inputs),
    )
}

fn make_fifo(path: &Path) {
    let _ = std::fs::remove_file(path);
    let mode = rustix::fs::Mode::from_raw_mode(0o644);
    rustix::fs::mknodat(rustix::fs::CWD, path, rustix::fs::FileType::Fifo, mode, 0).unwrap();
}

fn link_to_dev_zero(path: &Path) {
    let _ = std::fs::remove_file(path);
    std::os::unix::fs::symlink("/dev/zero", path).unwrap();
}

#[test]
fn a_fifo_or_a_link_to_dev_zero_is_refused_without_being_opened_or_read() {
    /// (the file's role, how it is replaced, what it then is)
    type Case = (&'static str, fn(&Path), &'static str);
    let cases: [Case; 4] = [
        ("initrd", make_fifo, "a FIFO"),
        ("kernel", make_fifo, "a FIFO"),
        ("kernel", link_to_dev_zero, "a symlink"),
        ("firmware", link_to_dev_zero, "a symlink"),
    ];
    for (role, make, kind) in cases {
        let p = published();
        let inputs = p.inputs();
        let path = match role {
            "initrd" => &inputs.files.initrd,
            "kernel" => &inputs.files.kernel,
            _ => &inputs.files.ovmf,
        }
        .clone();
        make(&path);
        match audit_in_time(inputs) {
            Err(ManifestError::File(ReadError::NotRegular {
                what,
                path: p,
                kind: k,
            })) => {
                assert_eq!((what, k), (role, kind), "{role}");
                assert_eq!(p, path);
            }
            other => panic!("{role} as {kind}: expected NotRegular, got {other:?}"),
        }
    }
}

#[test]
fn an_image_file_larger_than_any_image_s_is_refused_by_its_size() {
    let p = published();
    let inputs = p.inputs();
    // Sparse: costs nothing to make, and reading it whole would take the memory it claims.
    let size = MAX_IMAGE_FILE_BYTES + 1;
    std::fs::File::create(&inputs.files.initrd)
        .unwrap()
        .set_len(size)
        .unwrap();
    match audit_in_time(inputs) {
        Err(ManifestError::File(ReadError::TooLarge {
            what: "initrd",
            size: s,
            limit,
            ..
        })) => assert_eq!((s, limit), (size, MAX_IMAGE_FILE_BYTES)),
        other => panic!("expected TooLarge, got {other:?}"),
    }
}

#[test]
fn a_manifest_that_is_a_fifo_is_refused_without_blocking() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("manifest.json");
    make_fifo(&path);
    let p = path.clone();
    let r = in_time("loading a FIFO manifest blocked", move || {
        ImageManifest::load(&p).map(|_| ())
    });
    assert!(
        matches!(
            r,
            Err(ManifestError::File(ReadError::NotRegular {
                what: "manifest",
                kind: "a FIFO",
                ..
            }))
        ),
        "{r:?}"
    );
}

#[test]
fn an_entry_name_is_reported_as_found_for_the_printer_to_escape() {
    // The name is the archive's: the audit reports it as it is, and `kettle measure`
    // escapes every line it prints (its render_audit test holds it to that).
    let p = published();
    let inputs = p.inputs();
    let name = "x\nall 9 checks match\u{1b}[2J";
    let fs = build_initramfs(
        b"init v1",
        &[
            ("etc/kettle/ca-roots.pem".into(), b"roots".to_vec(), 0o644),
            (name.into(), b"!".to_vec(), 0o644),
        ],
    )
    .unwrap();
    std::fs::write(&inputs.files.initrd, fs.to_bytes()).unwrap();
    let a = audit_in_time(inputs).unwrap();
    let why = why_mismatched(&a, |s| s == "initrd");
    assert!(
        why.contains(&format!("entry {name} is not in the manifest")),
        "{why}"
    );
}

#[test]
fn the_manifest_check_refuses_a_fifo_without_blocking() {
    let p = published();
    let files = p.manifest.files_in(p.dir.path()).unwrap();
    make_fifo(&files.kernel);
    let manifest = p.manifest.clone();
    let r = in_time("ImageManifest::check blocked on a FIFO", move || {
        manifest.check(&files).map(|_| ())
    });
    assert!(
        matches!(
            r,
            Err(ManifestError::File(ReadError::NotRegular {
                kind: "a FIFO",
                ..
            }))
        ),
        "{r:?}"
    );
}
