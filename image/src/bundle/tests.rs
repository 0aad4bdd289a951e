use super::*;
use crate::manifest::ImageManifest;
use crate::measure::tests_support::synthetic_ovmf_file;
use crate::measure::{GuestFeatures, VmmType};

/// A minimal static ELF64 x86-64 header with one PT_LOAD (or PT_INTERP) program header.
fn elf(program_type: u32) -> Vec<u8> {
    let mut b = vec![0u8; 64 + 56];
    b[..4].copy_from_slice(b"\x7fELF");
    b[4] = 2;
    b[5] = 1;
    b[16..18].copy_from_slice(&2u16.to_le_bytes());
    b[18..20].copy_from_slice(&62u16.to_le_bytes());
    b[32..40].copy_from_slice(&64u64.to_le_bytes());
    b[54..56].copy_from_slice(&56u16.to_le_bytes());
    b[56..58].copy_from_slice(&1u16.to_le_bytes());
    b[64..68].copy_from_slice(&program_type.to_le_bytes());
    b
}

fn bzimage() -> Vec<u8> {
    let mut b = vec![0u8; 0x400];
    b[..2].copy_from_slice(b"MZ");
    b[0x3c..0x40].copy_from_slice(&0x80u32.to_le_bytes());
    b[0x80..0x84].copy_from_slice(b"PE\0\0");
    b[0x202..0x206].copy_from_slice(b"HdrS");
    b
}

fn spec(dir: &Path) -> ImageSpec {
    std::fs::write(dir.join("kettle-init"), elf(1)).unwrap();
    std::fs::write(dir.join("vmlinuz"), bzimage()).unwrap();
    std::fs::write(dir.join("roots.pem"), b"-----BEGIN CERTIFICATE-----\n").unwrap();
    ImageSpec {
        init: dir.join("kettle-init"),
        kernel: dir.join("vmlinuz"),
        ovmf: synthetic_ovmf_file(dir),
        cmdline: DEFAULT_CMDLINE.into(),
        vm: VcpuConfig {
            vcpus: 2,
            vcpu_type: "EPYC-v4".parse().unwrap(),
            vmm_type: VmmType::Qemu,
            guest_features: GuestFeatures::default(),
        },
        extra_files: vec![ExtraFile {
            guest_path: "etc/kettle/ca-roots.pem".into(),
            source: ExtraSource::File(dir.join("roots.pem")),
            mode: 0o644,
        }],
        versions: BTreeMap::from([("kettle".into(), "test".into())]),
        table_vcpu_types: crate::table::default_vcpu_types(),
        table_vcpu_counts: vec![1, 2],
    }
}

#[test]
fn elf_and_bzimage_checks() {
    assert!(check_static_elf(&elf(1)).is_ok());
    let dynamic = check_static_elf(&elf(3)).unwrap_err();
    assert_eq!(dynamic, ElfError::Dynamic);
    assert!(dynamic.to_string().contains("PT_INTERP"), "{dynamic}");
    assert_eq!(check_static_elf(b"#!/bin/sh\n"), Err(ElfError::NotElf));
    let mut arm = elf(1);
    arm[18..20].copy_from_slice(&183u16.to_le_bytes());
    assert_eq!(check_static_elf(&arm), Err(ElfError::NotX86_64(183)));
    assert!(check_bzimage(&bzimage()).is_ok());
    let mut no_stub = bzimage();
    no_stub[0x80] = 0;
    let err = check_bzimage(&no_stub).unwrap_err();
    assert_eq!(err, BzImageError::NoEfiStub);
    assert!(err.to_string().contains("EFI_STUB"), "{err}");
    assert_eq!(check_bzimage(&elf(1)), Err(BzImageError::NoBootHeader));
}

