#!/usr/bin/env bash
# Prints kettle-init's SOURCE_DATE_EPOCH (its clock floor, init/src/clock.rs):
# the committer time of the last commit that changed what the binary is built
# from: the sources and manifests of kettle-init and of every workspace crate it
# links (as `cargo tree` lists them), the workspace Cargo.toml and Cargo.lock,
# scripts/build-init.sh and this script. A commit of docs, tests, host-only code
# or image/published/ leaves kettle-init, the image and its published launch
# digest as they were. Prints 0 outside a git checkout.
#
# Env: CARGO (default cargo). Needs the locked dependencies fetched (`cargo fetch`).
set -euo pipefail

cd "$(dirname "$0")/.."
ROOT=$PWD
CARGO=${CARGO:-cargo}

die() { printf 'guest-epoch: error: %s\n' "$*" >&2; exit 1; }

if ! git rev-parse -q --verify HEAD >/dev/null 2>&1; then
    echo 0
    exit 0
fi

crates=$("$CARGO" tree --locked --offline -q -p kettle-init -e normal,build \
    --target x86_64-unknown-linux-gnu --prefix none --format '{p}' |
    sed -n "s|.*(\\($ROOT/[^)]*\\)).*|\\1|p" | sort -u) ||
    die "cargo tree failed (run 'cargo fetch --locked' first)"
[ -n "$crates" ] || die "cargo tree lists no workspace crate for kettle-init"

paths=(Cargo.toml Cargo.lock scripts/build-init.sh scripts/guest-epoch.sh)
for dir in $crates; do
    rel=${dir#"$ROOT"/}
    paths+=("$rel/Cargo.toml" "$rel/src")
    [ -e "$dir/build.rs" ] && paths+=("$rel/build.rs")
done
# Unit-test files beside the code are not compiled into the binary.
git log -1 --format=%ct -- "${paths[@]}" ':(glob,exclude)**/tests.rs'
