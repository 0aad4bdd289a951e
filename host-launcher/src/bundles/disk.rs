//! A bundle as a read-only disk (issue 27's first half): the bundle's tree as an
//! EROFS image, made deterministically, with a dm-verity hash tree appended
//! (`kettle_image::verity`), so a guest can map it through device-mapper verity
//! with the root hash it trusts and read only the blocks a build touches, each
//! checked as it is read, instead of inflating and hashing the whole tarball.
//!
//! Why EROFS and not squashfs: uncompressed EROFS keeps file data in plain,
//! block-aligned extents, so a read is one verity-checked block and no
//! decompression; the kernel side is small (`CONFIG_EROFS_FS`, no compressor);
//! and `mkfs.erofs` writes the same bytes for the same tree given a fixed
//! timestamp and UUID, whatever the directory order, inode numbers or mtimes of
//! the tree it reads (squashfs also can, but every read then inflates a block).
//!
//! The tree is the bundle tarball unpacked by kettle-wire's safe unpacker, the
//! one the guest uses, so the disk holds exactly what the guest unpacks today.
//! Every name that decides bytes is fixed or derived from the tarball's SHA-256:
//! timestamps 0, owners root (the tarball's are), no xattrs, the filesystem UUID
//! and the verity salt and UUID.

use std::fs::{self, File};
use std::path::{Path, PathBuf};
use std::process::Command;

use kettle_image::verity::{self, VerityParams};
use kettle_provenance::digest::HashingReader;
use kettle_provenance::Sha256Digest;
use kettle_wire::unpack::{maybe_gunzip, unpack, UnpackLimits};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use super::BundlesError;

/// The file a bundle's disk is written to beside it: `toolchain.tar.gz` -> `toolchain.erofs`.
pub fn disk_file_name(bundle_file: &str) -> String {
    let stem = bundle_file
        .strip_suffix(".tar.gz")
        .or_else(|| bundle_file.strip_suffix(".tar"))
        .unwrap_or(bundle_file);
    format!("{stem}.erofs")
}

/// `schema` of a [`DiskPin`].
pub const DISK_PIN_SCHEMA: &str = "kettle.bundle-disk/v1";

/// A bundle's disk as its pin records it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DiskPin {
    /// [`DISK_PIN_SCHEMA`].
    pub schema: String,
    /// The disk's file name, beside the bundle.
    pub file: String,
    /// SHA-256 of the bundle tarball it was made from, lowercase hex.
    pub bundle_sha256: String,
    /// SHA-256 of the whole disk (filesystem and hash tree), lowercase hex.
    pub sha256: String,
    /// The dm-verity root hash over the filesystem's blocks, lowercase hex.
    pub verity_root: String,
    /// The verity salt, lowercase hex.
    pub verity_salt: String,
    /// Bytes of filesystem before the hash tree (the verity hash offset).
    pub data_bytes: u64,
    /// Size of the whole disk in bytes.
    pub size: u64,
    /// The mkfs that wrote the filesystem, as it names itself (`mkfs.erofs 1.5`): the same
    /// bundle gives the same bytes with the same mkfs.
    pub made_with: String,
}

/// A value derived from the bundle's SHA-256 (the verity salt, the UUIDs): the same
/// bundle gives the same disk.
fn derived(what: &str, bundle_sha: &Sha256Digest) -> [u8; 32] {
    let mut h = Sha256::new();
    h.update(b"kettle bundle disk ");
    h.update(what.as_bytes());
    h.update(bundle_sha.to_hex().as_bytes());
    h.finalize().into()
}

