#!/usr/bin/env bash
# `make dist-attested`: the release's own `kettle`, built by Kettle in the CVM and
# verified before it ships. Kettle's kettle.toml (cargo-build/v1, `[cargo]` as
# scripts/dist.sh builds the CLI: -p kettle --bin kettle, static, x86_64-unknown-
# linux-gnu, the same remapped paths) is built from the committed HEAD with
# `kettle build`; the output is verified with `kettle verify` under the policy the
# release ships (policy.kettle.json: this image's launch digests, Kettle's repository
# and this branch); then scripts/dist.sh packs that binary as bin/kettle with its
# attestation in attestation/kettle/, and checks it again with the release's own
# kettle, image and policy.
#
# Not part of `make test`: under TCG (no SEV-SNP or KVM) the build is one cargo build
# of the CLI and its crates at 12-15x native cost, about an hour on 2 cores.
#
# Env: BUILD (where `make image bundles` wrote; default <repo>/build), DIST,
# KETTLE_TEE (snp or simulated; default snp, so a machine without /dev/sev must ask
# for a simulated release, whose name then ends in -simulated),
# KETTLE_MEMORY (guest MiB, default 10240), KETTLE_TIMEOUT (build seconds, default
# 14400), KETTLE_REPO (the repository recorded; default the workspace's
# `repository`), KETTLE (the host CLI that drives the build; default a debug build).
#
# --write-recipe: (re)write kettle.toml's pins from $BUILD/bundles.json, then stop:
# review and commit it (the commit covers the recipe, so the build reads it from there).
set -euo pipefail

cd "$(dirname "$0")/.."
ROOT=$PWD
BUILD=${BUILD:-$ROOT/build}
CARGO=${CARGO:-cargo}
OUT=$BUILD/attested-kettle
POLICY=$BUILD/attested-kettle.policy.json

log() { printf 'dist-attested: %s\n' "$*"; }
die() { printf 'dist-attested: error: %s\n' "$*" >&2; exit 1; }

[ -f "$BUILD/bundles.json" ] || die "$BUILD/bundles.json is missing: run \`make bundles\`"
pin() { python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))[sys.argv[2]]["sha256"])' "$BUILD/bundles.json" "$1"; }
toolchain_sha=$(pin toolchain)
rootfs_sha=$(pin rootfs)

write_recipe() {
    cat >kettle.toml <<TOML
# Kettle's own recipe: the release's \`kettle\` CLI, built by Kettle in the CVM
# (\`make dist-attested\`, scripts/dist-attested.sh) exactly as scripts/dist.sh builds it
# on a host: -p kettle --bin kettle, static, for x86_64-unknown-linux-gnu, with the
# source, vendored crates and toolchain paths remapped to the names dist.sh uses.
# The pins are the bundles \`make bundles\` wrote (build/bundles.json); rewrite them
# with \`scripts/dist-attested.sh --write-recipe\` and commit.

[build]
type = "cargo-build/v1"
outputs = ["target/x86_64-unknown-linux-gnu/release/kettle"]

[cargo]
package = "kettle"
bins = ["kettle"]
target = "x86_64-unknown-linux-gnu"
rustflags = [
    "-C", "target-feature=+crt-static",
    "--remap-path-prefix=/vendor=/cargo/registry/src/index.crates.io-1949cf8c6b5b557f",
    "--remap-path-prefix=/src=/kettle",
    "--remap-path-prefix=/opt/kettle/toolchain=/rustup/toolchains/stable-x86_64-unknown-linux-gnu",
]

[toolchain]
url = "https://kettle-bundle.invalid/toolchain.tar.gz"
sha256 = "$toolchain_sha"

[rootfs]
url = "https://kettle-bundle.invalid/rootfs.tar.gz"
sha256 = "$rootfs_sha"
TOML
}

if [ "${1:-}" = --write-recipe ]; then
    write_recipe
    log "wrote kettle.toml (toolchain $toolchain_sha, rootfs $rootfs_sha): review and commit it"
    exit 0
fi
[ $# -eq 0 ] || die "unknown argument $1 (only --write-recipe)"

# --- the recipe: committed, and pinning the bundles this release ships ------------
[ -f kettle.toml ] || die "kettle.toml is missing: run \`$0 --write-recipe\` and commit it"
grep -q "\"$toolchain_sha\"" kettle.toml && grep -q "\"$rootfs_sha\"" kettle.toml ||
    die "kettle.toml does not pin the bundles in $BUILD (toolchain $toolchain_sha, rootfs $rootfs_sha): run \`$0 --write-recipe\`, commit kettle.toml, and run again"
[ -z "$(git status --porcelain)" ] ||
    die "the work tree has uncommitted changes: the release is built from the committed HEAD only; commit or stash them"

commit=$(git rev-parse HEAD)
branch=$(git symbolic-ref -q HEAD) || die "HEAD is detached: check out the release branch"
repo=${KETTLE_REPO:-$("$CARGO" metadata --locked --no-deps --format-version 1 |
    python3 -c 'import json,sys; print(next(p["repository"] for p in json.load(sys.stdin)["packages"] if p["name"] == "kettle"))')}
KETTLE_TEE=${KETTLE_TEE:-snp}
case "$KETTLE_TEE" in
    snp) [ -e /dev/sev ] || die "no /dev/sev: this host cannot attest with SEV-SNP; KETTLE_TEE=simulated makes a release whose evidence is the simulated PSP's (test keys), named ...-simulated" ;;
    simulated) ;;
    *) die "KETTLE_TEE=$KETTLE_TEE: snp or simulated" ;;
esac
if [ -z "${KETTLE:-}" ]; then
    "$CARGO" build --locked -q -p kettle --bin kettle
    KETTLE=$ROOT/target/debug/kettle
fi

# --- build it in the CVM -------------------------------------------------------------
log "building kettle from $commit ($branch of $repo) in the CVM, tee $KETTLE_TEE"
start=$(date +%s)
"$KETTLE" build . --repo "$repo" --commit "$commit" --image "$BUILD/image" \
    --tee "$KETTLE_TEE" --memory "${KETTLE_MEMORY:-10240}" --timeout "${KETTLE_TIMEOUT:-14400}" \
    --out "$OUT" --force
log "built in $(( $(date +%s) - start )) s"

# --- the release's policy for its own CLI, and the verdict under it -----------------
simulated=()
[ "$KETTLE_TEE" = simulated ] && simulated=(--allow-simulated)
rm -f "$POLICY"
"$KETTLE" policy init --manifest "$BUILD/image/manifest.json" --name kettle-release \
    --repo "$repo" --ref "$branch" "${simulated[@]}" --out "$POLICY"
"$KETTLE" verify "$OUT" --policy "$POLICY" --commit "$commit"

# --- the release, with this binary and its attestation ------------------------------
allow_simulated=0
[ "$KETTLE_TEE" = simulated ] && allow_simulated=1
DIST_ATTESTED=$OUT DIST_ATTESTED_POLICY=$POLICY DIST_ATTESTED_COMMIT=$commit \
    DIST_ALLOW_SIMULATED=$allow_simulated BUILD=$BUILD bash scripts/dist.sh
