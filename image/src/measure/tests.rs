use super::ovmf::tests::synthetic_ovmf;
use super::tests_support::vm;
use super::*;
use crate::audit::files::ReadError;

#[test]
fn digest_hex_round_trip() {
    let d = LaunchDigest([0xab; 48]);
    assert_eq!(d.to_string().len(), 96);
    assert_eq!(d.to_string().parse::<LaunchDigest>().unwrap(), d);
    assert!("abcd".parse::<LaunchDigest>().is_err());
    assert_eq!(serde_json::to_string(&d).unwrap(), format!("\"{d}\""));
}

#[test]
fn hashes_table_layout() {
    let h = KernelHashes::new([1; 32], None, Some("console=ttyS0"));
    let t = h.table();
    assert_eq!(t.len(), 176);
    assert_eq!(u16::from_le_bytes([t[16], t[17]]), 168);
    // GUID 9438d606-4f22-... stored little-endian.
    assert_eq!(&t[..4], &[0x06, 0xd6, 0x38, 0x94]);
    assert_eq!(u16::from_le_bytes([t[34], t[35]]), 50);
    assert_eq!(&t[36..68], &Sha256::digest(b"console=ttyS0\0")[..]);
    assert_eq!(&t[86..118], &Sha256::digest(b"")[..]);
    assert_eq!(&t[136..168], &[1; 32]);
    assert_eq!(&t[168..], &[0; 8]);
}

#[test]
fn every_input_changes_the_digest() {
    let ovmf = Ovmf::parse(synthetic_ovmf(
        16,
        &[
            (0x80_0000, 0x2000, 1),
            (0x80_2000, 0x1000, 2),
            (0x80_3000, 0x1000, 3),
            (0x80_f000, 0x1000, 0x10),
        ],
    ))
    .unwrap();
    let h = KernelHashes::new([1; 32], Some([2; 32]), Some("a"));
    let base = launch_digest(&ovmf, None, Some(&h), &vm(2, "EPYC-v4")).unwrap();
    let with_vm = |vm: VcpuConfig| launch_digest(&ovmf, None, Some(&h), &vm).unwrap();
    let with_hashes =
        |h: Option<&KernelHashes>| launch_digest(&ovmf, None, h, &vm(2, "EPYC-v4")).unwrap();
    let variants = [
        with_vm(vm(1, "EPYC-v4")),
        with_vm(vm(2, "EPYC-Milan")),
        with_hashes(None),
        with_hashes(Some(&KernelHashes::new([1; 32], Some([2; 32]), Some("b")))),
        with_hashes(Some(&KernelHashes::new([1; 32], None, Some("a")))),
        with_vm(VcpuConfig {
            vmm_type: VmmType::Ec2,
            ..vm(2, "EPYC-v4")
        }),
        with_vm(VcpuConfig {
            vmm_type: VmmType::Gce,
            ..vm(2, "EPYC-v4")
        }),
        with_vm(VcpuConfig {
            guest_features: GuestFeatures(0x21),
            ..vm(2, "EPYC-v4")
        }),
    ];
    for (i, v) in variants.iter().enumerate() {
        assert_ne!(*v, base, "variant {i} should differ");
    }
    // The precomputed firmware hash is a pure shortcut.
    let seed = ovmf_hash(&ovmf);
    assert_eq!(
        launch_digest(&ovmf, Some(&seed), Some(&h), &vm(2, "EPYC-v4")).unwrap(),
        base
    );
    assert!(matches!(
        launch_digest(&ovmf, None, None, &vm(0, "EPYC-v4")),
        Err(MeasureError::NoVcpus)
    ));
    // One pass over the counts gives each count's own digest.
    let all = launch_digests_up_to(&ovmf, Some(&seed), Some(&h), &vm(99, "EPYC-Milan"), 5).unwrap();
    assert_eq!(all.len(), 5);
    for (i, d) in all.iter().enumerate() {
        let n = i as u32 + 1;
        assert_eq!(
            *d,
            launch_digest(&ovmf, None, Some(&h), &vm(n, "EPYC-Milan")).unwrap(),
            "{n} vCPUs"
        );
    }
    assert!(launch_digests_up_to(&ovmf, None, None, &vm(1, "EPYC-v4"), 0).is_err());
}

#[test]
fn kernel_needs_hashes_section() {
    let ovmf = Ovmf::parse(synthetic_ovmf(8, &[(0x80_0000, 0x1000, 1)])).unwrap();
    let h = KernelHashes::new([1; 32], None, None);
    assert!(matches!(
        launch_digest(&ovmf, None, Some(&h), &vm(1, "EPYC")),
        Err(MeasureError::NoKernelHashesSection)
    ));
    assert!(launch_digest(&ovmf, None, None, &vm(1, "EPYC")).is_ok());
}

#[test]
fn initrd_or_cmdline_without_kernel_is_an_error() {
    let inputs = MeasureInputs {
        ovmf: "/nonexistent".into(),
        kernel: None,
        initrd: None,
        cmdline: Some("x".into()),
        vcpu: vm(1, "EPYC"),
    };
    assert!(matches!(
        inputs.kernel_hashes(),
        Err(MeasureError::NeedsKernel(_))
    ));
    assert!(matches!(
        inputs.launch_digest(),
        Err(MeasureError::Read(ReadError::Io {
            what: "firmware",
            ..
        }))
    ));
}

/// Plain `kettle measure --ovmf/--kernel/--initrd` takes the operator's paths: a FIFO or a
/// link to /dev/zero is refused without blocking or reading, as the manifest audit does.
#[test]
fn measure_inputs_that_are_not_regular_files_are_refused_without_reading() {
    let dir = tempfile::tempdir().unwrap();
    let fifo = dir.path().join("fifo");
    rustix::fs::mknodat(
        rustix::fs::CWD,
        &fifo,
        rustix::fs::FileType::Fifo,
        rustix::fs::Mode::from_raw_mode(0o600),
        0,
    )
    .unwrap();
    let zero = dir.path().join("zero");
    std::os::unix::fs::symlink("/dev/zero", &zero).unwrap();
    for (path, kind) in [(&fifo, "a FIFO"), (&zero, "a symlink")] {
        match sha256_file(path, "kernel") {
            Err(MeasureError::Read(ReadError::NotRegular { kind: k, .. })) => assert_eq!(k, kind),
            other => panic!("{}: {other:?}", path.display()),
        }
        assert!(matches!(
            load_ovmf(path),
            Err(MeasureError::Read(ReadError::NotRegular { .. }))
        ));
    }
}
