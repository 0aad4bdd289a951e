#!/usr/bin/env bash
# `make bench`: where a build's time goes, against the peers and the limits, in
# one run. Every figure is printed as a ratio against a peer implementation or a
# limit measured in this same run (absolute times on a shared machine mean
# little); raw results go to target/bench/*.json. README.md "Benchmarks" says
# how to read the table.
#
# Sections (BENCH_ONLY, comma-separated; default all):
#   hash     the single-core SHA-256/SHA-384 limit (criterion, sha2 over 64 MiB),
#            Sha256Digest::of_file over a 1 GiB rootfs-sized file (the guest's input
#            verification and output hashing path) and sha256sum (coreutils) on it
#   measure  `kettle measure` vs sev-snp-measure (PyPI) on the AmdSev OVMF and a
#            16 MiB kernel+initrd, and vs the bytes it hashes at the `hash` limit
#   verify   `kettle verify` vs virtee's `snpguest verify attestation` on AMD's real
#            Milan report; kettle_verify::verify per bundle and per check
#            (criterion); 1,000 bundles in one process
#   fetch    kettle::inputs::resolve_with of a 200-crate Cargo.lock from a local
#            HTTPS mirror: one download at a time vs 8 (criterion)
#   cache    kettle::inputs::write_cache of the rootfs and toolchain bundles (or
#            2 x 128 MiB) into a cache disk vs the previous loop, a plain copy and
#            copy + fsync (criterion)
#   vm       `kettle build --tee simulated` of examples/hello-script and
#            examples/hello-cargo, each host and guest step timed (TCG; KVM as
#            well when /dev/kvm really works)
#
# Needs `make setup` (hyperfine, the sev-snp-measure venv) and, for `vm`, the
# image (`make image`) and for the cargo sample the bundles (`make bundles`);
# without them that part is skipped, saying so. snpguest is installed with
# `cargo install snpguest --locked` into $BUILD/bench-tools when it is not on PATH
# (BENCH_SNPGUEST=0 skips the peer).
#
# Env: BUILD (default <repo>/build), BENCH_IMAGE (default $BUILD/image),
#      BENCH_BUNDLES (dir with rootfs.tar.gz and toolchain.tar.gz; default $BUILD),
#      BENCH_OUT (default <repo>/target/bench), BENCH_ONLY, BENCH_RUNS (hyperfine
#      runs, default 10), BENCH_VM_RUNS (script sample builds, default 3),
#      BENCH_CARGO_RUNS (cargo sample builds, default 1), BENCH_KVM (auto|0),
#      BENCH_HASH_MIB (default 1024), BENCH_VM_KETTLE (a kettle binary for the vm
#      section, e.g. one built from the commit the image was built from),
#      BENCH_KEEP_WORK=1 (keep the scratch dir), KETTLE_VENV (default
#      /opt/kettle-venv), CARGO (default cargo).
set -euo pipefail

cd "$(dirname "$0")/.."
ROOT=$PWD
BUILD=${BUILD:-$ROOT/build}
IMAGE=${BENCH_IMAGE:-$BUILD/image}
BUNDLES=${BENCH_BUNDLES:-$BUILD}
OUT=${BENCH_OUT:-$ROOT/target/bench}
KETTLE_VENV=${KETTLE_VENV:-/opt/kettle-venv}
RUNS=${BENCH_RUNS:-10}
VM_RUNS=${BENCH_VM_RUNS:-3}
CARGO_RUNS=${BENCH_CARGO_RUNS:-1}
HASH_MIB=${BENCH_HASH_MIB:-1024}
ONLY=${BENCH_ONLY:-hash,measure,verify,fetch,cache,vm}
CARGO=${CARGO:-cargo}
TARGET=${CARGO_TARGET_DIR:-$ROOT/target}
CORES=$(nproc)

log() { printf 'bench: %s\n' "$*" >&2; }
die() { printf 'bench: error: %s\n' "$*" >&2; exit 2; }
want() { [[ ",$ONLY," == *",$1,"* ]]; }
q() { printf '%q ' "$@"; }

command -v hyperfine >/dev/null || die "hyperfine is not installed (make setup installs it)"
command -v python3 >/dev/null || die "python3 is not installed (make setup installs it)"
PEER=$KETTLE_VENV/bin/sev-snp-measure
if want measure && [ ! -x "$PEER" ]; then die "$PEER not found (make setup creates the venv)"; fi

