use super::*;

/// A script/v1 recipe running `command` (a TOML array) in a pinned rootfs.
fn script_recipe(command: &str) -> Recipe {
    Recipe::parse(&format!(
        "[build]\ntype = \"script/v1\"\noutputs = [\"o\"]\ncommand = {command}\n[rootfs]\nurl = \"https://h/r.tar\"\nsha256 = \"{}\"\n",
        "0".repeat(64)
    ))
    .unwrap()
}

/// The directories of a script build under `/w`, with pinned tools.
fn script_dirs() -> BuildDirs {
    BuildDirs {
        root: "/w/rootfs".into(),
        src: "/w/src".into(),
        home: "/w/home".into(),
        vendor: "/w/vendor".into(),
        toolchain: None,
        host_tools: false,
    }
}

#[test]
fn one_endless_line_is_relayed_cut_and_memory_stays_bounded() {
    // 64 MiB without a newline, then two short lines.
    let endless = io::repeat(b'x').take(64 << 20);
    let rest: &[u8] = b"\nsecond\nthird";
    let mut lines = Vec::new();
    relay_lines(endless.chain(rest), MAX_LINE_BYTES, |l| {
        lines.push(l.to_string())
    })
    .unwrap();
    assert_eq!(
        lines.len(),
        3,
        "{:?}",
        lines.iter().map(String::len).collect::<Vec<_>>()
    );
    let marker = truncation_marker((64 << 20) - MAX_LINE_BYTES as u64);
    assert_eq!(lines[0].len(), MAX_LINE_BYTES + marker.len());
    assert!(
        lines[0].ends_with(&marker),
        "{}",
        &lines[0][MAX_LINE_BYTES..]
    );
    assert_eq!(lines[1..], ["second", "third"]);
    // Exactly at the limit nothing is cut; an empty line stays a line.
    let mut lines = Vec::new();
    let exact = format!("{}\n\nend\n", "y".repeat(MAX_LINE_BYTES));
    relay_lines(exact.as_bytes(), MAX_LINE_BYTES, |l| {
        lines.push(l.to_string())
    })
    .unwrap();
    assert_eq!(
        lines,
        ["y".repeat(MAX_LINE_BYTES), String::new(), "end".into()]
    );
}

#[test]
fn the_tail_keeps_the_last_lines_within_its_limit() {
    let mut t = Tail::new(20);
    for l in ["aaaaaaaaaa", "bbbbbbbbbb", "cccccccccc"] {
        t.push(l);
    }
    assert_eq!(t.joined(), "cccccccccc");
    t.push("d");
    assert_eq!(t.joined(), "cccccccccc\nd");
    let mut one = Tail::new(4);
    one.push("a line longer than the limit");
    assert_eq!(one.joined(), "a line longer than the limit");
}

#[test]
fn committer_time_is_read_from_the_commit_header() {
    let raw = b"tree 4b825dc642cb6eb9a060e54bf8d69288fbee4904\nauthor A <a@x> 1600000000 +0200\ncommitter C <c@x> 1700000000 -0500\n\ncommitter 5 +0000\n";
    assert_eq!(committer_time(raw), Some(1_700_000_000));
    assert_eq!(committer_time(b"tree x\n\nmessage"), None);
}

