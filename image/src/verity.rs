//! A deterministic, pure-Rust writer and checker of dm-verity hash trees, in the
//! on-disk format of cryptsetup's `veritysetup format` and the kernel's
//! `verity` device-mapper target (hash format 1, sha256).
//!
//! The layout is veritysetup's "one disk, hash offset" layout: the data (a
//! filesystem image, a whole number of data blocks) comes first; right after it,
//! at `hash_offset` = the data size, veritysetup's 512-byte superblock
//! (`"verity\0\0"`), zero-padded to the next hash block; then the hash tree's
//! levels, **top level first** and the level of data-block digests last. This is
//! what `veritysetup format --hash-offset=<data bytes> img img` writes, byte for
//! byte, given the same salt and UUID.
//!
//! The tree (hash format 1): a block's digest is `sha256(salt || block)`. Level
//! 0 holds one digest per data block, each level above one per block of the
//! level below, in 32-byte slots, 128 to a 4096-byte block, the rest zeros,
//! until a level fits in one block, whose digest is the root hash (one data
//! block: its digest). Data is streamed; the tree is built in memory.

use sha2::{Digest, Sha256};
use std::fs::{File, OpenOptions};
use std::io::{BufReader, BufWriter, Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};

/// Size of veritysetup's on-disk superblock; it is zero-padded to a hash block.
pub const SUPERBLOCK_SIZE: usize = 512;
/// The superblock's magic.
const SIGNATURE: &[u8; 8] = b"verity\0\0";
/// The superblock's format version.
const SUPERBLOCK_VERSION: u32 = 1;
/// The dm-verity hash format: 1 (salt prepended, digests padded to a power of two).
pub const HASH_TYPE: u32 = 1;
/// The hash algorithm, as the superblock and the kernel table name it.
pub const ALGORITHM: &str = "sha256";
/// Size of a sha256 digest, and of its slot in a hash block.
const DIGEST: usize = 32;
/// The same, for byte offsets.
const DIGEST_U64: u64 = 32;
/// [`SUPERBLOCK_SIZE`], for byte offsets.
const SUPERBLOCK_U64: u64 = 512;
/// Size of a device-mapper sector.
const SECTOR: u64 = 512;

/// The parameters of a hash tree (what `veritysetup format` takes as options).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VerityParams {
    /// Bytes per data block (`--data-block-size`): a power of two, 512..=4096.
    pub data_block_size: u32,
    /// Bytes per hash block (`--hash-block-size`): a power of two, 512..=4096.
    pub hash_block_size: u32,
    /// The salt prepended to every hashed block (`--salt`), chosen by the caller
    /// (fixed, or derived from the inputs, for reproducible disks).
    pub salt: [u8; 32],
}

impl VerityParams {
    /// 4096-byte data and hash blocks (veritysetup's defaults) with `salt`.
    pub fn new(salt: [u8; 32]) -> Self {
        VerityParams {
            data_block_size: 4096,
            hash_block_size: 4096,
            salt,
        }
    }

    /// The block sizes as u64, once both are known to be usable.
    fn block_sizes(&self) -> Result<(u64, u64), VerityError> {
        for (what, size) in [
            ("data", self.data_block_size),
            ("hash", self.hash_block_size),
        ] {
            if !size.is_power_of_two() || !(512..=4096).contains(&size) {
                return Err(VerityError::BlockSize { what, size });
            }
        }
        Ok((self.data_block_size.into(), self.hash_block_size.into()))
    }
}

/// A hash tree written after a disk's data, and what the guest needs to load it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VerityTree {
    /// The root hash: the one value the guest must trust (e.g. from the measured
    /// command line) to check every block it reads.
    pub root_hash: [u8; 32],
    /// Number of data blocks covered (the data size / the data block size).
    pub data_blocks: u64,
    /// Byte offset of the superblock: the data size (veritysetup's `--hash-offset`).
    pub hash_offset: u64,
    /// Hash-block index of the tree's top level, past the superblock: the
    /// kernel table's `<hash_start_block>`.
    pub hash_start_block: u64,
    /// Number of hash blocks in the tree (veritysetup dump's "Hash blocks").
    pub hash_blocks: u64,
    /// The superblock's UUID, as given by the caller.
    pub uuid: [u8; 16],
    /// Size of the whole disk: data, superblock block and tree.
    pub image_size: u64,
}

