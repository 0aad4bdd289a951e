use super::*;

/// An initramfs of `init` (0755) and `etc/kettle/ca-roots.pem` (0644).
fn init_and_roots() -> Initramfs {
    let mut fs = Initramfs::new();
    fs.file("init", 0o755, b"#!init".to_vec()).unwrap();
    fs.file("etc/kettle/ca-roots.pem", 0o644, b"pem".to_vec())
        .unwrap();
    fs
}

#[test]
fn reads_back_one_file() {
    let fs = init_and_roots();
    let bytes = fs.to_bytes();
    assert_eq!(
        read_file(&bytes, "/init").unwrap().as_deref(),
        Some(&b"#!init"[..])
    );
    assert_eq!(
        read_file(&bytes, "etc/kettle/ca-roots.pem")
            .unwrap()
            .as_deref(),
        Some(&b"pem"[..])
    );
    assert_eq!(
        read_file(&bytes, "etc").unwrap(),
        None,
        "a directory is not a file"
    );
    assert_eq!(read_file(&bytes, "nope").unwrap(), None);
    assert!(matches!(
        read_file(&bytes[..50], "init"),
        Err(CpioError::Malformed(_))
    ));
    assert!(matches!(read_file(b"garbage garbage garbage garbage garbage garbage garbage garbage garbage garbage garbage garbage garbage garbage", "init"), Err(CpioError::Malformed(_))));
}

#[test]
fn lists_every_entry_in_archive_order() {
    let mut fs = init_and_roots();
    fs.char_device("dev/console", 0o600, 5, 1).unwrap();
    let listed = list(&fs.to_bytes()).unwrap();
    let built = fs.entries();
    assert_eq!(
        listed
            .iter()
            .map(|e| (e.path.as_str(), e.mode, e.data.len()))
            .collect::<Vec<_>>(),
        built
            .iter()
            .map(|e| (e.path.as_str(), e.mode, e.data_len))
            .collect::<Vec<_>>()
    );
    let init = listed.iter().find(|e| e.path == "init").unwrap();
    assert!(init.is_file());
    assert_eq!(init.data, b"#!init");
    assert!(!listed.iter().find(|e| e.path == "etc").unwrap().is_file());
    assert!(list(&fs.to_bytes()[..200]).is_err());
}
use std::process::{Command, Stdio};

/// A parsed newc header, for checking layouts field by field.
#[derive(Debug)]
struct Header {
    fields: [u32; 13],
    name: String,
    data: Vec<u8>,
}

/// Parses a whole archive, asserting padding and magic as it goes.
fn parse(bytes: &[u8]) -> Vec<Header> {
    let mut pos = 0;
    let mut out = Vec::new();
    loop {
        assert_eq!(pos % 4, 0, "entry must start 4-byte aligned");
        assert_eq!(&bytes[pos..pos + 6], MAGIC);
        let mut fields = [0u32; 13];
        for (i, f) in fields.iter_mut().enumerate() {
            let s = std::str::from_utf8(&bytes[pos + 6 + i * 8..pos + 14 + i * 8]).unwrap();
            assert!(
                s.chars().all(|c| c.is_ascii_hexdigit()),
                "field {i} = {s:?}"
            );
            *f = u32::from_str_radix(s, 16).unwrap();
        }
        let namesize = fields[11] as usize;
        let name_start = pos + HEADER_LEN;
        assert_eq!(
            bytes[name_start + namesize - 1],
            0,
            "name is NUL-terminated"
        );
        let name =
            String::from_utf8(bytes[name_start..name_start + namesize - 1].to_vec()).unwrap();
        let mut p = name_start + namesize;
        let name_pad = pad4(HEADER_LEN + namesize);
        assert!(bytes[p..p + name_pad].iter().all(|b| *b == 0));
        p += name_pad;
        let size = fields[6] as usize;
        let data = bytes[p..p + size].to_vec();
        p += size;
        let data_pad = pad4(size);
        assert!(bytes[p..p + data_pad].iter().all(|b| *b == 0));
        p += data_pad;
        pos = p;
        let done = name == TRAILER;
        out.push(Header { fields, name, data });
        if done {
            assert_eq!(pos, bytes.len(), "nothing after the trailer");
            return out;
        }
    }
}

fn sample() -> Initramfs {
    let mut fs = Initramfs::new();
    fs.file("/init", 0o755, b"#!init\n".to_vec()).unwrap();
    fs.file("etc/kettle/ca-roots.pem", 0o644, b"PEM".to_vec())
        .unwrap();
    fs.dir("proc").unwrap();
    fs.dir_with_mode("tmp", 0o1777).unwrap();
    fs
}