mkdir -p "$OUT"
WORK=$(mktemp -d "${TMPDIR:-/tmp}/kettle-bench.XXXXXX")
# BENCH_KEEP_WORK=1 keeps the scratch dir (the builds' timestamped logs, their build.log).
if [ "${BENCH_KEEP_WORK:-0}" = 1 ]; then log "keeping $WORK"; else trap 'rm -rf "$WORK"' EXIT; fi
# Results of this run only: nothing stale from an earlier run may reach the table.
rm -f "$OUT"/*.json
rm -rf "$TARGET"/criterion/{limit,file,verify,load,check,fetch,cache_disk}

log "$CORES cores; $(sed -n 's/^model name[[:space:]]*: //p' /proc/cpuinfo | head -1); load $(cut -d' ' -f1-3 /proc/loadavg)"
log "building kettle and kettle-sample (release)"
"$CARGO" build --release --locked -q -p kettle -p kettle-testkit
KETTLE=$TARGET/release/kettle
[ -x "$KETTLE" ] || die "cargo finished without $KETTLE"

# criterion benches: `bench CRATE BENCH [env...]`.
bench() {
    local crate=$1 name=$2
    shift 2
    log "criterion: $crate --bench $name"
    env "$@" "$CARGO" bench --locked -q -p "$crate" --bench "$name" -- --noplot >"$WORK/criterion-$name.log" 2>&1 \
        || { cat "$WORK/criterion-$name.log" >&2; die "cargo bench -p $crate --bench $name failed"; }
    grep -E '^[a-z0-9_/]+ +time:|^ +thrpt:' "$WORK/criterion-$name.log" >&2 || true
}

# --- hash: the limit, of_file, sha256sum --------------------------------------
HASH_FILE=$WORK/rootfs-sized.bin
if want hash || want measure; then
    # The limit is needed by `measure` too.
    if want hash; then
        log "writing a ${HASH_MIB} MiB rootfs-sized input"
        head -c $((HASH_MIB << 20)) /dev/urandom >"$HASH_FILE"
        bench kettle-provenance hashing KETTLE_BENCH_HASH_FILE="$HASH_FILE"
        hyperfine -N --warmup 1 --runs 5 --export-json "$OUT/hash-sha256sum.json" \
            -n "sha256sum" "$(q sha256sum "$HASH_FILE")" >&2
        rm -f "$HASH_FILE"
    else
        bench kettle-provenance hashing KETTLE_BENCH_HASH_BYTES=$((64 << 20))
    fi
fi

# --- measure: kettle measure vs sev-snp-measure -------------------------------
if want measure; then
    OVMF=$BUILD/OVMF.fd
    [ -f "$OVMF" ] || OVMF=$IMAGE/OVMF.fd
    if [ ! -f "$OVMF" ]; then
        suffix=$(ls -d "${CARGO_HOME:-$HOME/.cargo}"/registry/src/*/sev-8.*/tests/measurement/ovmf_AmdSev_suffix.bin 2>/dev/null | tail -1)
        [ -n "$suffix" ] || die "no build/OVMF.fd and no sev test data in the cargo registry; run make ovmf"
        OVMF=$WORK/OVMF-synthetic.fd
        head -c $((4 * 1024 * 1024 - 4096)) /dev/zero | tr '\0' '\132' >"$OVMF"
        cat "$suffix" >>"$OVMF"
        log "no OVMF.fd: using a synthetic 4 MiB firmware with the AmdSev footer from $suffix"
    fi
    KERNEL=$BUILD/bzImage
    [ -f "$KERNEL" ] || KERNEL=$IMAGE/bzImage
    if [ ! -f "$KERNEL" ]; then
        KERNEL=$WORK/bzImage
        head -c $((6 << 20)) /dev/urandom >"$KERNEL"
        log "no bzImage: using a 6 MiB test kernel file"
    fi
    # A 16 MiB kernel+initrd: the image's initramfs (when built), padded with zeros.
    INITRD=$WORK/initramfs-16m.cpio
    if [ -f "$IMAGE/initramfs.cpio" ]; then cp "$IMAGE/initramfs.cpio" "$INITRD"; else : >"$INITRD"; fi
    pad=$((16 * 1024 * 1024 - $(stat -c %s "$KERNEL") - $(stat -c %s "$INITRD")))
    [ "$pad" -gt 0 ] && head -c "$pad" /dev/zero >>"$INITRD"
    ARGS=(--mode snp --vcpus 2 --vcpu-type EPYC-v4 --ovmf "$OVMF" --kernel "$KERNEL" --initrd "$INITRD"
          --append "console=ttyS0 panic=-1 quiet" --output-format hex)
    ours=$("$KETTLE" measure "${ARGS[@]}")
    theirs=$("$PEER" "${ARGS[@]}")
    [ "$ours" = "$theirs" ] || die "digests differ: kettle $ours, sev-snp-measure $theirs"
    log "kettle measure and sev-snp-measure both print $ours"
    printf '{"ovmf": "%s", "ovmf_bytes": %d, "kernel": "%s", "kernel_bytes": %d, "initrd_bytes": %d, "cmdline_bytes": %d, "digest": "%s"}\n' \
        "$OVMF" "$(stat -c %s "$OVMF")" "$KERNEL" "$(stat -c %s "$KERNEL")" "$(stat -c %s "$INITRD")" \
        "${#ARGS[13]}" "$ours" >"$OUT/measure-inputs.json"
    hyperfine -N --warmup 3 --runs "$RUNS" --export-json "$OUT/measure.json" \
        -n "kettle measure" "$(q "$KETTLE" measure "${ARGS[@]}")" \
        -n "sev-snp-measure" "$(q "$PEER" "${ARGS[@]}")" >&2
