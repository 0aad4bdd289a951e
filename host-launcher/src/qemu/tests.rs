use super::*;

/// How every argv starts.
const HEADER: &[&str] = &[
    "-nodefaults",
    "-no-user-config",
    "-display",
    "none",
    "-no-reboot",
];
/// `base`'s kernel, initrd, command line and console.
#[rustfmt::skip]
const BOOT: &[&str] = &[
    "-kernel", "/img/bzImage",
    "-initrd", "/img/initramfs.cpio",
    "-append", "console=ttyS0 quiet",
    "-serial", "stdio",
];
/// The simulated PSP's port at `/w/psp.sock`.
#[rustfmt::skip]
const SIMULATED_PSP: &[&str] = &[
    "-device", "virtio-serial-pci",
    "-chardev", "socket,id=psp,path=/w/psp.sock",
    "-device", "virtserialport,chardev=psp,name=kettle.psp",
];

fn strs(v: &[OsString]) -> Vec<&str> {
    v.iter().map(|s| s.to_str().unwrap()).collect()
}

fn base(isolation: Isolation, accel: Accel) -> VmConfig {
    let cpu = cpu_model(&isolation, accel, "EPYC-v4");
    VmConfig {
        isolation,
        accel,
        cpu,
        vcpus: 2,
        memory_mib: 4096,
        ovmf: "/img/OVMF.fd".into(),
        kernel: "/img/bzImage".into(),
        initrd: "/img/initramfs.cpio".into(),
        cmdline: "console=ttyS0 quiet".into(),
        disks: Disks {
            request: "/w/req.img".into(),
            cache: Some("/w/cache.img".into()),
            output: "/w/out.img".into(),
        },
        network: false,
    }
}

#[test]
#[rustfmt::skip]
fn snp_on_kvm() {
    let cfg = base(Isolation::Snp { cbitpos: 51, reduced_phys_bits: 1 }, Accel::Kvm);
    assert_eq!(
        strs(&argv(&cfg)),
        [
            HEADER,
            &[
                "-accel", "kvm",
                "-machine", "q35,confidential-guest-support=sev0,memory-backend=ram1",
                "-object", "memory-backend-memfd,id=ram1,size=4096M,share=true",
                "-object", "sev-snp-guest,id=sev0,cbitpos=51,reduced-phys-bits=1,kernel-hashes=on",
                "-bios", "/img/OVMF.fd",
                "-m", "4096M",
                "-cpu", "EPYC-v4",
                "-smp", "2",
            ],
            BOOT,
            &[
                "-drive", "file=/w/req.img,if=none,id=req,format=raw,readonly=on",
                "-device", "virtio-blk-pci,drive=req,serial=kettle-request,disable-legacy=on,iommu_platform=on",
                "-drive", "file=/w/cache.img,if=none,id=cache,format=raw,readonly=on",
                "-device", "virtio-blk-pci,drive=cache,serial=kettle-cache,disable-legacy=on,iommu_platform=on",
                "-drive", "file=/w/out.img,if=none,id=out,format=raw",
                "-device", "virtio-blk-pci,drive=out,serial=kettle-output,disable-legacy=on,iommu_platform=on",
                "-nic", "none",
            ],
        ]
        .concat()
    );
}

#[test]
#[rustfmt::skip]
fn simulated_on_tcg_uses_default_firmware_and_psp_port() {
    let cfg = base(Isolation::Simulated { psp_socket: "/w/psp.sock".into() }, Accel::Tcg);
    assert_eq!(
        strs(&argv(&cfg)),
        [
            HEADER,
            &[
                "-accel", "tcg",
                "-machine", "q35",
                "-m", "4096M",
                "-cpu", "max",
                "-smp", "2",
            ],
            BOOT,
            &[
                "-drive", "file=/w/req.img,if=none,id=req,format=raw,readonly=on",
                "-device", "virtio-blk-pci,drive=req,serial=kettle-request",
                "-drive", "file=/w/cache.img,if=none,id=cache,format=raw,readonly=on",
                "-device", "virtio-blk-pci,drive=cache,serial=kettle-cache",
                "-drive", "file=/w/out.img,if=none,id=out,format=raw",
                "-device", "virtio-blk-pci,drive=out,serial=kettle-output",
            ],
            SIMULATED_PSP,
            &["-nic", "none"],
        ]
        .concat()
    );
}

