//! `kettle`: the host CLI. Boots a build CVM with one command, recomputes launch
//! digests and verifies build evidence offline. Each subcommand is a module in
//! `cmd/`, a thin sequence of steps over the libraries.

use std::process::ExitCode;

use clap::{CommandFactory, Parser, Subcommand};

mod cmd;

pub use kettle::console::print_stdout;
pub use kettle::EXIT_CANNOT_RUN;

#[derive(Parser)]
#[command(
    name = "kettle",
    version = concat!(env!("CARGO_PKG_VERSION"), " (commit ", env!("KETTLE_COMMIT"), ")"),
    about,
    long_about = None
)]
struct Cli {
    /// Log more (repeat for more detail).
    #[arg(short, long, action = clap::ArgAction::Count, global = true)]
    verbose: u8,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
#[allow(clippy::large_enum_variant)] // parsed once per run
enum Command {
    /// Write a kettle.toml for a cargo project, pinned to the image's bundles.
    Init(cmd::init::InitArgs),
    /// Build a project inside a confidential VM and collect its attested outputs.
    Build(cmd::build::BuildArgs),
    /// Compute the SNP launch digest of an image (same inputs and answer as sev-snp-measure).
    Measure(cmd::measure::MeasureArgs),
    /// Verify a build's evidence against the whole trust chain.
    Verify(cmd::verify::VerifyArgs),
    /// Build the initramfs and the image manifest.
    Image(cmd::image::ImageArgs),
    /// Write a verification policy for an image.
    #[command(subcommand)]
    Policy(cmd::policy::PolicyCommand),
    /// Bundle manifests and pins (used by `make bundles`).
    #[command(subcommand)]
    Bundle(cmd::bundle::BundleCommand),
    /// Shell completions and man pages from this CLI's definition (used by `make dist`).
    #[command(subcommand, hide = true)]
    Generate(cmd::generate::GenerateCommand),
}

/// A command's exit code: success, or its error on stderr after `command: ` and
/// [`EXIT_CANNOT_RUN`].
pub fn exit_code<E: std::fmt::Display>(command: &str, result: Result<(), E>) -> ExitCode {
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("{command}: {e}");
            ExitCode::from(EXIT_CANNOT_RUN)
        }
    }
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let level = match cli.verbose {
        0 => log::LevelFilter::Info,
        1 => log::LevelFilter::Debug,
        _ => log::LevelFilter::Trace,
    };
    // No escape codes where nobody reads them as colors: CI logs, pipes, NO_COLOR, TERM=dumb.
    let color = if kettle::console::stderr_is_fancy() {
        simplelog::ColorChoice::Auto
    } else {
        simplelog::ColorChoice::Never
    };
    let _ = simplelog::TermLogger::init(
        level,
        simplelog::Config::default(),
        simplelog::TerminalMode::Stderr,
        color,
    );
    match cli.command {
        Command::Init(args) => cmd::init::run(args),
        Command::Build(args) => cmd::build::run(args),
        Command::Measure(args) => cmd::measure::run(args),
        Command::Verify(args) => cmd::verify::run(args),
        Command::Image(args) => cmd::image::run(args),
        Command::Policy(cmd) => cmd::policy::run(cmd),
        Command::Bundle(cmd) => cmd::bundle::run(cmd),
        Command::Generate(cmd) => cmd::generate::run(cmd, Cli::command()),
    }
}
