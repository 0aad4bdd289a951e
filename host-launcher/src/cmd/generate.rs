//! `kettle generate` (hidden; `make dist` runs it): shell completions and man
//! pages rendered from the CLI's own clap definition, so a release's
//! documentation never drifts from the binary it ships with. Every file is
//! rendered in memory and written whole; the same binary writes the same bytes
//! every time (no dates, no paths).

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use clap::{Args, Subcommand};
use clap_complete::Shell;

/// The name completions and man pages are written for.
const BIN_NAME: &str = "kettle";
/// The shells `kettle generate completions` writes when none is named.
const DEFAULT_SHELLS: [Shell; 3] = [Shell::Bash, Shell::Zsh, Shell::Fish];

/// `kettle generate ...`.
#[derive(Subcommand, Debug)]
pub enum GenerateCommand {
    /// Shell completions (kettle.bash, _kettle, kettle.fish by default).
    Completions(CompletionsArgs),
    /// One man page per subcommand (kettle.1, kettle-build.1, ...).
    Man(ManArgs),
}

/// Options of `kettle generate completions`.
#[derive(Args, Debug)]
pub struct CompletionsArgs {
    /// A shell to write completions for (repeatable; default: bash, zsh and fish).
    #[arg(long, value_enum)]
    pub shell: Vec<Shell>,
    /// The directory to write them to (created if missing).
    #[arg(long, value_name = "DIR")]
    pub out: PathBuf,
}

/// Options of `kettle generate man`.
#[derive(Args, Debug)]
pub struct ManArgs {
    /// The directory to write the pages to (created if missing).
    #[arg(long, value_name = "DIR")]
    pub out: PathBuf,
}

/// Why a file could not be generated.
#[derive(Debug, thiserror::Error)]
pub enum GenerateError {
    /// Writing a file (or creating its directory) failed.
    #[error("cannot write {path}: {source} (check that the --out directory is writable)")]
    Write {
        /// The file or directory.
        path: PathBuf,
        /// Why.
        #[source]
        source: std::io::Error,
    },
}

/// Runs `kettle generate`; `cli` is the whole CLI's definition.
pub fn run(command: GenerateCommand, cli: clap::Command) -> ExitCode {
    match command {
        GenerateCommand::Completions(args) => {
            let shells = if args.shell.is_empty() {
                DEFAULT_SHELLS.to_vec()
            } else {
                args.shell
            };
            let files = completions(&cli, &shells);
            crate::exit_code("kettle generate completions", write_all(&args.out, &files))
        }
        GenerateCommand::Man(args) => crate::exit_code(
            "kettle generate man",
            man_pages(&cli).and_then(|files| write_all(&args.out, &files)),
        ),
    }
}

/// The completion scripts for `shells`: (file name, bytes), in the order given.
pub fn completions(cli: &clap::Command, shells: &[Shell]) -> Vec<(String, Vec<u8>)> {
    use clap_complete::Generator;
    shells
        .iter()
        .map(|shell| {
            let mut bytes = Vec::new();
            clap_complete::generate(*shell, &mut cli.clone(), BIN_NAME, &mut bytes);
            (shell.file_name(BIN_NAME), bytes)
        })
        .collect()
}

/// One man page for the command and one for each visible subcommand, at every depth:
/// (file name, bytes), sorted by file name.
pub fn man_pages(cli: &clap::Command) -> Result<Vec<(String, Vec<u8>)>, GenerateError> {
    // As clap_mangen::generate_to does, but into memory: display names
    // (kettle-policy-init) are set when the command is built.
    let mut root = cli.clone().bin_name(BIN_NAME).disable_help_subcommand(true);
    root.build();
    let mut pages = Vec::new();
    let mut stack = vec![root];
    while let Some(cmd) = stack.pop() {
        stack.extend(cmd.get_subcommands().filter(|s| !s.is_hide_set()).cloned());
        let man = clap_mangen::Man::new(cmd);
        let mut bytes = Vec::new();
        man.render(&mut bytes)
            .map_err(|source| GenerateError::Write {
                path: man.get_filename().into(),
                source,
            })?;
        pages.push((man.get_filename(), bytes));
    }
    pages.sort();
    Ok(pages)
}

/// Writes each file into `dir`, each through a temporary name then renamed, so a
/// file is either the old one or the whole new one.
fn write_all(dir: &Path, files: &[(String, Vec<u8>)]) -> Result<(), GenerateError> {
    let fail = |path: &Path| {
        let path = path.to_path_buf();
        move |source| GenerateError::Write { path, source }
    };
    std::fs::create_dir_all(dir).map_err(fail(dir))?;
    for (name, bytes) in files {
        let path = dir.join(name);
        let tmp = dir.join(format!(".{name}.tmp"));
        std::fs::write(&tmp, bytes).map_err(fail(&tmp))?;
        std::fs::rename(&tmp, &path).map_err(fail(&path))?;
        crate::print_stdout(&path.display().to_string());
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::CommandFactory;

    fn names(files: &[(String, Vec<u8>)]) -> Vec<&str> {
        files.iter().map(|(n, _)| n.as_str()).collect()
    }

    #[test]
    fn man_pages_cover_every_visible_subcommand_and_render_the_same_bytes_twice() {
        let cli = crate::Cli::command();
        let pages = man_pages(&cli).unwrap();
        let names = names(&pages);
        for want in [
            "kettle.1",
            "kettle-build.1",
            "kettle-verify.1",
            "kettle-measure.1",
            "kettle-init.1",
            "kettle-policy.1",
            "kettle-policy-init.1",
        ] {
            assert!(names.contains(&want), "{want} missing from {names:?}");
        }
        assert!(
            !names.iter().any(|n| n.starts_with("kettle-generate")),
            "the hidden generator has no page: {names:?}"
        );
        let mut sorted = names.clone();
        sorted.sort_unstable();
        assert_eq!(names, sorted);
        assert_eq!(pages, man_pages(&cli).unwrap(), "deterministic");
        let build = &pages.iter().find(|(n, _)| n == "kettle-build.1").unwrap().1;
        let text = String::from_utf8_lossy(build);
        assert!(text.starts_with(".ie \\n(.g .ds Aq"), "{text}");
        assert!(text.contains("kettle\\-build"), "{text}");
        assert!(
            !text.contains("/home/") && !text.contains("/work/"),
            "{text}"
        );
    }

    #[test]
    fn completions_are_written_for_bash_zsh_and_fish_the_same_twice() {
        let cli = crate::Cli::command();
        let files = completions(&cli, &DEFAULT_SHELLS);
        assert_eq!(names(&files), ["kettle.bash", "_kettle", "kettle.fish"]);
        for (name, bytes) in &files {
            let text = String::from_utf8_lossy(bytes);
            for sub in ["build", "verify", "measure", "policy"] {
                assert!(text.contains(sub), "{name} lacks {sub}");
            }
        }
        assert_eq!(files, completions(&cli, &DEFAULT_SHELLS));
    }

    #[test]
    fn files_are_written_whole_into_a_new_directory() {
        let dir = tempfile::tempdir().unwrap();
        let out = dir.path().join("a/b");
        write_all(&out, &[("x.1".into(), b"page".to_vec())]).unwrap();
        assert_eq!(std::fs::read(out.join("x.1")).unwrap(), b"page");
        assert_eq!(std::fs::read_dir(&out).unwrap().count(), 1, "no temp left");
        let blocked = dir.path().join("file");
        std::fs::write(&blocked, b"").unwrap();
        let err = write_all(&blocked.join("sub"), &[]).unwrap_err();
        assert!(err.to_string().contains("--out directory"), "{err}");
    }
}
