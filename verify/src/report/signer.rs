//! Trust-chain step 1, who signed: the report's format, ARK -> ASK -> VCEK, the
//! signer the verifier accepts, the VCEK against the report, the signature, and
//! the chain against the verifier's CRLs and clock.

use kettle_attest::chain::{self, Product};
use kettle_attest::report::{self, offsets, Report};
use kettle_attest::signature::{SIGNING_KEY_NONE, SIGNING_KEY_VCEK, SIGNING_KEY_VLEK};
use kettle_attest::{revocation, signature};
use x509_cert::Certificate;

use super::{tcbs, Signed, NOT_PARSED};
use crate::bundle::Bundle;
use crate::check::{CheckId, CheckList, Failure, Outcome};
use crate::expect::Expectations;

/// Step 1: report format, ARK -> ASK -> VCEK, VCEK vs report, signature.
pub(crate) fn verify_signer(
    bundle: &Bundle,
    expect: &Expectations,
    checks: &mut CheckList,
) -> Signed {
    let bytes = &bundle.report;
    let parsed = Report::parse(bytes);
    checks.push_result(
        CheckId::ReportFormat,
        match &parsed {
            Ok(r) => signature::check_reserved_signature_bytes(r.bytes())
                .map(|()| {
                    format!(
                        "version {} report, {} bytes",
                        r.version(),
                        report::REPORT_LEN
                    )
                })
                .map_err(|e| Failure::malformed(e.to_string())),
            Err(e) => Err(Failure::malformed(e.to_string())),
        },
    );
    let report = parsed.ok();

    let outcome = match &bundle.chain {
        Ok(c) => {
            // The simulated root is a pinned root like the others; whether simulated evidence is
            // acceptable is report.simulated's one decision.
            let o = chain::check_chain(c, true);
            checks.push_result(
                CheckId::Chain,
                o.result
                    .clone()
                    .map_err(|e| Failure::untrusted(e.to_string())),
            );
            Some(o)
        }
        Err(why) => {
            checks.push(
                CheckId::Chain,
                Outcome::Fail(Failure::untrusted(format!(
                    "the certificate chain could not be read: {why}"
                ))),
            );
            None
        }
    };
    let vcek = outcome.as_ref().and_then(|o| o.vcek.as_ref());
    let product = outcome.as_ref().and_then(|o| o.product);

    let signer_ok = match &report {
        None => {
            checks.skip_dependents(&[CheckId::Signer], CheckId::ReportFormat, NOT_PARSED);
            true
        }
        Some(r) => {
            let result = check_signer(r.signing_key(), expect);
            let ok = result.is_ok();
            checks.push_result(CheckId::Signer, result);
            ok
        }
    };

    match (&report, vcek) {
        (None, _) => checks.skip_dependents(
            &[CheckId::VcekMatchesReport],
            CheckId::ReportFormat,
            NOT_PARSED,
        ),
        (_, None) => checks.skip_dependents(
            &[CheckId::VcekMatchesReport],
            CheckId::Chain,
            "not checked: the VCEK could not be parsed",
        ),
        (Some(r), Some(v)) => checks.push_result(
            CheckId::VcekMatchesReport,
            chain::vcek_extensions(v)
                .and_then(|ext| {
                    let key = if r.signing_key() == SIGNING_KEY_VLEK {
                        chain::EndorsementKey::Vlek
                    } else {
                        chain::EndorsementKey::Vcek
                    };
                    chain::compare_vcek_with_report(
                        v,
                        &ext,
                        key,
                        &r.chip_id(),
                        &tcbs(r, product).reported,
                    )
                })
                .map_err(|e| Failure::untrusted(e.to_string())),
        ),
    }

    // Over the raw bytes, so it runs even when the body did not parse.
    match vcek {
        _ if bytes.len() != report::REPORT_LEN => checks.skip_dependents(
            &[CheckId::Signature],
            CheckId::ReportFormat,
            &format!(
                "not checked: the report is {} bytes, not {}",
                bytes.len(),
                report::REPORT_LEN
            ),
        ),
        None => checks.skip_dependents(
            &[CheckId::Signature],
            CheckId::Chain,
            "not checked: the VCEK could not be parsed",
        ),
        Some(_) if !signer_ok => checks.skip_dependents(
            &[CheckId::Signature],
            CheckId::Signer,
            "not checked: the report is not signed by a key this verifier accepts",
        ),
        Some(v) => checks.push_result(
            CheckId::Signature,
            signature::verify_report_signature(bytes, v)
                .map(|()| {
                    "ECDSA P-384/SHA-384 signature over bytes 0x0..0x2A0 verifies with the VCEK"
                        .to_string()
                })
                .map_err(|e| Failure::untrusted(e.to_string())),
        ),
    }

    verify_revocation_and_validity(bundle, outcome.as_ref(), expect, checks);

    let chip_says_simulated = bytes.len() == report::REPORT_LEN
        && bytes[offsets::CHIP_ID..offsets::CHIP_ID + 64] == kettle_attest::simulated::CHIP_ID;
    Signed {
        report,
        product,
        simulated: product == Some(Product::Simulated) || chip_says_simulated,
    }
}

