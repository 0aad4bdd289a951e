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

# 3. The sample project, committed with its pins filled in. kettle-sample is the
#    tests' own code for this (kettle_testkit: the host-binaries rootfs and
#    commit_sample), so the demo builds exactly what the tests build.
[ -f "$SAMPLE/kettle.toml.in" ] || missing "$SAMPLE/kettle.toml.in (the sample project)"
ROOTFS="$BUILD/demo-rootfs.tar"
say "making the sample's root filesystem (sh, mkdir, cat from this host) -> $ROOTFS"
mkdir -p "$BUILD"
sample=$(cargo run -q --locked --release -p kettle-testkit --bin kettle-sample -- \
  "$(basename "$SAMPLE")" --rootfs-out "$ROOTFS" --repo-dir "$BUILD/demo-src" \
  --rootfs-url https://kettle.invalid/demo/rootfs.tar) \
  || missing "the sample could not be committed (kettle-sample failed; see its output above)"
{ read -r SRC; read -r ROOTFS_SHA; } <<<"$sample"
say "sample committed: $(git -C "$SRC" rev-parse HEAD) in $SRC (rootfs sha256 $ROOTFS_SHA)"

# 4. Build it in the CVM. The rootfs is handed to the input cache with --input
#    (its pinned URL is a placeholder); the guest verifies it against the pin.
say "kettle build (tee $TEE; TCG when KVM is not usable: this takes a few minutes)"
set +e
"$KETTLE" build "$SRC" --tee "$TEE" --image "$IMAGE" --out "$OUT" --force \
  --input "$ROOTFS" --memory 2048 --timeout 1800
rc=$?
set -e
[ "$rc" -eq 0 ] || { say "kettle build failed (exit $rc); console log: $OUT/build.log"; exit "$rc"; }

# 5. The platform team publishes its verification policy next to the image: the
#    published manifest's launch digest (never the copy in $OUT, which the build host
#    wrote), the repository and refs builds may come from, and (demo only) simulated
#    evidence. The policy is what an auditor enforces.
POLICY="$BUILD/demo-policy.json"
allow=()
[ "$TEE" = simulated ] && allow=(--allow-simulated)
rm -f "$POLICY"
say "kettle policy init --manifest $IMAGE/manifest.json --name kettle-demo ${allow[*]} --repo file://$SRC --ref refs/heads/main --out $POLICY"
"$KETTLE" policy init --manifest "$IMAGE/manifest.json" --name kettle-demo "${allow[@]}" \
  --repo "file://$SRC" --ref refs/heads/main --out "$POLICY"

# 6. Verify as an auditor would: the policy, and the source pinned by the auditor's own
#    clone (the ref's tip there must be the built commit).
say "kettle verify $OUT --policy $POLICY --ref refs/heads/main --source $SRC"
"$KETTLE" verify "$OUT" --policy "$POLICY" --ref refs/heads/main --source "$SRC"
say "done: artifacts, provenance.json, evidence, chain.pem, build.log and manifest.json are in $OUT; the policy is $POLICY"