#[test]
fn writes_a_checkable_reproducible_image() {
    let dir = tempfile::tempdir().unwrap();
    let spec = spec(dir.path());
    let out = dir.path().join("image");
    let m = write_image(&spec, &out).unwrap();
    let on_disk = ImageManifest::load(&out.join(MANIFEST_FILE)).unwrap();
    assert_eq!(on_disk, m);
    let check = m.check(&m.files_in(&out).unwrap()).unwrap();
    assert!(check.is_match(), "{:?}", check.mismatches);
    let paths: Vec<&str> = m.initramfs.iter().map(|e| e.path.as_str()).collect();
    assert!(
        paths.contains(&"init")
            && paths.contains(&"etc/kettle/ca-roots.pem")
            && paths.contains(&"dev/console")
    );
    assert_eq!(
        m.initramfs.iter().find(|e| e.path == "init").unwrap().mode,
        "100755"
    );
    // The table has every type x count, and its row for the manifest's vCPUs is the manifest's digest.
    let table = LaunchDigestTable::load(&out.join(TABLE_FILE)).unwrap();
    assert_eq!(table.launch_digests.len(), 6);
    let own = table
        .launch_digests
        .iter()
        .find(|r| r.vcpus == m.vcpus && r.vcpu_type == m.vcpu_type)
        .unwrap();
    assert_eq!(own.launch_digest, m.launch_digest);
    assert_eq!(table.cmdline, m.cmdline);
    assert_eq!(table.initrd, m.initrd);

    // Rebuilding replaces the directory with identical bytes and leaves no temp dirs.
    let first = std::fs::read(out.join(INITRD_FILE)).unwrap();
    let again = write_image(&spec, &out).unwrap();
    assert_eq!(again, m);
    assert_eq!(std::fs::read(out.join(INITRD_FILE)).unwrap(), first);
    let leftovers: Vec<_> = std::fs::read_dir(dir.path())
        .unwrap()
        .flatten()
        .filter(|e| e.file_name().to_string_lossy().starts_with('.'))
        .collect();
    assert!(leftovers.is_empty(), "{leftovers:?}");
}

#[test]
fn in_memory_data_files_and_extra_outputs() {
    let dir = tempfile::tempdir().unwrap();
    let mut spec = spec(dir.path());
    spec.extra_files[0].source = ExtraSource::Bytes(b"pinned roots".to_vec());
    let image = assemble(&spec).unwrap();
    let pem = crate::cpio::read_file(&image.initrd, "etc/kettle/ca-roots.pem").unwrap();
    assert_eq!(pem.as_deref(), Some(&b"pinned roots"[..]));
    let listed = image
        .manifest
        .initramfs
        .iter()
        .find(|e| e.path == "etc/kettle/ca-roots.pem")
        .unwrap();
    assert_eq!(
        listed.sha256.as_deref(),
        Some(sha256_hex(b"pinned roots").as_str())
    );
    let out = dir.path().join("image");
    image.write(&out, &[("provenance.json", b"{}")]).unwrap();
    let mut names: Vec<String> = std::fs::read_dir(&out)
        .unwrap()
        .flatten()
        .map(|e| e.file_name().to_string_lossy().into())
        .collect();
    names.sort();
    assert_eq!(
        names,
        [
            "OVMF.fd",
            "bzImage",
            "initramfs.cpio",
            "launch-digests.json",
            "manifest.json",
            "provenance.json"
        ]
    );
    assert_eq!(
        std::fs::read(out.join(MANIFEST_FILE)).unwrap(),
        image.manifest_json
    );
}

#[test]
fn bad_input_leaves_nothing_behind() {
    let dir = tempfile::tempdir().unwrap();
    let mut spec = spec(dir.path());
    let out = dir.path().join("image");
    write_image(&spec, &out).unwrap();
    let before = std::fs::read(out.join(MANIFEST_FILE)).unwrap();
    // A dynamically linked init is refused and the old image stays intact.
    std::fs::write(&spec.init, elf(3)).unwrap();
    assert!(matches!(
        write_image(&spec, &out),
        Err(BundleError::BadInit { .. })
    ));
    std::fs::write(&spec.init, elf(1)).unwrap();
    spec.extra_files[0].source = ExtraSource::File(dir.path().join("missing.pem"));
    assert!(matches!(
        write_image(&spec, &out),
        Err(BundleError::Read { .. })
    ));
    assert_eq!(std::fs::read(out.join(MANIFEST_FILE)).unwrap(), before);
    let fresh = dir.path().join("never");
    assert!(write_image(&spec, &fresh).is_err());
    assert!(!fresh.exists());
    let names: Vec<String> = std::fs::read_dir(dir.path())
        .unwrap()
        .flatten()
        .map(|e| e.file_name().to_string_lossy().into())
        .collect();
    assert!(names.iter().all(|n| !n.starts_with('.')), "{names:?}");
}