/// Makes `<out>` from the bundle tarball `bundle` with `mkfs` (`mkfs.erofs`): unpacks it
/// beside `out`, writes the filesystem, appends the hash tree, and checks the tree once
/// more before the file is moved into place (nothing half-written on failure).
pub fn make_disk(bundle: &Path, out: &Path, mkfs: &str) -> Result<DiskPin, BundlesError> {
    let io = |path: &Path| {
        let path = path.to_path_buf();
        move |source| BundlesError::Io { path, source }
    };
    let file = out
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .ok_or_else(|| invalid(out, "not a file name".into()))?;
    let dir = out
        .parent()
        .filter(|p| !p.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    // A fresh, unpredictable scratch directory beside the output (same file system, so the
    // finished disk is renamed into place), removed however this returns.
    let work = tempfile::Builder::new()
        .prefix(&format!(".{file}.staging-"))
        .tempdir_in(dir)
        .map_err(io(dir))?;
    let tree = work.path().join("tree");
    // One read of the bundle: hashed as it is unpacked, then the rest (a gzip trailer, tar
    // padding) drained into the hash, so the digest is the whole file's.
    let mut hashing = HashingReader::new(File::open(bundle).map_err(io(bundle))?);
    let reader = maybe_gunzip(&mut hashing).map_err(io(bundle))?;
    unpack(reader, &tree, &UnpackLimits::TREE).map_err(|e| invalid(bundle, e.to_string()))?;
    std::io::copy(&mut hashing, &mut std::io::sink()).map_err(io(bundle))?;
    let (bundle_sha, _) = hashing.finish();
    let derived = |what: &str| derived(what, &bundle_sha);
    let first16 = |what: &str| -> [u8; 16] {
        let mut b = [0u8; 16];
        b.copy_from_slice(&derived(what)[..16]);
        b
    };
    let salt = derived("verity salt ");
    let fs_uuid = uuid_text(&first16("filesystem uuid "));
    let verity_uuid = first16("verity uuid ");
    let image = work.path().join("disk");
    let run = Command::new(mkfs)
        .args(["-T0", "-x-1", "--all-root"])
        .arg(format!("-U{fs_uuid}"))
        .arg(&image)
        .arg(&tree)
        .output()
        .map_err(|e| {
            invalid(
                Path::new(mkfs),
                format!("cannot run it ({e}): install erofs-utils (`make setup` does)"),
            )
        })?;
    if !run.status.success() {
        return Err(invalid(
            Path::new(mkfs),
            format!(
                "{} writing {}: {}",
                run.status,
                image.display(),
                String::from_utf8_lossy(&run.stderr).trim()
            ),
        ));
    }
    // Its first line names it and its version (`mkfs.erofs 1.5`).
    let made_with = String::from_utf8_lossy(&run.stdout)
        .lines()
        .next()
        .filter(|l| l.starts_with("mkfs.erofs ") && !l.chars().any(char::is_control))
        .map_or_else(|| format!("{mkfs} (no version printed)"), str::to_string);
    let params = VerityParams::new(salt);
    let verity_tree = verity::append_hash_tree(&image, &params, verity_uuid)
        .map_err(|e| invalid(&image, e.to_string()))?;
    verity::verify_hash_tree(&image, &params, &verity_tree)
        .map_err(|e| invalid(&image, e.to_string()))?;
    let pin = DiskPin {
        schema: DISK_PIN_SCHEMA.into(),
        file,
        bundle_sha256: bundle_sha.to_hex(),
        sha256: Sha256Digest::of_file(&image).map_err(io(&image))?.to_hex(),
        verity_root: hex::encode(verity_tree.root_hash),
        verity_salt: hex::encode(salt),
        data_bytes: verity_tree.hash_offset,
        size: verity_tree.image_size,
        made_with,
    };
    fs::rename(&image, out).map_err(io(out))?;
    Ok(pin)
}

/// The suffix of the pin `kettle bundle disk` writes beside a disk: `toolchain.erofs.json`.
pub const DISK_PIN_SUFFIX: &str = ".json";

/// Where a disk's pin is kept: beside it, `<disk>.json`.
pub fn pin_path(disk: &Path) -> PathBuf {
    PathBuf::from(format!("{}{DISK_PIN_SUFFIX}", disk.display()))
}

impl DiskPin {
    /// The pin as written: pretty JSON and a final newline.
    pub fn to_bytes(&self) -> Vec<u8> {
        let mut b = serde_json::to_vec_pretty(self).expect("pin serializes");
        b.push(b'\n');
        b
    }
}

/// The disk made beside the bundle `bundle` (named `bundle_file`, with SHA-256
/// `bundle_sha256`), if there is one with its pin: the pin must be of this bundle (its
/// SHA-256 and the salt derived from it) and of this disk (its size and SHA-256), so a
/// stale disk or an edited pin is refused.
pub fn pin_beside(
    bundle: &Path,
    bundle_file: &str,
    bundle_sha256: &Sha256Digest,
) -> Result<Option<DiskPin>, BundlesError> {
    let disk = bundle.with_file_name(disk_file_name(bundle_file));
    let pin_path = pin_path(&disk);
    let bytes = match fs::read(&pin_path) {
        Ok(b) => b,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(source) => {
            return Err(BundlesError::Io {
                path: pin_path,
                source,
            })
        }
    };
    let remake = "remake it with `kettle bundle disk` (make bundles does)";
    let pin: DiskPin = serde_json::from_slice(&bytes)
        .ok()
        .filter(|p: &DiskPin| p.schema == DISK_PIN_SCHEMA)
        .ok_or_else(|| {
            invalid(
                &pin_path,
                format!("is not a {DISK_PIN_SCHEMA} disk pin: {remake}"),
            )
        })?;
    let size = fs::metadata(&disk)
        .map_err(|source| BundlesError::Io {
            path: disk.clone(),
            source,
        })?
        .len();
    let sha256 = Sha256Digest::of_file(&disk)
        .map_err(|source| BundlesError::Io {
            path: disk.clone(),
            source,
        })?
        .to_hex();
    if pin.file != disk_file_name(bundle_file) || pin.bundle_sha256 != bundle_sha256.to_hex() {
        return Err(invalid(
            &pin_path,
            format!(
                "is the pin of {} made from a bundle with sha256 {}, but {bundle_file} has sha256 {bundle_sha256}: {remake}",
                pin.file, pin.bundle_sha256
            ),
        ));
    }
    if pin.verity_salt != hex::encode(derived("verity salt ", bundle_sha256)) {
        return Err(invalid(
            &pin_path,
            format!(
                "verity_salt {:?} is not the one derived from the bundle: {remake}",
                pin.verity_salt
            ),
        ));
    }
    if (size, sha256.as_str()) != (pin.size, pin.sha256.as_str()) {
        return Err(invalid(
            &pin_path,
            format!(
                "says {} is {} bytes with sha256 {}, but it is {size} bytes with sha256 {sha256}: {remake}",
                pin.file, pin.size, pin.sha256
            ),
        ));
    }
    Ok(Some(pin))
}

fn invalid(path: &Path, message: String) -> BundlesError {
    BundlesError::Invalid {
        path: path.into(),
        message,
    }
}

/// 16 bytes as a UUID string (`8-4-4-4-12` hex), as `mkfs.erofs -U` reads it.
fn uuid_text(b: &[u8; 16]) -> String {
    let mut groups = Vec::with_capacity(5);
    let mut at = 0;
    for len in [4, 2, 2, 2, 6] {
        groups.push(hex::encode(&b[at..at + len]));
        at += len;
    }
    groups.join("-")
}

#[cfg(test)]
mod tests;
