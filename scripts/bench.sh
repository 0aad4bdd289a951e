#!/usr/bin/env bash
# Benchmarks `kettle measure` (release build) against virtee's sev-snp-measure
# on the same inputs with hyperfine, after checking both print the same digest,
# and prints how many times faster kettle is.
#
# Inputs: build/OVMF.fd, build/bzImage and build/image/initramfs.cpio when
# they exist (make ovmf / make kernel / make image); otherwise a synthetic
# 4 MiB firmware around the real AmdSev footer page from the sev crate's test
# data in the cargo registry, and synthetic kernel/initrd files.
#
# Env: BUILD (default <repo>/build), KETTLE_VENV (default /opt/kettle-venv),
#      BENCH_RUNS (default 30), CARGO (default cargo).
set -euo pipefail

cd "$(dirname "$0")/.."
ROOT=$PWD
BUILD=${BUILD:-$ROOT/build}
KETTLE_VENV=${KETTLE_VENV:-/opt/kettle-venv}
RUNS=${BENCH_RUNS:-30}
CARGO=${CARGO:-cargo}

log() { printf 'bench: %s\n' "$*"; }
die() { printf 'bench: error: %s\n' "$*" >&2; exit 2; }

command -v hyperfine >/dev/null || die "hyperfine is not installed (make setup installs it)"
PEER=$KETTLE_VENV/bin/sev-snp-measure
[ -x "$PEER" ] || die "$PEER not found (make setup creates the venv)"

log "building kettle (release)"
"$CARGO" build --release --locked -q -p kettle
KETTLE=${CARGO_TARGET_DIR:-$ROOT/target}/release/kettle
[ -x "$KETTLE" ] || die "cargo finished without $KETTLE"

WORK=$(mktemp -d)
trap 'rm -rf "$WORK"' EXIT

OVMF=$BUILD/OVMF.fd
if [ ! -f "$OVMF" ]; then
    suffix=$(ls -d "${CARGO_HOME:-$HOME/.cargo}"/registry/src/*/sev-8.*/tests/measurement/ovmf_AmdSev_suffix.bin 2>/dev/null | tail -1)
    [ -n "$suffix" ] || die "no build/OVMF.fd and no sev test data in the cargo registry; run make ovmf"
    OVMF=$WORK/OVMF-synthetic.fd
    head -c $((4 * 1024 * 1024 - 4096)) /dev/zero | tr '\0' '\132' >"$OVMF"
    cat "$suffix" >>"$OVMF"
    log "no build/OVMF.fd: using a synthetic 4 MiB firmware with the AmdSev footer from $suffix"
fi
KERNEL=$BUILD/bzImage
if [ ! -f "$KERNEL" ]; then
    KERNEL=$WORK/bzImage
    head -c $((6 * 1024 * 1024)) /dev/zero | tr '\0' '\113' >"$KERNEL"
    log "no build/bzImage: using a synthetic 6 MiB kernel file"
fi
INITRD=$BUILD/image/initramfs.cpio
if [ ! -f "$INITRD" ]; then
    INITRD=$WORK/initramfs.cpio
    head -c $((5 * 1024 * 1024)) /dev/zero | tr '\0' '\111' >"$INITRD"
    log "no build/image/initramfs.cpio: using a synthetic 5 MiB initrd file"
fi

ARGS=(--mode snp --vcpus 2 --vcpu-type EPYC-v4 --ovmf "$OVMF" --kernel "$KERNEL" --initrd "$INITRD"
      --append "console=ttyS0 panic=-1 quiet" --output-format hex)
ours=$("$KETTLE" measure "${ARGS[@]}")
theirs=$("$PEER" "${ARGS[@]}")
[ "$ours" = "$theirs" ] || die "digests differ: kettle $ours, sev-snp-measure $theirs"
log "both print $ours"
log "inputs: $(stat -c %s "$OVMF") B firmware, $(stat -c %s "$KERNEL") B kernel, $(stat -c %s "$INITRD") B initrd"

q() { printf '%q ' "$@"; }
hyperfine --warmup 3 --runs "$RUNS" --export-json "$WORK/bench.json" \
    -n "kettle measure" "$(q "$KETTLE" measure "${ARGS[@]}")" \
    -n "sev-snp-measure" "$(q "$PEER" "${ARGS[@]}")"

python3 - "$WORK/bench.json" <<'PY'
import json, sys
r = {x["command"]: x for x in json.load(open(sys.argv[1]))["results"]}
k, p = r["kettle measure"], r["sev-snp-measure"]
print(f"bench: kettle measure {k['mean']*1000:.1f} ms, sev-snp-measure {p['mean']*1000:.1f} ms (means)")
print(f"bench: ratio sev-snp-measure / kettle measure = {p['mean']/k['mean']:.2f}x")
PY
