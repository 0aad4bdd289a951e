#!/usr/bin/env bash
# Builds kettle-init, the guest's PID 1, reproducibly as a static x86-64
# binary: build/kettle-init (and build/kettle-init.sha256).
#
# Reproducibility: --locked dependencies, the workspace release profile
# (codegen-units=1, lto, strip, panic=abort), a dedicated target dir
# (build/target-guest, so host builds never share or invalidate it),
# CARGO_INCREMENTAL=0, SOURCE_DATE_EPOCH from the last commit that changed kettle-init's inputs
# (scripts/guest-epoch.sh), and every
# machine-specific path remapped (registry, checkout, toolchain), so two
# builds of one commit with one toolchain give one SHA-256.
#
# Env: BUILD (output dir, default <repo>/build), CARGO (default cargo).
set -euo pipefail

cd "$(dirname "$0")/.."
ROOT=$PWD
BUILD=${BUILD:-$ROOT/build}
CARGO=${CARGO:-cargo}
TARGET=x86_64-unknown-linux-gnu
CARGO_HOME_DIR=${CARGO_HOME:-$HOME/.cargo}
RUSTUP_HOME_DIR=${RUSTUP_HOME:-$HOME/.rustup}

log() { printf 'init: %s\n' "$*"; }
die() { printf 'init: error: %s\n' "$*" >&2; exit 1; }

command -v "$CARGO" >/dev/null || die "cargo not found; install Rust (rustup) first"
mkdir -p "$BUILD"

# The std library must be available for the target (it is the host target on x86-64 Linux).
if command -v rustup >/dev/null && ! rustup target list --installed 2>/dev/null | grep -qx "$TARGET"; then
    die "Rust target $TARGET is not installed; run: rustup target add $TARGET"
fi

export CARGO_TARGET_DIR=$BUILD/target-guest
export CARGO_INCREMENTAL=0
# The last commit that changed what kettle-init is built from: committing docs,
# tests or a freshly published manifest must not change the kettle-init it describes.
"$CARGO" fetch --locked -q
SOURCE_DATE_EPOCH=${SOURCE_DATE_EPOCH:-$(CARGO=$CARGO bash scripts/guest-epoch.sh)}
export SOURCE_DATE_EPOCH
export RUSTFLAGS="-C target-feature=+crt-static \
--remap-path-prefix=$CARGO_HOME_DIR/registry/src=/cargo/registry/src \
--remap-path-prefix=$CARGO_HOME_DIR/git/checkouts=/cargo/git/checkouts \
--remap-path-prefix=$ROOT=/kettle \
--remap-path-prefix=$RUSTUP_HOME_DIR=/rustup"
# Nothing from the environment may leak into the build through these.
unset RUSTC_WRAPPER CARGO_BUILD_RUSTFLAGS CARGO_ENCODED_RUSTFLAGS

log "$("${RUSTC:-rustc}" -V), target $TARGET, SOURCE_DATE_EPOCH=$SOURCE_DATE_EPOCH"
"$CARGO" build --release --locked -p kettle-init --bin kettle-init --target "$TARGET"

OUT=$CARGO_TARGET_DIR/$TARGET/release/kettle-init
[ -f "$OUT" ] || die "cargo finished without $OUT"

# Static means no program interpreter: the initramfs has no ld.so or libc.
command -v readelf >/dev/null || command -v file >/dev/null \
    || die "need readelf (binutils) or file(1) to check that $OUT is static"
if command -v readelf >/dev/null && LC_ALL=C readelf -lW "$OUT" | grep -q 'INTERP'; then
    die "$OUT is dynamically linked (has PT_INTERP); it cannot run as /init"
fi
if command -v file >/dev/null; then
    desc=$(file -b "$OUT")
    case "$desc" in
        *"statically linked"* | *"static-pie linked"*) ;;
        *) die "$OUT is not static: $desc" ;;
    esac
fi

cp "$OUT" "$BUILD/.kettle-init.tmp"
mv -f "$BUILD/.kettle-init.tmp" "$BUILD/kettle-init"
sha256sum <"$BUILD/kettle-init" | cut -d' ' -f1 >"$BUILD/kettle-init.sha256"
log "$BUILD/kettle-init sha256 $(cat "$BUILD/kettle-init.sha256") ($(stat -c %s "$BUILD/kettle-init") bytes, static)"