#[test]
#[rustfmt::skip]
fn simulated_on_kvm_upstream_mode_has_network_and_no_cache_disk() {
    let mut cfg = base(Isolation::Simulated { psp_socket: "/w/psp.sock".into() }, Accel::Kvm);
    cfg.disks.cache = None;
    cfg.network = true;
    assert_eq!(
        strs(&argv(&cfg)),
        [
            HEADER,
            &[
                "-accel", "kvm",
                "-machine", "q35",
                "-m", "4096M",
                "-cpu", "host",
                "-smp", "2",
            ],
            BOOT,
            &[
                "-drive", "file=/w/req.img,if=none,id=req,format=raw,readonly=on",
                "-device", "virtio-blk-pci,drive=req,serial=kettle-request",
                "-drive", "file=/w/out.img,if=none,id=out,format=raw",
                "-device", "virtio-blk-pci,drive=out,serial=kettle-output",
            ],
            SIMULATED_PSP,
            &[
                "-netdev", "user,id=net0",
                "-device", "virtio-net-pci,netdev=net0",
            ],
        ]
        .concat()
    );
}

#[test]
fn snp_network_device_is_iommu_platform() {
    let mut cfg = base(
        Isolation::Snp {
            cbitpos: 51,
            reduced_phys_bits: 1,
        },
        Accel::Kvm,
    );
    cfg.network = true;
    let args = argv(&cfg);
    let args = strs(&args);
    assert!(args.contains(&"virtio-net-pci,netdev=net0,disable-legacy=on,iommu_platform=on"));
    assert!(
        !args.contains(&"virtio-serial-pci"),
        "SNP guests use the real PSP"
    );
}

#[test]
fn commas_in_paths_are_doubled() {
    let mut cfg = base(
        Isolation::Simulated {
            psp_socket: "/w,x/psp.sock".into(),
        },
        Accel::Tcg,
    );
    cfg.disks.request = "/a,b/req.img".into();
    let args = argv(&cfg);
    let args = strs(&args);
    assert!(args.contains(&"file=/a,,b/req.img,if=none,id=req,format=raw,readonly=on"));
    assert!(args.contains(&"socket,id=psp,path=/w,,x/psp.sock"));
}

#[test]
fn parses_versions() {
    let v = parse_version(
        "QEMU emulator version 10.0.2 (Debian 1:10.0.2+ds-2+deb13u1~bpo12+1)\nCopyright",
    )
    .unwrap();
    assert_eq!(
        v,
        QemuVersion {
            major: 10,
            minor: 0,
            micro: 2
        }
    );
    assert!(v >= MIN_SNP_VERSION);
    let old = parse_version("QEMU emulator version 7.2.15 (Debian 1:7.2+dfsg-7+deb12u12)").unwrap();
    assert!(old < MIN_SNP_VERSION);
    assert_eq!(
        parse_version("QEMU emulator version 9.1").unwrap(),
        QemuVersion {
            major: 9,
            minor: 1,
            micro: 0
        }
    );
    assert_eq!(parse_version("something else"), None);
}

#[test]
fn finds_snp_object_in_help() {
    assert!(lists_snp_object(
        "List of user creatable objects:\n  secret\n  sev-guest\n  sev-snp-guest\n"
    ));
    assert!(!lists_snp_object(
        "List of user creatable objects:\n  secret\n  sev-guest\n"
    ));
}

#[test]
fn virtualization_flags() {
    assert!(cpu_has_virtualization(
        "processor : 0\nflags\t\t: fpu vme svm sse\n"
    ));
    assert!(cpu_has_virtualization("flags : fpu vmx\n"));
    assert!(!cpu_has_virtualization("flags : fpu sse2 svm_lock\n"));
}

#[test]
fn too_old_error_says_what_to_install() {
    let e = ProbeError::TooOld {
        binary: "qemu".into(),
        found: QemuVersion {
            major: 7,
            minor: 2,
            micro: 0,
        },
    };
    let msg = e.to_string();
    assert!(msg.contains("bookworm-backports qemu-system-x86"), "{msg}");
    assert!(msg.contains(">= 9.1.0"), "{msg}");
}
