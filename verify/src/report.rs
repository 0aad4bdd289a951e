//! Trust-chain steps 1 and 2, as go-sev-guest splits them into verify and
//! validate: [`signer`] establishes who signed the report (a VCEK that chains to
//! a pinned AMD root, and its signature), [`claims`] holds what the report says
//! about the guest (measurement, guest policy, VMPL, TCB) to what the verifier
//! requires.

mod claims;
mod signer;

pub(crate) use claims::verify_claims;
pub(crate) use signer::verify_signer;

use kettle_attest::chain::Product;
use kettle_attest::report::{Report, ReportTcbs, TcbLayout};

/// What step 1 established, for the steps after it.
pub(crate) struct Signed {
    /// The report, when it parsed.
    pub report: Option<Report>,
    /// The root the chain ends in, when identified.
    pub product: Option<Product>,
    /// Whether the evidence comes from the simulated PSP.
    pub simulated: bool,
}

/// Why a check on the report's body did not run.
const NOT_PARSED: &str = "not checked: the report could not be parsed";

/// The report's TCBs in the layout of the generation whose AMD root the chain verified under;
/// without one (the chain failed, and the checks that use them say so), the `sev` crate's reading.
pub(super) fn tcbs(r: &Report, product: Option<Product>) -> ReportTcbs {
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
