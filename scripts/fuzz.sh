#!/usr/bin/env bash
# Runs every cargo-fuzz target in fuzz/ for a bounded time, one after the other
# (one libFuzzer process, one job), and prints a table: target, seconds, runs,
# execs/s, corpus size, findings. Exits 1 if any target crashed, hung, ran out
# of memory or leaked; 2 if the fuzzers could not be built or run.
#
# Seeds are generated first (fuzz/seeds.rs, with Kettle's own writers) into
# fuzz/corpus/<target>; the corpus keeps growing across runs and stays out of
# git. Reproducers land in fuzz/artifacts/<target>/, libFuzzer's log of each
# run in fuzz/artifacts/<target>.log. A finding becomes a regression test in
# the crate that owns the code (a fuzz_regressions module of its one test binary,
# e.g. verify/tests/integration/fuzz_regressions.rs; see fuzz/README.md).
#
# Needs cargo-fuzz (`cargo install cargo-fuzz --locked`) and a C++ compiler
# (libfuzzer-sys builds libFuzzer). cargo-fuzz needs nightly features: on a
# stable toolchain they are unlocked with RUSTC_BOOTSTRAP=1.
#
# Env: FUZZ_SECONDS   seconds per target (default 60)
#      FUZZ_TARGETS   space-separated subset (default: every target)
#      FUZZ_SANITIZER address (default) or none; if the AddressSanitizer build
#                     fails and FUZZ_SANITIZER is unset, falls back to none and says so
#      FUZZ_TIMEOUT   seconds one input may take before it counts as a hang (default 10)
#      CARGO          (default cargo)
set -euo pipefail

cd "$(dirname "$0")/.."
ROOT=$PWD
FUZZ_DIR=$ROOT/fuzz
SECONDS_PER_TARGET=${FUZZ_SECONDS:-60}
TIMEOUT=${FUZZ_TIMEOUT:-10}
CARGO=${CARGO:-cargo}
ALL_TARGETS="report verify_bundle request unpack psp_protocol recipe lockfile provenance cpio console"
TARGETS=${FUZZ_TARGETS:-$ALL_TARGETS}

log() { printf 'fuzz: %s\n' "$*" >&2; }
die() { printf 'fuzz: error: %s\n' "$*" >&2; exit 2; }

[[ $SECONDS_PER_TARGET =~ ^[1-9][0-9]*$ ]] || die "FUZZ_SECONDS=$SECONDS_PER_TARGET is not a positive number of seconds"
"$CARGO" fuzz --version >/dev/null 2>&1 ||
    die "cargo-fuzz is not installed: run \`cargo install cargo-fuzz --locked\`"
for t in $TARGETS; do
    [[ " $ALL_TARGETS " == *" $t "* ]] || die "unknown target $t (targets: $ALL_TARGETS)"
done

# cargo-fuzz passes -Zsanitizer and other nightly flags; allow them on stable.
export RUSTC_BOOTSTRAP=1

build() { # sanitizer
    "$CARGO" fuzz build --fuzz-dir "$FUZZ_DIR" -O -a --sanitizer "$1" >&2
}
SANITIZER=${FUZZ_SANITIZER:-}
if [ -n "$SANITIZER" ]; then
    log "building the fuzz targets (sanitizer: $SANITIZER)"
    build "$SANITIZER" || die "cargo fuzz build --sanitizer $SANITIZER failed"
else
    SANITIZER=address
    log "building the fuzz targets (sanitizer: address)"
    # Tried twice: a source tree being edited can fail one build for reasons of its own.
    if ! build address && ! build address; then
        log "the AddressSanitizer build failed twice: falling back to --sanitizer none (set FUZZ_SANITIZER to choose)"
        SANITIZER=none
        build none || die "cargo fuzz build failed"
    fi
fi

BIN_DIR=$FUZZ_DIR/target/x86_64-unknown-linux-gnu/release
for t in $TARGETS; do
    [ -x "$BIN_DIR/$t" ] || die "cargo fuzz build left no $BIN_DIR/$t"
done

log "generating seeds into fuzz/corpus/"
(cd "$FUZZ_DIR" && "$CARGO" run --release --locked -q --example seeds -- "$FUZZ_DIR/corpus") >&2 ||
    die "the seed generator failed"