#[test]
fn a_script_build_sees_its_binds_environment_and_limits() {
    let recipe = script_recipe(r#"["sh", "-c", "true"]"#);
    let dirs = script_dirs();
    let limits = Limits {
        max_build_seconds: Some(60),
        max_memory_bytes: Some(1 << 30),
    };
    let spec = spec_for(
        &recipe,
        &dirs,
        "0123456789abcdef0123456789abcdef01234567",
        b"tree x\ncommitter C <c@x> 42 +0000\n\nm",
        &limits,
    );
    assert_eq!(spec.argv, ["sh", "-c", "true"]);
    assert_eq!(spec.cwd, SANDBOX_SRC);
    let targets: Vec<_> = spec
        .binds
        .iter()
        .map(|b| (b.target.as_str(), b.writable))
        .collect();
    assert_eq!(
        targets,
        [
            (SANDBOX_SRC, true),
            (SANDBOX_HOME, true),
            (SANDBOX_VENDOR, false)
        ]
    );
    assert!(spec.host_dirs.is_empty(), "the guest never binds host dirs");
    let env = |k: &str| {
        spec.env
            .iter()
            .find(|(n, _)| n == k)
            .map(|(_, v)| v.as_str())
    };
    assert_eq!(env("SOURCE_DATE_EPOCH"), Some("42"));
    assert_eq!(
        env("KETTLE_COMMIT"),
        Some("0123456789abcdef0123456789abcdef01234567")
    );
    assert_eq!(env("CARGO_HOME"), Some("/kettle-home/cargo"));
    assert_eq!(
        (spec.limits.wall_seconds, spec.limits.cpu_seconds),
        (60, 60)
    );
    assert_eq!(spec.limits.data_bytes, Some(1 << 30));
}

/// A sandbox on the host's own tools (local mode's `--host-tools` layout): an empty build
/// root, the host's /usr, /bin, ... read-only, and `work` writable at [`SANDBOX_SRC`]
/// (made writable for everyone here, since the build runs as [`BUILD_UID`]).
fn host_tools_spec(root: &Path, work: &Path, argv: &[&str]) -> SandboxSpec {
    use std::os::unix::fs::PermissionsExt;
    fs::set_permissions(work, fs::Permissions::from_mode(0o777)).unwrap();
    SandboxSpec {
        root: root.to_path_buf(),
        host_dirs: HOST_TOOL_DIRS.iter().map(PathBuf::from).collect(),
        binds: vec![Bind {
            source: work.to_path_buf(),
            target: SANDBOX_SRC.into(),
            writable: true,
        }],
        argv: argv.iter().map(|s| s.to_string()).collect(),
        env: vec![("PATH".into(), "/usr/bin:/bin".into())],
        cwd: SANDBOX_SRC.into(),
        limits: SandboxLimits {
            wall_seconds: 60,
            cpu_seconds: 60,
            data_bytes: None,
            file_bytes: 1 << 30,
            processes: 4096,
            open_files: 1024,
        },
    }
}

#[test]
fn a_sandboxed_build_cannot_open_vsock_or_netlink_sockets_but_can_open_unix_and_inet_ones() {
    // The network namespace does not cover AF_VSOCK (the way out to the VM host) nor
    // netlink: only AF_UNIX, AF_INET and AF_INET6 may be created. perl's socket() takes
    // the raw family numbers, so nothing but the kernel's answer decides each line.
    let tmp = tempfile::tempdir().unwrap();
    let (root, work) = (tmp.path().join("root"), tmp.path().join("work"));
    fs::create_dir_all(&root).unwrap();
    fs::create_dir_all(&work).unwrap();
    let families = [
        ("AF_UNIX", nix::libc::AF_UNIX),
        ("AF_INET", nix::libc::AF_INET),
        ("AF_INET6", nix::libc::AF_INET6),
        ("AF_VSOCK", nix::libc::AF_VSOCK),
        ("AF_NETLINK", nix::libc::AF_NETLINK),
    ];
    let probes: String = families
        .iter()
        .map(|(name, af)| {
            format!(
                "print F socket(S, {af}, {}, 0) ? \"{name} OPEN\\n\" : \"{name} denied: $!\\n\"; close S;",
                if *af == nix::libc::AF_NETLINK { nix::libc::SOCK_RAW } else { nix::libc::SOCK_STREAM }
            )
        })
        .collect();
    let pair = format!(
        "print F socketpair(A, B, {}, {}, 0) ? \"pair OPEN\\n\" : \"pair denied: $!\\n\";",
        nix::libc::AF_VSOCK,
        nix::libc::SOCK_STREAM
    );
    let script = format!("open(F, '>', 'probe.txt') or die; {probes} {pair} close F;");
    run(&host_tools_spec(&root, &work, &["perl", "-e", &script])).unwrap();
    let probe = fs::read_to_string(work.join("probe.txt")).unwrap();
    let refused = "denied: Address family not supported by protocol\n";
    for name in ["AF_VSOCK", "AF_NETLINK", "pair"] {
        assert!(
            probe.contains(&format!("{name} {refused}")),
            "{name}:\n{probe}"
        );
    }
    for name in ["AF_UNIX", "AF_INET", "AF_INET6"] {
        assert!(
            probe.contains(&format!("{name} OPEN\n")),
            "{name}:\n{probe}"
        );
    }
}

/// This test binary's allocator: the system's, plus a count of every allocation made in a
/// forked child before it execs (see [`allocations_after_fork`]). An allocation there can
/// deadlock when another thread of the parent held the allocator's lock at the fork.
mod fork_checked_alloc {
    use std::alloc::{GlobalAlloc, Layout, System};
    use std::sync::atomic::{AtomicBool, AtomicPtr, AtomicU64, Ordering};
    use std::sync::Once;

    /// Set by the pthread_atfork child handler: this process is a fork that has not exec'd.
    static IN_FORKED_CHILD: AtomicBool = AtomicBool::new(false);
    /// A MAP_SHARED page holding the count, so a forked child's increments reach the parent.
    static COUNT: AtomicPtr<AtomicU64> = AtomicPtr::new(std::ptr::null_mut());
    static SETUP: Once = Once::new();

    struct ForkChecked;

    // SAFETY: every call is forwarded unchanged to the system allocator; the bookkeeping
    // only loads a flag and bumps an atomic in a page that is never unmapped.
    unsafe impl GlobalAlloc for ForkChecked {
        unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
            note();
            // SAFETY: the caller's contract for `layout` is passed on as is.
            unsafe { System.alloc(layout) }
        }
        unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
            note();
            // SAFETY: as in `alloc`.
            unsafe { System.alloc_zeroed(layout) }
        }
        unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
            note();
            // SAFETY: as in `alloc`; `ptr` came from this allocator, i.e. from System.
            unsafe { System.realloc(ptr, layout, new_size) }
        }
        unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
            note();
            // SAFETY: `ptr` came from this allocator, i.e. from System, with `layout`.
            unsafe { System.dealloc(ptr, layout) }
        }
    }

    #[global_allocator]
    static ALLOCATOR: ForkChecked = ForkChecked;

    fn note() {
        if IN_FORKED_CHILD.load(Ordering::Relaxed) {
            let count = COUNT.load(Ordering::Relaxed);
            if !count.is_null() {
                // SAFETY: `count` points into the shared page `start` mapped and never unmaps.
                unsafe { (*count).fetch_add(1, Ordering::Relaxed) };
            }
        }
    }

    extern "C" fn in_child() {
        IN_FORKED_CHILD.store(true, Ordering::Relaxed);
    }

    /// Starts counting (once per process); returns the count so far.
    pub(super) fn allocations_after_fork() -> u64 {
        SETUP.call_once(|| {
            // SAFETY: a fresh anonymous shared mapping (no file, no existing memory
            // touched); checked for MAP_FAILED before use.
            let page = unsafe {
                nix::libc::mmap(
                    std::ptr::null_mut(),
                    4096,
                    nix::libc::PROT_READ | nix::libc::PROT_WRITE,
                    nix::libc::MAP_SHARED | nix::libc::MAP_ANONYMOUS,
                    -1,
                    0,
                )
            };
            assert_ne!(page, nix::libc::MAP_FAILED, "mmap a shared page");
            COUNT.store(page.cast(), Ordering::SeqCst);
            // SAFETY: registers a handler that only stores to an atomic (async-signal-safe),
            // run by libc in each forked child.
            let r = unsafe { nix::libc::pthread_atfork(None, None, Some(in_child)) };
            assert_eq!(r, 0, "pthread_atfork");
        });
        // SAFETY: set above, never unmapped.
        unsafe { (*COUNT.load(Ordering::SeqCst)).load(Ordering::SeqCst) }
    }
}

