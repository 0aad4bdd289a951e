//! Every tree is checked against the independent peer, cryptsetup's
//! `veritysetup` (Debian: `apt-get install cryptsetup-bin`): same root hash, same
//! bytes, and `veritysetup verify` accepts ours. Without it those checks print
//! "SKIPPED: veritysetup not installed"; the self-contained checks still run.

use super::*;
use std::fs;
use std::process::{Command, Output};

const BLOCK: usize = 4096;
const UUID: [u8; 16] = [
    0x6b, 0x65, 0x74, 0x74, 0x6c, 0x65, 0x4a, 0x00, 0x80, 0x01, 0x02, 0x03, 0x04, 0x05, 0x06, 0x07,
];

fn salt() -> [u8; 32] {
    std::array::from_fn(|i| (i as u8).wrapping_mul(37).wrapping_add(11))
}

/// Deterministic pseudo-random bytes (splitmix64), so a failure reproduces.
fn pseudo_random(len: usize, seed: u64) -> Vec<u8> {
    let mut state = seed;
    let mut out = Vec::with_capacity(len + 8);
    while out.len() < len {
        state = state.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = state;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        out.extend_from_slice(&(z ^ (z >> 31)).to_le_bytes());
    }
    out.truncate(len);
    out
}

/// The UUID as veritysetup's `--uuid` takes it: 8-4-4-4-12 hex digits.
fn uuid_string(uuid: &[u8; 16]) -> String {
    let h = hex::encode(uuid);
    format!(
        "{}-{}-{}-{}-{}",
        &h[..8],
        &h[8..12],
        &h[12..16],
        &h[16..20],
        &h[20..]
    )
}

/// The peer, if installed (Debian puts it in /usr/sbin, not always on PATH).
fn veritysetup() -> Option<&'static str> {
    let found = ["veritysetup", "/usr/sbin/veritysetup", "/sbin/veritysetup"]
        .into_iter()
        .find(|c| {
            Command::new(c)
                .arg("--version")
                .output()
                .is_ok_and(|o| o.status.success())
        });
    if found.is_none() {
        eprintln!("SKIPPED: veritysetup not installed (apt-get install cryptsetup-bin): the cross-checks against it did not run");
    }
    found
}

fn run(vs: &str, args: &[String]) -> Output {
    Command::new(vs)
        .args(args)
        .output()
        .expect("run veritysetup")
}

/// `veritysetup format` in place after `data_len` bytes; returns its output.
fn peer_format(vs: &str, path: &Path, data_len: usize, params: &VerityParams) -> String {
    let out = run(
        vs,
        &[
            "format".into(),
            format!("--hash-offset={data_len}"),
            format!("--salt={}", hex::encode(params.salt)),
            format!("--uuid={}", uuid_string(&UUID)),
            format!(
                "--data-blocks={}",
                data_len / params.data_block_size as usize
            ),
            format!("--data-block-size={}", params.data_block_size),
            format!("--hash-block-size={}", params.hash_block_size),
            path.display().to_string(),
            path.display().to_string(),
        ],
    );
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(
        out.status.success(),
        "veritysetup format failed: {stdout}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    stdout
}

/// A value veritysetup printed as `<label>:<spaces><value>`.
fn field<'a>(stdout: &'a str, label: &str) -> &'a str {
    stdout
        .lines()
        .find_map(|l| l.strip_prefix(label))
        .unwrap_or_else(|| panic!("no {label:?} in veritysetup's output:\n{stdout}"))
        .trim()
}

/// `veritysetup verify` of a one-disk image (parameters from its superblock).
fn peer_verify(vs: &str, path: &Path, tree: &VerityTree) -> Output {
    run(
        vs,
        &[
            "verify".into(),
            format!("--hash-offset={}", tree.hash_offset),
            path.display().to_string(),
            path.display().to_string(),
            tree.root_hash_hex(),
        ],
    )
}

fn write(dir: &Path, name: &str, bytes: &[u8]) -> PathBuf {
    let path = dir.join(name);
    fs::write(&path, bytes).unwrap();
    path
}

/// Assert two files are byte-identical, naming the first differing offset.
fn assert_same_bytes(ours: &Path, peer: &Path, case: &str) {
    let (a, b) = (fs::read(ours).unwrap(), fs::read(peer).unwrap());
    if let Some(at) = a.iter().zip(&b).position(|(x, y)| x != y) {
        panic!(
            "{case}: ours and veritysetup's differ first at byte {at} ({:#04x} vs {:#04x})",
            a[at], b[at]
        );
    }
    assert_eq!(a.len(), b.len(), "{case}: ours and veritysetup's lengths");
}

/// Flip one bit of byte `at` in `path`.
fn flip(path: &Path, at: u64) {
    let mut bytes = fs::read(path).unwrap();
    bytes[at as usize] ^= 0x01;
    fs::write(path, bytes).unwrap();
}

