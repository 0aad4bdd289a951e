#!/usr/bin/env bash
# Assemble the bundles a Kettle recipe pins in kettle.toml:
#   build/rootfs.tar.gz     Debian bookworm minbase + gcc + libc6-dev (debootstrap from deb.debian.org)
#   build/toolchain.tar.gz  the host's Rust toolchain (the rustup toolchain of `rustc --version`),
#                           x86_64-unknown-linux-gnu std only: bin/{cargo,rustc,rustdoc}, lib/
# Both are deterministic tarballs (entries sorted, mtime fixed, owner 0, `gzip -n`), so the
# same inputs give the same bytes. Their SHA-256s go to build/toolchain.sha256 (sha256sum
# format) and the rootfs package list to build/rootfs.packages.
#
# Each bundle carries a manifest of what is in it (`kettle bundle manifest`), beside it and
# inside it, byte for byte the same file:
#   build/rootfs.tar.gz.manifest.json     = /usr/share/kettle/bundle.json in the rootfs: every
#                                           Debian package as pkg:deb/debian/<name>@<version>?arch=<arch>
#   build/toolchain.tar.gz.manifest.json  = /share/kettle/bundle.json in the toolchain: rustc -vV,
#                                           cargo -V, the components
# Each bundle also gets a read-only disk beside it (`kettle bundle disk`, deterministic):
#   build/rootfs.erofs, build/toolchain.erofs   the tree as EROFS with a dm-verity hash tree
#                                               appended, and its pin as <disk>.json
# (made again whenever the pin is not of the bundle there now; the guest does not read them yet).
# The pins of both (`kettle bundle pins`: file, URL, sha256, the manifest's sha256, the disk) go to
# build/bundles.json and, when the image exists, build/image/bundles.json, where `kettle init`
# reads them. The URL is https://kettle-bundle.invalid/<file> unless BUNDLE_URL_BASE says where
# the bundles are published: `.invalid` never resolves, so the bundles are delivered with the
# build (kettle build finds them beside the image, or takes them with --input FILE).
#
# Usage: scripts/toolchain-bundle.sh [--rootfs-only | --toolchain-only | --pins-only]
# Env:   BUILD (default build/), SUITE (bookworm), MIRROR (http://deb.debian.org/debian),
#        SOURCE_DATE_EPOCH (default 0: the mtime of every entry), BUNDLE_URL_BASE,
#        KETTLE (the kettle binary; default: cargo run --release -p kettle).
# Needs root for debootstrap. Then: kettle init DIR && kettle build DIR (the bundles are found
# beside build/image), or kettle build SRC --input build/rootfs.tar.gz --input build/toolchain.tar.gz
set -euo pipefail
cd "$(dirname "$0")/.."

BUILD=${BUILD:-build}
SUITE=${SUITE:-bookworm}
MIRROR=${MIRROR:-http://deb.debian.org/debian}
EPOCH=${SOURCE_DATE_EPOCH:-0}
URL_BASE=${BUNDLE_URL_BASE:-https://kettle-bundle.invalid/}
want_rootfs=1 want_toolchain=1
case "${1:-}" in
  --rootfs-only) want_toolchain=0 ;;
  --toolchain-only) want_rootfs=0 ;;
  --pins-only) want_rootfs=0 want_toolchain=0 ;;
  "") ;;
  *) echo "usage: $0 [--rootfs-only | --toolchain-only | --pins-only]" >&2; exit 2 ;;
esac

# The manifests and pins are written by kettle itself, so the PURL encoding and the file
# formats are the ones the CLI reads (host-launcher/src/bundles.rs).
kettle() {
  if [ -n "${KETTLE:-}" ]; then "$KETTLE" "$@"; else cargo run --release --locked -q -p kettle -- "$@"; fi
}

mkdir -p "$BUILD"
BUILD=$(cd "$BUILD" && pwd)
work=$(mktemp -d "$BUILD/.bundle-XXXXXX")
trap 'rm -rf "$work"' EXIT

# A deterministic tar.gz of directory $1 (its contents at the archive root) written to $2.
det_tar() {
  local dir=$1 out=$2
  LC_ALL=C tar --sort=name --mtime="@$EPOCH" --owner=0 --group=0 --numeric-owner \
    --format=gnu --no-acls --no-xattrs --no-selinux -C "$dir" -cf - . \
    | gzip -n -9 > "$out.tmp"
  mv "$out.tmp" "$out"
}

