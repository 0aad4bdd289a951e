//! After the VM: what the guest wrote (status.json, error.json), the image
//! manifest beside it, the VCEK on SNP, and the outputs verified exactly as an
//! auditor would before --out is published.

use std::fs;
use std::path::Path;
use std::process::ExitCode;
use std::time::Instant;

use kettle_provenance::Sha256Digest;
use kettle_verify::{Expectations, ProvenanceExpectations, SourcePin};
use kettle_wire::output::{self, CHAIN_FILE, ERROR_FILE, EVIDENCE_FILE, STATUS_FILE};
use kettle_wire::Tee;

use super::prepare::Image;
use super::result::{
    BuildResult, Failure, ImageRef, Outcome, ResultContext, SourceRef, RESULT_FILE,
};
use super::{io_err, timed, BuildError, BuildOptions, EXIT_FAILED};
use crate::console::{escape, human_duration, print_stdout};
use crate::outdir::Staging;
use crate::source::ResolvedSource;
use crate::vm;

/// The guest's own account of a failed build: error.json, else its console, else the log
/// tail; returned as result.json's `failure` (plain text).
pub(super) fn report_guest_failure(staging: &Path, run: &vm::VmRun, log_path: &Path) -> Failure {
    match read_error_report(staging) {
        Some(e) => {
            eprintln!(
                "kettle build: the guest reported a failure: {}",
                render_error_report(&e)
            );
            Failure {
                step: e.step.to_string(),
                message: e.message,
            }
        }
        None => match &run.console_failure {
            Some((step, message)) => {
                eprintln!(
                    "kettle build: the guest console reported step {step} failed: {} (no error.json was written)",
                    escape(message)
                );
                Failure {
                    step: step.to_string(),
                    message: message.clone(),
                }
            }
            None => {
                eprintln!("kettle build: the guest wrote no result; see the console log");
                print_log_tail(log_path);
                Failure {
                    step: "vm".into(),
                    message: "the guest wrote no result (see build.log)".into(),
                }
            }
        },
    }
}

/// Writes result.json into the staging directory (before it is published, so the
/// directory appears whole) and, with `--json`, prints it on stdout.
pub(super) fn record_result(
    staging: &Staging,
    outcome: Outcome,
    failure: Option<Failure>,
    ctx: &ResultContext,
    json: bool,
) -> Result<(), BuildError> {
    let result = BuildResult::for_output_dir(staging.path(), outcome, failure, ctx);
    result
        .write(staging.path())
        .map_err(io_err(format!("writing {RESULT_FILE}")))?;
    if json {
        print_stdout(result.to_json().trim_end());
    }
    Ok(())
}

/// What every result.json of this build shares.
pub(super) fn result_context(
    opts: &BuildOptions,
    image: &Image,
    src: &ResolvedSource,
    tee: Tee,
) -> Result<ResultContext, BuildError> {
    let manifest_sha256 = Sha256Digest::of_file(&image.manifest_path)
        .map_err(io_err(image.manifest_path.display().to_string()))?;
    Ok(ResultContext {
        tee,
        source: SourceRef {
            repository: src.repository.clone(),
            git_ref: src.git_ref.clone(),
            commit: src.commit.clone(),
        },
        image: ImageRef {
            launch_digest: image.manifest.launch_digest.to_string(),
            manifest_sha256: manifest_sha256.to_hex(),
        },
        verify_command: verify_argv(opts, image, src, tee),
    })
}