#[test]
fn layout_field_by_field() {
    let bytes = sample().to_bytes();
    let entries = parse(&bytes);
    let names: Vec<_> = entries.iter().map(|e| e.name.as_str()).collect();
    assert_eq!(
        names,
        [
            "etc",
            "etc/kettle",
            "etc/kettle/ca-roots.pem",
            "init",
            "proc",
            "tmp",
            TRAILER
        ]
    );
    for (i, e) in entries[..6].iter().enumerate() {
        let f = e.fields;
        assert_eq!(f[0], i as u32 + 1, "inode of {}", e.name);
        assert_eq!((f[2], f[3]), (0, 0), "uid/gid of {}", e.name);
        assert_eq!(f[5], 0, "mtime of {}", e.name);
        assert_eq!(
            (f[7], f[8], f[9], f[10]),
            (0, 0, 0, 0),
            "devices of {}",
            e.name
        );
        assert_eq!(f[11] as usize, e.name.len() + 1);
        assert_eq!(f[12], 0, "check field");
        assert_eq!(f[6] as usize, e.data.len());
    }
    let init = &entries[3];
    assert_eq!(init.fields[1], 0o100755);
    assert_eq!(init.fields[4], 1, "files have nlink 1");
    assert_eq!(init.data, b"#!init\n");
    assert_eq!(entries[0].fields[1], 0o040755);
    assert_eq!(entries[0].fields[4], 2, "dirs have nlink 2");
    assert_eq!(entries[5].fields[1], 0o041777);
    let trailer = &entries[6];
    assert_eq!(trailer.fields[..6], [0, 0, 0, 0, 1, 0]);
    assert_eq!(trailer.fields[6], 0);
    // First header written out literally: magic, ino 1, dir 0755, nlink 2, namesize 4.
    let first = std::str::from_utf8(&bytes[..HEADER_LEN]).unwrap();
    let expected = [
        "070701", "00000001", "000041ED", "00000000", "00000000", "00000002", "00000000",
        "00000000", "00000000", "00000000", "00000000", "00000000", "00000004", "00000000",
    ]
    .concat();
    assert_eq!(first, expected);
    // "etc\0" ends at 114; two NULs pad it to 116, where the next header starts.
    assert_eq!(&bytes[HEADER_LEN..HEADER_LEN + 6], b"etc\0\0\0");
    assert_eq!(&bytes[HEADER_LEN + 6..HEADER_LEN + 12], MAGIC);
}

#[test]
fn insertion_order_does_not_matter() {
    let a = sample().to_bytes();
    let mut fs = Initramfs::new();
    fs.dir_with_mode("tmp", 0o1777).unwrap();
    fs.dir("proc").unwrap();
    fs.file("etc/kettle/ca-roots.pem", 0o644, b"PEM".to_vec())
        .unwrap();
    fs.dir("etc").unwrap();
    fs.file("init", 0o755, b"#!init\n".to_vec()).unwrap();
    assert_eq!(a, fs.to_bytes());
    assert_eq!(a, sample().to_bytes());
}

#[test]
fn rejects_bad_paths_and_conflicts() {
    let mut fs = Initramfs::new();
    for bad in ["", "/", "a/../b", "./a", "a//b", "a/", "TRAILER!!!", "a\0b"] {
        assert_eq!(
            fs.dir(bad).unwrap_err(),
            CpioError::InvalidPath(bad.into()),
            "{bad:?}"
        );
    }
    fs.file("init", 0o755, b"x".to_vec()).unwrap();
    fs.file("init", 0o755, b"x".to_vec()).unwrap(); // identical: fine
    assert_eq!(
        fs.file("init", 0o755, b"y".to_vec()).unwrap_err(),
        CpioError::Duplicate("init".into())
    );
    assert_eq!(
        fs.dir("init").unwrap_err(),
        CpioError::Duplicate("init".into())
    );
    assert!(matches!(
        fs.file("init/x", 0o644, vec![]),
        Err(CpioError::ParentNotDirectory { .. })
    ));
    assert!(matches!(
        fs.file("x", 0o100644, vec![]),
        Err(CpioError::InvalidMode { .. })
    ));
}

#[test]
fn char_device_header() {
    let mut fs = Initramfs::new();
    fs.char_device("dev/console", 0o600, 5, 1).unwrap();
    let entries = parse(&fs.to_bytes());
    assert_eq!(entries[1].name, "dev/console");
    assert_eq!(entries[1].fields[1], 0o020600);
    assert_eq!((entries[1].fields[9], entries[1].fields[10]), (5, 1));
}

/// Extracts with the system's GNU cpio and compares every file and mode.
#[test]
fn round_trip_through_system_cpio() {
    if Command::new("cpio").arg("--version").output().is_err() {
        assert!(
            std::env::var("CI").as_deref() != Ok("true"),
            "cpio(1) missing on CI"
        );
        eprintln!("skipping: cpio(1) is not installed");
        return;
    }
    let mut fs = sample();
    fs.file("bin/odd-size", 0o700, (0u8..=250).collect::<Vec<u8>>())
        .unwrap();
    fs.file("empty", 0o600, Vec::new()).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let mut child = Command::new("cpio")
        .args(["-idv", "--quiet", "--no-absolute-filenames"])
        .current_dir(dir.path())
        .stdin(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    use std::io::Write;
    child
        .stdin
        .take()
        .unwrap()
        .write_all(&fs.to_bytes())
        .unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(
        out.status.success(),
        "cpio failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let listed = String::from_utf8_lossy(&out.stderr);
    use std::os::unix::fs::PermissionsExt;
    for e in fs.entries() {
        assert!(
            listed.lines().any(|l| l == e.path),
            "cpio did not list {}",
            e.path
        );
        let p = dir.path().join(&e.path);
        let meta = std::fs::symlink_metadata(&p).unwrap();
        assert_eq!(
            meta.permissions().mode() & 0o7777,
            e.mode & 0o7777,
            "mode of {}",
            e.path
        );
        if let Some(data) = fs.file_data(&e.path) {
            assert!(meta.is_file());
            assert_eq!(std::fs::read(&p).unwrap(), data, "contents of {}", e.path);
        } else {
            assert!(meta.is_dir(), "{} should be a directory", e.path);
        }
    }
}
