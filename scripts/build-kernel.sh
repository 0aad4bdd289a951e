#!/usr/bin/env bash
# Builds the guest kernel reproducibly: build/bzImage, build/kernel.config and
# build/bzImage.tools (one `name version` line per tool that built it: the
# Debian version of the package owning the binary the build's PATH resolves
# to; `kettle image` records it in the image manifest).
#
# Source: the Debian tarball pinned in kernel-config/source.pin, SHA-256
# checked: from the installed package if it is the pinned version, else from
# the pinned .deb (apt, or KETTLE_KERNEL_DEB), kept in the cache. Patches:
# kernel-config/patches.sha256 lists each kernel-config/patches/*.patch with its
# SHA-256, in the order they are applied; an unlisted or changed patch stops the
# build. Config: `make tinyconfig` + kernel-config/kettle.config + `make
# olddefconfig`, then every option the fragment names is asserted. Fixed KBUILD_BUILD_* values make two builds give one bzImage.
#
# Cached under ${KETTLE_CACHE:-/var/cache/kettle}/kernel/<input hash>/; the
# hash covers the pin, the patch list (which pins each patch by SHA-256), the
# fragment, this script, scripts/lib/pinned-build.sh and the compiler/linker versions, so a rebuild with the same inputs is a copy. bzImage.tools is kept
# in the entry: a cache hit reports the tools that built the cached bzImage.
#
# Env: BUILD (output dir, default <repo>/build), KETTLE_CACHE,
#      KEEP_KERNEL_SRC=1 to keep the build tree after a successful build,
#      KETTLE_KERNEL_DEB=<.deb> the pinned linux-source package, where apt
#      no longer offers it (e.g. from snapshot.debian.org).
set -euo pipefail

cd "$(dirname "$0")/.."
ROOT=$PWD
BUILD=${BUILD:-$ROOT/build}
PIN=$ROOT/kernel-config/source.pin
FRAGMENT=$ROOT/kernel-config/kettle.config
PATCHES=$ROOT/kernel-config/patches.sha256
SCRIPT=$ROOT/scripts/build-kernel.sh
CACHE=${KETTLE_CACHE:-/var/cache/kettle}/kernel
SRC_CACHE=$CACHE/source

NAME=kernel
# shellcheck source=scripts/lib/pinned-build.sh
. "$ROOT/scripts/lib/pinned-build.sh"