fi

# --- verify: kettle verify vs snpguest, per bundle, per check, 1,000 bundles --
if want verify; then
    SEV_DATA=$(ls -d "${CARGO_HOME:-$HOME/.cargo}"/registry/src/*/sev-8.0.0/tests/certs_data 2>/dev/null | tail -1)
    [ -n "$SEV_DATA" ] || die "the sev 8.0.0 crate's test data is not in the cargo registry (cargo fetch fetches it)"
    M=$WORK/milan
    mkdir -p "$M/certs"
    python3 - "$SEV_DATA" "$M" <<'PY'
import base64, binascii, json, re, sys
src, out = sys.argv[1], sys.argv[2]
report = binascii.unhexlify(open(f"{src}/report_milan.hex").read().strip())
open(f"{out}/report.bin", "wb").write(report)
def pem(der):
    b = base64.b64encode(der).decode()
    return "-----BEGIN CERTIFICATE-----\n" + "\n".join(b[i:i+64] for i in range(0, len(b), 64)) + "\n-----END CERTIFICATE-----\n"
vcek = pem(open(f"{src}/vcek_milan.der", "rb").read())
ca = open(f"{src}/cert_chain_milan").read()
ask, ark = re.findall(r"-----BEGIN CERTIFICATE-----.*?-----END CERTIFICATE-----\n?", ca, re.S)  # KDS order: ASK, ARK
open(f"{out}/chain.pem", "w").write(vcek + ca)
for name, text in (("vcek", vcek), ("ask", ask), ("ark", ark)):
    open(f"{out}/certs/{name}.pem", "w").write(text if text.endswith("\n") else text + "\n")
json.dump({"measurement": report[0x90:0xC0].hex(), "report_data": report[0x50:0x90].hex()}, open(f"{out}/fields.json", "w"))
PY
    MEAS=$(python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))["measurement"])' "$M/fields.json")
    RD=$(python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))["report_data"])' "$M/fields.json")
    KV=(verify --evidence "$M/report.bin" --chain "$M/chain.pem" --measurement "$MEAS" --report-data "$RD")
    "$KETTLE" "${KV[@]}" >"$WORK/kettle-verify.txt" || { cat "$WORK/kettle-verify.txt" >&2; die "kettle verify rejects the Milan report"; }

    SNPGUEST=$(command -v snpguest || true)
    [ -n "$SNPGUEST" ] || [ ! -x "$HOME/.cargo/bin/snpguest" ] || SNPGUEST=$HOME/.cargo/bin/snpguest
    [ -n "$SNPGUEST" ] || [ ! -x "$BUILD/bench-tools/bin/snpguest" ] || SNPGUEST=$BUILD/bench-tools/bin/snpguest
    if [ -z "$SNPGUEST" ] && [ "${BENCH_SNPGUEST:-1}" != 0 ] && ! command -v pkg-config >/dev/null; then
        log "snpguest is not installed and cannot be built without pkg-config (apt-get install -y pkg-config libssl-dev): skipping the snpguest comparison"
    elif [ -z "$SNPGUEST" ] && [ "${BENCH_SNPGUEST:-1}" != 0 ]; then
        log "installing snpguest (cargo install snpguest --locked; needs libssl-dev and pkg-config) into $BUILD/bench-tools"
        if "$CARGO" install -q snpguest --locked --root "$BUILD/bench-tools" >&2; then
            SNPGUEST=$BUILD/bench-tools/bin/snpguest
        else
            log "snpguest could not be installed: skipping the snpguest comparison"
        fi
    fi
    cmds=(-n "kettle verify" "$(q "$KETTLE" "${KV[@]}")")
    if [ -n "$SNPGUEST" ]; then
        # --processor-model: a version 2 report does not say (kettle verify finds it from the chain).
        # Not --measurement/--report-data: snpguest 0.11 rejects a 96-digit measurement
        # ("Expected 48 characters"); comparing them is a memcmp in kettle verify anyway.
        SG=(verify attestation --processor-model milan "$M/certs" "$M/report.bin")
        "$SNPGUEST" "${SG[@]}" >"$WORK/snpguest.txt" 2>&1 \
            || { cat "$WORK/snpguest.txt" >&2; die "snpguest verify attestation rejects the Milan report"; }
        "$SNPGUEST" verify certs "$M/certs" >>"$WORK/snpguest.txt" 2>&1 \
            || { cat "$WORK/snpguest.txt" >&2; die "snpguest verify certs rejects the Milan chain"; }
        cmds+=(-n "snpguest verify attestation" "$(q "$SNPGUEST" "${SG[@]}")"
               -n "snpguest verify certs" "$(q "$SNPGUEST" verify certs "$M/certs")")
    fi
    hyperfine -N --warmup 3 --runs "$RUNS" --export-json "$OUT/verify-cli.json" "${cmds[@]}" >&2
    bench kettle-verify verify
    log "verifying 1,000 bundles in one process"
    KETTLE_BENCH_OUT="$OUT" "$CARGO" bench --locked -q -p kettle-verify --bench verify_batch >"$WORK/verify-batch.log" 2>&1 \
        || { cat "$WORK/verify-batch.log" >&2; die "verify_batch failed"; }
    grep '^verify_batch:' "$WORK/verify-batch.log" >&2 || true
fi

# --- fetch: 200 crates from a local HTTPS mirror ------------------------------
if want fetch; then
    bench kettle fetch
fi

# --- cache: writing the cache disk --------------------------------------------
if want cache; then
    blobs=
    if [ -f "$BUNDLES/rootfs.tar.gz" ] && [ -f "$BUNDLES/toolchain.tar.gz" ]; then
        blobs=$BUNDLES/rootfs.tar.gz:$BUNDLES/toolchain.tar.gz
    fi
    bench kettle cache_disk KETTLE_BENCH_BLOBS="$blobs"
fi

# --- vm: a build's fixed overhead, step by step -------------------------------
cat >"$WORK/timed.py" <<'PY'
# timed.py OUT.json CMD...: runs CMD, stamps each stdout/stderr line with the
# seconds since the spawn (host monotonic clock), records the exit and wall time.
import json, subprocess, sys, threading, time
out, cmd = sys.argv[1], sys.argv[2:]
t0 = time.monotonic()
p = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
lines, lock = [], threading.Lock()
def pump(stream, name):
    for raw in iter(stream.readline, b""):
        t = time.monotonic() - t0
        with lock:
            lines.append((t, name, raw.decode("utf-8", "replace").rstrip("\n")))
threads = [threading.Thread(target=pump, args=(p.stdout, "out")), threading.Thread(target=pump, args=(p.stderr, "err"))]
for t in threads:
    t.start()
rc = p.wait()
wall = time.monotonic() - t0
for t in threads:
    t.join()
json.dump({"cmd": cmd, "rc": rc, "wall": wall, "lines": sorted(lines)}, open(out, "w"))
PY

VMKETTLE=${BENCH_VM_KETTLE:-$KETTLE}
ACCELS=()
if want vm; then
    if [ ! -f "$IMAGE/manifest.json" ]; then
        log "SKIPPING the vm section: no image in $IMAGE (run make image, or set BENCH_IMAGE)"
    else
        ACCELS=(tcg)
        if [ "${BENCH_KVM:-auto}" != 0 ] && [ -r /dev/kvm ] && [ -w /dev/kvm ] && grep -qwE 'svm|vmx' /proc/cpuinfo; then
            # /dev/kvm may be there and still hang (nested virtualization): boot the kernel
            # alone under KVM and require its first console line within 20 s.
            said=$(timeout 20 qemu-system-x86_64 -accel kvm -nodefaults -no-user-config -display none -no-reboot \
                -machine q35 -m 256 -kernel "$IMAGE/bzImage" -append "console=ttyS0 panic=-1" -serial stdio \
                2>/dev/null | head -c 256 || true)
            if [ -n "$said" ]; then
                ACCELS+=(kvm)
            else
                log "/dev/kvm is there but a KVM boot printed nothing in 20 s: TCG only"
            fi
        else
            log "KVM is not usable here (no rw /dev/kvm, or no svm/vmx CPU flag): TCG only"
        fi
    fi
fi

if [ "${#ACCELS[@]}" -gt 0 ]; then
    CACHE=$WORK/kettle-cache
    mkdir -p "$CACHE/sha256"
    # Pre-seed the content-addressed store (its layout: sha256/<hex>), so the timed
    # builds see the steady state: every input cached, re-verified on use.
    seed() { local f=$1 h; h=$(sha256sum "$f" | cut -d' ' -f1); cp "$f" "$CACHE/sha256/$h"; echo "$h"; }
    SAMPLES=()

    # hello-script: its rootfs is this host's sh, mkdir and cat (kettle-sample, as the demo).
    sample=$("$TARGET/release/kettle-sample" hello-script --rootfs-out "$WORK/script-rootfs.tar" \
        --repo-dir "$WORK/src" --rootfs-url https://kettle.invalid/bench/rootfs.tar)
    { read -r SCRIPT_SRC; read -r _; } <<<"$sample"
    seed "$WORK/script-rootfs.tar" >/dev/null
    SAMPLES+=("hello-script:$SCRIPT_SRC:$VM_RUNS:2048")

    # hello-cargo: the pinned Debian rootfs and Rust toolchain bundles (make bundles).
    if [ -f "$BUNDLES/rootfs.tar.gz" ] && [ -f "$BUNDLES/toolchain.tar.gz" ]; then
        CARGO_SRC=$WORK/src/hello-cargo
        mkdir -p "$CARGO_SRC"
        cp -r examples/hello-cargo/. "$CARGO_SRC/"
        rootfs_sha=$(seed "$BUNDLES/rootfs.tar.gz")
        toolchain_sha=$(seed "$BUNDLES/toolchain.tar.gz")
        sed -e "s|@TOOLCHAIN_URL@|https://kettle.invalid/bench/toolchain.tar.gz|" -e "s|@TOOLCHAIN_SHA256@|$toolchain_sha|" \
            -e "s|@ROOTFS_URL@|https://kettle.invalid/bench/rootfs.tar.gz|" -e "s|@ROOTFS_SHA256@|$rootfs_sha|" \
            "$CARGO_SRC/kettle.toml.in" >"$CARGO_SRC/kettle.toml"
        rm "$CARGO_SRC/kettle.toml.in"
        # Its crates from the local cargo cache when there (else kettle build downloads them).
        for c in $(python3 -c 'import re,sys; print(" ".join(f"{n}-{v}" for n,v in re.findall(r"name = \"([^\"]+)\"\nversion = \"([^\"]+)\"\nsource", open(sys.argv[1]).read())))' "$CARGO_SRC/Cargo.lock"); do
            f=$(ls "${CARGO_HOME:-$HOME/.cargo}"/registry/cache/*/"$c.crate" 2>/dev/null | head -1 || true)
            [ -n "$f" ] && seed "$f" >/dev/null
        done
        git -C "$CARGO_SRC" init -q -b main
        git -C "$CARGO_SRC" add -A
        git -C "$CARGO_SRC" -c user.name=bench -c user.email=bench@kettle.invalid commit -q -m hello-cargo
        SAMPLES+=("hello-cargo:$CARGO_SRC:$CARGO_RUNS:6144")
    else
        log "SKIPPING the cargo sample: no rootfs.tar.gz and toolchain.tar.gz in $BUNDLES (make bundles, or set BENCH_BUNDLES)"
    fi

    for accel in "${ACCELS[@]}"; do
        for s in "${SAMPLES[@]}"; do
            IFS=: read -r name src runs mem <<<"$s"
            for i in $(seq 1 "$runs"); do
                log "kettle build $name ($accel, run $i/$runs)"
                python3 "$WORK/timed.py" "$WORK/vm-$name-$accel-$i.json" "$VMKETTLE" -v build "$src" \
                    --tee simulated --accel "$accel" --image "$IMAGE" --out "$WORK/out-$name" --force \
                    --cache-dir "$CACHE" --memory "$mem" --timeout 3600
                rc=$(python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))["rc"])' "$WORK/vm-$name-$accel-$i.json")
                if [ "$rc" != 0 ]; then
                    python3 -c 'import json,sys; [print(l[2]) for l in json.load(open(sys.argv[1]))["lines"][-30:]]' "$WORK/vm-$name-$accel-$i.json" >&2
                    die "kettle build $name failed (exit $rc)"
                fi
                cp "$WORK/out-$name/build.log" "$WORK/vm-$name-$accel-$i.build.log"
            done
            # `kettle verify` of the same output directory, as the build's own verify step runs it.
            commit=$(git -C "$src" rev-parse HEAD)
            hyperfine -N --warmup 1 --runs 5 --export-json "$WORK/vm-$name-$accel-verify.json" \
                -n "kettle verify $name" "$(q "$VMKETTLE" verify "$WORK/out-$name" --manifest "$IMAGE/manifest.json" \
                    --allow-simulated --ref refs/heads/main --commit "$commit")" >/dev/null 2>&1 || true
        done
    done
