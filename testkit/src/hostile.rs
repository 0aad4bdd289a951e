//! What a hostile host slips into a source archive beside the verified tree, shared by
//! the hostile-host tests of the guest's pipeline in-process and in the VM.

use crate::tarball::entry;

/// The file the hook of [`git_dir_with_fsmonitor`] creates if git ever obeys it.
pub const FSMONITOR_PWNED: &str = "/tmp/pwned";

/// Tar entries of a `.git/` directory whose config sets `core.fsmonitor` (a command git
/// runs: `touch` [`FSMONITOR_PWNED`]); the tree hash skips a top-level `.git`.
pub fn git_dir_with_fsmonitor() -> Vec<Vec<u8>> {
    let config = format!("[core]\n\tfsmonitor = touch {FSMONITOR_PWNED}\n");
    vec![
        entry(".git/", b'5', "", b""),
        entry(".git/config", b'0', "", config.as_bytes()),
    ]
}
