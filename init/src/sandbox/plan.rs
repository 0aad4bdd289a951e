//! The exec plan: everything the sandbox's processes need, computed by the
//! caller before it forks ([`prepare`]): mount points created, argv[0] found
//! in the sandbox's PATH, paths and arguments turned into C strings, execve's
//! pointer arrays built and the seccomp filters compiled. The children
//! (`sandbox/process.rs`) only read it: after the fork nothing may allocate.

use std::ffi::{c_char, CString};
use std::fs;
use std::path::{Path, PathBuf};

use super::seccomp;
use super::{SandboxError, SandboxSpec, BUILD_GID, BUILD_UID, DEV_NODES};

/// Pre-computed C strings so the children do not format paths.
pub(super) struct Prepared {
    pub(super) root: CString,
    pub(super) host_dirs: Vec<(CString, CString, Option<CString>)>, // (source, target-in-root, symlink target)
    pub(super) binds: Vec<(CString, CString, bool)>,
    pub(super) dev: CString,
    pub(super) dev_nodes: Vec<(CString, u64, u64, CString)>, // (node in root, major, minor, host node)
    pub(super) dev_links: Vec<(CString, CString)>,
    pub(super) proc_: CString,
    pub(super) tmp: CString,
    pub(super) exe: CString,
    /// The strings `argv_ptrs` points into: held, never read, so the pointers stay valid.
    #[expect(dead_code, reason = "owns the memory argv_ptrs points into")]
    argv: Vec<CString>,
    /// The strings `env_ptrs` points into (`KEY=value`).
    #[expect(dead_code, reason = "owns the memory env_ptrs points into")]
    env: Vec<CString>,
    /// execve's argv: pointers into `argv`, NULL-terminated (built before fork: no allocation after).
    pub(super) argv_ptrs: Vec<*const c_char>,
    /// execve's envp: pointers into `env`, NULL-terminated.
    pub(super) env_ptrs: Vec<*const c_char>,
    pub(super) cwd: CString,
    /// Set when not root: (uid_map line, gid_map line) for a user namespace.
    pub(super) rootless: Option<(String, String)>,
    /// The build's seccomp filters, compiled here so the child only installs them.
    pub(super) seccomp: Vec<seccompiler::BpfProgram>,
}

fn cstr(s: impl AsRef<[u8]>) -> Result<CString, SandboxError> {
    CString::new(s.as_ref().to_vec())
        .map_err(|_| SandboxError::Prepare("a path or argument contains NUL".into()))
}

fn inside(root: &Path, abs: &str) -> PathBuf {
    root.join(abs.trim_start_matches('/'))
}

/// Finds argv[0] in the sandbox's PATH by looking into the root (and host dirs) before forking.
fn resolve_exe(spec: &SandboxSpec) -> Result<String, SandboxError> {
    let prog = spec
        .argv
        .first()
        .ok_or_else(|| SandboxError::Prepare("empty argv".into()))?;
    if prog.contains('/') {
        return Ok(prog.clone());
    }
    let path = spec
        .env
        .iter()
        .find(|(k, _)| k == "PATH")
        .map(|(_, v)| v.as_str())
        .unwrap_or("/usr/bin:/bin");
    for dir in path.split(':').filter(|d| d.starts_with('/')) {
        let cand = format!("{}/{prog}", dir.trim_end_matches('/'));
        let mut places = vec![inside(&spec.root, &cand)];
        for b in &spec.binds {
            if let Some(rest) = cand.strip_prefix(&format!("{}/", b.target.trim_end_matches('/'))) {
                places.push(b.source.join(rest));
            }
        }
        if spec
            .host_dirs
            .iter()
            .any(|h| Path::new(&cand).starts_with(h))
        {
            places.push(PathBuf::from(&cand));
        }
        if places.iter().any(|p| p.is_file()) {
            return Ok(cand);
        }
    }
    Err(SandboxError::Prepare(format!(
        "{prog:?} is not found in the sandbox PATH {path}"
    )))
}