/// Verifies the collected outputs exactly as an auditor would, then publishes --out.
pub(super) fn verify_and_publish(
    staging: Staging,
    image: &Image,
    src: &ResolvedSource,
    ctx: &ResultContext,
    json: bool,
) -> Result<ExitCode, BuildError> {
    let tee = ctx.tee;
    // The host built this commit itself, so it pins it; an auditor pins it from their own clone.
    let mut expect = Expectations {
        provenance: ProvenanceExpectations {
            repository: Some(src.repository.clone()),
            git_ref: Some(src.git_ref.clone()),
            source: SourcePin::Commit(src.commit.clone()),
            ..Default::default()
        },
        ..Expectations::new(
            image.manifest.launch_digest.0,
            format!("manifest {}", image.manifest_path.display()),
        )
    };
    if tee == Tee::Simulated {
        expect = expect.accepting_simulated();
    }
    let t = Instant::now();
    let verdict = kettle_verify::verify_output_dir(staging.path(), &expect);
    timed("verify", t);
    let verdict = match verdict {
        Ok(v) => v,
        Err(why) => {
            // The error may name a file under artifacts/, a name the build chose.
            eprintln!(
                "kettle build: the outputs cannot be verified: {}",
                escape(&why.to_string())
            );
            let failure = Failure {
                step: "host".into(),
                message: format!("the outputs cannot be verified: {why}"),
            };
            record_result(&staging, Outcome::NotVerified, Some(failure), ctx, json)?;
            let out = staging.publish()?;
            eprintln!("outputs (unverified) are in {}", out.display());
            return Ok(ExitCode::from(EXIT_FAILED));
        }
    };
    // With --json, stdout is result.json alone; the verdict goes to the terminal's stderr.
    if json {
        eprintln!("{verdict}");
    } else {
        print_stdout(&verdict.to_string());
    }
    let (outcome, failure) = if verdict.verified() {
        (Outcome::Verified, None)
    } else {
        let failed = verdict
            .failures()
            .map(|c| c.name())
            .collect::<Vec<_>>()
            .join(", ");
        let failure = Failure {
            step: "host".into(),
            message: format!("the outputs do not verify: failed checks {failed}"),
        };
        (Outcome::NotVerified, Some(failure))
    };
    record_result(&staging, outcome, failure, ctx, json)?;
    let out = staging.publish()?;
    if verdict.verified() {
        eprintln!("outputs verified and written to {}", out.display());
        Ok(ExitCode::SUCCESS)
    } else {
        eprintln!(
            "kettle build: the outputs in {} do NOT verify (see the failed checks above)",
            out.display()
        );
        Ok(ExitCode::from(EXIT_FAILED))
    }
}

/// On SNP the guest gets no certificate chain unless the host configured one:
/// fetch the report's VCEK from AMD's KDS and write it as chain.pem (the ASK
/// and ARK are pinned in the verifier). The VCEK is checked like any other.
pub(super) fn supply_vcek(dir: &Path) {
    let chain = dir.join(CHAIN_FILE);
    if fs::symlink_metadata(&chain).is_ok() {
        return;
    }
    let Ok(report) = kettle_verify::bundle::read_regular(
        "attestation report",
        &dir.join(EVIDENCE_FILE),
        kettle_verify::bundle::MAX_EVIDENCE_BYTES,
    ) else {
        return;
    };
    match crate::kds::KdsClient::new(crate::kds::AMD_KDS_URL).fetch_vcek_for_report(&report) {
        Ok(der) => {
            let pem = kettle_attest::chain::der_to_pem(&der);
            if let Err(e) = fs::write(&chain, pem) {
                log::warn!("cannot write {}: {e}", chain.display());
            }
        }
        Err(e) => log::warn!("no chain.pem from the guest, and the VCEK could not be fetched: {e}"),
    }
}

/// Copies the image manifest into the staging dir; refuses to write through
/// anything the output disk put there (a symlink named manifest.json).
pub(super) fn copy_manifest(manifest: &Path, staging: &Path) -> Result<(), BuildError> {
    let dest = staging.join(output::MANIFEST_FILE);
    if fs::symlink_metadata(&dest).is_ok() {
        fs::remove_file(&dest).map_err(io_err(dest.display().to_string()))?;
    }
    let bytes = fs::read(manifest).map_err(io_err(manifest.display().to_string()))?;
    fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .open(&dest)
        .and_then(|mut f| std::io::Write::write_all(&mut f, &bytes))
        .map_err(io_err(format!(
            "copying manifest.json to {}",
            dest.display()
        )))
}

/// The console's last lines, escaped (the guest wrote them) and read in bounded memory.
fn print_log_tail(path: &Path) {
    if let Ok(lines) = crate::console::log_tail(path, 20) {
        eprintln!("--- last console lines ({}) ---", path.display());
        for l in lines {
            eprintln!("{l}");
        }
    }
}

/// Largest status.json or error.json read from a build's output (the guest wrote them).
const MAX_REPORT_BYTES: u64 = 1 << 20;