impl VerityTree {
    /// The root hash in lowercase hex, as veritysetup prints it.
    pub fn root_hash_hex(&self) -> String {
        hex::encode(self.root_hash)
    }
}

/// Why a hash tree could not be written, or a disk does not verify.
#[derive(Debug, thiserror::Error)]
pub enum VerityError {
    /// The image could not be opened, read or written.
    #[error("cannot {op} {path}: {source}")]
    Io {
        /// What was being done ("read", "append the hash tree to", ...).
        op: &'static str,
        /// The image.
        path: PathBuf,
        /// The I/O error.
        source: std::io::Error,
    },
    /// A block size the kernel cannot use.
    #[error("{what} block size {size} is not supported: use a power of two from 512 to 4096 (the guest's page size), e.g. VerityParams::new's 4096")]
    BlockSize {
        /// "data" or "hash".
        what: &'static str,
        /// The size given.
        size: u32,
    },
    /// The data is not a whole number of data blocks.
    #[error("{path} is {size} bytes, not a multiple of the {block_size}-byte data block: pad the filesystem image with zeros to {padded} bytes before appending the hash tree")]
    NotBlockMultiple {
        /// The image.
        path: PathBuf,
        /// Its size in bytes.
        size: u64,
        /// The data block size.
        block_size: u32,
        /// The size rounded up to a whole block.
        padded: u64,
    },
    /// The image has no data.
    #[error("{path} is empty: a verity disk needs at least one data block")]
    Empty {
        /// The image.
        path: PathBuf,
    },
    /// The data does not fit in memory-sized buffers on this host.
    #[error("a hash level of {bytes} bytes does not fit in this host's address space: split the data into smaller disks")]
    TooLarge {
        /// The size that did not fit.
        bytes: u64,
    },
    /// The disk's size is not data + superblock block + tree.
    #[error("{path} is {found} bytes, but the tree's data, superblock and hash blocks make {expected}: the disk was truncated, padded or built with other parameters; rebuild it with append_hash_tree")]
    SizeMismatch {
        /// The image.
        path: PathBuf,
        /// The size the tree's layout gives.
        expected: u64,
        /// The file's size.
        found: u64,
    },
    /// The `VerityTree` passed does not describe a layout these parameters give.
    #[error("the VerityTree's {field} is {found}, but {expected} for its data blocks and these parameters: pass the tree append_hash_tree returned, with the same parameters")]
    TreeMismatch {
        /// The field.
        field: &'static str,
        /// The value the layout gives.
        expected: u64,
        /// The value in the tree.
        found: u64,
    },
    /// A superblock field differs from the expected tree's.
    #[error("superblock at byte {offset}: {field} is {found}, expected {expected}: the disk was not built with these parameters, or its superblock was altered; rebuild it")]
    Superblock {
        /// Byte offset of the superblock in the disk.
        offset: u64,
        /// The field.
        field: &'static str,
        /// The expected value.
        expected: String,
        /// The value on disk.
        found: String,
    },
    /// The top of the tree does not hash to the expected root hash.
    #[error("the hash tree's top block hashes to {found}, not the root hash {expected}: the hash area was altered, or the root hash belongs to another disk; do not use this disk")]
    RootHashMismatch {
        /// The expected root hash (hex).
        expected: String,
        /// The digest computed from the disk (hex).
        found: String,
    },
    /// A hash block does not match its digest in the level above.
    #[error("hash block {block} of level {level} (byte {offset}) hashes to {found}, but the level above records {expected}: the hash area was altered; do not use this disk")]
    HashBlockMismatch {
        /// Level (0 = digests of data blocks).
        level: usize,
        /// Block index within the level.
        block: u64,
        /// Byte offset of the block in the disk.
        offset: u64,
        /// Digest recorded in the level above (hex).
        expected: String,
        /// Digest computed from the disk (hex).
        found: String,
    },
    /// Bytes the format requires to be zero are not.
    #[error("byte {offset} of the hash area should be zero (unused space) but is {value:#04x}: the hash area was altered; do not use this disk")]
    SpareNotZero {
        /// Byte offset in the disk.
        offset: u64,
        /// The byte found.
        value: u8,
    },
    /// A data block does not match its digest in the tree.
    #[error("data block {block} (at byte {offset}) hashes to {found}, but the tree records {expected}: the data was altered after the tree was written; do not use this disk")]
    DataBlockMismatch {
        /// Index of the first data block that does not match.
        block: u64,
        /// Its byte offset.
        offset: u64,
        /// Digest recorded in the tree (hex).
        expected: String,
        /// Digest computed from the disk (hex).
        found: String,
    },
}

