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
#                                  own build output (artifacts/, provenance.json, evidence,
#                                  ...), built by Kettle in the CVM
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
# (set by scripts/dist-attested.sh: an output directory of `kettle build` whose one
# subject ships as bin/kettle, the directory as attestation/kettle/; with
# DIST_ATTESTED_POLICY and DIST_ATTESTED_COMMIT). An attested release is the release
# of that commit whatever the work tree holds now: its version, time and CI scripts are
# read from the commit. bin/kettle must be the provenance's subject (its SHA-256) and
# static; the policy must be what `kettle policy init` makes from the release's own
# image/manifest.json; and the release's own kettle must verify the attestation under
# it. Evidence from the simulated PSP (test keys) makes a release only with
# DIST_ALLOW_SIMULATED=1, and its name then ends in -simulated.
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

release_commit=
if [ -n "${DIST_ATTESTED:-}" ]; then
    release_commit=${DIST_ATTESTED_COMMIT:-}
    [ -n "$release_commit" ] || die "DIST_ATTESTED needs DIST_ATTESTED_COMMIT (the commit it was built from)"
    git cat-file -e "$release_commit^{commit}" 2>/dev/null ||
        die "DIST_ATTESTED_COMMIT=$release_commit is not a commit of this repository"
    version=$(git show "$release_commit:Cargo.toml" |
        python3 -c 'import sys, tomllib; print(tomllib.loads(sys.stdin.read())["workspace"]["package"]["version"])')
    SOURCE_DATE_EPOCH=$(git show -s --format=%ct "$release_commit")
else
    version=$("$CARGO" pkgid --locked -p kettle | sed 's/.*[@#]//')
fi
name=kettle-$version-x86_64-linux
if [ -z "${SOURCE_DATE_EPOCH:-}" ]; then
    SOURCE_DATE_EPOCH=$(git log -1 --format=%ct 2>/dev/null || echo 0)
fi
export SOURCE_DATE_EPOCH
log "$name, SOURCE_DATE_EPOCH=$SOURCE_DATE_EPOCH, from $BUILD"

if [ -n "${DIST_ATTESTED:-}" ]; then
    [ -f "${DIST_ATTESTED_POLICY:-}" ] || die "DIST_ATTESTED needs DIST_ATTESTED_POLICY (the policy it verifies under)"
    # The one subject of the provenance is the binary that ships: by its name and its digest.
    subject=$(python3 - "$DIST_ATTESTED/provenance.json" <<'PY'
import json, sys
subjects = json.load(open(sys.argv[1]))["subject"]
if len(subjects) != 1:
    sys.exit(f"the provenance has {len(subjects)} subjects; an attested kettle has exactly one")
print(subjects[0]["name"] + "\t" + subjects[0]["digest"]["sha256"])
PY
    ) || die "$DIST_ATTESTED/provenance.json does not name one subject"
    kettle_bin=$DIST_ATTESTED/artifacts/${subject%%$'\t'*}
    [ -f "$kettle_bin" ] || die "$kettle_bin (the provenance's subject) is missing"
    [ "$(sha256sum <"$kettle_bin" | cut -d' ' -f1)" = "${subject##*$'\t'}" ] ||
        die "$kettle_bin is not the provenance's subject (its sha256 differs)"
    if LC_ALL=C readelf -lW "$kettle_bin" | grep -q INTERP; then
        die "$kettle_bin is dynamically linked (has PT_INTERP): a release binary must run without the build machine's libraries"
    fi
    if python3 -c 'import json, sys; sys.exit(0 if json.load(open(sys.argv[1])).get("allow_simulated") else 1)' "$DIST_ATTESTED_POLICY"; then
        [ "${DIST_ALLOW_SIMULATED:-}" = 1 ] ||
            die "the attestation is the simulated PSP's (test keys: nothing hardware-attested); DIST_ALLOW_SIMULATED=1 makes a release of it anyway, named ...-simulated"
        name=$name-simulated
    fi
    log "bin/kettle is the CVM-built $kettle_bin of $release_commit"
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
for s in ci-build.sh ci-verify.sh; do
    if [ -n "$release_commit" ]; then
        git show "$release_commit:scripts/$s" >"$rel/share/ci/$s"
    else
        cp "scripts/$s" "$rel/share/ci/"
    fi
done
if [ -n "${DIST_ATTESTED:-}" ]; then
    mkdir -p "$rel/attestation"
    cp -r "$DIST_ATTESTED" "$rel/attestation/kettle"
    # The policy it ships must be what this release's image makes: regenerated and compared.
    read -r repo refs simulated < <(python3 - "$DIST_ATTESTED_POLICY" <<'PY'
import json, sys
p = json.load(open(sys.argv[1]))
print(p["source"]["repository"], ",".join(p["source"]["refs"]), "1" if p.get("allow_simulated") else "0")
PY
    )
    args=(--manifest "$rel/image/manifest.json" --name "$(python3 -c 'import json, sys; print(json.load(open(sys.argv[1]))["name"])' "$DIST_ATTESTED_POLICY")" --repo "$repo")
    IFS=, read -ra ref_list <<<"$refs"
    for r in "${ref_list[@]}"; do args+=(--ref "$r"); done
    [ "$simulated" = 1 ] && args+=(--allow-simulated)
    "$kettle" policy init "${args[@]}" --out "$stage/policy.expected.json"
    cmp -s "$stage/policy.expected.json" "$DIST_ATTESTED_POLICY" ||
        die "DIST_ATTESTED_POLICY is not the policy this release's image/manifest.json makes (kettle policy init ${args[*]})"
    cp "$DIST_ATTESTED_POLICY" "$rel/policy.kettle.json"
    rm "$stage/policy.expected.json"
    # What an auditor runs: the release's own CLI, image and policy.
    "$kettle" verify "$rel/attestation/kettle" --policy "$rel/policy.kettle.json" \
        --commit "$release_commit" ||
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