#[test]
fn the_sandbox_children_never_allocate_between_fork_and_exec() {
    // A fork copies one thread of a multi-threaded parent: an allocator lock another
    // thread held stays held in the child, so a child that allocates before exec can
    // hang. Every path through the sandbox's children is run here with each allocation
    // they make counted (fork_checked_alloc): a build that execs, a command that cannot
    // be exec'd, and a setup step that fails (die's message).
    let before = fork_checked_alloc::allocations_after_fork();
    let tmp = tempfile::tempdir().unwrap();
    let (root, work) = (tmp.path().join("root"), tmp.path().join("work"));
    fs::create_dir_all(&root).unwrap();
    fs::create_dir_all(&work).unwrap();
    // Meanwhile other threads allocate without pause, as the test harness's or a reader's would.
    let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let churn: Vec<_> = (0..2)
        .map(|_| {
            let stop = Arc::clone(&stop);
            std::thread::spawn(move || {
                while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                    std::hint::black_box(vec![0u8; 4096]);
                }
            })
        })
        .collect();
    let ok = host_tools_spec(&root, &work, &["true"]);
    let no_exe = host_tools_spec(&root, &work, &["/nonexistent/build-command"]);
    let mut no_cwd = host_tools_spec(&root, &work, &["true"]);
    no_cwd.cwd = "/nonexistent-dir".into();
    for _ in 0..5 {
        run(&ok).unwrap();
        match run(&no_exe) {
            Err(SandboxError::Setup(m)) => {
                assert_eq!(
                    m,
                    "exec the build command: ENOENT: No such file or directory"
                )
            }
            other => panic!("expected an exec setup failure, got {other:?}"),
        }
        match run(&no_cwd) {
            Err(SandboxError::Setup(m)) => {
                assert!(m.starts_with("chdir to the build directory: ENOENT"), "{m}")
            }
            other => panic!("expected a chdir setup failure, got {other:?}"),
        }
    }
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    for t in churn {
        t.join().unwrap();
    }
    let after = fork_checked_alloc::allocations_after_fork();
    assert_eq!(
        after - before,
        0,
        "the sandbox's children allocated {} times between fork and exec",
        after - before
    );
}