fi

# --- the table -----------------------------------------------------------------
python3 - "$OUT" "$TARGET/criterion" "$WORK" "$CORES" "$ONLY" <<'PY' | tee "$OUT/table.txt"
import glob, json, os, re, statistics, sys

out, crit_dir, work, cores = sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4])
# A row is printed only for a section that ran, with the sizes it ran with.
ran = set(sys.argv[5].split(","))
MiB = 1 << 20

def load(p):
    try:
        return json.load(open(p))
    except (OSError, ValueError):
        return None

# criterion: full id -> median seconds (and the raw estimates, for the JSON)
crit = {}
for est in glob.glob(f"{crit_dir}/**/new/estimates.json", recursive=True):
    meta = load(os.path.join(os.path.dirname(est), "benchmark.json"))
    e = load(est)
    if meta and e:
        crit[meta["full_id"]] = {"median_s": e["median"]["point_estimate"] / 1e9,
                                 "mean_s": e["mean"]["point_estimate"] / 1e9,
                                 "throughput": meta.get("throughput")}
json.dump(crit, open(f"{out}/criterion.json", "w"), indent=2, sort_keys=True)

def c(name):
    return crit.get(name, {}).get("median_s")

def hf(path):
    d = load(path)
    return {r["command"]: r for r in d["results"]} if d else {}

