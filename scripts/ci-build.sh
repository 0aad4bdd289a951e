#!/usr/bin/env bash
# The build step of Kettle's CI recipe (.github/actions/kettle-build, ci/gitlab-ci.example.yml):
# what a self-hosted SEV-SNP runner runs. Builds the checkout's REF with the release's
# image and writes the output directory (artifacts, provenance.json, evidence, chain.pem,
# build.log) for the pipeline to upload and for `scripts/ci-verify.sh` to verify anywhere.
#
#   kettle build SOURCE --ref REF --commit COMMIT --image $KETTLE_IMAGE --tee snp --out OUT
#
# The commit is pinned: REF's tip in the checkout must be COMMIT (the SHA the CI system
# says it checked out), or nothing is built (kettle build --commit refuses, exit 2). A ref that moved between the checkout and the
# build would otherwise build, and attest, a commit the pipeline never named.
#
# Env (GitHub's names first, then Kettle's own, which win):
#   GITHUB_REF, GITHUB_SHA          the ref (refs/heads/..., refs/tags/...) and commit
#   KETTLE_REF, KETTLE_COMMIT       the same, for other CI systems (GitLab: see ci/)
#   KETTLE_IMAGE                    the release's image directory (required; its bundles beside it)
#   KETTLE                          the kettle binary (default: kettle on PATH)
#   KETTLE_SOURCE                   the checkout (default: .)
#   KETTLE_OUT                      the output directory (default: kettle-out)
#   KETTLE_TEE                      snp (default) or simulated (test keys: for trying the recipe)
#   KETTLE_BUILD_ARGS               more `kettle build` arguments, split at whitespace
# Exit status: kettle build's (0 built and verified locally, 1 the build failed, 2 could not run).
set -euo pipefail

say() { printf 'ci-build: %s\n' "$*"; }
fail() { printf 'ci-build: error: %s\n' "$*" >&2; exit 2; }

KETTLE=${KETTLE:-kettle}
ref=${KETTLE_REF:-${GITHUB_REF:-}}
commit=${KETTLE_COMMIT:-${GITHUB_SHA:-}}
source=${KETTLE_SOURCE:-.}
out=${KETTLE_OUT:-kettle-out}
tee=${KETTLE_TEE:-snp}

[ -n "$ref" ] || fail "no ref to build: set GITHUB_REF or KETTLE_REF (e.g. refs/heads/main)"
[ -n "$commit" ] || fail "no commit to pin: set GITHUB_SHA or KETTLE_COMMIT"
[ -n "${KETTLE_IMAGE:-}" ] || fail "KETTLE_IMAGE is not set: point it at the release's image directory (kettle-<version>-x86_64-linux/image)"
[ -f "$KETTLE_IMAGE/manifest.json" ] || fail "$KETTLE_IMAGE/manifest.json is missing: KETTLE_IMAGE must be a release's image directory"
command -v "$KETTLE" >/dev/null || fail "$KETTLE not found: put the release's bin/ on PATH or set KETTLE"
case $ref in
    refs/heads/* | refs/tags/*) ;;
    *) fail "ref $ref is not refs/heads/... or refs/tags/...: run the build on push and tag events" ;;
esac

git -C "$source" rev-parse --verify -q "$ref^{commit}" >/dev/null \
    || fail "$ref is not in the checkout at $source: fetch it (actions/checkout does for push and tag events)"

read -r -a extra <<<"${KETTLE_BUILD_ARGS:-}"
say "building $ref at $commit with $KETTLE_IMAGE (--tee $tee) into $out"
exec "$KETTLE" build "$source" --ref "$ref" --commit "$commit" --image "$KETTLE_IMAGE" --tee "$tee" --out "$out" "${extra[@]}"
