#!/usr/bin/env bash
# Builds the guest firmware: build/OVMF.fd, the flash image of edk2's AmdSev package
# (OvmfPkg/AmdSev/AmdSevX64.dsc), which carries the SNP kernel-hashes table
# that measured direct boot needs, and build/OVMF.fd.tools, one
# `name version` line per tool whose output ends up in the image (the Debian
# version of the package that provides it), for the image manifest.
#
# Source: Debian trixie's edk2 source package, both tarballs pinned by SHA-256
# in kernel-config/ovmf.pin, Debian's patches applied with quilt. Only a
# deb-src line for trixie is added to apt (never a binary line).
#
# Reproducible: the same pin, script and tool versions give the same bytes
# wherever the checkout, BUILD or KETTLE_CACHE are and whatever the caller's
# environment. The tree is built in the fixed directory $WORKROOT (edk2's
# GenFw sizes each PE image's debug directory by the length of the module's
# build path, so the path is part of the image; see kernel-config/README.md),
# one build at a time (flock), with a fixed PATH, an emptied environment,
# LC_ALL=C, TZ=UTC, umask 022, PYTHONHASHSEED=1 and SOURCE_DATE_EPOCH taken
# from the pinned debian/changelog (the date of the file in grub's FAT memdisk).
#
# Cached under ${KETTLE_CACHE:-/var/cache/kettle}/ovmf/<input hash>/; the hash
# covers the pin, this script, scripts/lib/pinned-build.sh and the OVMF.fd.tools lines (gcc, binutils,
# nasm, iasl, python3, make, mtools, dosfstools, grub-mkimage, grub's EFI modules).
#
# Env: BUILD (output dir, default <repo>/build), KETTLE_CACHE,
#      KEEP_OVMF_SRC=1 to keep the build tree (moved to $BUILD/ovmf-src)
#      after a successful build.
set -euo pipefail

# One environment for the tool lookups, the hash and the build: Debian's
# tools only (no /usr/local, pyenv or ~/.cargo shims), C locale, UTC.
export PATH=/usr/sbin:/usr/bin:/sbin:/bin LC_ALL=C TZ=UTC
unset LANG LANGUAGE
umask 022

cd "$(dirname "$0")/.."
ROOT=$PWD
BUILD=${BUILD:-$ROOT/build}
PIN=$ROOT/kernel-config/ovmf.pin
SCRIPT=$ROOT/scripts/build-ovmf.sh
CACHE_ROOT=${KETTLE_CACHE:-/var/cache/kettle}
CACHE=$CACHE_ROOT/ovmf
SRC_CACHE=$CACHE/source
# The fixed build directory: never derived from the checkout, BUILD, TMPDIR
# or KETTLE_CACHE, since the build path is part of the firmware bytes.
WORKROOT=/tmp/kettle-edk2-build
SRC=$WORKROOT/edk2
APT_SOURCES=/etc/apt/sources.list.d/kettle-trixie-src.sources
BUILD_DEPS=(build-essential nasm acpica-tools uuid-dev grub-efi-amd64-bin dosfstools mtools quilt python3 dpkg-dev)
# AmdSevX64.fdf names its flash device [FD.OVMF] (AMDSEV in older edk2).
FD=Build/AmdSev/RELEASE_GCC5/FV/OVMF.fd

NAME=ovmf
# shellcheck source=scripts/lib/pinned-build.sh
. "$ROOT/scripts/lib/pinned-build.sh"