/// Where everything goes, for a number of data blocks and the parameters.
struct Layout {
    /// Data block size.
    dbs: u64,
    /// Hash block size.
    hbs: u64,
    /// The tree's figures (its root hash still zero).
    tree: VerityTree,
    /// Hash blocks per level, level 0 (digests of data blocks) first.
    level_blocks: Vec<u64>,
}

impl Layout {
    fn new(
        params: &VerityParams,
        data_blocks: u64,
        uuid: [u8; 16],
        image: &Path,
    ) -> Result<Self, VerityError> {
        let (dbs, hbs) = params.block_sizes()?;
        if data_blocks == 0 {
            let path = image.to_path_buf();
            return Err(VerityError::Empty { path });
        }
        let mut level_blocks = Vec::new();
        let mut below = data_blocks;
        // Add levels until one fits in one block, as the kernel's and veritysetup's
        // "(data_blocks - 1) >> (bits * levels)" loop does.
        while below > 1 {
            below = below.div_ceil(hbs / DIGEST_U64);
            level_blocks.push(below);
        }
        let hash_offset = data_blocks * dbs;
        let hash_start_block = (hash_offset + SUPERBLOCK_U64).div_ceil(hbs);
        let hash_blocks = level_blocks.iter().sum::<u64>();
        let tree = VerityTree {
            root_hash: [0; 32],
            data_blocks,
            hash_offset,
            hash_start_block,
            hash_blocks,
            uuid,
            image_size: (hash_start_block + hash_blocks) * hbs,
        };
        Ok(Layout {
            dbs,
            hbs,
            tree,
            level_blocks,
        })
    }

    /// Byte offset of level `level`'s first block: levels are stored top first.
    fn level_offset(&self, level: usize) -> u64 {
        let above: u64 = self.level_blocks[level + 1..].iter().sum();
        (self.tree.hash_start_block + above) * self.hbs
    }
}

/// `sha256(salt || block)`: hash format 1's digest of a block.
fn salted(salt: &[u8; 32], block: &[u8]) -> [u8; 32] {
    let mut h = Sha256::new();
    h.update(salt);
    h.update(block);
    h.finalize().into()
}

fn to_usize(bytes: u64) -> Result<usize, VerityError> {
    usize::try_from(bytes).map_err(|_| VerityError::TooLarge { bytes })
}

/// Wraps an I/O error on `path` while doing `op`.
fn io_err<'a>(op: &'static str, path: &'a Path) -> impl Fn(std::io::Error) -> VerityError + 'a {
    move |source| VerityError::Io {
        op,
        path: path.to_path_buf(),
        source,
    }
}