rows, summary = [], {"cores": cores, "load_average": open("/proc/loadavg").read().split()[:3]}
def row(section, what, value, ratio, against, goal=""):
    rows.append((section, what, value, ratio, against, goal))

def bytes_of(name):
    """The bytes one iteration of a criterion bench hashed (its declared throughput)."""
    t = crit.get(name, {}).get("throughput") or {}
    return t.get("Bytes") or t.get("BytesDecimal")

def ms(s):
    return f"{s * 1e3:.1f} ms" if s is not None else "-"

lim256 = bytes_of("limit/sha256") / c("limit/sha256") if c("limit/sha256") and bytes_of("limit/sha256") else None
lim384 = bytes_of("limit/sha384") / c("limit/sha384") if c("limit/sha384") and bytes_of("limit/sha384") else None
if lim256:
    row("hash", "limit: sha2 SHA-256, 1 core", f"{lim256 / MiB:.0f} MiB/s", "1.00x", "(the limit)")
    row("hash", "limit: sha2 SHA-384, 1 core", f"{lim384 / MiB:.0f} MiB/s", "1.00x", "(the limit)")
    summary["limit_sha256_bytes_per_s"], summary["limit_sha384_bytes_per_s"] = lim256, lim384

# `measure` alone runs the hashing bench over a small file for the limit: no of_file rows then.
size = bytes_of("file/of_file")
of_file = c("file/of_file")
hash_mib = round(size / MiB) if size else 0
if "hash" in ran and of_file and lim256 and size:
    r = of_file / (size / lim256)
    row("hash", f"Sha256Digest::of_file {hash_mib} MiB", f"{size / of_file / MiB:.0f} MiB/s", f"{r:.2f}x", "SHA-256 limit", "<= 1.2x" + (" MET" if r <= 1.2 else " MISSED"))
    summary["of_file_vs_limit"] = r
    big = c("file/read_1mib_update")
    if big:
        row("hash", "  same, hand-written 1 MiB read loop", f"{size / big / MiB:.0f} MiB/s", f"{big / (size / lim256):.2f}x", "SHA-256 limit")
        summary["read_1mib_vs_limit"] = big / (size / lim256)
    rd = c("file/read_only_1mib")
    if rd:
        row("hash", "  reads alone, no hashing (page cache)", f"{size / rd / MiB:.0f} MiB/s", f"{(rd + size / lim256) / (size / lim256):.2f}x", "read + hash, one core: of_file's floor")
        summary["read_plus_hash_floor_vs_limit"] = (rd + size / lim256) / (size / lim256)
    peer = hf(f"{out}/hash-sha256sum.json").get("sha256sum")
    if peer:
        row("hash", f"sha256sum {hash_mib} MiB (coreutils)", f"{size / peer['median'] / MiB:.0f} MiB/s", f"{of_file / peer['median']:.2f}x", "of_file time / sha256sum time")
        summary["of_file_vs_sha256sum"] = of_file / peer["median"]

