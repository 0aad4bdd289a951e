//! Verifies a Kettle build's evidence: DESIGN.md's trust chain as one ordered
//! check list. `kettle verify`, `kettle build` and third parties link this.
//!
//! ```text
//! step 1  report.report_format  report.chain  report.signer  report.vcek_matches_report
//!         report.signature  report.revocation  report.cert_validity
//! step 2  report.measurement  report.debug_disallowed  report.guest_policy  report.vmpl
//!         report.min_tcb  report.tcb_consistency  report.processor_generation
//!         report.chip_id (when chip ids are listed)  report.simulated
//! step 3  binding.report_data
//! step 4  provenance.canonical  provenance.parse  provenance.statement_type
//!         provenance.predicate_type  provenance.valid
//! step 5  artifacts  artifact:<path>  artifacts.complete
//! step 6  provenance.repository  provenance.ref  provenance.source  provenance.builder_id
//!         provenance.image  provenance.build_type
//! ```
//!
//! Every check runs that can; one that cannot is skipped naming the check it
//! depends on. The verdict is VERIFIED only when no check failed, and its line
//! says SIMULATED or "report only" whenever that is what was shown. The
//! defaults are strict: only the SEV-SNP builder, no debug or migration agent,
//! a TCB floor per processor generation, no EPYC Milan report unless the
//! verifier opts in (named in the verdict line), and a build whose source
//! commit the verifier did not pin is rejected.
// Unit tests build fixtures with small casts; the lint guards the formats themselves.
#![cfg_attr(test, allow(clippy::cast_possible_truncation))]

mod binding;
pub mod bundle;
pub mod check;
pub mod expect;
pub mod kds;
pub mod policy;
mod provenance;
pub mod render;
mod report;
pub mod verdict;
pub mod vsa;

use std::path::Path;

pub use bundle::{Artifact, Bundle, BundleFiles, LoadError};
pub use check::{Check, CheckId, Failure, Outcome, Skipped, Status};
pub use expect::{
    builtin_tcb_floor, default_processor_generations, parse_chip_id, parse_measurement,
    parse_min_tcb, ChipId, Expectations, GuestPolicyRules, MinTcb, ProvenanceExpectations,
    SourcePin, TcbFloor, MILAN_REFUSAL,
};
pub use policy::{LoadedPolicy, Policy, PolicyError};
pub use verdict::{AppliedPolicy, Verdict};

/// Runs the whole trust chain over `bundle`, in DESIGN.md's order.
pub fn verify(bundle: &Bundle, expect: &Expectations) -> Verdict {
    let mut checks = check::CheckList::default();
    // Step 1: signed by a VCEK that chains to a pinned AMD root.
    let signed = report::verify_signer(bundle, expect, &mut checks);
    // Step 2: measurement, guest policy, VMPL, TCB, simulated.
    report::verify_claims(&signed, expect, &mut checks);
    // Step 3: report_data binds the exact provenance bytes.
    let report_data = signed.report.as_ref().map(|r| r.report_data());
    binding::verify_binding(
        report_data,
        bundle.provenance.as_deref(),
        expect.report_data.as_ref(),
        &mut checks,
    );
    let mut built_commit = None;
    match &bundle.provenance {
        Some(bytes) => {
            // Step 4: a canonical in-toto Statement with SLSA provenance.
            if let Some(statement) = provenance::verify_statement(bytes, &mut checks) {
                // Step 5: every artifact is a subject.
                provenance::verify_subjects(
                    &statement,
                    &bundle.artifacts,
                    bundle.complete_output,
                    &mut checks,
                );
                // Step 6: repository, ref, the built commit, builder and build type.
                let measured = signed.report.as_ref().map(|r| r.measurement());
                built_commit = provenance::verify_build_parameters(
                    &statement,
                    &expect.provenance,
                    measured,
                    &mut checks,
                );
            }
        }
        None => {
            for a in &bundle.artifacts {
                checks.push_for(
                    CheckId::Artifact,
                    &a.label,
                    Outcome::Fail(Failure::refused(
                        "cannot be checked without the provenance that names the subjects (pass --provenance)",
                    )),
                );
            }
        }
    }
    let mut verdict = Verdict::new(checks, bundle.provenance.is_some(), signed.simulated);
    verdict.built_commit = built_commit;
    verdict
}

/// Loads an output directory of `kettle build` (with its chain.pem) and verifies it.
pub fn verify_output_dir(dir: &Path, expect: &Expectations) -> Result<Verdict, LoadError> {
    let bundle = Bundle::load(&BundleFiles::output_dir(dir)?)?;
    Ok(verify(&bundle, expect))
}
