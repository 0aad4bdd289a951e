//! Trust-chain step 3: report_data = SHA-256(provenance.json bytes as read)
//! followed by 32 zero bytes (the second half is reserved for a verifier
//! nonce; today it must be zero).

use kettle_attest::report_data_for;

use crate::check::{CheckId, CheckList, Failure, Outcome};

/// Checks the report's report_data (None: the report did not parse) against the exact
/// provenance bytes; for a report alone, against the verifier's expected value, or
/// at least that its second half is zero as every Kettle report's is.
pub(crate) fn verify_binding(
    report_data: Option<[u8; 64]>,
    provenance: Option<&[u8]>,
    expected_alone: Option<&[u8; 64]>,
    checks: &mut CheckList,
) {
    match (report_data, provenance) {
        (None, _) => checks.skip_dependents(
            &[CheckId::ReportData],
            CheckId::ReportFormat,
            "no readable report, so nothing to bind the provenance to",
        ),
        (Some(found), None) => match expected_alone {
            Some(want) if &found == want => checks.push(
                CheckId::ReportData,
                Outcome::Pass(format!(
                    "report_data equals the expected {} (report only: not bound to any build)",
                    hex::encode(want)
                )),
            ),
            Some(want) => checks.push(
                CheckId::ReportData,
                Outcome::Fail(Failure::mismatch("report_data", hex::encode(found), hex::encode(want))),
            ),
            None if found[32..].iter().any(|b| *b != 0) => checks.push(
                CheckId::ReportData,
                Outcome::Fail(Failure::refused(format!(
                    "report_data[32..64] is {} but a Kettle report has 32 zero bytes there: not a Kettle build's report (pass --report-data HEX to check another value)",
                    hex::encode(&found[32..])
                ))),
            ),
            None => checks.push(
                CheckId::ReportData,
                Outcome::no_input("no provenance given: the report is not bound to any build (pass --provenance to check it); report_data[32..64] is zero"),
            ),
        },
        (Some(found), Some(bytes)) => {
            let expected = report_data_for(bytes);
            checks.push_result(
                CheckId::ReportData,
                if found == expected {
                    Ok(format!(
                        "report_data = SHA-256(provenance.json) {} || 32 zero bytes",
                        hex::encode(&expected[..32])
                    ))
                } else {
                    Err(describe_mismatch(&found, &expected))
                },
            );
        }
    }
}

/// Says which half of report_data differs.
fn describe_mismatch(found: &[u8; 64], expected: &[u8; 64]) -> Failure {
    let mut parts = Vec::new();
    if found[..32] != expected[..32] {
        parts.push(format!(
            "report_data[0..32] is {} but SHA-256(provenance.json as read) is {}: the provenance is not the one this report attests",
            hex::encode(&found[..32]),
            hex::encode(&expected[..32])
        ));
    }
    if found[32..] != expected[32..] {
        parts.push(format!(
            "report_data[32..64] is {} but must be 32 zero bytes",
            hex::encode(&found[32..])
        ));
    }
    Failure::untrusted(parts.join("; "))
}
