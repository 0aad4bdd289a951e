//! Trust-chain steps 1 and 2: the report is signed by a VCEK that chains to a
//! pinned AMD root, and what it says about the guest (measurement, guest
//! policy, VMPL, TCB) is what the verifier requires.

use kettle_attest::chain::{self, Product};
use kettle_attest::report::{self, offsets, Report};
use kettle_attest::{revocation, signature};
use x509_cert::Certificate;

use kettle_attest::report::{ReportTcbs, Tcb, TcbLayout};
use kettle_attest::signature::{SIGNING_KEY_NONE, SIGNING_KEY_VCEK, SIGNING_KEY_VLEK};

use crate::bundle::Bundle;
use crate::check::{CheckId, CheckList, Failure, Outcome};
use crate::expect::{Expectations, MinTcb, TcbFloor};

/// What step 1 established, for the steps after it.
pub(crate) struct Signed {
    /// The report, when it parsed.
    pub report: Option<Report>,
    /// The root the chain ends in, when identified.
    pub product: Option<Product>,
    /// Whether the evidence comes from the simulated PSP.
    pub simulated: bool,
}

const NOT_PARSED: &str = "not checked: the report could not be parsed";

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
                .map_err(Failure::malformed),
            Err(e) => Err(Failure::malformed(e.to_string())),
        },
    );
    let report = parsed.ok();

    let outcome = match &bundle.chain {
        Ok(c) => {
            // The simulated root is a pinned root like the others; whether simulated evidence is
            // acceptable is report.simulated's one decision.
            let o = chain::check_chain(c, true);
            checks.push_result(CheckId::Chain, o.result.clone().map_err(Failure::untrusted));
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
                .map_err(Failure::untrusted),
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
                .map_err(Failure::untrusted),
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
                    why_not.push(e);
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

/// Step 2: measurement, guest policy, VMPL, TCB, and whether simulated evidence is acceptable.
pub(crate) fn verify_claims(signed: &Signed, expect: &Expectations, checks: &mut CheckList) {
    let Some(r) = &signed.report else {
        // Whether the evidence is simulated is known from the chain alone.
        let claims: Vec<CheckId> = CheckId::of_step(2)
            .filter(|c| *c != CheckId::Simulated)
            .collect();
        checks.skip_dependents(&claims, CheckId::ReportFormat, NOT_PARSED);
        checks.push_result(CheckId::Simulated, check_simulated(signed, expect));
        return;
    };
    checks.push_result(CheckId::Measurement, check_measurement(r, expect));
    checks.push_result(CheckId::DebugDisallowed, check_debug(r, expect));
    checks.push_result(
        CheckId::GuestPolicy,
        check_guest_policy(r.guest_policy(), expect),
    );
    checks.push_result(CheckId::Vmpl, check_vmpl(r, expect));
    let floor = match (&expect.min_tcb, signed.product) {
        (TcbFloor::Fixed(m), _) => Some((*m, "the verifier's".to_string())),
        (floor, Some(p)) => Some(floor.for_product(p)),
        (_, None) => None,
    };
    match floor {
        Some((m, whose)) => checks.push_result(
            CheckId::MinTcb,
            check_min_tcb(tcbs(r, signed.product).reported, &m, &whose),
        ),
        None => checks.skip_dependents(
            &[CheckId::MinTcb],
            CheckId::Chain,
            "not checked: the processor generation (whose TCB floor applies) is unknown without a verified chain",
        ),
    }
    checks.push_result(
        CheckId::TcbConsistency,
        check_tcb_consistency(&tcbs(r, signed.product)),
    );
    push_processor_generation(signed.product, expect, checks);
    if !expect.chip_ids.is_empty() {
        checks.push_result(CheckId::ChipId, check_chip_id(r, expect));
    }
    checks.push_result(CheckId::Simulated, check_simulated(signed, expect));
}

/// The opt-in a Milan report passes under, as the verdict line names it.
pub(crate) const MILAN_OPT_IN: &str =
    "EPYC Milan accepted (its VCEK root seed can be extracted, arXiv 2605.12990)";

/// Whether the processor generation the chain identified is one the verifier accepts.
fn push_processor_generation(
    product: Option<Product>,
    expect: &Expectations,
    checks: &mut CheckList,
) {
    let accepted: Vec<String> = expect
        .processor_generations
        .iter()
        .map(|p| p.to_string())
        .collect();
    match product {
        None => checks.skip_dependents(
            &[CheckId::ProcessorGeneration],
            CheckId::Chain,
            "not checked: the processor generation is unknown without a verified chain",
        ),
        // Whether simulated evidence is acceptable is report.simulated's one decision.
        Some(Product::Simulated) => checks.push(
            CheckId::ProcessorGeneration,
            Outcome::Pass("the simulated PSP's root: no processor generation (report.simulated decides)".into()),
        ),
        Some(p) if !expect.processor_generations.contains(&p) => checks.push(
            CheckId::ProcessorGeneration,
            Outcome::Fail(Failure::refused(match p {
                Product::Milan => format!(
                    "signed under AMD's Milan root: {}; refused unless the policy's processor_generations lists \"milan\" (or --allow-milan)",
                    crate::expect::MILAN_REFUSAL
                ),
                _ => format!(
                    "signed under AMD's {p} root; accepted generations: {}",
                    accepted.join(", ")
                ),
            })),
        ),
        Some(Product::Milan) => checks.push_opted_in(
            CheckId::ProcessorGeneration,
            format!(
                "signed under AMD's Milan root, accepted by explicit opt-in although {}",
                crate::expect::MILAN_REFUSAL
            ),
            MILAN_OPT_IN,
        ),
        Some(p) => checks.push(
            CheckId::ProcessorGeneration,
            Outcome::Pass(format!(
                "signed under AMD's {p} root (accepted: {})",
                accepted.join(", ")
            )),
        ),
    }
}

/// The report's chip_id against the verifier's list: a 64-byte id exactly, an 8-byte
/// (Turin) hwID as the report's first 8 bytes followed by zeros.
fn check_chip_id(r: &Report, expect: &Expectations) -> Result<String, Failure> {
    let chip = r.chip_id();
    let found = hex::encode(chip);
    if chip.iter().all(|b| *b == 0) {
        return Err(Failure::refused(
            "the report's chip_id is all zero (the host masked it, MASK_CHIP_ID): it cannot be one of the accepted chips",
        ));
    }
    let listed = expect.chip_ids.iter().any(|id| {
        id.len() <= 64 && chip[..id.len()] == id[..] && chip[id.len()..].iter().all(|b| *b == 0)
    });
    if listed {
        Ok(format!("chip_id {found} is an accepted chip"))
    } else {
        let accepted: Vec<String> = expect.chip_ids.iter().map(hex::encode).collect();
        Err(
            Failure::mismatch("chip_id", found, format!("one of {}", accepted.join(", ")))
                .meaning("the report comes from a chip the verifier does not list"),
        )
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

/// The report's TCBs in the layout of the generation whose AMD root the chain verified under;
/// without one (the chain failed, and the checks that use them say so), the `sev` crate's reading.
fn tcbs(r: &Report, product: Option<Product>) -> ReportTcbs {
    match product {
        Some(p) => r.tcbs_in(TcbLayout::of(p)),
        None => ReportTcbs {
            reported: r.reported_tcb(),
            current: r.current_tcb(),
            committed: r.committed_tcb(),
            launch: r.launch_tcb(),
        },
    }
}

/// Guest policy bits (SNP ABI, GUEST_POLICY).
mod policy_bits {
    pub const SMT: u64 = 1 << 16;
    pub const RESERVED_ONE: u64 = 1 << 17;
    pub const MIGRATE_MA: u64 = 1 << 18;
    pub const SINGLE_SOCKET: u64 = 1 << 20;
    pub const CXL_ALLOW: u64 = 1 << 21;
    /// Bits 26..63 are reserved and must be zero.
    pub const RESERVED_ZERO: u64 = !((1 << 26) - 1);
}

fn check_guest_policy(policy: u64, expect: &Expectations) -> Result<String, Failure> {
    use policy_bits::*;
    let rules = &expect.guest_policy;
    let mut wrong = Vec::new();
    if policy & RESERVED_ONE == 0 {
        wrong.push("reserved bit 17 is clear (the SNP ABI requires it set)".to_string());
    }
    if policy & RESERVED_ZERO != 0 {
        wrong.push(format!(
            "reserved bits 26..63 are set (0x{:x})",
            policy & RESERVED_ZERO
        ));
    }
    if policy & MIGRATE_MA != 0 && !rules.allow_migration_agent {
        wrong.push(
            "a migration agent is allowed (bit 18): guest memory can be exported off the platform"
                .into(),
        );
    }
    if policy & SMT != 0 && !rules.allow_smt {
        wrong.push("SMT is allowed (bit 16) but the verifier requires it off".into());
    }
    if policy & SINGLE_SOCKET == 0 && rules.require_single_socket {
        wrong.push("the guest is not bound to a single socket (bit 20)".into());
    }
    if policy & CXL_ALLOW != 0 && !rules.allow_cxl {
        wrong.push("CXL-attached memory is allowed (bit 21)".into());
    }
    let abi = (((policy >> 8) & 0xff) as u8, (policy & 0xff) as u8);
    if abi < rules.min_abi {
        wrong.push(format!(
            "the minimum firmware ABI is {}.{}, below the required {}.{}",
            abi.0, abi.1, rules.min_abi.0, rules.min_abi.1
        ));
    }
    if wrong.is_empty() {
        Ok(format!(
            "guest policy 0x{policy:x}: no migration agent, no CXL, ABI >= {}.{}, SMT {}",
            abi.0,
            abi.1,
            if policy & SMT != 0 { "allowed" } else { "off" }
        ))
    } else {
        Err(Failure::refused(format!(
            "guest policy 0x{policy:x}: {}",
            wrong.join("; ")
        )))
    }
}

fn check_measurement(r: &Report, expect: &Expectations) -> Result<String, Failure> {
    let found = hex::encode(r.measurement());
    if expect.measurements.is_empty() {
        return Err(Failure::refused(format!(
            "measurement {found}: no launch digest is accepted (the one named by --manifest or --measurement is not among the policy's; --loosen-policy measurements replaces them)"
        )));
    }
    if let Some((_, source)) = expect
        .measurements
        .iter()
        .find(|(m, _)| *m == r.measurement())
    {
        return Ok(format!(
            "measurement {found} equals the expected launch digest (from {source})"
        ));
    }
    let expected: Vec<String> = expect
        .measurements
        .iter()
        .map(|(m, _)| hex::encode(m))
        .collect();
    let sources: Vec<&str> = expect
        .measurements
        .iter()
        .map(|(_, s)| s.as_str())
        .collect();
    Err(Failure::mismatch(
        "measurement",
        found,
        if expected.len() == 1 {
            expected[0].clone()
        } else {
            format!("one of {}", expected.join(", "))
        },
    )
    .meaning(format!(
        "not the expected launch digest (from {}): another image, firmware, command line or vCPU setup was booted",
        sources.join("; ")
    )))
}

fn check_debug(r: &Report, expect: &Expectations) -> Result<String, Failure> {
    let policy = r.guest_policy();
    match (r.debug_allowed(), expect.guest_policy.allow_debug) {
        (false, _) => Ok(format!("guest policy 0x{policy:x} forbids debugging")),
        (true, true) => Ok(format!("guest policy 0x{policy:x} allows debugging (accepted by this policy)")),
        (true, false) => Err(Failure::refused(format!(
            "guest policy 0x{policy:x} allows debugging (bit 19): the host can read and change guest memory"
        ))),
    }
}

fn check_vmpl(r: &Report, expect: &Expectations) -> Result<String, Failure> {
    if r.vmpl() == expect.vmpl {
        Ok(format!("report requested at VMPL {}", r.vmpl()))
    } else {
        Err(
            Failure::mismatch("vmpl", r.vmpl().to_string(), expect.vmpl.to_string())
                .meaning("the report was not requested by the guest's most privileged level"),
        )
    }
}

/// Component-wise `a <= b` over the components both TCBs have, with the failing ones named.
fn tcb_below(a: &Tcb, b: &MinTcb) -> Vec<String> {
    let mut low = Vec::new();
    if let Some(fmc) = a.fmc {
        if fmc < b.fmc {
            low.push(format!("fmc {fmc} < {}", b.fmc));
        }
    }
    for (n, have, min) in [
        ("bootloader", a.bootloader, b.bootloader),
        ("tee", a.tee, b.tee),
        ("snp", a.snp, b.snp),
        ("microcode", a.microcode, b.microcode),
    ] {
        if have < min {
            low.push(format!("{n} {have} < {min}"));
        }
    }
    low
}

fn as_floor(t: &Tcb) -> MinTcb {
    MinTcb {
        fmc: t.fmc.unwrap_or(0),
        bootloader: t.bootloader,
        tee: t.tee,
        snp: t.snp,
        microcode: t.microcode,
    }
}

fn check_min_tcb(t: Tcb, floor: &MinTcb, whose: &str) -> Result<String, Failure> {
    let low = tcb_below(&t, floor);
    if low.is_empty() {
        Ok(format!("reported TCB {t} meets {whose} floor"))
    } else {
        Err(Failure::refused(format!(
            "reported TCB {t} is below {whose} floor: {}",
            low.join(", ")
        )))
    }
}

/// The firmware runs at `current`; it never runs below what it committed to, signs with a
/// VCEK no newer than what runs, and was not rolled back since the guest launched.
fn check_tcb_consistency(t: &ReportTcbs) -> Result<String, Failure> {
    let current = t.current;
    let mut wrong = Vec::new();
    for (what, tcb) in [
        ("reported", t.reported),
        ("committed", t.committed),
        ("launch", t.launch),
    ] {
        let above = tcb_below(&current, &as_floor(&tcb));
        if !above.is_empty() {
            wrong.push(format!(
                "{what} TCB {tcb} is above the current {current} ({})",
                above.join(", ")
            ));
        }
    }
    if wrong.is_empty() {
        Ok(format!(
            "reported {} <= current {current}, committed {} <= current, launch {} <= current",
            t.reported, t.committed, t.launch
        ))
    } else {
        Err(Failure::refused(format!(
            "{}: the firmware was rolled back, or the report is inconsistent",
            wrong.join("; ")
        )))
    }
}

fn check_simulated(signed: &Signed, expect: &Expectations) -> Result<String, Failure> {
    match (signed.simulated, expect.allow_simulated) {
        (false, _) => Ok(match signed.product {
            Some(p) => format!("signed under AMD's {p} root, not the simulated PSP"),
            None => "no sign of the simulated PSP (chip id, root)".into(),
        }),
        (true, true) => Ok("SIMULATED evidence from Kettle's software PSP (test keys), accepted because simulated evidence is allowed".into()),
        (true, false) => Err(Failure::refused("evidence comes from Kettle's SIMULATED PSP (public test keys, no hardware isolation); rejected unless simulated evidence is explicitly allowed (--allow-simulated)")),
    }
}