# Larger inputs where the format needs room (tar blocks, certificate chains).
max_len() {
    case $1 in
    unpack) echo 65536 ;;
    verify_bundle | psp_protocol | request) echo 16384 ;;
    *) echo 0 ;; # libFuzzer's guess from the corpus
    esac
}

# The last value of libFuzzer's "stat::<name>: N" lines, or of "<key>: N" in its status lines.
stat() { # log name
    { grep -a "^stat::$2:" "$1" || true; } | tail -1 | awk '{print $2}'
}
status_field() { # log key
    { grep -aE '^#[0-9]+' "$1" || true; } | tail -1 | { grep -oE "$2: [0-9]+" || true; } | awk '{print $2}'
}

rows=()
failed=0
for t in $TARGETS; do
    mkdir -p "$FUZZ_DIR/corpus/$t" "$FUZZ_DIR/artifacts/$t"
    logf=$FUZZ_DIR/artifacts/$t.log
    before=$(find "$FUZZ_DIR/artifacts/$t" -type f | sort)
    log "running $t for ${SECONDS_PER_TARGET}s (log: fuzz/artifacts/$t.log)"
    start=$(date +%s)
    rc=0
    # The binaries cargo fuzz built above, run directly: every target runs the
    # same build, and the time spent is libFuzzer's alone (no rebuild in between).
    ASAN_OPTIONS=${ASAN_OPTIONS:-detect_odr_violation=0} "$BIN_DIR/$t" \
        -artifact_prefix="$FUZZ_DIR/artifacts/$t/" \
        -max_total_time="$SECONDS_PER_TARGET" -timeout="$TIMEOUT" -rss_limit_mb=2048 \
        -max_len="$(max_len "$t")" -print_final_stats=1 \
        "$FUZZ_DIR/corpus/$t" >"$logf" 2>&1 || rc=$?
    elapsed=$(($(date +%s) - start))
    runs=$(stat "$logf" number_of_executed_units)
    execs=$(stat "$logf" average_exec_per_sec)
    [ -n "$runs" ] || runs=$({ grep -aoE '^#[0-9]+' "$logf" || true; } | tail -1 | tr -d '#')
    [ -n "$execs" ] || execs=$(status_field "$logf" exec/s)
    corpus=$(find "$FUZZ_DIR/corpus/$t" -type f | wc -l)
    # Reproducers libFuzzer wrote this run (a known one is rewritten under the same name).
    new=$({
        comm -13 <(printf '%s\n' "$before") <(find "$FUZZ_DIR/artifacts/$t" -type f | sort)
        grep -ao 'Test unit written to .*' "$logf" | sed 's/^Test unit written to //' || true
    } | sed '/^$/d' | sort -u)
    if [ "$rc" -ne 0 ] || [ -n "$new" ]; then
        failed=1
        if [ -n "$new" ]; then
            findings=$(printf '%s\n' "$new" | xargs -n1 basename | cut -d- -f1 | sort | uniq -c |
                awk '{printf "%s%d %s", sep, $1, $2; sep=", "}')
        else
            findings="exit $rc (see the log)"
        fi
        log "$t: FINDING: $findings"
        printf '%s\n' "$new" | sed '/^$/d; s/^/fuzz:   reproducer: /' >&2
        grep -aE 'panicked at|ERROR: (libFuzzer|AddressSanitizer)|SUMMARY' "$logf" | head -5 | sed 's/^/fuzz:   /' >&2 || true
    else
        findings=0
    fi
    rows+=("$t|$elapsed|${runs:-?}|${execs:-?}|$corpus|$findings")
done

printf '\nsanitizer: %s, %ss per target, -timeout=%ss\n' "$SANITIZER" "$SECONDS_PER_TARGET" "$TIMEOUT"
{
    echo "target|seconds|runs|execs/s|corpus|findings"
    printf '%s\n' "${rows[@]}"
} | column -t -s '|'
if [ "$failed" -ne 0 ]; then
    printf '\nfuzz: FAILED: reproduce with `RUSTC_BOOTSTRAP=1 cargo fuzz run -O -a --sanitizer %s <target> fuzz/artifacts/<target>/<file>`,\n' "$SANITIZER"
    printf 'fuzz: minimize with `cargo fuzz tmin`, and add a regression test in the crate that owns the code.\n'
    exit 1
fi