/// The build's status.json, when it is one (a bounded read of a regular file).
pub(super) fn read_status(out: &Path) -> Option<kettle_wire::BuildStatus> {
    let path = out.join(STATUS_FILE);
    let bytes = kettle_verify::bundle::read_regular("status.json", &path, MAX_REPORT_BYTES).ok()?;
    serde_json::from_slice(&bytes).ok()
}

/// The build's error.json, when it is one (a bounded read of a regular file).
pub(super) fn read_error_report(out: &Path) -> Option<kettle_wire::ErrorReport> {
    let path = out.join(ERROR_FILE);
    let bytes = kettle_verify::bundle::read_regular("error.json", &path, MAX_REPORT_BYTES).ok()?;
    serde_json::from_slice(&bytes).ok()
}

/// error.json as the host shows it, for a VM build and `--local` alike: the step, the
/// input it names, and the message as plain text, once: its first line after the step,
/// each further line (a failed build's last output) indented behind `  | `. Every line
/// is escaped (the guest's words), and none of the host's lines begins with them.
pub(super) fn render_error_report(e: &kettle_wire::ErrorReport) -> String {
    let input = e
        .input
        .as_deref()
        .map(|i| format!(" (input {})", escape(i)))
        .unwrap_or_default();
    let mut lines = e.message.trim_end().lines();
    let mut out = format!(
        "step {}{input} failed: {}",
        e.step,
        escape(lines.next().unwrap_or(""))
    );
    for line in lines {
        out.push_str("\n  | ");
        out.push_str(&escape(line));
    }
    out
}

/// The last lines of a build: total time, the artifacts, and how to verify them.
pub(super) fn print_summary(started: Instant, out: &Path, verify: &str) {
    eprintln!("built in {}", human_duration(started.elapsed()));
    // The names are the guest's (status.json is not what was verified): escaped.
    for a in read_status(out).map(|s| s.artifacts).unwrap_or_default() {
        let path = out.join(output::ARTIFACTS_DIR).join(a);
        eprintln!("  artifact: {}", escape(&path.display().to_string()));
    }
    eprintln!("  provenance: {}", out.join("provenance.json").display());
    eprintln!("verify it with:\n  {verify}");
}

/// The `kettle verify` argv an auditor would run on this build's output.
fn verify_argv(opts: &BuildOptions, image: &Image, src: &ResolvedSource, tee: Tee) -> Vec<String> {
    let mut cmd = vec![
        "kettle".to_string(),
        "verify".into(),
        opts.out.display().to_string(),
        "--manifest".into(),
        image.manifest_path.display().to_string(),
    ];
    if tee == Tee::Simulated {
        cmd.push("--allow-simulated".into());
    }
    cmd.extend(["--repo".into(), src.repository.clone()]);
    cmd.extend(["--ref".into(), src.git_ref.clone()]);
    match &src.worktree {
        Some(dir) => cmd.extend(["--source".into(), dir.display().to_string()]),
        None => cmd.extend(["--commit".into(), src.commit.clone()]),
    }
    cmd
}

/// [`verify_argv`] as one shell command line.
pub(super) fn verify_command(argv: &[String]) -> String {
    argv.iter()
        .map(|a| shell_quote(a))
        .collect::<Vec<_>>()
        .join(" ")
}

/// `s` as one POSIX shell word (quoted only when it needs to be).
fn shell_quote(s: &str) -> String {
    if !s.is_empty()
        && s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"/._-+:=@,%".contains(&b))
    {
        s.to_string()
    } else {
        format!("'{}'", s.replace('\'', "'\\''"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_failed_builds_output_is_shown_as_plain_indented_lines() {
        let e = kettle_wire::ErrorReport {
            ok: false,
            step: kettle_wire::Step::Build,
            message: "build command [\"cargo\"] exit status: 101; last output:\nerror[E0432]: unresolved import `x`\n  --> src/main.rs:1:5\n\u{1b}[2J".into(),
            input: None,
        };
        assert_eq!(
            render_error_report(&e),
            "step build failed: build command [\"cargo\"] exit status: 101; last output:\n  | error[E0432]: unresolved import `x`\n  |   --> src/main.rs:1:5\n  | \\u{1b}[2J"
        );
    }
}
