use super::*;

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
    let recipe = Recipe::parse(&format!(
        "[build]\ntype = \"script/v1\"\noutputs = [\"o\"]\ncommand = [\"sh\", \"-c\", \"true\"]\n[rootfs]\nurl = \"https://h/r.tar\"\nsha256 = \"{}\"\n",
        "0".repeat(64)
    ))
    .unwrap();
    let dirs = BuildDirs {
        root: "/w/rootfs".into(),
        src: "/w/src".into(),
        home: "/w/home".into(),
        vendor: "/w/vendor".into(),
        toolchain: None,
        host_tools: false,
    };
    let limits = Limits {
        max_build_seconds: Some(60),
        max_memory_bytes: Some(1 << 30),
    };
    let spec = spec_for(
        &recipe,
        &dirs,
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
    assert_eq!(env("CARGO_HOME"), Some("/kettle-home/cargo"));
    assert_eq!(
        (spec.limits.wall_seconds, spec.limits.cpu_seconds),
        (60, 60)
    );
    assert_eq!(spec.limits.data_bytes, Some(1 << 30));
}
