//! The guest's disk path (everything but boot and the end of the VM): the request and
//! cache disks in, the output disk out, found by serial through a locator that
//! maps serials to image files.

use std::fs;
use std::path::{Path, PathBuf};

use kettle_init::guest::{write_output_disk, DiskError};
use kettle_init::pipeline::build_from_disks;
use kettle_init::{Attestor, Step};
use kettle_provenance::Sha256Digest;
use kettle_testkit::fixtures::{assert_only_error, read_status, rootfs, FAKE_REPORT_LEN};
use kettle_testkit::{CountingProvider, Scenario};
use kettle_wire::cache;
use kettle_wire::devices::{CACHE_DISK_SERIAL, OUTPUT_DISK_SERIAL, REQUEST_DISK_SERIAL};
use kettle_wire::output::{read_output_disk, EVIDENCE_FILE, PROVENANCE_FILE};
use kettle_wire::request::write_request_disk;
use kettle_wire::BuildRequest;

/// Size of the pre-sized raw output disk images.
const OUTPUT_DISK_BYTES: u64 = 64 << 20;

#[test]
fn guest_disks_request_cache_and_output_round_trip() {
    let sc = Scenario::script(
        "mkdir -p out && echo from disks > out/d.txt",
        &["out/d.txt"],
    )
    .commit();
    let disks = sc.dir();
    sc.write_cache_disk(&disks.join("cache.img"));
    // The guest's disk path for `request`, with the disks as files in `disks`: the request
    // disk written, the cache disk above, a fresh pre-sized output disk; the output disk is
    // read back into `disks/<name>-got`. Returns the build's result and that directory.
    let run_guest_disks = |request: &BuildRequest, name: &str, provider: &mut CountingProvider| {
        write_request_disk(&disks.join("request.img"), request).unwrap();
        let output_img = disks.join(format!("{name}.img"));
        fs::File::create(&output_img)
            .unwrap()
            .set_len(OUTPUT_DISK_BYTES)
            .unwrap();
        let locate = |serial: &'static str| -> Result<PathBuf, DiskError> {
            match serial {
                REQUEST_DISK_SERIAL => Ok(disks.join("request.img")),
                CACHE_DISK_SERIAL => Ok(disks.join("cache.img")),
                OUTPUT_DISK_SERIAL => Ok(output_img.clone()),
                _ => Err(DiskError::Missing(serial)),
            }
        };
        let built = build_from_disks(
            &locate,
            &disks.join(format!("{name}-work")),
            Path::new("/nonexistent.pem"),
            Attestor::Given(provider),
        );
        write_output_disk(&locate, &built).unwrap();
        let got = disks.join(format!("{name}-got"));
        read_output_disk(&output_img, &got).unwrap();
        (built, got)
    };

    // Success: outputs, provenance, evidence and status.json on the output disk.
    let mut provider = CountingProvider::default();
    let (built, got) = run_guest_disks(&sc.request, "output", &mut provider);
    assert_eq!(
        fs::read_to_string(got.join("artifacts/out/d.txt")).unwrap(),
        "from disks\n"
    );
    assert_eq!(
        fs::read(got.join(PROVENANCE_FILE)).unwrap(),
        built.as_ref().unwrap().provenance
    );
    assert_eq!(
        fs::read(got.join(EVIDENCE_FILE)).unwrap().len(),
        FAKE_REPORT_LEN
    );
    assert!(read_status(&got).ok);
    assert_eq!(provider.calls, 1);
    // The guest frees its RAM copy of each input once unpacked.
    let cached = disks.join("output-work/cache");
    assert!(!cache::source_path(&cached, &sc.commit).exists());
    assert!(!cache::blob_path(&cached, &Sha256Digest::of_bytes(rootfs())).exists());

    // Failure: a request for a commit the cache disk does not hold leaves only error.json.
    let mut missing = sc.request.clone();
    missing.commit = "9".repeat(40);
    let mut provider = CountingProvider::default();
    let (built, got) = run_guest_disks(&missing, "output2", &mut provider);
    assert!(built.is_err());
    let report = assert_only_error(&got);
    assert_eq!(
        (report.step, report.input.as_deref()),
        (Step::Fetch, Some("commit object"))
    );
    assert_eq!(provider.calls, 0);
}
