//! The SNP report parser: any bytes a host leaves in `evidence`.
#![no_main]

use kettle_attest::report::{Report, REPORT_LEN};
use kettle_attest::signature;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let _ = signature::check_reserved_signature_bytes(data);
    let parsed = Report::parse(data);
    if let Ok(r) = parsed {
        assert_eq!(data.len(), REPORT_LEN);
        assert_eq!(r.bytes(), data);
        let summary = r.summary();
        serde_json::to_string(&summary).expect("a report summary serializes");
        let _ = (
            r.signing_key(),
            r.debug_allowed(),
            r.reported_tcb().to_string(),
        );
        let _ = (r.current_tcb(), r.committed_tcb(), r.launch_tcb(), r.vmpl());
        let _ = signature::signature_from_report(data);
        // The parser's view and the fixed offsets agree on the signed fields.
        assert_eq!(&r.report_data()[..], &data[0x50..0x90]);
        assert_eq!(&r.measurement()[..], &data[0x90..0xC0]);
    }
});
