//! kettle-init: the guest's PID 1, or `kettle-init --local DIR` to run the same
//! pipeline as an ordinary process (how `kettle build --local` runs it).

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use kettle_init::steps::boot;
use kettle_init::{guest, run_local, LocalOptions, Tools};
use kettle_wire::request::{parse_request, RequestError, REQUEST_ENTRY};

const USAGE: &str = "usage: kettle-init                      (as PID 1 in the guest)
       kettle-init --local DIR [--out OUT] [--work WORK] [--host-tools TOOLCHAIN_ROOT] [--ca-roots PEM]
  DIR holds request.json and the inputs in the cache layout (git/, source/, sha256/).
  OUT (default DIR/out; empty or absent) receives artifacts/, provenance.json, status.json or error.json.
  WORK (default a temporary dir, removed afterwards; empty or absent) is the scratch directory.
  --host-tools builds with this host's /usr, /bin, /lib... and the toolchain at TOOLCHAIN_ROOT (NOT verified).
  --ca-roots is the PEM of CA roots trusted in upstream mode (default the host's bundle).
  No report provider is used: local results are NOT hardware-attested.
  Exit status: 0 built, 1 the build failed (OUT/error.json says why), 2 could not run.";

/// Exit status: the build failed at a step (error.json written).
const BUILD_FAILED: u8 = 1;
/// Exit status: could not run (usage, unreadable request, unusable directories).
const COULD_NOT_RUN: u8 = 2;

/// The parsed `--local` command line.
struct Args {
    dir: PathBuf,
    out: Option<PathBuf>,
    options: LocalOptions,
}

/// `Ok(None)`: --help was asked for.
fn parse_args(args: &[String]) -> Result<Option<Args>, String> {
    let mut dir = None;
    let mut out = None;
    let mut options = LocalOptions::default();
    let mut it = args.iter();
    while let Some(a) = it.next() {
        let mut value = || {
            it.next()
                .map(PathBuf::from)
                .ok_or_else(|| format!("{a} needs a value"))
        };
        match a.as_str() {
            "--local" => dir = Some(value()?),
            "--out" => out = Some(value()?),
            "--work" => options.work_dir = Some(value()?),
            "--host-tools" => {
                options.tools = Tools::Host {
                    toolchain_root: value()?,
                }
            }
            "--ca-roots" => options.ca_roots = value()?,
            "-h" | "--help" => return Ok(None),
            other => return Err(format!("unknown argument {other:?}")),
        }
    }
    let dir = dir.ok_or("not PID 1 and no --local DIR given")?;
    Ok(Some(Args { dir, out, options }))
}

/// Refuses a directory that exists and is not empty (results and scratch never mix with older ones).
fn empty_or_absent(what: &str, dir: &Path) -> Result<(), String> {
    match std::fs::read_dir(dir).map(|mut entries| entries.next().is_none()) {
        Ok(true) => Ok(()),
        Ok(false) => Err(format!(
            "{what} {} is not empty; give an empty or new directory",
            dir.display()
        )),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
        Err(e) => Err(format!("{what} {}: {e}", dir.display())),
    }
}

fn main() -> ExitCode {
    if boot::is_pid1() {
        guest::run_guest();
    }
    let args: Vec<String> = std::env::args().skip(1).collect();
    let args = match parse_args(&args) {
        Ok(Some(a)) => a,
        Ok(None) => {
            println!("{USAGE}");
            return ExitCode::SUCCESS;
        }
        Err(e) => {
            eprintln!("kettle-init: {e}\n{USAGE}");
            return ExitCode::from(COULD_NOT_RUN);
        }
    };
    boot::init_logger();
    let request_path = args.dir.join(REQUEST_ENTRY);
    let request = match std::fs::read(&request_path)
        .map_err(RequestError::from)
        .and_then(|b| parse_request(&b))
    {
        Ok(r) => r,
        Err(e) => {
            eprintln!("kettle-init: {}: {e}", request_path.display());
            return ExitCode::from(COULD_NOT_RUN);
        }
    };
    let out = args.out.unwrap_or_else(|| args.dir.join("out"));
    let work = args.options.work_dir.as_deref();
    let usable = empty_or_absent("--out", &out)
        .and_then(|()| work.map_or(Ok(()), |w| empty_or_absent("--work", w)));
    if let Err(e) = usable {
        eprintln!("kettle-init: {e}");
        return ExitCode::from(COULD_NOT_RUN);
    }
    match run_local(&request, &args.dir, None, &out, &args.options) {
        Ok(o) => {
            println!(
                "built {} artifacts into {} (NOT hardware-attested: no report provider in local mode)",
                o.subjects.len(),
                out.display()
            );
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("kettle-init: step {} failed: {}", e.step, e.message());
            ExitCode::from(BUILD_FAILED)
        }
    }
}
