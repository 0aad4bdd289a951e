#!/usr/bin/env bash
# `make dist`: the release directory a host operator or an auditor uses without a
# clone, and a tarball of it:
#   dist/kettle-<version>-x86_64-linux/
#     bin/kettle                   the CLI, a static x86-64 binary (built like kettle-init)
#     image/                       bzImage initramfs.cpio OVMF.fd manifest.json
#                                  launch-digests.json provenance.json bundles.json
#     rootfs.tar.gz toolchain.tar.gz (+ .manifest.json each): the bundles, beside image/
#                                  where `kettle init` and `kettle build` look for them
#     policy.template.json         `kettle policy init` against image/manifest.json
#     attestation/kettle/          with DIST_ATTESTED (`make dist-attested`): bin/kettle's
#                                  own build output (artifacts/kettle, provenance.json,
#                                  evidence, ...), built by Kettle in the CVM
#     policy.kettle.json           ... and the policy it verifies under
#     share/completions/           kettle.bash _kettle kettle.fish
#     share/man/man1/              one page per subcommand
#     share/ci/                    ci-build.sh ci-verify.sh (the CI recipe's steps, README "CI")
#     SHA256SUMS                   every other file (`sha256sum -c SHA256SUMS`)
#   dist/kettle-<version>-x86_64-linux.tar.gz (+ .sha256)
#
# Reproducible: the binary with --locked dependencies, the release profile, a
# dedicated target dir, remapped paths and SOURCE_DATE_EPOCH; every file's mtime
# SOURCE_DATE_EPOCH (default: the HEAD commit's time), modes 0755/0644, the tar
# entries sorted, owner 0/0, `gzip -n`. Two runs give the same bytes.
#
# bundles.json is written again from the shipped bundles (`kettle bundle pins`):
# file names only, and digests that are the shipped files'.
#
# Env: BUILD (where `make image bundles` wrote; default <repo>/build), DIST
# (default <repo>/dist), CARGO, SOURCE_DATE_EPOCH, BUNDLE_URL_BASE (the bundles'
# URL base in bundles.json; default the never-resolving marker), DIST_KETTLE (tests
# only: ship this kettle binary instead of building the static one, so the release's
# layout is tested without a 12-minute static build; said in the log), DIST_ATTESTED
# (set by scripts/dist-attested.sh: an output directory of `kettle build` whose
# artifacts/kettle ships as bin/kettle with the directory as attestation/kettle/,
# with DIST_ATTESTED_POLICY and DIST_ATTESTED_COMMIT: checked here with the release's
# own kettle, image and policy before anything is packed).
set -euo pipefail

