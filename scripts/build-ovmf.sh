#!/usr/bin/env bash
# Builds the guest firmware: build/OVMF.fd, the flash image of edk2's AmdSev package
# (OvmfPkg/AmdSev/AmdSevX64.dsc), which carries the SNP kernel-hashes table
# that measured direct boot needs.
#
# Source: Debian trixie's edk2 source package, both tarballs pinned by SHA-256
# in kernel-config/ovmf.pin, Debian's patches applied with quilt. Only a
# deb-src line for trixie is added to apt (never a binary line).
#
# Cached under ${KETTLE_CACHE:-/var/cache/kettle}/ovmf/<input hash>/; the hash
# covers the pin, this script and the versions of every tool whose output ends
# up in the image (gcc, binutils, nasm, iasl, grub's EFI modules).
#
# Env: BUILD (output dir, default <repo>/build), KETTLE_CACHE,
#      KEEP_OVMF_SRC=1 to keep the build tree after a successful build.
set -euo pipefail

cd "$(dirname "$0")/.."
ROOT=$PWD
BUILD=${BUILD:-$ROOT/build}
PIN=$ROOT/kernel-config/ovmf.pin
SCRIPT=$ROOT/scripts/build-ovmf.sh
CACHE_ROOT=${KETTLE_CACHE:-/var/cache/kettle}
CACHE=$CACHE_ROOT/ovmf
SRC_CACHE=$CACHE/source
APT_SOURCES=/etc/apt/sources.list.d/kettle-trixie-src.sources
BUILD_DEPS=(build-essential nasm acpica-tools uuid-dev grub-efi-amd64-bin dosfstools mtools quilt python3 dpkg-dev)
# AmdSevX64.fdf names its flash device [FD.OVMF] (AMDSEV in older edk2).
FD=Build/AmdSev/RELEASE_GCC5/FV/OVMF.fd

log() { printf 'ovmf: %s\n' "$*"; }
die() { printf 'ovmf: error: %s\n' "$*" >&2; exit 1; }

# pin_value KEY: the value of KEY=... in the pin file.
pin_value() {
    local v
    v=$(sed -n "s/^$1=//p" "$PIN")
    [ -n "$v" ] || die "$PIN has no '$1=' line"
    printf '%s' "$v"
}

# pkg_version PKG: the installed version of PKG, or nothing.
pkg_version() {
    dpkg-query -W -f='${Status} ${Version}' "$1" 2>/dev/null | sed -n 's/^install ok installed //p'
}

# input_hash: SHA-256 over everything that determines the OVMF.fd bytes.
input_hash() {
    {
        printf 'pin %s\n' "$(sha256sum <"$PIN" | cut -d' ' -f1)"
        printf 'script %s\n' "$(sha256sum <"$SCRIPT" | cut -d' ' -f1)"
        printf 'gcc %s\n' "$(gcc --version | head -n1)"
        printf 'ld %s\n' "$(ld --version | head -n1)"
        local p
        for p in nasm acpica-tools grub-efi-amd64-bin dosfstools mtools; do
            printf '%s %s\n' "$p" "$(pkg_version "$p")"
        done
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

# verified FILE SHA256: FILE exists and has that SHA-256.
verified() {
    [ -f "$1" ] && [ "$(sha256sum <"$1" | cut -d' ' -f1)" = "$2" ]
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

# prepare_tree DIR: unpack the pinned source into DIR and patch it.
prepare_tree() {
    local dir=$1 grub=$1/OvmfPkg/AmdSev/Grub/grub.sh
    tar -xf "$SRC_CACHE/$ORIG" -C "$dir" --strip-components=1
    tar -xf "$SRC_CACHE/$DEBIAN" -C "$dir"
    # Debian's series, among them one that disables BaseTools' brotli (not in the orig tarball).
    (cd "$dir" && QUILT_PATCHES=debian/patches quilt --quiltrc=- push -a -q) >>"$LOGFILE" 2>&1 \
        || die "Debian's patches do not apply to $ORIG; see $LOGFILE"
    # bookworm's grub has no sevsecret module; it only serves AmdSev's
    # encrypted-disk secret flow, which Kettle does not use (the kernel is
    # booted directly and measured through the kernel-hashes table).
    grep -q '^ *sevsecret$' "$grub" || die "$grub no longer lists sevsecret; review this patch"
    sed -i '/^ *sevsecret$/d' "$grub"
    # A fixed FAT volume id and timestamps, so the grub memdisk (and with it
    # the firmware) is the same bytes on every build.
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

ensure_build_deps
HASH=$(input_hash)
ENTRY=$CACHE/$HASH
mkdir -p "$BUILD"
if verified "$ENTRY/OVMF.fd" "$(cat "$ENTRY/OVMF.fd.sha256" 2>/dev/null || echo none)"; then
    log "cache hit $HASH"
else
    log "cache miss $HASH: building $PACKAGE $VERSION AmdSevX64 with -n $(nproc)"
    mkdir -p "$CACHE" 2>/dev/null || die "cannot create cache dir $CACHE; set KETTLE_CACHE to a writable dir"
    fetch_sources
    SRC=$BUILD/ovmf-src
    LOGFILE=$BUILD/ovmf-build.log
    rm -rf "$SRC"
    mkdir -p "$SRC"
    : >"$LOGFILE"
    trap 'echo "ovmf: error: build failed; last lines of $LOGFILE:" >&2; tail -n 30 "$LOGFILE" >&2' ERR
    export LC_ALL=C TZ=UTC SOURCE_DATE_EPOCH=0
    prepare_tree "$SRC"
    log "source verified and patched; compiling (log: $LOGFILE)"
    make -C "$SRC/BaseTools" -j"$(nproc)" >>"$LOGFILE" 2>&1
    # edksetup.sh and build read unset variables; run them without -u.
    (
        set +u
        cd "$SRC"
        export WORKSPACE=$SRC
        . ./edksetup.sh
        build -p OvmfPkg/AmdSev/AmdSevX64.dsc -a X64 -t GCC5 -b RELEASE -n "$(nproc)"
    ) >>"$LOGFILE" 2>&1
    trap - ERR
    [ -f "$SRC/$FD" ] || die "the edk2 build finished without $FD; see $LOGFILE"
    STAGE=$(mktemp -d "$CACHE/.stage.XXXXXX")
    chmod 755 "$STAGE"
    cp "$SRC/$FD" "$STAGE/OVMF.fd"
    sha256sum <"$STAGE/OVMF.fd" | cut -d' ' -f1 >"$STAGE/OVMF.fd.sha256"
    rm -rf "$ENTRY"
    mv -T "$STAGE" "$ENTRY"
    [ "${KEEP_OVMF_SRC:-0}" = 1 ] || rm -rf "$SRC"
fi
cp "$ENTRY/OVMF.fd" "$BUILD/.OVMF.fd.tmp"
mv -f "$BUILD/.OVMF.fd.tmp" "$BUILD/OVMF.fd"
log "$BUILD/OVMF.fd sha256 $(cat "$ENTRY/OVMF.fd.sha256") ($(stat -c %s "$ENTRY/OVMF.fd") bytes)"
