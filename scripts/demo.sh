#!/usr/bin/env bash
# The end-to-end demo (`make demo`): the guest image -> a build of the bundled
# sample project (examples/hello-script) inside the CVM -> `kettle verify`.
# Here that is TCG + the simulated PSP (no SEV-SNP on this machine), so the
# verdict says SIMULATED. Outputs stay in out/demo/. It runs what exists and
# names exactly what is missing (non-zero exit) when a piece is not there.
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$(pwd)
BUILD=${BUILD:-$ROOT/build}
IMAGE=${IMAGE:-$BUILD/image}
OUT=${OUT:-$ROOT/out/demo}
SAMPLE=examples/hello-script
TEE=${KETTLE_TEE:-simulated}

say() { printf 'demo: %s\n' "$*"; }
missing() { say "MISSING: $*"; exit 1; }

# 1. The guest image (kernel, initramfs with kettle-init, OVMF, manifest.json).
if [ ! -f "$IMAGE/manifest.json" ]; then
  say "no image in $IMAGE: running make image"
  make image || missing "the guest image could not be built (make image failed; see its output above)"
fi
[ -f "$IMAGE/manifest.json" ] || missing "$IMAGE/manifest.json after make image"

# 2. The host CLI.
say "building kettle"
cargo build --locked --release -q -p kettle || missing "the kettle CLI does not build"
KETTLE=${CARGO_TARGET_DIR:-$ROOT/target}/release/kettle
[ -x "$KETTLE" ] || missing "$KETTLE"

# 3. The sample project, committed with its pins filled in.
[ -f "$SAMPLE/kettle.toml.in" ] || missing "$SAMPLE/kettle.toml.in (the sample project)"
ROOTFS="$BUILD/demo-rootfs.tar.gz"
say "making the sample's root filesystem (sh, mkdir, cat from this host) -> $ROOTFS"
stage=$(mktemp -d)
trap 'rm -rf "$stage"' EXIT
for b in sh mkdir cat; do
  bin=$(command -v "$b")
  for dir in bin usr/bin; do
    mkdir -p "$stage/rootfs/$dir"
    cp -L "$bin" "$stage/rootfs/$dir/$b"
  done
  for lib in $(ldd "$bin" | grep -o '/[^ ]*'); do
    mkdir -p "$stage/rootfs$(dirname "$lib")"
    cp -L "$lib" "$stage/rootfs$lib"
  done
done
mkdir -p "$BUILD"
LC_ALL=C tar --sort=name --mtime=@0 --owner=0 --group=0 --numeric-owner --format=gnu \
  -C "$stage/rootfs" -cf - . | gzip -n -9 > "$ROOTFS"
ROOTFS_SHA=$(sha256sum "$ROOTFS" | cut -d' ' -f1)

SRC="$BUILD/demo-src"
rm -rf "$SRC"
mkdir -p "$SRC"
cp -r "$SAMPLE"/. "$SRC"/
rm "$SRC/kettle.toml.in"
sed -e "s|@ROOTFS_URL@|https://kettle.invalid/demo/rootfs.tar.gz|" -e "s|@ROOTFS_SHA256@|$ROOTFS_SHA|" \
  "$SAMPLE/kettle.toml.in" > "$SRC/kettle.toml"
export GIT_AUTHOR_DATE=2025-01-01T00:00:00Z GIT_COMMITTER_DATE=2025-01-01T00:00:00Z
git -C "$SRC" init -q -b main
git -C "$SRC" -c user.name=kettle-demo -c user.email=demo@kettle.invalid add -A
git -C "$SRC" -c user.name=kettle-demo -c user.email=demo@kettle.invalid commit -q -m "hello-script sample"
say "sample committed: $(git -C "$SRC" rev-parse HEAD) in $SRC"

# 4. Build it in the CVM. The rootfs is handed to the input cache with --input
#    (its pinned URL is a placeholder); the guest verifies it against the pin.
say "kettle build (tee $TEE; TCG when KVM is not usable: this takes a few minutes)"
set +e
"$KETTLE" build "$SRC" --tee "$TEE" --image "$IMAGE" --out "$OUT" --force \
  --input "$ROOTFS" --memory 2048 --timeout 1800
rc=$?
set -e
[ "$rc" -eq 0 ] || { say "kettle build failed (exit $rc); console log: $OUT/build.log"; exit "$rc"; }

# 5. Verify as an auditor would.
allow=()
[ "$TEE" = simulated ] && allow=(--allow-simulated)
# The published manifest (not the copy in $OUT, which the build host wrote) pins the image.
say "kettle verify $OUT --manifest $IMAGE/manifest.json ${allow[*]}"
"$KETTLE" verify "$OUT" --manifest "$IMAGE/manifest.json" "${allow[@]}" --repo "file://$SRC" --ref refs/heads/main
say "done: artifacts, provenance.json, evidence, chain.pem, build.log and manifest.json are in $OUT"