/// The superblock veritysetup writes for this tree.
fn superblock(params: &VerityParams, tree: &VerityTree) -> [u8; SUPERBLOCK_SIZE] {
    let mut sb = [0u8; SUPERBLOCK_SIZE];
    sb[0..8].copy_from_slice(SIGNATURE);
    sb[8..12].copy_from_slice(&SUPERBLOCK_VERSION.to_le_bytes());
    sb[12..16].copy_from_slice(&HASH_TYPE.to_le_bytes());
    sb[16..32].copy_from_slice(&tree.uuid);
    sb[32..32 + ALGORITHM.len()].copy_from_slice(ALGORITHM.as_bytes());
    sb[64..68].copy_from_slice(&params.data_block_size.to_le_bytes());
    sb[68..72].copy_from_slice(&params.hash_block_size.to_le_bytes());
    sb[72..80].copy_from_slice(&tree.data_blocks.to_le_bytes());
    sb[80..82].copy_from_slice(&32u16.to_le_bytes());
    // 82..88: padding; 88..344: the salt field (256 bytes, ours uses 32).
    sb[88..120].copy_from_slice(&params.salt);
    sb
}

/// The superblock's fields: name and byte range.
const SUPERBLOCK_FIELDS: [(&str, usize, usize); 12] = [
    ("signature", 0, 8),
    ("version", 8, 12),
    ("hash type", 12, 16),
    ("uuid", 16, 32),
    ("algorithm", 32, 64),
    ("data block size", 64, 68),
    ("hash block size", 68, 72),
    ("data blocks", 72, 80),
    ("salt size", 80, 82),
    ("padding", 82, 88),
    ("salt", 88, 120),
    ("unused salt and reserved bytes", 120, 512),
];

/// A superblock field for an error: names as text, numbers (little-endian) in
/// decimal, the rest in hex.
fn show(field: &str, bytes: &[u8]) -> String {
    if field == "signature" || field == "algorithm" {
        format!("{:?}", String::from_utf8_lossy(bytes))
    } else if bytes.len() <= 8 {
        let mut le = [0u8; 8];
        le[..bytes.len()].copy_from_slice(bytes);
        u64::from_le_bytes(le).to_string()
    } else {
        hex::encode(bytes)
    }
}

/// Stream the data blocks of `file`, giving `each` every block's index and digest.
fn hash_data(
    file: &File,
    layout: &Layout,
    salt: &[u8; 32],
    image: &Path,
    mut each: impl FnMut(u64, [u8; 32]) -> Result<(), VerityError>,
) -> Result<(), VerityError> {
    let io = io_err("read", image);
    let mut reader = BufReader::with_capacity(1 << 20, file);
    reader.seek(SeekFrom::Start(0)).map_err(&io)?;
    let mut block = vec![0u8; to_usize(layout.dbs)?];
    for index in 0..layout.tree.data_blocks {
        reader.read_exact(&mut block).map_err(&io)?;
        each(index, salted(salt, &block))?;
    }
    Ok(())
}

