//! Running `git`: never prompting, never reading the user's pager or editor, its
//! failure carrying the arguments and what git said.

use std::ffi::OsStr;
use std::path::Path;
use std::process::{Command, Stdio};

use kettle_wire::ObjectFormat;

use super::SourceError;

/// Runs git with `args` in `dir`, returning stdout.
pub(crate) fn git<I, S>(dir: Option<&Path>, args: I) -> Result<Vec<u8>, SourceError>
where
    I: IntoIterator<Item = S>,
    S: AsRef<OsStr>,
{
    let args: Vec<_> = args
        .into_iter()
        .map(|a| a.as_ref().to_os_string())
        .collect();
    let mut cmd = Command::new("git");
    if let Some(d) = dir {
        cmd.arg("-C").arg(d);
    }
    // Never prompt for credentials, never read the user's pager or editor.
    cmd.args(&args)
        .env("GIT_TERMINAL_PROMPT", "0")
        .stdin(Stdio::null());
    let out = cmd.output().map_err(SourceError::NoGit)?;
    if !out.status.success() {
        return Err(SourceError::Git {
            args: args
                .iter()
                .map(|a| a.to_string_lossy())
                .collect::<Vec<_>>()
                .join(" "),
            stderr: String::from_utf8_lossy(&out.stderr).trim().to_string(),
        });
    }
    Ok(out.stdout)
}

/// [`git`]'s output as one trimmed line.
pub(super) fn git_line<I, S>(dir: Option<&Path>, args: I) -> Result<String, SourceError>
where
    I: IntoIterator<Item = S>,
    S: AsRef<OsStr>,
{
    Ok(String::from_utf8_lossy(&git(dir, args)?).trim().to_string())
}
/// The repository's object format (sha1 when git does not say).
pub(super) fn object_format(dir: &Path) -> Result<ObjectFormat, SourceError> {
    match git_line(Some(dir), ["rev-parse", "--show-object-format"])?.as_str() {
        "" | "sha1" => Ok(ObjectFormat::Sha1),
        "sha256" => Ok(ObjectFormat::Sha256),
        other => Err(SourceError::Git {
            args: "rev-parse --show-object-format".into(),
            stderr: format!("object format {other:?} is neither sha1 nor sha256"),
        }),
    }
}