/// Data sizes around the level boundaries (128 digests per 4096-byte block),
/// a few MiB of pseudo-random bytes, a three-level tree, and smaller blocks
/// (a superblock not on a hash-block boundary; 16 digests per block).
#[test]
fn matches_veritysetup_format_byte_for_byte() {
    let Some(vs) = veritysetup() else { return };
    let dir = tempfile::tempdir().unwrap();
    let small = |data_block_size, hash_block_size| VerityParams {
        data_block_size,
        hash_block_size,
        salt: salt(),
    };
    let cases: [(&str, usize, VerityParams, u64); 9] = [
        ("1 block", BLOCK, VerityParams::new(salt()), 0),
        ("2 blocks", 2 * BLOCK, VerityParams::new(salt()), 1),
        ("127 blocks", 127 * BLOCK, VerityParams::new(salt()), 1),
        ("128 blocks", 128 * BLOCK, VerityParams::new(salt()), 1),
        ("129 blocks", 129 * BLOCK, VerityParams::new(salt()), 3),
        (
            "3 MiB + 7 blocks",
            (768 + 7) * BLOCK,
            VerityParams::new(salt()),
            8,
        ),
        (
            "16385 blocks (3 levels)",
            16385 * BLOCK,
            VerityParams::new(salt()),
            129 + 2 + 1,
        ),
        ("7 x 512-byte data blocks", 7 * 512, small(512, 4096), 1),
        (
            "300 x 512/512 blocks (3 levels)",
            300 * 512,
            small(512, 512),
            19 + 2 + 1,
        ),
    ];
    for (seed, (case, len, params, hash_blocks)) in (1u64..).zip(cases) {
        let data = pseudo_random(len, seed);
        let ours = write(dir.path(), "ours.img", &data);
        let peer = write(dir.path(), "peer.img", &data);
        let tree = append_hash_tree(&ours, &params, UUID).unwrap();
        let stdout = peer_format(vs, &peer, len, &params);

        assert_eq!(
            field(&stdout, "Root hash:"),
            tree.root_hash_hex(),
            "{case}: root hash"
        );
        assert_same_bytes(&ours, &peer, case);
        assert_eq!(tree.hash_blocks, hash_blocks, "{case}: hash blocks");
        assert_eq!(
            field(&stdout, "Hash blocks:"),
            hash_blocks.to_string(),
            "{case}"
        );
        assert_eq!(
            field(&stdout, "Data blocks:"),
            tree.data_blocks.to_string(),
            "{case}"
        );
        assert_eq!(
            fs::metadata(&ours).unwrap().len(),
            tree.image_size,
            "{case}"
        );

        let verified = peer_verify(vs, &ours, &tree);
        assert!(
            verified.status.success(),
            "{case}: veritysetup verify refused our disk: {}",
            String::from_utf8_lossy(&verified.stderr)
        );
        verify_hash_tree(&ours, &params, &tree).unwrap();
        eprintln!(
            "{case}: root hash {} equal to veritysetup's, {} bytes identical, veritysetup verify exit 0",
            tree.root_hash_hex(),
            tree.image_size
        );
    }
}

/// The figures of the layout, independent of the peer: superblock at the data
/// size, its block, then the levels.
#[test]
fn layout_of_small_trees() {
    let dir = tempfile::tempdir().unwrap();
    let params = VerityParams::new(salt());
    let one = write(dir.path(), "one.img", &pseudo_random(BLOCK, 1));
    let tree = append_hash_tree(&one, &params, UUID).unwrap();
    // No level: the root is the data block's own digest.
    let mut h = Sha256::new();
    h.update(salt());
    h.update(pseudo_random(BLOCK, 1));
    assert_eq!(tree.root_hash, <[u8; 32]>::from(h.finalize()));
    assert_eq!(
        (
            tree.data_blocks,
            tree.hash_offset,
            tree.hash_start_block,
            tree.hash_blocks,
            tree.image_size
        ),
        (1, 4096, 2, 0, 8192)
    );
    let bytes = fs::read(&one).unwrap();
    assert_eq!(&bytes[4096..4104], b"verity\0\0");
    assert_eq!(&bytes[4096 + 88..4096 + 120], &salt());
    assert!(bytes[4096 + 120..].iter().all(|&b| b == 0));

    let big = write(dir.path(), "big.img", &pseudo_random(129 * BLOCK, 2));
    let tree = append_hash_tree(&big, &params, UUID).unwrap();
    assert_eq!(
        (
            tree.hash_offset,
            tree.hash_start_block,
            tree.hash_blocks,
            tree.image_size
        ),
        (129 * 4096, 130, 3, (130 + 3) * 4096)
    );
    // Top level first: block 130 is the top, whose digest is the root hash and
    // whose first two slots are the digests of level 0's blocks 131 and 132.
    let bytes = fs::read(&big).unwrap();
    let block = |i: usize| &bytes[i * BLOCK..(i + 1) * BLOCK];
    let digest = |b: &[u8]| {
        let mut h = Sha256::new();
        h.update(salt());
        h.update(b);
        <[u8; 32]>::from(h.finalize())
    };
    assert_eq!(digest(block(130)), tree.root_hash);
    assert_eq!(&block(130)[..32], &digest(block(131)));
    assert_eq!(&block(130)[32..64], &digest(block(132)));
    assert!(block(130)[64..].iter().all(|&b| b == 0));
    assert_eq!(
        &block(132)[..32],
        &digest(block(128)),
        "data block 128's digest"
    );
    assert!(block(132)[32..].iter().all(|&b| b == 0));
}