/// The ARK and the intermediate (ASK or ASVK) the chain verified with: the evidence's, or the pinned ones.
fn chain_certs(bundle: &Bundle, product: Product) -> Option<(Certificate, Certificate)> {
    use x509_cert::der::Decode;
    let (pinned_ark, pinned_ask) = product.pinned_der().ok()?;
    let chain = bundle.chain.as_ref().ok()?;
    let ark = Certificate::from_der(chain.ark.as_deref().unwrap_or(&pinned_ark)).ok()?;
    let ask = Certificate::from_der(chain.ask.as_deref().unwrap_or(&pinned_ask)).ok()?;
    Some((ark, ask))
}

/// Step 1, continued: the verifier's CRLs and clock (both optional, both said when absent).
fn verify_revocation_and_validity(
    bundle: &Bundle,
    outcome: Option<&chain::ChainOutcome>,
    expect: &Expectations,
    checks: &mut CheckList,
) {
    let verified = outcome.filter(|o| o.result.is_ok());
    let certs = verified.and_then(|o| {
        let (ark, ask) = chain_certs(bundle, o.product?)?;
        Some((o.product?, ark, ask, o.vcek.clone()?))
    });
    let Some((product, ark, ask, vcek)) = certs else {
        checks.skip_dependents(
            &[CheckId::Revocation, CheckId::CertValidity],
            CheckId::Chain,
            "not checked: the chain did not verify",
        );
        return;
    };
    let (outcome, unchecked_part) = check_revocation(product, &ark, &ask, &vcek, expect);
    checks.push_partial(CheckId::Revocation, outcome, unchecked_part);
    checks.push(
        CheckId::CertValidity,
        match expect.at {
            None => unchecked(
                CheckId::CertValidity,
                expect.require_trusted_time,
                "offline verification has no trusted clock: the certificates' validity windows were not checked (pass --at TIME)",
            ),
            Some(at) => {
                let problems: Vec<String> = [("ARK", &ark), ("ASK", &ask), ("VCEK", &vcek)]
                    .into_iter()
                    .filter_map(|(what, c)| revocation::invalid_at(what, c, at))
                    .collect();
                passes_unless(problems, || {
                    format!(
                        "ARK, ASK and VCEK are valid at {}",
                        revocation::kettle_time(at)
                    )
                })
            }
        },
    );
}

/// A check the caller gave no input for: skipped, or failed where its policy field requires it.
fn unchecked(id: CheckId, required: bool, why: &str) -> Outcome {
    if required {
        Outcome::Fail(Failure::refused(format!(
            "the policy requires it ({}), but {why}",
            id.policy_field().unwrap_or("an expectation")
        )))
    } else {
        Outcome::not_requested(why)
    }
}

