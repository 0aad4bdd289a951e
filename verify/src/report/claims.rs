//! Trust-chain step 2, what the report says: measurement, guest policy, VMPL,
//! TCB floor and consistency, processor generation, chip id, and whether
//! simulated evidence is acceptable, each against the verifier's expectations.

use kettle_attest::chain::Product;
use kettle_attest::report::{Report, ReportTcbs, Tcb};

use super::{tcbs, Signed, NOT_PARSED};
use crate::check::{CheckId, CheckList, Failure, Outcome};
use crate::expect::{Expectations, MinTcb, TcbFloor};

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
