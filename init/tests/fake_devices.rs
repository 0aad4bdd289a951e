//! The build never sees the attestation device or the PSP port, even when the
//! world around kettle-init has them: here kettle-init runs in a mount namespace
//! whose /dev holds a fake /dev/sev-guest, /dev/virtio-ports/kettle.psp and a
//! configfs-tsm-like directory, and the build probes for each.

mod common;

use std::fs;
use std::os::unix::process::CommandExt;
use std::process::Command;

use nix::mount::{mount, MsFlags};
use nix::sched::{unshare, CloneFlags};
use nix::sys::stat::{makedev, mknod, Mode, SFlag};

#[test]
fn fake_attestation_devices_outside_are_absent_inside() {
    assert!(
        nix::unistd::geteuid().is_root(),
        "this test builds a fake /dev in a mount namespace"
    );
    let base = tempfile::tempdir().unwrap();
    let script = format!(
        "mkdir -p out\n{}\n{{ probe /dev/sev-guest; probe /dev/virtio-ports/kettle.psp; probe /dev/kettle-psp-port; }} > out/probe.txt",
        common::PROBE_FN
    );
    let dir = common::probe_project(base.path(), &script);
    // The fake /dev kettle-init will see: working null/zero/urandom plus the "attestation" nodes.
    let fake_dev = base.path().join("fake-dev");
    fs::create_dir_all(fake_dev.join("virtio-ports")).unwrap();
    for (name, minor) in [
        ("null", 3),
        ("zero", 5),
        ("urandom", 9),
        ("sev-guest", 3),
        ("kettle-psp-port", 3),
    ] {
        mknod(
            &fake_dev.join(name),
            SFlag::S_IFCHR,
            Mode::from_bits_truncate(0o666),
            makedev(1, minor),
        )
        .unwrap();
    }
    std::os::unix::fs::symlink(
        "../kettle-psp-port",
        fake_dev.join("virtio-ports/kettle.psp"),
    )
    .unwrap();
    assert!(fs::metadata(fake_dev.join("virtio-ports/kettle.psp")).is_ok());

    let in_fake_dev_namespace = |cmd: &mut Command| {
        let dev = fake_dev.clone();
        unsafe {
            cmd.pre_exec(move || {
                unshare(CloneFlags::CLONE_NEWNS)?;
                mount(
                    None::<&str>,
                    "/",
                    None::<&str>,
                    MsFlags::MS_REC | MsFlags::MS_PRIVATE,
                    None::<&str>,
                )?;
                mount(
                    Some(&dev),
                    "/dev",
                    None::<&str>,
                    MsFlags::MS_BIND,
                    None::<&str>,
                )?;
                Ok(())
            });
        }
    };
    // Control: in that namespace the fake nodes are there for anyone who looks.
    let mut control = Command::new("sh");
    control.args([
        "-c",
        "test -c /dev/sev-guest && test -c /dev/virtio-ports/kettle.psp",
    ]);
    in_fake_dev_namespace(&mut control);
    assert!(
        control.status().unwrap().success(),
        "the fake devices are not visible outside the sandbox"
    );

    let mut cmd = Command::new(env!("CARGO_BIN_EXE_kettle-init"));
    cmd.arg("--local").arg(&dir);
    in_fake_dev_namespace(&mut cmd);
    let out = cmd.output().unwrap();
    assert!(
        out.status.success(),
        "kettle-init --local failed:\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let probe = fs::read_to_string(dir.join("out/artifacts/out/probe.txt")).unwrap();
    for what in [
        "/dev/sev-guest",
        "/dev/virtio-ports/kettle.psp",
        "/dev/kettle-psp-port",
    ] {
        assert!(
            probe.contains(&format!("{what} denied: No such file or directory\n")),
            "{what} visible in the sandbox:\n{probe}"
        );
    }
}
