//! The whole trust chain over a hostile output directory: report, chain,
//! provenance and artifacts all chosen by the input (framing: `BundleInput`).
#![no_main]

use kettle_attest::report::Report;
use kettle_fuzz::{BundleInput, FLAG_ALLOW_SIMULATED, MEASUREMENT};
use kettle_verify::verify;
use libfuzzer_sys::fuzz_target;
use sha2::{Digest, Sha256};

fuzz_target!(|data: &[u8]| {
    let input = BundleInput::decode(data);
    let (bundle, expect) = input.to_bundle();

    let verdict = verify(&bundle, &expect);

    // The rendered verdict cannot be forged by strings from the evidence: no
    // control or bidi characters other than the newlines between rows.
    let text = verdict.to_string();
    for c in text.chars() {
        assert!(
            c == '\n'
                || !(c.is_control()
                    || matches!(c, '\u{200B}'..='\u{200F}' | '\u{202A}'..='\u{202E}' | '\u{2066}'..='\u{2069}' | '\u{FEFF}')),
            "unescaped {c:?} in the rendered verdict"
        );
    }
    serde_json::to_string(&verdict).expect("a verdict serializes");

    // A VERIFIED verdict really is bound: the report names our measurement and
    // carries SHA-256(provenance) followed by zeros; a report verified alone
    // (no provenance) says so and still has a zero second half.
    if verdict.verified() {
        let report = Report::parse(&bundle.report).expect("a verified report parses");
        assert_eq!(report.measurement(), MEASUREMENT);
        let rd = report.report_data();
        assert_eq!(&rd[32..], &[0u8; 32][..]);
        match &bundle.provenance {
            Some(prov) => {
                assert!(verdict.binding_checked());
                assert_eq!(&rd[..32], &Sha256::digest(prov)[..]);
            }
            None => {
                assert!(!verdict.binding_checked());
                assert!(
                    bundle.artifacts.is_empty(),
                    "artifacts verified without provenance"
                );
                assert!(verdict.headline().contains("report only"));
            }
        }
        assert!(bundle.chain.is_ok());
        assert!(!report.debug_allowed());
        assert_eq!(report.vmpl(), 0);
        if input.flags & FLAG_ALLOW_SIMULATED == 0 {
            assert!(!verdict.simulated());
        }
    }
});
