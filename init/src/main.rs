//! kettle-init: the guest's PID 1, or `kettle-init --local DIR` to run the same
//! pipeline as an ordinary process.

use std::path::PathBuf;
use std::process::ExitCode;

use kettle_init::{boot, guest, request, run_local, LocalOptions, Tools};

const USAGE: &str = "usage: kettle-init                      (as PID 1 in the guest)
       kettle-init --local DIR [--out OUT] [--host-tools TOOLCHAIN_ROOT] [--ca-roots PEM]
  DIR holds request.json and the inputs in the cache layout (git/, source/, sha256/).
  OUT (default DIR/out) receives artifacts/, provenance.json, status.json or error.json.
  No report provider is used: local results are NOT hardware-attested.";

fn main() -> ExitCode {
    if boot::is_pid1() {
        guest::run_guest();
    }
    let args: Vec<String> = std::env::args().skip(1).collect();
    let mut dir = None;
    let mut out = None;
    let mut options = LocalOptions::default();
    let mut it = args.iter();
    while let Some(a) = it.next() {
        let mut value = |name: &str| {
            it.next()
                .cloned()
                .ok_or_else(|| format!("{name} needs a value"))
        };
        let r = match a.as_str() {
            "--local" => value("--local").map(|v| dir = Some(PathBuf::from(v))),
            "--out" => value("--out").map(|v| out = Some(PathBuf::from(v))),
            "--host-tools" => value("--host-tools").map(|v| {
                options.tools = Tools::Host {
                    toolchain_root: v.into(),
                }
            }),
            "--ca-roots" => value("--ca-roots").map(|v| options.ca_roots = v.into()),
            "-h" | "--help" => {
                println!("{USAGE}");
                return ExitCode::SUCCESS;
            }
            other => Err(format!("unknown argument {other:?}")),
        };
        if let Err(e) = r {
            eprintln!("kettle-init: {e}\n{USAGE}");
            return ExitCode::from(2);
        }
    }
    let Some(dir) = dir else {
        eprintln!("kettle-init: not PID 1 and no --local DIR given\n{USAGE}");
        return ExitCode::from(2);
    };
    boot::init_logger();
    let req = match std::fs::read(dir.join(request::REQUEST_ENTRY))
        .map_err(request::RequestError::from)
        .and_then(|b| request::parse_request(&b))
    {
        Ok(r) => r,
        Err(e) => {
            eprintln!(
                "kettle-init: {}: {e}",
                dir.join(request::REQUEST_ENTRY).display()
            );
            return ExitCode::from(2);
        }
    };
    let out = out.unwrap_or_else(|| dir.join("out"));
    match run_local(&req, &dir, None, &out, &options) {
        Ok(o) => {
            println!("built {} artifacts into {} (NOT hardware-attested: no report provider in local mode)", o.subjects.len(), out.display());
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("kettle-init: step {} failed: {}", e.step, e.message());
            ExitCode::from(1)
        }
    }
}