m = hf(f"{out}/measure.json")
mi = load(f"{out}/measure-inputs.json")
if m and mi:
    k, p = m["kettle measure"], m["sev-snp-measure"]
    row("measure", "kettle measure (process)", ms(k["median"]), f"{p['median'] / k['median']:.1f}x faster", "sev-snp-measure")
    if lim256:
        pages = mi["ovmf_bytes"] // 4096
        # SHA-256: kernel, initrd, cmdline; SHA-384: each firmware page (33 blocks with padding)
        # and each page's PAGE_INFO (2 blocks), i.e. at least the firmware's pages.
        t256 = (mi["kernel_bytes"] + mi["initrd_bytes"] + mi["cmdline_bytes"]) / lim256
        t384 = pages * (33 + 2) * 128 / lim384
        limit = t256 + t384
        r = k["median"] / limit
        row("measure", f"  hashing limit for its {(mi['kernel_bytes'] + mi['initrd_bytes']) / MiB:.0f} MiB + {mi['ovmf_bytes'] / MiB:.0f} MiB", ms(limit), f"{r:.2f}x", "kettle measure / hashing limit", "<= 1.5x" + (" MET" if r <= 1.5 else " MISSED"))
        summary["measure_vs_limit"], summary["measure_limit_s"] = r, limit
    summary["measure_vs_peer"] = p["median"] / k["median"]