/// One flipped bit in a data block: our check names that block, and so does
/// veritysetup verify (by byte position).
#[test]
fn flipped_data_byte_names_its_block() {
    let dir = tempfile::tempdir().unwrap();
    let params = VerityParams::new(salt());
    let vs = veritysetup();
    for (blocks, victim) in [(1u64, 0u64), (129, 77), (129, 128), (775, 300)] {
        let path = write(
            dir.path(),
            "d.img",
            &pseudo_random(blocks as usize * BLOCK, blocks),
        );
        let tree = append_hash_tree(&path, &params, UUID).unwrap();
        verify_hash_tree(&path, &params, &tree).unwrap();
        flip(&path, victim * 4096 + 1234);
        match verify_hash_tree(&path, &params, &tree) {
            Err(e @ VerityError::DataBlockMismatch { block, offset, .. }) => {
                assert_eq!((block, offset), (victim, victim * 4096));
                assert!(
                    e.to_string().contains(&format!("data block {victim} ")),
                    "{e}"
                );
            }
            other => panic!("{blocks} blocks, flipped block {victim}: {other:?}"),
        }
        if let Some(vs) = vs {
            let out = peer_verify(vs, &path, &tree);
            let stderr = String::from_utf8_lossy(&out.stderr);
            assert!(
                !out.status.success(),
                "veritysetup accepted a flipped data block"
            );
            if blocks > 1 {
                let position = format!("position {}", victim * 4096);
                assert!(stderr.contains(&position), "veritysetup: {stderr}");
            }
        }
    }
}

/// Altering the hash area anywhere is refused, with the place named.
#[test]
fn altered_hash_area_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let params = VerityParams::new(salt());
    let vs = veritysetup();
    let data = pseudo_random(129 * BLOCK, 9);
    let base = 129 * 4096u64;
    // (byte flipped, also refused by veritysetup verify?)
    for (at, peer_refuses) in [
        (base + 100, true),             // the superblock's salt
        (base + 600, false),            // zeros after the superblock, in its block
        (base + 4096 + 5, true),        // top level, a digest
        (base + 4096 + 4000, true),     // top level, an unused slot
        (base + 2 * 4096 + 17, true),   // level 0, first block
        (base + 3 * 4096 + 31, true),   // level 0, last block, a digest
        (base + 3 * 4096 + 4095, true), // level 0, last block, unused
    ] {
        let path = write(dir.path(), "h.img", &data);
        let tree = append_hash_tree(&path, &params, UUID).unwrap();
        flip(&path, at);
        let err = verify_hash_tree(&path, &params, &tree).expect_err("altered hash area accepted");
        let expected = match at - base {
            100 => matches!(err, VerityError::Superblock { field: "salt", .. }),
            600 => matches!(err, VerityError::SpareNotZero { offset, value: 1 } if offset == at),
            4101 | 8096 => matches!(err, VerityError::RootHashMismatch { .. }),
            8209 => matches!(
                err,
                VerityError::HashBlockMismatch {
                    level: 0,
                    block: 0,
                    ..
                }
            ),
            _ => {
                matches!(err, VerityError::HashBlockMismatch { level: 0, block: 1, offset, .. } if offset == base + 3 * 4096)
            }
        };
        assert!(expected, "byte {at}: {err}");
        if let (Some(vs), true) = (vs, peer_refuses) {
            let out = peer_verify(vs, &path, &tree);
            assert!(
                !out.status.success(),
                "veritysetup accepted a flipped byte {at}"
            );
        }
    }

    // Another root hash, a truncated disk, an inconsistent tree.
    let path = write(dir.path(), "h.img", &data);
    let tree = append_hash_tree(&path, &params, UUID).unwrap();
    let mut other = tree.clone();
    other.root_hash[0] ^= 1;
    assert!(matches!(
        verify_hash_tree(&path, &params, &other),
        Err(VerityError::RootHashMismatch { .. })
    ));
    let mut other = tree.clone();
    other.uuid[3] ^= 1;
    assert!(matches!(
        verify_hash_tree(&path, &params, &other),
        Err(VerityError::Superblock { field: "uuid", .. })
    ));
    let mut other = tree.clone();
    other.hash_start_block += 1;
    assert!(matches!(
        verify_hash_tree(&path, &params, &other),
        Err(VerityError::TreeMismatch {
            field: "hash_start_block",
            ..
        })
    ));
    let file = OpenOptions::new().write(true).open(&path).unwrap();
    file.set_len(tree.image_size - 1).unwrap();
    let err = verify_hash_tree(&path, &params, &tree).unwrap_err();
    assert!(
        matches!(err, VerityError::SizeMismatch { expected, found, .. } if expected == tree.image_size && found == expected - 1),
        "{err}"
    );
}