#[test]
fn the_build_time_limit_is_the_requests_number_above_or_below_an_hour() {
    // `kettle build --timeout` reaches the guest as limits.max_build_seconds; the sandbox's
    // wall-clock and CPU limits are that number, with no cap of its own.
    let recipe = script_recipe(r#"["true"]"#);
    let dirs = script_dirs();
    for (asked, enforced) in [
        (Some(7200), 7200),
        (Some(30), 30),
        (None, kettle_wire::request::DEFAULT_BUILD_SECONDS),
    ] {
        let limits = Limits {
            max_build_seconds: asked,
            max_memory_bytes: None,
        };
        let spec = spec_for(&recipe, &dirs, "c0ffee", b"tree x\n\nm", &limits);
        assert_eq!(
            (spec.limits.wall_seconds, spec.limits.cpu_seconds),
            (enforced, enforced),
            "{asked:?}"
        );
    }
    assert_eq!(
        SandboxError::TimedOut(7200).to_string(),
        "build exceeded its 7200 s time limit and was killed (the request's limits.max_build_seconds: raise `kettle build --timeout`)"
    );
}

#[test]
fn the_recipes_home_files_never_follow_a_link_left_in_the_home() {
    let tmp = tempfile::tempdir().unwrap();
    let outside = tmp.path().join("outside");
    fs::create_dir_all(&outside).unwrap();
    let dirs = BuildDirs {
        root: tmp.path().join("rootfs"),
        src: tmp.path().join("src"),
        home: tmp.path().join("home"),
        vendor: tmp.path().join("vendor"),
        toolchain: None,
        host_tools: false,
    };
    for d in [&dirs.src, &dirs.home] {
        fs::create_dir_all(d).unwrap();
    }
    let recipe = script_recipe(r#"["true"]"#);
    // A reused work dir where an earlier build made home/cargo a link out of the home.
    std::os::unix::fs::symlink(&outside, dirs.home.join("cargo")).unwrap();
    let err = prepare_dirs(&recipe, &dirs).unwrap_err();
    assert!(
        err.to_string()
            .contains("the recipe's files in the build home"),
        "{err}"
    );
    assert!(
        !outside.join("config.toml").exists(),
        "kettle-init wrote through the link"
    );
    // A link as the file itself is replaced, not followed.
    fs::remove_file(dirs.home.join("cargo")).unwrap();
    fs::create_dir_all(dirs.home.join("cargo")).unwrap();
    std::os::unix::fs::symlink(outside.join("target"), dirs.home.join("cargo/config.toml"))
        .unwrap();
    prepare_dirs(&recipe, &dirs).unwrap();
    assert!(!outside.join("target").exists());
    let written = dirs.home.join("cargo/config.toml");
    assert!(fs::symlink_metadata(&written).unwrap().is_file());
    assert!(fs::read_to_string(&written)
        .unwrap()
        .contains("vendored-sources"));
}