v = hf(f"{out}/verify-cli.json")
if v:
    k = v["kettle verify"]
    row("verify", "kettle verify, Milan report (process)", ms(k["median"]), "1.00x", "")
    for peer in ("snpguest verify attestation", "snpguest verify certs"):
        if peer in v:
            row("verify", f"  {peer}", ms(v[peer]["median"]), f"{k['median'] / v[peer]['median']:.2f}x", f"kettle verify / {peer}")
            summary[f"kettle_verify_vs_{peer.replace(' ', '_')}"] = k["median"] / v[peer]["median"]
    if "snpguest verify attestation" in v and "snpguest verify certs" in v:
        both = v["snpguest verify attestation"]["median"] + v["snpguest verify certs"]["median"]
        row("verify", "  snpguest certs + attestation (2 runs)", ms(both), f"{k['median'] / both:.2f}x", "kettle verify / both snpguest runs")
        summary["kettle_verify_vs_snpguest_both"] = k["median"] / both
for name, label in (("verify/milan_report", "verify(), Milan report only"), ("verify/simulated_bundle", "verify(), simulated bundle"),
                    ("load/simulated_output_dir", "verify_output_dir() (read + verify)")):
    if c(name):
        row("verify", label, ms(c(name)), f"{c(name) / 5e-3:.2f}x", "5 ms goal", "< 5 ms" + (" MET" if c(name) < 5e-3 else " MISSED"))
total = c("verify/milan_report")
for name in sorted(n for n in crit if n.startswith("check/")):
    share = f"{c(name) / total:.0%} of verify()" if total else ""
    row("verify", f"  {name}", ms(c(name)) if c(name) >= 1e-4 else f"{c(name) * 1e6:.1f} us", share, "Milan verify()")
b = load(f"{out}/verify_batch.json")
if b:
    r = b["ms_per_bundle_read_and_verify"]
    row("verify", f"{b['bundles']} bundles in one process", f"{r:.2f} ms/bundle", f"{r / 5:.2f}x", "5 ms goal", "< 5 ms" + (" MET" if r < 5 else " MISSED"))
    row("verify", "  checks only (bundles loaded)", f"{b['ms_per_bundle_checks_only']:.2f} ms/bundle", f"{b['ms_per_bundle_checks_only'] / r:.0%}", "of read + verify")
    summary["verify_batch_ms_per_bundle"] = r

for lat in ("lat0ms", "lat10ms"):
    seq, par = c(f"fetch/{lat}/jobs1"), c(f"fetch/{lat}/jobs8")
    if seq and par:
        row("fetch", f"200 crates, mirror +{lat[3:]}, 1 at a time", ms(seq), "1.00x", "(sequential, before)")
        row("fetch", f"200 crates, mirror +{lat[3:]}, 8 at a time", ms(par), f"{seq / par:.1f}x faster", "sequential")
        summary[f"fetch_{lat}_speedup"] = seq / par

cd_ = {k: c(f"cache_disk/{k}") for k in ("write_cache", "write_cache_before", "copy", "copy_fsync")}
tp = crit.get("cache_disk/write_cache", {}).get("throughput") or {}
cache_bytes = tp.get("Bytes") if isinstance(tp, dict) else None
if all(cd_.values()):
    mb = f" {cache_bytes / MiB:.0f} MiB" if cache_bytes else ""
    row("cache", f"write_cache{mb} (now)", ms(cd_["write_cache"]), f"{cd_['write_cache_before'] / cd_['write_cache']:.2f}x faster", "the previous loop")
    row("cache", "  previous loop (get + add_blob_file)", ms(cd_["write_cache_before"]), "1.00x", "")
    row("cache", "  plain copy", ms(cd_["copy"]), f"{cd_['write_cache'] / cd_['copy']:.2f}x", "write_cache / copy")
    row("cache", "  copy + fsync", ms(cd_["copy_fsync"]), f"{(cd_['copy_fsync'] - cd_['copy']) / cd_['write_cache']:.0%}", "of write_cache is the fsync")
    if cache_bytes and lim256:
        row("cache", "  one SHA-256 pass at the limit", ms(cache_bytes / lim256), f"{cd_['write_cache'] / (cache_bytes / lim256):.2f}x", "write_cache / one pass")