/// A NULL-terminated array of pointers to `strings`' bytes, for execve. The pointers stay
/// valid while `strings` is neither dropped nor changed: a CString's heap buffer does not
/// move when the Vec or the struct holding it moves.
fn exec_array(strings: &[CString]) -> Vec<*const c_char> {
    strings
        .iter()
        .map(|s| s.as_ptr())
        .chain(std::iter::once(std::ptr::null()))
        .collect()
}

/// Everything the children need, computed before forking (mount points created, argv[0] found).
pub(super) fn prepare(spec: &SandboxSpec) -> Result<Prepared, SandboxError> {
    let perr = |what: &str, e: std::io::Error| SandboxError::Prepare(format!("{what}: {e}"));
    let root = &spec.root;
    // Mount points must exist before the root is made read-only.
    for d in ["dev", "proc", "tmp"] {
        fs::create_dir_all(root.join(d)).map_err(|e| perr(d, e))?;
    }
    let mut host_dirs = Vec::new();
    for h in &spec.host_dirs {
        let target = inside(root, &h.to_string_lossy());
        let meta = match fs::symlink_metadata(h) {
            Ok(m) => m,
            Err(_) => continue, // e.g. no /lib64 on this host
        };
        let link = if meta.file_type().is_symlink() {
            Some(cstr(
                fs::read_link(h)
                    .map_err(|e| perr("host link", e))?
                    .as_os_str()
                    .as_encoded_bytes(),
            )?)
        } else {
            fs::create_dir_all(&target).map_err(|e| perr("host dir mount point", e))?;
            None
        };
        host_dirs.push((
            cstr(h.as_os_str().as_encoded_bytes())?,
            cstr(target.as_os_str().as_encoded_bytes())?,
            link,
        ));
    }
    let mut binds = Vec::new();
    for b in &spec.binds {
        let target = inside(root, &b.target);
        fs::create_dir_all(&target).map_err(|e| perr(&b.target, e))?;
        binds.push((
            cstr(b.source.as_os_str().as_encoded_bytes())?,
            cstr(target.as_os_str().as_encoded_bytes())?,
            b.writable,
        ));
    }
    let exe = resolve_exe(spec)?;
    let seccomp = seccomp::build_filters()?;
    let argv: Vec<CString> = spec.argv.iter().map(cstr).collect::<Result<_, _>>()?;
    let env: Vec<CString> = spec
        .env
        .iter()
        .map(|(k, v)| cstr(format!("{k}={v}")))
        .collect::<Result<_, _>>()?;
    let (argv_ptrs, env_ptrs) = (exec_array(&argv), exec_array(&env));
    Ok(Prepared {
        root: cstr(root.as_os_str().as_encoded_bytes())?,
        host_dirs,
        binds,
        dev: cstr(root.join("dev").as_os_str().as_encoded_bytes())?,
        dev_nodes: DEV_NODES
            .iter()
            .map(|(n, ma, mi)| {
                Ok((
                    cstr(root.join("dev").join(n).as_os_str().as_encoded_bytes())?,
                    *ma,
                    *mi,
                    cstr(format!("/dev/{n}"))?,
                ))
            })
            .collect::<Result<_, SandboxError>>()?,
        dev_links: [
            ("fd", "/proc/self/fd"),
            ("stdin", "/proc/self/fd/0"),
            ("stdout", "/proc/self/fd/1"),
            ("stderr", "/proc/self/fd/2"),
        ]
        .iter()
        .map(|(n, t)| {
            Ok((
                cstr(*t)?,
                cstr(root.join("dev").join(n).as_os_str().as_encoded_bytes())?,
            ))
        })
        .collect::<Result<_, SandboxError>>()?,
        proc_: cstr(root.join("proc").as_os_str().as_encoded_bytes())?,
        tmp: cstr(root.join("tmp").as_os_str().as_encoded_bytes())?,
        exe: cstr(&exe)?,
        argv,
        env,
        argv_ptrs,
        env_ptrs,
        cwd: cstr(&spec.cwd)?,
        rootless: (!nix::unistd::geteuid().is_root()).then(|| {
            // Map only the caller's own ids, as the build uid/gid inside.
            (
                format!("{BUILD_UID} {} 1\n", nix::unistd::geteuid()),
                format!("{BUILD_GID} {} 1\n", nix::unistd::getegid()),
            )
        }),
        seccomp,
    })
}