# Rewrites every absolute symlink under root $1 as a relative one (computed lexically),
# so the tree unpacks anywhere and no link points outside it (the guest refuses escaping links).
relativize_symlinks() {
  local root=$1 link target dir rel
  while IFS= read -r -d '' link; do
    target=$(readlink "$link")
    case "$target" in
      /*)
        dir=$(dirname "$link")
        rel=$(realpath -s -m --relative-to="$dir" "$root$target")
        ln -sfn "$rel" "$link"
        ;;
    esac
  done < <(find "$root" -type l -print0)
}

record() { # name file
  local sum
  sum=$(sha256sum "$2" | cut -d' ' -f1)
  touch "$BUILD/toolchain.sha256"
  grep -v "  $1\$" "$BUILD/toolchain.sha256" > "$work/sums" || true
  echo "$sum  $1" >> "$work/sums"
  sort -k2 "$work/sums" > "$BUILD/toolchain.sha256"
  echo "$1: sha256 $sum ($(du -h "$2" | cut -f1))"
}

if [ "$want_rootfs" = 1 ]; then
  command -v debootstrap >/dev/null || { echo "debootstrap is missing: apt-get install debootstrap" >&2; exit 2; }
  [ "$(id -u)" = 0 ] || { echo "debootstrap needs root" >&2; exit 2; }
  root="$work/rootfs"
  echo "rootfs: debootstrap --variant=minbase $SUITE from $MIRROR (gcc, libc6-dev)"
  start=$(date +%s)
  debootstrap --variant=minbase --include=gcc,libc6-dev "$SUITE" "$root" "$MIRROR" > "$work/debootstrap.log" 2>&1 \
    || { tail -20 "$work/debootstrap.log" >&2; exit 1; }
  chroot "$root" dpkg-query -W -f '${Package} ${Version} ${Architecture}\n' | LC_ALL=C sort > "$BUILD/rootfs.packages"
  chroot "$root" dpkg-query -W -f '${Package}\t${Version}\t${Architecture}\n' > "$work/packages.tsv"
  kettle bundle manifest rootfs --packages "$work/packages.tsv" --suite "$SUITE" \
    --out "$BUILD/rootfs.tar.gz.manifest.json"
  # Drop what varies between runs or has no place in a build root: caches, logs,
  # device nodes (the guest refuses them), machine identity.
  rm -rf "$root"/var/cache/apt/* "$root"/var/lib/apt/lists/* "$root"/var/log/* \
    "$root"/var/cache/ldconfig/aux-cache "$root"/dev/* "$root"/proc/* "$root"/sys/* \
    "$root"/run/* "$root"/tmp/* "$root"/var/tmp/* "$root"/debootstrap
  : > "$root/etc/machine-id"
  # The manifest travels inside the bundle too: a build that uses the rootfs can read
  # what it is from the verified tarball itself, not from a file the host hands over.
  install -D -m 0644 "$BUILD/rootfs.tar.gz.manifest.json" "$root/usr/share/kettle/bundle.json"
  relativize_symlinks "$root"
  find "$root" -name '*.pyc' -delete
  det_tar "$root" "$BUILD/rootfs.tar.gz"
  record rootfs.tar.gz "$BUILD/rootfs.tar.gz"
  echo "rootfs: $(wc -l < "$BUILD/rootfs.packages") packages, $(( $(date +%s) - start ))s"
fi

if [ "$want_toolchain" = 1 ]; then
  sysroot=$(rustc --print sysroot)
  host=x86_64-unknown-linux-gnu
  echo "toolchain: $(rustc --version) from $sysroot ($host std only)"
  tc="$work/toolchain"
  mkdir -p "$tc/bin" "$tc/lib/rustlib"
  for b in cargo rustc rustdoc; do cp -a "$sysroot/bin/$b" "$tc/bin/"; done
  cp -a "$sysroot"/lib/*.so* "$tc/lib/"
  cp -a "$sysroot/lib/rustlib/$host" "$tc/lib/rustlib/"
  rustc --version > "$tc/VERSION"
  cargo --version >> "$tc/VERSION"
  kettle bundle manifest toolchain --root "$tc" --out "$BUILD/toolchain.tar.gz.manifest.json"
  install -D -m 0644 "$BUILD/toolchain.tar.gz.manifest.json" "$tc/share/kettle/bundle.json"
  det_tar "$tc" "$BUILD/toolchain.tar.gz"
  record toolchain.tar.gz "$BUILD/toolchain.tar.gz"
fi
[ "$want_rootfs$want_toolchain" = "00" ] || echo "pins recorded in $BUILD/toolchain.sha256"

if [ -f "$BUILD/rootfs.tar.gz" ] && [ -f "$BUILD/toolchain.tar.gz" ]; then
  for b in toolchain rootfs; do
    # Remade unless its pin is of this format and of the bundle there now.
    made_from=$(python3 -c 'import json, sys; p = json.load(open(sys.argv[1])); print(p["bundle_sha256"] if p.get("schema") == "kettle.bundle-disk/v1" else "")' \
      "$BUILD/$b.erofs.json" 2>/dev/null || true)
    if [ "$made_from" != "$(sha256sum < "$BUILD/$b.tar.gz" | cut -d' ' -f1)" ]; then
      kettle bundle disk --bundle "$BUILD/$b.tar.gz" --out "$BUILD/$b.erofs"
    fi
  done
  kettle bundle pins --toolchain "$BUILD/toolchain.tar.gz" --rootfs "$BUILD/rootfs.tar.gz" \
    --url-base "$URL_BASE" --out "$BUILD/bundles.json"
  # The image directory carries the pins of the bundles that go with it (kettle init reads them).
  if [ -d "$BUILD/image" ]; then
    cp "$BUILD/bundles.json" "$BUILD/image/bundles.json.tmp"
    mv "$BUILD/image/bundles.json.tmp" "$BUILD/image/bundles.json"
    echo "pins for kettle init: $BUILD/image/bundles.json"
  fi
else
  echo "no pins written: $BUILD/rootfs.tar.gz and $BUILD/toolchain.tar.gz are both needed" >&2
  [ "$want_rootfs$want_toolchain" != "00" ] || exit 1
fi