/// Append veritysetup's superblock and the dm-verity hash tree of `image`'s
/// contents to `image` itself, and return the tree's root hash and layout.
///
/// The same as `veritysetup format --hash-offset=<size> --salt=<salt>
/// --uuid=<uuid> --data-blocks=<size / data block size> image image`: same
/// bytes, same root hash. The contents must be a non-empty whole number of data
/// blocks. If writing fails, the file is truncated back to its data. Call it
/// once: a second call would take the first tree for data.
pub fn append_hash_tree(
    image: &Path,
    params: &VerityParams,
    uuid: [u8; 16],
) -> Result<VerityTree, VerityError> {
    let io = |op| io_err(op, image);
    let (dbs, _) = params.block_sizes()?;
    let file = OpenOptions::new()
        .read(true)
        .write(true)
        .open(image)
        .map_err(io("open for writing"))?;
    let size = file.metadata().map_err(io("stat"))?.len();
    if size % dbs != 0 {
        return Err(VerityError::NotBlockMultiple {
            path: image.to_path_buf(),
            size,
            block_size: params.data_block_size,
            padded: size.div_ceil(dbs) * dbs,
        });
    }
    let layout = Layout::new(params, size / dbs, uuid, image)?;
    let mut digests = Vec::with_capacity(to_usize(size / dbs)?);
    hash_data(&file, &layout, &params.salt, image, |_, digest| {
        digests.push(digest);
        Ok(())
    })?;
    // The levels, level 0 first, each as its packed, zero-padded hash blocks.
    let (hbs, digest) = (to_usize(layout.hbs)?, |b: &[u8]| salted(&params.salt, b));
    let mut levels = Vec::with_capacity(layout.level_blocks.len());
    for &blocks in &layout.level_blocks {
        let mut level = vec![0u8; to_usize(blocks * layout.hbs)?];
        for (slot, digest) in level.chunks_exact_mut(DIGEST).zip(&digests) {
            slot.copy_from_slice(digest);
        }
        digests = level.chunks_exact(hbs).map(digest).collect();
        levels.push(level);
    }
    // The last level is one block (with one data block there is no level).
    let tree = VerityTree {
        root_hash: digests[0],
        ..layout.tree
    };
    let write = || -> std::io::Result<()> {
        let mut out = BufWriter::with_capacity(1 << 20, &file);
        out.seek(SeekFrom::Start(tree.hash_offset))?;
        out.write_all(&superblock(params, &tree))?;
        let gap = tree.hash_start_block * layout.hbs - tree.hash_offset - SUPERBLOCK_U64;
        out.write_all(&vec![0u8; usize::try_from(gap).unwrap_or(0)])?;
        for level in levels.iter().rev() {
            out.write_all(level)?;
        }
        out.flush()
    };
    if let Err(source) = write() {
        // Leave the data as it was rather than a half-written tree.
        let _ = file.set_len(size);
        return Err(io("append the hash tree to")(source));
    }
    Ok(tree)
}

/// Check a disk written by [`append_hash_tree`] against `tree` (above all its
/// root hash): the superblock, every hash block from the top down, the zeroed
/// spare space, then every data block: eagerly what the guest's kernel does
/// lazily on reads. The first data block that does not match is named
/// ([`VerityError::DataBlockMismatch`]); the tree is checked first, so that
/// error means the data, not the tree, was altered.
pub fn verify_hash_tree(
    image: &Path,
    params: &VerityParams,
    tree: &VerityTree,
) -> Result<(), VerityError> {
    let io = |op| io_err(op, image);
    let layout = Layout::new(params, tree.data_blocks, tree.uuid, image)?;
    let (w, t) = (&layout.tree, tree);
    if let Some((field, expected, found)) = [
        ("hash_offset", w.hash_offset, t.hash_offset),
        ("hash_start_block", w.hash_start_block, t.hash_start_block),
        ("hash_blocks", w.hash_blocks, t.hash_blocks),
        ("image_size", w.image_size, t.image_size),
    ]
    .into_iter()
    .find(|(_, expected, found)| expected != found)
    {
        return Err(VerityError::TreeMismatch {
            field,
            expected,
            found,
        });
    }
    let mut file = File::open(image).map_err(io("open"))?;
    let found = file.metadata().map_err(io("stat"))?.len();
    if found != w.image_size {
        let (path, expected) = (image.to_path_buf(), w.image_size);
        return Err(VerityError::SizeMismatch {
            path,
            expected,
            found,
        });
    }

    // The hash area: the superblock, spare space up to the top level, the levels.
    let mut area = vec![0u8; to_usize(w.image_size - w.hash_offset)?];
    file.seek(SeekFrom::Start(w.hash_offset))
        .and_then(|_| file.read_exact(&mut area))
        .map_err(io("read the hash area of"))?;
    let expected = superblock(params, tree);
    for (field, start, end) in SUPERBLOCK_FIELDS {
        let (want, got) = (&expected[start..end], &area[start..end]);
        if want != got {
            return Err(VerityError::Superblock {
                offset: tree.hash_offset,
                field,
                expected: show(field, want),
                found: show(field, got),
            });
        }
    }
    let spare = to_usize(w.hash_start_block * layout.hbs - w.hash_offset)?;
    let at = w.hash_offset + SUPERBLOCK_U64;
    check_zero(&area[SUPERBLOCK_SIZE..spare], at)?;
    let mut levels = Vec::with_capacity(layout.level_blocks.len());
    for (level, &blocks) in layout.level_blocks.iter().enumerate() {
        let start = to_usize(layout.level_offset(level) - w.hash_offset)?;
        levels.push(&area[start..start + to_usize(blocks * layout.hbs)?]);
    }

    if let Some(top) = levels.last() {
        let found = salted(&params.salt, top);
        if found != tree.root_hash {
            let (expected, found) = (hex::encode(tree.root_hash), hex::encode(found));
            return Err(VerityError::RootHashMismatch { expected, found });
        }
    }
    let hbs = to_usize(layout.hbs)?;
    for below in (0..levels.len().saturating_sub(1)).rev() {
        let (children, parents) = (levels[below].chunks_exact(hbs), levels[below + 1]);
        for ((block, data), recorded) in (0u64..).zip(children).zip(parents.chunks(DIGEST)) {
            let found = salted(&params.salt, data);
            if found[..] != recorded[..] {
                return Err(VerityError::HashBlockMismatch {
                    level: below,
                    block,
                    offset: layout.level_offset(below) + block * layout.hbs,
                    expected: hex::encode(recorded),
                    found: hex::encode(found),
                });
            }
        }
    }

    // Unused slots after each level's last digest are zero.
    for (level, bytes) in levels.iter().enumerate() {
        let below = level.checked_sub(1).map(|b| layout.level_blocks[b]);
        let used = below.unwrap_or(tree.data_blocks) * DIGEST_U64;
        check_zero(&bytes[to_usize(used)?..], layout.level_offset(level) + used)?;
    }

    // The data blocks, against level 0 (or, with one block, the root hash).
    let recorded = levels.first().map_or(&tree.root_hash[..], |level0| level0);
    hash_data(&file, &layout, &params.salt, image, |block, found| {
        let at = to_usize(block)? * DIGEST;
        let recorded = &recorded[at..at + DIGEST];
        if found[..] == recorded[..] {
            return Ok(());
        }
        Err(VerityError::DataBlockMismatch {
            block,
            offset: block * layout.dbs,
            expected: hex::encode(recorded),
            found: hex::encode(found),
        })
    })
}