/// A size that is not a whole number of blocks is refused by name and leaves
/// the file alone; so are an empty file and block sizes the kernel cannot use.
#[test]
fn refuses_what_it_cannot_format() {
    let dir = tempfile::tempdir().unwrap();
    let params = VerityParams::new(salt());
    let path = write(dir.path(), "odd.img", &pseudo_random(2 * BLOCK + 100, 3));
    let err = append_hash_tree(&path, &params, UUID).unwrap_err();
    assert!(
        matches!(
            err,
            VerityError::NotBlockMultiple {
                size: 8292,
                block_size: 4096,
                padded: 12288,
                ..
            }
        ),
        "{err:?}"
    );
    let message = err.to_string();
    assert!(
        message.contains("odd.img") && message.contains("8292 bytes"),
        "{message}"
    );
    assert!(
        message.contains("4096-byte") && message.contains("12288"),
        "{message}"
    );
    assert_eq!(
        fs::metadata(&path).unwrap().len(),
        8292,
        "file left as it was"
    );

    let empty = write(dir.path(), "empty.img", b"");
    assert!(matches!(
        append_hash_tree(&empty, &params, UUID),
        Err(VerityError::Empty { .. })
    ));
    let missing = dir.path().join("missing.img");
    assert!(matches!(
        append_hash_tree(&missing, &params, UUID),
        Err(VerityError::Io { .. })
    ));

    let path = write(dir.path(), "ok.img", &pseudo_random(2 * BLOCK, 3));
    for (data_block_size, hash_block_size, what, size) in [
        (1000, 4096, "data", 1000),
        (4096, 8192, "hash", 8192),
        (256, 4096, "data", 256),
    ] {
        let params = VerityParams {
            data_block_size,
            hash_block_size,
            salt: salt(),
        };
        let err = append_hash_tree(&path, &params, UUID).unwrap_err();
        assert!(
            matches!(err, VerityError::BlockSize { what: w, size: s } if w == what && s == size),
            "{err:?}"
        );
    }
    assert_eq!(
        fs::metadata(&path).unwrap().len(),
        2 * 4096,
        "file left as it was"
    );
}

/// The same data, salt and UUID give the same bytes; another salt another root.
#[test]
fn two_runs_give_identical_bytes() {
    let dir = tempfile::tempdir().unwrap();
    let params = VerityParams::new(salt());
    let data = pseudo_random(300 * BLOCK, 5);
    let a = write(dir.path(), "a.img", &data);
    let b = write(dir.path(), "b.img", &data);
    let tree_a = append_hash_tree(&a, &params, UUID).unwrap();
    let tree_b = append_hash_tree(&b, &params, UUID).unwrap();
    assert_eq!(tree_a, tree_b);
    assert_eq!(fs::read(&a).unwrap(), fs::read(&b).unwrap());

    let c = write(dir.path(), "c.img", &data);
    let mut salted_differently = params.clone();
    salted_differently.salt[31] ^= 1;
    let tree_c = append_hash_tree(&c, &salted_differently, UUID).unwrap();
    assert_ne!(tree_c.root_hash, tree_a.root_hash);
    assert!(matches!(
        verify_hash_tree(&c, &params, &tree_c),
        Err(VerityError::Superblock { field: "salt", .. })
    ));
}

/// The table line, field by field, for a 129-block disk.
#[test]
fn kernel_table_names_every_field() {
    let dir = tempfile::tempdir().unwrap();
    let params = VerityParams::new(salt());
    let path = write(dir.path(), "t.img", &pseudo_random(129 * BLOCK, 4));
    let tree = append_hash_tree(&path, &params, UUID).unwrap();
    let expected = format!(
        "0 1032 verity 1 /dev/vdb /dev/vdb 4096 4096 129 130 sha256 {} {}",
        tree.root_hash_hex(),
        hex::encode(salt())
    );
    assert_eq!(kernel_table(&tree, &params, "/dev/vdb"), expected);
}