# tool_line NAME CMD-OR-PATH: "NAME VERSION", VERSION being the Debian version
# of the package providing the binary that CMD resolves to (on the fixed PATH).
tool_line() {
    local name=$1 f pkg v
    case $2 in
        /*) f=$2 ;;
        *) f=$(command -v "$2") || die "$2 is not installed (needed for the firmware build)" ;;
    esac
    f=$(readlink -f "$f")
    pkg=$(file_package "$f") || die "$f ($2) does not belong to a Debian package; the firmware must be built with Debian's tools"
    v=$(pkg_version "$pkg")
    [ -n "$v" ] || die "cannot read the version of $pkg (provides $f)"
    printf '%s %s\n' "$name" "$v"
}

# tool_versions: the OVMF.fd.tools lines, in a fixed order.
tool_versions() {
    tool_line gcc gcc                   # gcc-12 (cpp-12, lto1 are pinned to it)
    tool_line binutils ld               # binutils-x86-64-linux-gnu (ld, objcopy, ar)
    tool_line nasm nasm
    tool_line iasl iasl                 # acpica-tools
    tool_line python3 python3           # BaseTools' build, AutoGen, GenFds
    tool_line make make
    tool_line mtools mcopy              # the grub memdisk's grub.cfg
    tool_line dosfstools mkfs.msdos     # the grub memdisk
    tool_line grub-mkimage grub-mkimage # grub-common
    tool_line grub-efi-amd64-bin /usr/lib/grub/x86_64-efi/kernel.img
}

# input_hash TOOLS: SHA-256 over everything that determines the OVMF.fd bytes.
input_hash() {
    {
        printf 'pin %s\n' "$(sha256_of "$PIN")"
        printf 'script %s\n' "$(sha256_of "$SCRIPT")"
        printf 'lib %s\n' "$(sha256_of "$ROOT/scripts/lib/pinned-build.sh")"
        printf '%s\n' "$1"
    } | sha256sum | cut -d' ' -f1
}

# ensure_build_deps: install the firmware build dependencies that are missing.
ensure_build_deps() {
    local p missing=()
    for p in "${BUILD_DEPS[@]}"; do
        [ -n "$(pkg_version "$p")" ] || missing+=("$p")
    done
    [ "${#missing[@]}" -eq 0 ] && return 0
    [ "$(id -u)" -eq 0 ] || die "missing build dependencies: ${missing[*]}; run 'make setup' as root"
    log "installing build dependencies: ${missing[*]}"
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
}

# fetch_sources: the pinned tarballs into $SRC_CACHE, from Debian via apt.
fetch_sources() {
    if verified "$SRC_CACHE/$ORIG" "$ORIG_SHA256" && verified "$SRC_CACHE/$DEBIAN" "$DEBIAN_SHA256"; then
        return 0
    fi
    [ "$(id -u)" -eq 0 ] || die "the edk2 source is not cached in $SRC_CACHE; run as root so apt can fetch it"
    if [ ! -f "$APT_SOURCES" ]; then
        log "adding a deb-src (source only) line for $SUITE: $APT_SOURCES"
        cat >"$APT_SOURCES" <<SRC
# Source packages only (edk2 for Kettle's AmdSev OVMF): never a binary line,
# which could upgrade this bookworm system to $SUITE packages.
Types: deb-src
URIs: http://deb.debian.org/debian
Suites: $SUITE
Components: main
Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg
SRC
    fi
    if ! apt-cache showsrc "$PACKAGE" 2>/dev/null | grep -qx "Version: $VERSION"; then
        log "apt-get update (source index for $SUITE)"
        apt-get update -qq
    fi
    apt-cache showsrc "$PACKAGE" 2>/dev/null | grep -qx "Version: $VERSION" \
        || die "Debian no longer offers $PACKAGE $VERSION in $SUITE (superseded?).
  Move the pin in $PIN to the version 'apt-cache showsrc $PACKAGE' lists (new
  SHA-256 values from its Checksums-Sha256), rebuild, and publish the new image
  manifest: the firmware is measured, so the launch digest changes."
    local stage
    mkdir -p "$SRC_CACHE"
    stage=$(mktemp -d "$SRC_CACHE/.fetch.XXXXXX")
    # _apt must be able to write here, or apt downloads unsandboxed with a warning.
    chmod 777 "$stage"
    # The two tarballs only: they are what the pin covers (the .dsc adds nothing).
    (cd "$stage" && apt-get source -qq --download-only --tar-only "$PACKAGE=$VERSION" >/dev/null \
        && apt-get source -qq --download-only --diff-only "$PACKAGE=$VERSION" >/dev/null)
    verified "$stage/$ORIG" "$ORIG_SHA256" \
        || die "$ORIG from Debian does not have the pinned SHA-256 $ORIG_SHA256"
    verified "$stage/$DEBIAN" "$DEBIAN_SHA256" \
        || die "$DEBIAN from Debian does not have the pinned SHA-256 $DEBIAN_SHA256"
    mv -f "$stage/$ORIG" "$stage/$DEBIAN" "$SRC_CACHE/"
    rm -rf "$stage"
}

# lock_workroot: create $WORKROOT (ours, not a symlink) and hold its lock
# until this script exits, so that concurrent builds take turns.
lock_workroot() {
    mkdir -m 700 "$WORKROOT" 2>/dev/null || true
    [ -d "$WORKROOT" ] && [ ! -L "$WORKROOT" ] && [ "$(stat -c %u "$WORKROOT")" = "$(id -u)" ] \
        || die "$WORKROOT is not a directory owned by $(id -un); remove it (the firmware must be built at this fixed path)"
    exec 9>"$WORKROOT/lock"
    if ! flock -n 9; then
        log "waiting for another firmware build to release $WORKROOT"
        flock 9
    fi
}

# clean_env CMD...: run CMD with only the variables the build needs (BaseTools
# and edksetup.sh run PYTHON_COMMAND, else a plain 'python'), so the
# caller's CC, CFLAGS, MAKEFLAGS, PYTHON*, QUILT_*, MTOOLSRC, HOME dotfiles,
# EDK_TOOLS_PATH, PACKAGES_PATH, ... cannot reach it.
clean_env() {
    env -i PATH="$PATH" LC_ALL=C TZ=UTC HOME="$WORKROOT/home" \
        PYTHON_COMMAND=python3 PYTHONHASHSEED=1 \
        ${SOURCE_DATE_EPOCH:+SOURCE_DATE_EPOCH="$SOURCE_DATE_EPOCH"} "$@"
}

# prepare_tree DIR: unpack the pinned source into DIR and patch it.
prepare_tree() {
    local dir=$1 grub=$1/OvmfPkg/AmdSev/Grub/grub.sh
    tar -xf "$SRC_CACHE/$ORIG" -C "$dir" --strip-components=1 --no-same-owner
    tar -xf "$SRC_CACHE/$DEBIAN" -C "$dir" --no-same-owner
    # Debian's series, among them one that disables BaseTools' brotli (not in the orig tarball).
    (cd "$dir" && clean_env QUILT_PATCHES=debian/patches quilt --quiltrc=- push -a -q) >>"$LOGFILE" 2>&1 \
        || die "Debian's patches do not apply to $ORIG; see $LOGFILE"
    # bookworm's grub has no sevsecret module; it only serves AmdSev's
    # encrypted-disk secret flow, which Kettle does not use (the kernel is
    # booted directly and measured through the kernel-hashes table).
    grep -q '^ *sevsecret$' "$grub" || die "$grub no longer lists sevsecret; review this patch"
    sed -i '/^ *sevsecret$/d' "$grub"
    # A fixed FAT volume id and timestamps, so the grub memdisk (and with it
    # the firmware) is the same bytes on every build. mcopy dates grub.cfg
    # with SOURCE_DATE_EPOCH (in TZ), set by the caller.
    grep -q '^mkfs.msdos -C ' "$grub" || die "$grub no longer runs 'mkfs.msdos -C'; review this patch"
    sed -i 's/^mkfs.msdos -C /mkfs.msdos --invariant -i 4b45544c -C /' "$grub"
}

PACKAGE=$(pin_value package)
VERSION=$(pin_value version)
SUITE=$(pin_value suite)
ORIG=$(pin_value orig)
ORIG_SHA256=$(pin_value orig_sha256)
DEBIAN=$(pin_value debian)
DEBIAN_SHA256=$(pin_value debian_sha256)
unset SOURCE_DATE_EPOCH

ensure_build_deps
TOOLS=$(tool_versions)
HASH=$(input_hash "$TOOLS")
ENTRY=$CACHE/$HASH
mkdir -p "$BUILD"
if verified "$ENTRY/OVMF.fd" "$(cat "$ENTRY/OVMF.fd.sha256" 2>/dev/null || echo none)" \
    && [ "$(cat "$ENTRY/OVMF.fd.tools" 2>/dev/null)" = "$TOOLS" ]; then
    log "cache hit $HASH"
else
    JOBS=$(nproc)
    log "cache miss $HASH: building $PACKAGE $VERSION AmdSevX64 in $SRC with -n $JOBS"
    mkdir -p "$CACHE" 2>/dev/null || die "cannot create cache dir $CACHE; set KETTLE_CACHE to a writable dir"
    fetch_sources
    LOGFILE=$BUILD/ovmf-build.log
    : >"$LOGFILE"
    lock_workroot
    rm -rf "$SRC" "$WORKROOT/home" "$BUILD/ovmf-src"
    mkdir -p "$SRC" "$WORKROOT/home"
    # errtrace: the trap must also fire for the commands run by clean_env.
    set -o errtrace
    trap 'echo "ovmf: error: build failed (tree left in $SRC); last lines of $LOGFILE:" >&2; tail -n 30 "$LOGFILE" >&2' ERR
    prepare_tree "$SRC"
    # The date of the last upload of the pinned source: fixed by the pin.
    SOURCE_DATE_EPOCH=$(dpkg-parsechangelog -l "$SRC/debian/changelog" -STimestamp)
    [[ $SOURCE_DATE_EPOCH =~ ^[0-9]+$ ]] || die "no timestamp in $SRC/debian/changelog"
    log "source verified and patched; compiling with SOURCE_DATE_EPOCH=$SOURCE_DATE_EPOCH (log: $LOGFILE)"
    clean_env make -C "$SRC/BaseTools" -j"$JOBS" >>"$LOGFILE" 2>&1
    # edksetup.sh and build read unset variables; run them without -u.
    # edksetup.sh exports PYTHONHASHSEED=1 itself (set above as well).
    # edksetup.sh parses the positional parameters as its options: clear them.
    clean_env bash -c 'set -e
        src=$1 jobs=$2
        set --
        cd "$src"
        export WORKSPACE=$src
        . ./edksetup.sh
        build -p OvmfPkg/AmdSev/AmdSevX64.dsc -a X64 -t GCC5 -b RELEASE -n "$jobs"' \
        build-ovmf "$SRC" "$JOBS" >>"$LOGFILE" 2>&1
    trap - ERR
    [ -f "$SRC/$FD" ] || die "the edk2 build finished without $FD; see $LOGFILE"
    STAGE=$(mktemp -d "$CACHE/.stage.XXXXXX")
    chmod 755 "$STAGE"
    cp "$SRC/$FD" "$STAGE/OVMF.fd"
    sha256_of "$STAGE/OVMF.fd" >"$STAGE/OVMF.fd.sha256"
    printf '%s\n' "$TOOLS" >"$STAGE/OVMF.fd.tools"
    rm -rf "$ENTRY"
    mv -T "$STAGE" "$ENTRY"
    if [ "${KEEP_OVMF_SRC:-0}" = 1 ]; then
        mv -T "$SRC" "$BUILD/ovmf-src"
        log "build tree kept in $BUILD/ovmf-src (built as $SRC)"
    fi
    rm -rf "$SRC" "$WORKROOT/home"
fi
cp "$ENTRY/OVMF.fd" "$BUILD/.OVMF.fd.tmp"
mv -f "$BUILD/.OVMF.fd.tmp" "$BUILD/OVMF.fd"
cp "$ENTRY/OVMF.fd.tools" "$BUILD/.OVMF.fd.tools.tmp"
mv -f "$BUILD/.OVMF.fd.tools.tmp" "$BUILD/OVMF.fd.tools"
log "$BUILD/OVMF.fd sha256 $(cat "$ENTRY/OVMF.fd.sha256") ($(stat -c %s "$ENTRY/OVMF.fd") bytes)"