fn check_zero(bytes: &[u8], offset: u64) -> Result<(), VerityError> {
    match (offset..).zip(bytes).find(|(_, b)| **b != 0) {
        Some((offset, &value)) => Err(VerityError::SpareNotZero { offset, value }),
        None => Ok(()),
    }
}

/// The device-mapper table line that maps a verity device over a disk made by
/// [`append_hash_tree`], for `dmsetup create --readonly <name> --table '<line>'`
/// (or the kernel's `dm-mod.create=` boot parameter). `device` names the disk
/// (a path like `/dev/vdb`, or `major:minor`); it is both the data and the hash
/// device. The fields, in order:
///
/// * `0 <sectors>`: the mapped range, in 512-byte sectors: the data only.
/// * `verity`: the target.
/// * `1`: hash format 1 (salt prepended, digests padded to a power of two).
/// * `<device> <device>`: the data device and the hash device (the same disk).
/// * `<data_block_size> <hash_block_size>`: in bytes.
/// * `<data_blocks>`: data blocks covered; reads past them fail.
/// * `<hash_start_block>`: the top level's offset in hash blocks from the start
///   of the hash device: past the data and the superblock's block.
/// * `sha256 <root hash> <salt>`: the algorithm, the root hash to trust, and the
///   salt, both in hex.
///
/// No optional parameters: a block that does not verify fails its read with an
/// I/O error.
pub fn kernel_table(tree: &VerityTree, params: &VerityParams, device: &str) -> String {
    let sectors = tree.data_blocks * u64::from(params.data_block_size) / SECTOR;
    format!(
        "0 {sectors} verity {HASH_TYPE} {device} {device} {} {} {} {} {ALGORITHM} {} {}",
        params.data_block_size,
        params.hash_block_size,
        tree.data_blocks,
        tree.hash_start_block,
        hex::encode(tree.root_hash),
        hex::encode(params.salt),
    )
}

#[cfg(test)]
mod tests;