cd "$(dirname "$0")/.."
ROOT=$PWD
BUILD=${BUILD:-$ROOT/build}
DIST=${DIST:-$ROOT/dist}
CARGO=${CARGO:-cargo}
TARGET=x86_64-unknown-linux-gnu
CARGO_HOME_DIR=${CARGO_HOME:-$HOME/.cargo}
RUSTUP_HOME_DIR=${RUSTUP_HOME:-$HOME/.rustup}
URL_BASE=${BUNDLE_URL_BASE:-https://kettle-bundle.invalid/}

log() { printf 'dist: %s\n' "$*"; }
die() { printf 'dist: error: %s\n' "$*" >&2; exit 1; }

IMAGE_FILES=(bzImage initramfs.cpio OVMF.fd manifest.json launch-digests.json provenance.json)
BUNDLES=(toolchain.tar.gz rootfs.tar.gz)

# --- inputs: the image and the bundles, checked before anything is built -------
[ -d "$BUILD/image" ] || die "$BUILD/image is missing: run \`make image bundles\` (or set BUILD=DIR to a build directory that has them)"
for f in "${IMAGE_FILES[@]}"; do
    [ -f "$BUILD/image/$f" ] || die "$BUILD/image/$f is missing: run \`make image\`"
done
# A bundle is looked for as `kettle build` does: in the image directory, then its parent.
find_bundle() {
    local f
    for f in "$BUILD/image/$1" "$BUILD/$1"; do
        [ -f "$f" ] && { printf '%s\n' "$f"; return; }
    done
    die "$1 is in neither $BUILD/image nor $BUILD: run \`make bundles\`"
}
for b in "${BUNDLES[@]}"; do
    find_bundle "$b" >/dev/null
    [ -f "$(find_bundle "$b").manifest.json" ] || die "$(find_bundle "$b").manifest.json is missing: run \`make bundles\`"
done

version=$("$CARGO" pkgid --locked -p kettle | sed 's/.*[@#]//')
name=kettle-$version-x86_64-linux
if [ -z "${SOURCE_DATE_EPOCH:-}" ]; then
    SOURCE_DATE_EPOCH=$(git log -1 --format=%ct 2>/dev/null || echo 0)
fi
export SOURCE_DATE_EPOCH
log "$name, SOURCE_DATE_EPOCH=$SOURCE_DATE_EPOCH, from $BUILD"

if [ -n "${DIST_ATTESTED:-}" ]; then
    [ -f "$DIST_ATTESTED/artifacts/kettle" ] || die "DIST_ATTESTED=$DIST_ATTESTED has no artifacts/kettle"
    [ -f "${DIST_ATTESTED_POLICY:-}" ] || die "DIST_ATTESTED needs DIST_ATTESTED_POLICY (the policy it verifies under)"
    [ -n "${DIST_ATTESTED_COMMIT:-}" ] || die "DIST_ATTESTED needs DIST_ATTESTED_COMMIT (the commit it was built from)"
    log "bin/kettle is the CVM-built $DIST_ATTESTED/artifacts/kettle"
    kettle_bin=$DIST_ATTESTED/artifacts/kettle
elif [ -n "${DIST_KETTLE:-}" ]; then
    [ -x "$DIST_KETTLE" ] || die "DIST_KETTLE=$DIST_KETTLE is not an executable"
    log "bin/kettle is DIST_KETTLE=$DIST_KETTLE (a test release: not the static release build)"
    kettle_bin=$DIST_KETTLE
else
    # --- bin/kettle: static, as scripts/build-init.sh builds kettle-init -------------
    # (That script cannot source a shared helper: it is an input of the guest's epoch,
    # scripts/guest-epoch.sh, so any edit to it changes the published image.)
    export CARGO_TARGET_DIR=$BUILD/target-dist
    export CARGO_INCREMENTAL=0
    remaps=(
        "$CARGO_HOME_DIR/registry/src=/cargo/registry/src"
        "$CARGO_HOME_DIR/git/checkouts=/cargo/git/checkouts"
        "$ROOT=/kettle"
        "$RUSTUP_HOME_DIR=/rustup"
    )
    RUSTFLAGS="-C target-feature=+crt-static"
    for remap in "${remaps[@]}"; do RUSTFLAGS+=" --remap-path-prefix=$remap"; done
    export RUSTFLAGS
    unset RUSTC_WRAPPER CARGO_BUILD_RUSTFLAGS CARGO_ENCODED_RUSTFLAGS
    log "$("${RUSTC:-rustc}" -V), target $TARGET: building kettle"
    "$CARGO" build --release --locked -p kettle --bin kettle --target "$TARGET"
    kettle_bin=$CARGO_TARGET_DIR/$TARGET/release/kettle
    [ -f "$kettle_bin" ] || die "cargo finished without $kettle_bin"
    if LC_ALL=C readelf -lW "$kettle_bin" | grep -q INTERP; then
        die "$kettle_bin is dynamically linked (has PT_INTERP): a release binary must run without the build machine's libraries"
    fi
    unset RUSTFLAGS CARGO_TARGET_DIR
fi

# --- the release directory, staged then moved into place -------------------------
mkdir -p "$DIST"
DIST=$(cd "$DIST" && pwd)
stage=$(mktemp -d "$DIST/.stage-XXXXXX")
trap 'rm -rf "$stage"' EXIT
rel=$stage/$name
mkdir -p "$rel/bin" "$rel/image" "$rel/share/completions" "$rel/share/man/man1" "$rel/share/ci"
cp "$kettle_bin" "$rel/bin/kettle"
kettle=$rel/bin/kettle
for f in "${IMAGE_FILES[@]}"; do cp "$BUILD/image/$f" "$rel/image/"; done
for b in "${BUNDLES[@]}"; do
    src=$(find_bundle "$b")
    cp "$src" "$src.manifest.json" "$rel/"
done
"$kettle" bundle pins --toolchain "$rel/toolchain.tar.gz" --rootfs "$rel/rootfs.tar.gz" \
    --url-base "$URL_BASE" --out "$rel/image/bundles.json" >/dev/null
if grep -q '"/' "$rel/image/bundles.json"; then
    die "$rel/image/bundles.json names an absolute path"
fi
# The auditor's first check, run on what ships: every published launch digest recomputed.
"$kettle" measure --manifest "$rel/image/manifest.json" --image "$rel/image" >/dev/null \
    || die "kettle measure does not reproduce $BUILD/image/manifest.json from the image files"
"$kettle" policy init --manifest "$rel/image/manifest.json" --name "$name" \
    --out "$rel/policy.template.json"
"$kettle" generate completions --out "$rel/share/completions" >/dev/null
"$kettle" generate man --out "$rel/share/man/man1" >/dev/null
cp scripts/ci-build.sh scripts/ci-verify.sh "$rel/share/ci/"
if [ -n "${DIST_ATTESTED:-}" ]; then
    mkdir -p "$rel/attestation"
    cp -r "$DIST_ATTESTED" "$rel/attestation/kettle"
    cp "$DIST_ATTESTED_POLICY" "$rel/policy.kettle.json"
    # What an auditor runs: the release's own CLI, image and policy.
    cmp -s "$rel/bin/kettle" "$rel/attestation/kettle/artifacts/kettle" ||
        die "bin/kettle is not the attested artifact"
    "$kettle" verify "$rel/attestation/kettle" --policy "$rel/policy.kettle.json" \
        --commit "$DIST_ATTESTED_COMMIT" ||
        die "the release's kettle does not verify under policy.kettle.json"
fi

# Fixed modes and times, then the sums (over every file but SHA256SUMS itself).
find "$rel" -type d -exec chmod 0755 {} +
find "$rel" -type f -exec chmod 0644 {} +
chmod 0755 "$rel/bin/kettle" "$rel"/share/ci/*.sh
(cd "$rel" && find . -type f ! -name SHA256SUMS -printf '%P\n' | LC_ALL=C sort \
    | xargs -d '\n' sha256sum >SHA256SUMS)
chmod 0644 "$rel/SHA256SUMS"
find "$rel" -exec touch -h -d "@$SOURCE_DATE_EPOCH" {} +

LC_ALL=C tar --sort=name --mtime="@$SOURCE_DATE_EPOCH" --owner=0 --group=0 --numeric-owner \
    --format=gnu --no-acls --no-xattrs --no-selinux -C "$stage" -cf - "$name" \
    | gzip -n >"$stage/$name.tar.gz"
(cd "$stage" && sha256sum "$name.tar.gz" >"$name.tar.gz.sha256")

rm -rf "$DIST/$name"
mv "$rel" "$DIST/$name"
mv -f "$stage/$name.tar.gz" "$stage/$name.tar.gz.sha256" "$DIST/"
log "$DIST/$name/ ($(du -sh "$DIST/$name" | cut -f1)): $(wc -l <"$DIST/$name/SHA256SUMS") files in SHA256SUMS"
log "$DIST/$name.tar.gz sha256 $(cut -d' ' -f1 "$DIST/$name.tar.gz.sha256")"