/// The revocation check's outcome, and the part of it not checked (the CRL's age, without a time).
fn check_revocation(
    product: Product,
    ark: &Certificate,
    ask: &Certificate,
    vcek: &Certificate,
    expect: &Expectations,
) -> (Outcome, Option<String>) {
    if expect.crls.is_empty() {
        return (
            unchecked(
                CheckId::Revocation,
                expect.require_revocation_check,
                "no CRL given: revocation was not checked (pass --crl FILE, or --fetch-crl)",
            ),
            None,
        );
    }
    // Of the CRLs the ARK signed, the newest by thisUpdate: an older one could hide a revocation.
    let mut why_not = Vec::new();
    let crl = expect
        .crls
        .iter()
        .filter_map(|der| {
            match revocation::Crl::from_der(der).and_then(|c| c.verify_signed_by(ark).map(|()| c)) {
                Ok(c) => Some(c),
                Err(e) => {
                    why_not.push(e.to_string());
                    None
                }
            }
        })
        .max_by_key(|c| c.window().0);
    let Some(crl) = crl else {
        return (
            Outcome::Fail(Failure::untrusted(format!(
                "no given CRL is ARK-{product}'s: {}",
                why_not.join("; ")
            ))),
            None,
        );
    };
    let (this_update, next_update) = crl.window();
    let age_unchecked = match (expect.at, next_update) {
        (Some(at), Some(next)) if at > next => {
            return (
                Outcome::Fail(Failure::refused(format!(
                    "ARK-{product}'s newest CRL given expired at {} (its nextUpdate); fetch a current one",
                    revocation::kettle_time(next)
                ))),
                None,
            );
        }
        (Some(_), Some(_)) => None,
        (Some(_), None) => Some(format!(
            "CRL age: its age was not checked: the CRL of {} has no nextUpdate",
            revocation::kettle_time(this_update)
        )),
        (None, _) => Some(format!(
            "CRL age: its age was not checked: no trusted time to hold the CRL of {} against (pass --at)",
            revocation::kettle_time(this_update)
        )),
    };
    let revoked: Vec<String> = [("ASK", ask), ("VCEK", vcek)]
        .into_iter()
        .filter_map(|(what, c)| {
            crl.revoked(&c.tbs_certificate.serial_number).map(|when| {
                format!(
                    "the {what} (serial {}) was revoked at {}",
                    c.tbs_certificate.serial_number,
                    revocation::kettle_time(when)
                )
            })
        })
        .collect();
    let of = match expect.crls.len() {
        1 => String::new(),
        n => format!(" (the newest of {n} given)"),
    };
    let outcome = passes_unless(revoked, || {
        format!(
            "neither the ASK nor the VCEK is on ARK-{product}'s CRL of {}{of}{}",
            revocation::kettle_time(this_update),
            age_unchecked
                .as_deref()
                .and_then(|a| a.strip_prefix("CRL age: "))
                .map_or(String::new(), |a| format!("; {a}"))
        )
    });
    (outcome, age_unchecked)
}

/// Passes with `detail` when there are no `problems`; else fails, refusing all of them.
fn passes_unless(problems: Vec<String>, detail: impl FnOnce() -> String) -> Outcome {
    if problems.is_empty() {
        Outcome::Pass(detail())
    } else {
        Outcome::Fail(Failure::refused(problems.join("; ")))
    }
}

fn check_signer(key: u32, expect: &Expectations) -> Result<String, Failure> {
    match key {
        SIGNING_KEY_VCEK if expect.accept_vcek => {
            Ok("signed by the chip's VCEK (key_info signing key 0)".into())
        }
        SIGNING_KEY_VCEK => Err(Failure::refused(
            "signed by the chip's VCEK, which this policy does not accept (signers)",
        )),
        SIGNING_KEY_VLEK if expect.accept_vlek => Ok(
            "signed by a VLEK (a key the cloud provider loaded into the PSP, key_info signing key 1), which this policy accepts".into(),
        ),
        SIGNING_KEY_VLEK => Err(Failure::refused(
            "signed by a VLEK (a key the cloud provider loaded, key_info signing key 1): not accepted unless the policy's signers include \"vlek\" (--allow-vlek)",
        )),
        SIGNING_KEY_NONE => Err(Failure::refused("the report is unsigned (key_info signing key 7)")),
        other => Err(Failure::malformed(format!(
            "key_info names signing key {other}, which the SNP ABI does not define"
        ))),
    }
}
