//! The build request: request.json bytes and the whole request disk (a tar stream).
#![no_main]

use kettle_wire::request::{parse_request, read_request_disk, write_request_disk, RequestError};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(req) = parse_request(data) {
        req.validate().expect("a parsed request is valid");
        // What the guest accepted, the host can write, and it reads back the same.
        let json = serde_json::to_vec(&req).expect("a request serializes");
        assert_eq!(parse_request(&json).expect("re-parses"), req);
    }
    if let Ok(req) = read_request_disk(data) {
        req.validate().expect("a request read from a disk is valid");
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("request.img");
        match write_request_disk(&path, &req) {
            Ok(()) => {
                let disk = std::fs::read(&path).expect("read back");
                assert_eq!(read_request_disk(disk.as_slice()).expect("re-reads"), req);
            }
            // Pretty-printed, an accepted request can outgrow the limit: the host then refuses it.
            Err(RequestError::TooLarge(_)) => {}
            Err(e) => panic!("an accepted request cannot be written back: {e}"),
        }
    }
});
