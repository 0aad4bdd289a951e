#!/usr/bin/env bash
# Checks that the guest image is reproducible: builds it twice, each time in a
# clean build directory (kettle-init compiled from an empty target dir), and
# compares the SHA-256 of every file of the two images.
#
# --full also rebuilds the kernel and the firmware from their pinned sources in
# both runs (an empty KETTLE_CACHE each): 2 x (kernel ~9 min + OVMF ~5 min) on
# 2 idle cores. Without it they come from the input-hash cache.
set -euo pipefail
cd "$(dirname "$0")/.."

full=0
case "${1:-}" in
    --full) full=1 ;;
    "") ;;
    *) echo "usage: $0 [--full]" >&2; exit 2 ;;
esac

work=$(mktemp -d "${TMPDIR:-/tmp}/kettle-repro.XXXXXX")
trap 'rm -rf "$work"' EXIT

for run in 1 2; do
    build=$work/build$run
    cache_env=()
    [ "$full" -eq 1 ] && cache_env=(KETTLE_CACHE="$work/cache$run")
    echo "repro: run $run: make image BUILD=$build${cache_env:+ (empty cache)}"
    if ! env "${cache_env[@]}" make -s image BUILD="$build" >"$work/run$run.log" 2>&1; then
        tail -n 30 "$work/run$run.log" >&2
        echo "repro: run $run failed (log above)" >&2
        exit 2
    fi
    (cd "$build/image" && sha256sum -- *) >"$work/sums$run"
done

if diff -u "$work/sums1" "$work/sums2"; then
    sed 's/^/repro: same: /' "$work/sums1"
    echo "repro: the two images are byte-identical"
else
    echo "repro: the two images differ (above)" >&2
    exit 1
fi
