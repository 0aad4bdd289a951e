#!/usr/bin/env bash
# Checks that the published guest image is rebuilt bit for bit: clones the
# repository's HEAD (a `git clone`, so uncommitted changes are NOT built:
# commit first) into a new directory under a temporary dir, builds the whole
# image there with `make image`, and compares the SHA-256 of bzImage, OVMF.fd,
# kettle-init, initramfs.cpio, manifest.json and launch-digests.json with the
# committed image/published/ (manifest.json and launch-digests.json; the
# others by the hashes the manifest records). On a difference it names the
# file and runs `kettle measure --manifest` against the rebuilt image, which
# explains every differing launch digest by its input (kernel, initrd down to
# the initramfs entry, OVMF, cmdline, vCPU count or type).
#
# Default (full) mode: nothing is shared with earlier builds. The clone is at
# a new path, the kernel and firmware are built from their pinned sources
# with an empty KETTLE_CACHE inside the temp dir, kettle-init and kettle from
# an empty cargo target dir. ~15-20 min on 2 idle cores (kernel ~9, OVMF ~4,
# kettle-init and kettle ~5); longer under load. It needs what `make setup`
# installs (the pinned linux-source .deb and edk2's tarballs are fetched when not cached).
#
# --cached (development): the kernel and firmware come from the input-hash
# cache (${KETTLE_CACHE:-/var/cache/kettle}) and kettle from $CARGO_TARGET_DIR
# when set; kettle-init is still built from an empty target dir. A few minutes.
#
# Options: --cached, --keep (keep the temp dir), --rev REV (build REV instead
# of HEAD), --repo DIR (another clone to check; default this one).
# Exit status: 0 all identical, 1 something differs (named above), 2 could not run.
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD

usage() {
    sed -n '2,/^set -euo/p' "$0" | sed '$d; s/^# \{0,1\}//' >&2
    exit 2
}

cached=0 keep=0 rev=HEAD repo=$ROOT
while [ $# -gt 0 ]; do
    case $1 in
        --cached) cached=1 ;;
        --keep) keep=1 ;;
        --rev) rev=${2:?--rev needs a revision}; shift ;;
        --repo) repo=${2:?--repo needs a directory}; shift ;;
        -h | --help) usage ;;
        *) echo "repro: unknown option $1" >&2; usage ;;
    esac
    shift
done

say() { printf 'repro: %s\n' "$*"; }
fail() { printf 'repro: error: %s\n' "$*" >&2; exit 2; }

commit=$(git -C "$repo" rev-parse -q --verify "$rev^{commit}") \
    || fail "$rev is not a commit of $repo"
changes=$(git -C "$repo" status --porcelain | wc -l)
if [ "$changes" -gt 0 ] && [ "$rev" = HEAD ]; then
    say "note: $repo has $changes uncommitted change(s); they are NOT built (the check builds commit $commit)"
fi

work=$(mktemp -d "${TMPDIR:-/tmp}/kettle-repro.XXXXXX")
status=2
cleanup() {
    if [ "$keep" -eq 1 ] || [ "$status" -ne 0 ]; then
        say "work dir kept: $work (rm -rf it when done)"
    else
        rm -rf "$work"
    fi
}
trap cleanup EXIT

SRC=$work/src
BUILD=$SRC/build
git clone -q "$repo" "$SRC" || fail "git clone $repo failed"
git -C "$SRC" checkout -q --detach "$commit" || fail "commit $commit is not in the clone of $repo"
PUB=$SRC/image/published
for f in manifest.json launch-digests.json; do
    [ -f "$PUB/$f" ] || fail "commit $commit has no image/published/$f: run 'make publish-image' and commit image/published/"
done

if [ "$cached" -eq 1 ]; then
    cache=${KETTLE_CACHE:-/var/cache/kettle}
    target=${CARGO_TARGET_DIR:-$work/target}
    say "mode: --cached (kernel and firmware from $cache, kettle from $target)"
else
    cache=$work/cache
    target=$work/target
    mkdir -p "$cache"
    say "mode: full (empty KETTLE_CACHE $cache, empty cargo target dir $target)"
fi
say "building commit $commit in $SRC (log: $work/make.log)"

start=$SECONDS
set +e
env KETTLE_CACHE="$cache" CARGO_TARGET_DIR="$target" BUILD="$BUILD" \
    make -C "$SRC" image BUILD="$BUILD" </dev/null 2>&1 \
    | tee "$work/make.log" \
    | while IFS= read -r line; do
        case $line in
            kernel:* | ovmf:* | init:*) printf 'repro: [%4ds] %s\n' "$((SECONDS - start))" "$line" ;;
        esac
    done
rc=${PIPESTATUS[0]}
set -e
if [ "$rc" -ne 0 ]; then
    tail -n 30 "$work/make.log" >&2
    fail "make image failed in the clone (exit $rc; last lines above, whole log $work/make.log)"
fi
say "built in $((SECONDS - start)) s"

# published_sha KEY: a SHA-256 the published manifest records (kernel, initrd,
# ovmf, or init for the initramfs entry of kettle-init).
published_sha() {
    python3 - "$PUB/manifest.json" "$1" <<'PY'
import json, sys
m = json.load(open(sys.argv[1]))
key = sys.argv[2]
if key == "init":
    print(next(e["sha256"] for e in m["initramfs"] if e["path"] == "init"))
else:
    print(m[key]["sha256"])
PY
}
sha() { sha256sum <"$1" | cut -d' ' -f1; }

IMAGE=$BUILD/image
differ=0
# name, built file, published sha256
while IFS='|' read -r name built published; do
    if [ ! -f "$built" ]; then
        printf 'repro: MISSING %-20s %s was not built\n' "$name" "$built"
        differ=1
        continue
    fi
    got=$(sha "$built")
    if [ "$got" = "$published" ]; then
        printf 'repro: same    %-20s %s\n' "$name" "$got"
    else
        printf 'repro: DIFFERS %-20s built %s, published %s\n' "$name" "$got" "$published"
        differ=1
    fi
done <<EOF
bzImage|$BUILD/bzImage|$(published_sha kernel)
OVMF.fd|$BUILD/OVMF.fd|$(published_sha ovmf)
kettle-init|$BUILD/kettle-init|$(published_sha init)
initramfs.cpio|$IMAGE/initramfs.cpio|$(published_sha initrd)
manifest.json|$IMAGE/manifest.json|$(sha "$PUB/manifest.json")
launch-digests.json|$IMAGE/launch-digests.json|$(sha "$PUB/launch-digests.json")
EOF

# Every published digest recomputed from the rebuilt files, each difference explained.
set +e
"$target/release/kettle" measure --manifest "$PUB/manifest.json" --image "$IMAGE" >"$work/measure.txt" 2>&1
mrc=$?
set -e
if [ "$mrc" -eq 0 ] && [ "$differ" -eq 0 ]; then
    say "kettle measure --manifest: $(grep -m1 'checks match' "$work/measure.txt")"
    say "the image of commit $commit is rebuilt bit for bit ($((SECONDS - start)) s)"
    status=0
    exit 0
fi
say "kettle measure --manifest image/published/manifest.json --image <rebuilt image>:"
sed 's/^/repro:   /' "$work/measure.txt"
if [ "$mrc" -eq 2 ]; then
    fail "kettle measure could not run (above)"
fi
status=1
say "the rebuilt image differs from image/published/ (files named above)"
exit 1