# fetch_source: the pinned tarball, verified, at $SOURCE. Taken from the
# installed package when that is the pinned version, else from the pinned
# .deb, fetched with apt (signed by the archive) or given as $KETTLE_KERNEL_DEB,
# and kept in $SRC_CACHE. The system's linux-source package may be newer: a
# security upgrade must not move the measured kernel.
fetch_source() {
    local deb stage
    SOURCE=$SRC_CACHE/$SHA256.tar.xz
    verified "$SOURCE" "$SHA256" && return 0
    if [ "$(pkg_version "$PKG")" = "$VERSION" ] && verified "$TARBALL" "$SHA256"; then
        SOURCE=$TARBALL
        return 0
    fi
    mkdir -p "$SRC_CACHE"
    stage=$(mktemp -d "$SRC_CACHE/.fetch.XXXXXX")
    if [ -n "${KETTLE_KERNEL_DEB:-}" ]; then
        deb=$KETTLE_KERNEL_DEB
        log "taking $PKG $VERSION from $deb"
    else
        log "fetching $PKG $VERSION with apt (installed: $(pkg_version "$PKG" || true))"
        # _apt must be able to write here, or apt downloads unsandboxed with a warning.
        chmod 777 "$stage"
        download() { (cd "$stage" && apt-get download -qq "$PKG=$VERSION" >/dev/null 2>&1); }
        # Lists older than the pin do not know it: refresh them once (as root) and retry.
        download || { [ "$(id -u)" -eq 0 ] && log "apt-get update (lists without $PKG $VERSION)" \
            && apt-get update -qq && download; } || {
            rm -rf "$stage"
            die "apt cannot fetch $PKG=$VERSION (dropped from the archive, or no network).
  Download ${PKG}_${VERSION}_all.deb from https://snapshot.debian.org/binary/$PKG/ and
  run again with KETTLE_KERNEL_DEB=<that file>, or move the pin in $PIN (see its header:
  this changes the launch digest)."
        }
        deb=$(printf '%s\n' "$stage"/*.deb | head -n1)
    fi
    dpkg-deb --fsys-tarfile "$deb" | tar -xO ".$TARBALL" >"$stage/source.tar.xz" \
        || { rm -rf "$stage"; die "$deb holds no $TARBALL"; }
    if ! verified "$stage/source.tar.xz" "$SHA256"; then
        rm -rf "$stage"
        die "$TARBALL in $deb does not have the SHA-256 $SHA256 that $PIN pins"
    fi
    mv -f "$stage/source.tar.xz" "$SOURCE"
    rm -rf "$stage"
}

# patch_files: the pinned patches, one path a line in the order of
# $PATCHES, each checked against its SHA-256; fails on a missing or changed
# patch, on a patch in kernel-config/patches/ that the list does not name, and
# on a list line that is not "<sha256>  patches/<name>.patch".
patch_files() {
    local sha rel extra f listed=()
    [ -f "$PATCHES" ] || die "$PATCHES is missing (it pins the kernel patches; an empty file means none)"
    while read -r sha rel; do
        case $sha in '' | '#'*) continue ;; esac
        [[ $sha =~ ^[0-9a-f]{64}$ && $rel == patches/*.patch ]] \
            || die "${PATCHES#"$ROOT"/}: not '<sha256>  patches/<name>.patch': $sha $rel"
        f=$ROOT/kernel-config/$rel
        [ -f "$f" ] || die "${PATCHES#"$ROOT"/} pins $rel, which does not exist"
        verified "$f" "$sha" || die "$rel has SHA-256 $(sha256_of "$f"), ${PATCHES#"$ROOT"/} pins $sha (a changed patch must be pinned anew: it changes the bzImage and the launch digest)"
        listed+=("$rel")
        printf '%s\n' "$f"
    done <"$PATCHES"
    for f in "$ROOT"/kernel-config/patches/*.patch; do
        [ -e "$f" ] || continue
        extra=${f#"$ROOT"/kernel-config/}
        [[ " ${listed[*]} " == *" $extra "* ]] || die "$extra is not pinned in ${PATCHES#"$ROOT"/} (add its SHA-256 there, or remove it)"
    done
}

# tool_line NAME CMD-OR-PATH: "NAME VERSION", VERSION being the Debian version
# of the package providing the binary CMD resolves to on the build's PATH
# (NAME "-": that package's name, for a tool with alternatives such as awk); a
# binary from no package is recorded as "NAME unpackaged PATH: <--version>"
# (the record says so instead of guessing).
tool_line() {
    local name=$1 f pkg v
    case $2 in
        /*) f=$2 ;;
        *) f=$(command -v "$2") || die "$2 is not installed (needed for the kernel build; run 'make setup')" ;;
    esac
    f=$(readlink -f "$f")
    if pkg=$(file_package "$f") && v=$(pkg_version "$pkg") && [ -n "$v" ]; then
        [ "$name" = - ] && name=$pkg
        printf '%s %s\n' "$name" "$v"
    else
        v=
        case $f in
            *.so | *.so.*) ;;
            *) [ -x "$f" ] && v=$("$f" --version 2>/dev/null | head -n1 || true) ;;
        esac
        [ "$name" = - ] && name=$2
        printf '%s unpackaged %s%s\n' "$name" "$f" "${v:+: $v}"
    fi
}

# tool_versions: the bzImage.tools lines, in a fixed order: what compiles,
# links, generates and compresses the code that ends up in the bzImage.
tool_versions() {
    tool_line gcc gcc                     # gcc-12 (cpp, cc1)
    tool_line binutils ld                 # binutils-x86-64-linux-gnu (as, ld, objcopy)
    tool_line make make
    tool_line flex flex                   # kconfig's lexer
    tool_line bison bison                 # kconfig's parser
    tool_line bc bc                       # kernel/time/timeconst.h
    tool_line - awk                       # mawk or gawk: arch/x86's inat-tables.c
    tool_line patch patch                 # kernel-config/patches
    tool_line lz4 lz4                     # CONFIG_KERNEL_LZ4: the compressed payload
    tool_line libelf /usr/lib/x86_64-linux-gnu/libelf.so.1 # libelf1: objtool
    tool_line libc6-dev /usr/include/stdio.h               # the host programs (relocs, objtool)
}

# input_hash: SHA-256 over everything that determines the bzImage bytes.
input_hash() {
    {
        printf 'pin %s\n' "$(sha256_of "$PIN")"
        printf 'patches %s\n' "$(sha256_of "$PATCHES")"
        printf 'fragment %s\n' "$(sha256_of "$FRAGMENT")"
        printf 'script %s\n' "$(sha256_of "$SCRIPT")"
        printf 'lib %s\n' "$(sha256_of "$ROOT/scripts/lib/pinned-build.sh")"
        printf 'gcc %s\n' "$(gcc --version | head -n1)"
        printf 'ld %s\n' "$(ld --version | head -n1)"
    } | sha256sum | cut -d' ' -f1
}

# assert_config CONFIG: every CONFIG_X=v and "# CONFIG_X is not set" line of
# the fragment holds in CONFIG; fails naming each option Kconfig dropped.
assert_config() {
    local cfg=$1 line opt got bad=()
    while IFS= read -r line; do
        case $line in
            CONFIG_*=*)
                if ! grep -qxF -- "$line" "$cfg"; then
                    got=$(grep -m1 "^${line%%=*}=" "$cfg" || echo "not set")
                    bad+=("  ${line%%=*}: wanted ${line#*=}, got ${got#*=}")
                fi
                ;;
            "# CONFIG_"*" is not set")
                opt=${line#\# }
                opt=${opt%% *}
                if got=$(grep -m1 "^$opt=" "$cfg"); then
                    bad+=("  $opt: wanted not set, got ${got#*=}")
                fi
                ;;
        esac
    done <"$FRAGMENT"
    if [ "${#bad[@]}" -gt 0 ]; then
        printf 'kernel: error: Kconfig dropped %d option(s) of %s (a missing dependency?):\n' \
            "${#bad[@]}" "${FRAGMENT#"$ROOT"/}" >&2
        printf '%s\n' "${bad[@]}" >&2
        exit 1
    fi
}

# install_outputs DIR: copy bzImage, kernel.config and bzImage.tools from DIR into $BUILD.
install_outputs() {
    local f
    mkdir -p "$BUILD"
    for f in bzImage kernel.config bzImage.tools; do
        cp "$1/$f" "$BUILD/.$f.tmp"
    done
    for f in bzImage kernel.config bzImage.tools; do
        mv -f "$BUILD/.$f.tmp" "$BUILD/$f"
    done
}

PKG=$(pin_value package)
VERSION=$(pin_value version)
TARBALL=$(pin_value tarball)
SHA256=$(pin_value sha256)
TIMESTAMP=$(pin_value build_timestamp)

PATCH_FILES=$(patch_files)
HASH=$(input_hash)
ENTRY=$CACHE/$HASH
if [ -f "$ENTRY/bzImage" ] && [ -f "$ENTRY/kernel.config" ] && [ -f "$ENTRY/bzImage.sha256" ] \
    && [ -s "$ENTRY/bzImage.tools" ] \
    && [ "$(sha256_of "$ENTRY/bzImage")" = "$(cat "$ENTRY/bzImage.sha256")" ]; then
    log "cache hit $HASH"
    install_outputs "$ENTRY"
    log "$BUILD/bzImage sha256 $(cat "$ENTRY/bzImage.sha256")"
    exit 0
fi
log "cache miss $HASH: building $PKG $VERSION with -j$(nproc)"

mkdir -p "$CACHE" 2>/dev/null || die "cannot create cache dir $CACHE; set KETTLE_CACHE to a writable dir"
fetch_source
TOOLS=$(tool_versions)
SRC=$BUILD/kernel-src
LOGFILE=$BUILD/kernel-build.log
rm -rf "$SRC"
mkdir -p "$SRC"
: >"$LOGFILE"
trap 'echo "kernel: error: build failed; last lines of $LOGFILE:" >&2; tail -n 30 "$LOGFILE" >&2' ERR

# Everything that could leak the build machine or time into the image is fixed.
export ARCH=x86_64 LC_ALL=C TZ=UTC
export KBUILD_BUILD_TIMESTAMP=$TIMESTAMP
export KBUILD_BUILD_USER=kettle KBUILD_BUILD_HOST=kettle KBUILD_BUILD_VERSION=1
export LOCALVERSION=
SOURCE_DATE_EPOCH=$(date -u -d "$TIMESTAMP" +%s)
export SOURCE_DATE_EPOCH
unset KCFLAGS KCPPFLAGS KAFLAGS CROSS_COMPILE

tar -xf "$SOURCE" -C "$SRC" --strip-components=1
while IFS= read -r f; do
    [ -n "$f" ] || continue
    log "applying ${f#"$ROOT"/}"
    patch -d "$SRC" -p1 --batch --forward --no-backup-if-mismatch -s <"$f" >>"$LOGFILE" 2>&1 \
        || die "${f#"$ROOT"/} does not apply to $PKG $VERSION (log: $LOGFILE)"
done <<<"$PATCH_FILES"
make -C "$SRC" tinyconfig >>"$LOGFILE" 2>&1
(cd "$SRC" && scripts/kconfig/merge_config.sh -m .config "$FRAGMENT") >>"$LOGFILE" 2>&1
make -C "$SRC" olddefconfig >>"$LOGFILE" 2>&1
assert_config "$SRC/.config"
log "config asserted; compiling (log: $LOGFILE)"
make -C "$SRC" -j"$(nproc)" bzImage >>"$LOGFILE" 2>&1
trap - ERR

# Store atomically: a half-copied entry must never look like a hit.
STAGE=$(mktemp -d "$CACHE/.stage.XXXXXX")
chmod 755 "$STAGE"
cp "$SRC/arch/x86/boot/bzImage" "$STAGE/bzImage"
cp "$SRC/.config" "$STAGE/kernel.config"
sha256_of "$STAGE/bzImage" >"$STAGE/bzImage.sha256"
printf '%s\n' "$TOOLS" >"$STAGE/bzImage.tools"
rm -rf "$ENTRY"
mv -T "$STAGE" "$ENTRY"
install_outputs "$ENTRY"
[ "${KEEP_KERNEL_SRC:-0}" = 1 ] || rm -rf "$SRC"
log "$BUILD/bzImage sha256 $(cat "$ENTRY/bzImage.sha256") ($(stat -c %s "$ENTRY/bzImage") bytes)"