# --- vm -----------------------------------------------------------------------
STEP_OK = re.compile(r"\[(\w+)\] ok in ([0-9.]+)s")
TIMING = re.compile(r"timing: (.+?) ([0-9.]+)s$")
def parse_run(path):
    d = load(path)
    lines = d["lines"]
    host, marks = {}, {}
    first_guest = last_guest = None
    for t, stream, text in lines:
        plain = re.sub(r"\x1b\[[0-9;]*m", "", text)
        if "kettle::console: guest: " in plain:
            first_guest = t if first_guest is None else first_guest
            last_guest = t
        if "running qemu-system" in plain and "qemu_spawn" not in marks:
            marks["qemu_spawn"] = t
        mt = TIMING.search(plain)
        if mt:
            host[mt.group(1)] = float(mt.group(2))
    guest = {}
    log_path = path.replace(".json", ".build.log")
    for line in open(log_path, errors="replace"):
        mg = STEP_OK.search(line)
        if mg:  # a step may log several lines (fetch: cache disk, source, dependencies)
            guest[mg.group(1)] = guest.get(mg.group(1), 0.0) + float(mg.group(2))
    steps = {}
    steps["host: resolve source"] = host.get("resolve source")
    steps["host: request disk"] = host.get("request disk")
    steps["host: add --input files"] = host.get("add --input files")
    steps["host: resolve inputs (store re-verify)"] = host.get("resolve inputs")
    steps["host: write cache disk"] = host.get("write cache disk")
    if "qemu_spawn" in marks and first_guest is not None:
        steps["vm: QEMU start -> first console line (firmware + kernel)"] = first_guest - marks["qemu_spawn"]
    guest_total = sum(guest.values())
    for g, s in guest.items():
        steps[f"guest: [{g}]"] = s
    if first_guest is not None and last_guest is not None:
        steps["guest: between steps (console, logging)"] = max(0.0, last_guest - first_guest - guest_total)
    if "qemu" in host and "qemu_spawn" in marks and last_guest is not None:
        steps["vm: last console line -> QEMU exit"] = max(0.0, host["qemu"] - (last_guest - marks["qemu_spawn"]))
    steps["host: collect outputs"] = host.get("collect")
    steps["host: verify"] = host.get("verify")
    steps = {k: v for k, v in steps.items() if v is not None}
    known = sum(steps.values())
    steps["host: other (process start, QEMU probe, PSP, publish)"] = max(0.0, d["wall"] - known)
    return {"wall": d["wall"], "steps": steps, "build_step": guest.get("build", 0.0), "host_timing": host, "guest_steps": guest}

vm = {}
for path in sorted(glob.glob(f"{work}/vm-*-[0-9]*.json")):
    m_ = re.match(r".*/vm-(.+)-(tcg|kvm)-(\d+)\.json$", path)
    if not m_:
        continue
    vm.setdefault((m_.group(1), m_.group(2)), []).append(parse_run(path))
vm_json = {}
for (name, accel), runs in sorted(vm.items()):
    med = lambda xs: statistics.median(xs)
    wall = med([r["wall"] for r in runs])
    build = med([r["build_step"] for r in runs])
    fixed = med([r["wall"] - r["build_step"] for r in runs])
    keys = []
    for r in runs:
        keys += [k for k in r["steps"] if k not in keys]
    steps = {k: med([r["steps"].get(k, 0.0) for r in runs]) for k in keys}
    ver = hf(f"{work}/vm-{name}-{accel}-verify.json")
    vm_json[f"{name}/{accel}"] = {"runs": len(runs), "wall_s": wall, "guest_build_step_s": build, "fixed_overhead_s": fixed,
                                  "steps_median_s": steps, "kettle_verify_cli_s": next(iter(ver.values()))["median"] if ver else None,
                                  "each_run": runs}
    sec = f"vm {name} {accel}"
    row(sec, f"wall ({len(runs)} runs, median)", f"{wall:.2f} s", "", "")
    for k, s in steps.items():
        row(sec, f"  {k}", f"{s:.3f} s", f"{s / wall:.0%}", "of wall")
    if name == "hello-script":
        row(sec, "fixed overhead (wall - guest [build])", f"{fixed:.2f} s", f"{fixed / 3:.2f}x", "3 s goal", "< 3 s" + (" MET" if fixed < 3 else " MISSED"))
    else:
        row(sec, "fixed overhead (wall - guest [build])", f"{fixed:.2f} s", f"{fixed / wall:.1%}", "of wall", "< 5%" + (" MET" if fixed / wall < 0.05 else " MISSED"))
json.dump(vm_json, open(f"{out}/build-overhead.json", "w"), indent=2)
summary["vm"] = {k: {"wall_s": v["wall_s"], "fixed_overhead_s": v["fixed_overhead_s"]} for k, v in vm_json.items()}
json.dump({"summary": summary, "rows": [dict(zip(("section", "what", "value", "ratio", "against", "goal"), r)) for r in rows]},
          open(f"{out}/summary.json", "w"), indent=2)

print(f"\nKettle benchmarks: {cores} cores, load average {' '.join(summary['load_average'])} (ratios are within this run)")
w = [max(len(str(r[i])) for r in rows) if rows else 0 for i in range(6)]
last = None
for r in rows:
    if r[0] != last:
        print(f"\n[{r[0]}]")
        last = r[0]
    print(f"  {r[1]:<{w[1]}}  {r[2]:>{w[2]}}  {r[3]:>{w[3]}}  {r[4]:<{w[4]}}  {r[5]}")
print(f"\nraw results: {', '.join(sorted(os.path.basename(p) for p in glob.glob(out + '/*.json')))} and table.txt in {out}")
PY
