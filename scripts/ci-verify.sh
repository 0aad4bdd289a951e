#!/usr/bin/env bash
# The verify step of Kettle's CI recipe (.github/actions/kettle-verify, ci/gitlab-ci.example.yml):
# runs anywhere (no SEV-SNP, no VM), on the output directory scripts/ci-build.sh wrote, under
# the platform team's published policy, with the ref and commit pinned to the ones the
# pipeline built:
#
#   kettle verify OUT --policy POLICY --ref REF --commit COMMIT [--vsa FILE]
#
# Exit status: 0 only for a VERIFIED verdict bound to the build; 1 rejected; 2 could not
# run. Nothing but kettle verify's own exit 0 with such a verdict line passes.
#
# Env (GitHub's names first, then Kettle's own, which win):
#   GITHUB_REF, GITHUB_SHA          the ref and commit the build job built
#   KETTLE_REF, KETTLE_COMMIT       the same, for other CI systems
#   KETTLE_POLICY                   the published verification policy (required)
#   KETTLE                          the kettle binary (default: kettle on PATH)
#   KETTLE_OUT                      the output directory (default: kettle-out)
#   KETTLE_VSA                      also write a SLSA Verification Summary Attestation there
#   KETTLE_VERIFY_ARGS              more `kettle verify` arguments, split at whitespace
#                                   (e.g. --fetch-crl, --at TIME)
set -euo pipefail

fail() { printf 'ci-verify: error: %s\n' "$*" >&2; exit 2; }

KETTLE=${KETTLE:-kettle}
ref=${KETTLE_REF:-${GITHUB_REF:-}}
commit=${KETTLE_COMMIT:-${GITHUB_SHA:-}}
out=${KETTLE_OUT:-kettle-out}

[ -n "$ref" ] || fail "no ref: set GITHUB_REF or KETTLE_REF to the ref the build job built"
[ -n "$commit" ] || fail "no commit: set GITHUB_SHA or KETTLE_COMMIT to the commit the build job built"
[ -n "${KETTLE_POLICY:-}" ] || fail "KETTLE_POLICY is not set: point it at the published verification policy"
[ -f "$KETTLE_POLICY" ] || fail "$KETTLE_POLICY (KETTLE_POLICY) does not exist"
[ -d "$out" ] || fail "$out (KETTLE_OUT) is not a directory: download the build job's output first"
command -v "$KETTLE" >/dev/null || fail "$KETTLE not found: put the release's bin/ on PATH or set KETTLE"

read -r -a extra <<<"${KETTLE_VERIFY_ARGS:-}"
[ -z "${KETTLE_VSA:-}" ] || extra+=(--vsa "$KETTLE_VSA")
log=$(mktemp)
trap 'rm -f "$log"' EXIT
status=0
"$KETTLE" verify "$out" --policy "$KETTLE_POLICY" --ref "$ref" --commit "$commit" "${extra[@]}" \
    | tee "$log" || status=$?
[ "$status" = 0 ] || exit "$status"
# Belt and braces: exit 0 must come with the verdict line itself, bound to the build
# (a report alone, "report only", says nothing about the artifacts).
verdict=$(grep '^VERIFIED' "$log" || true)
[ -n "$verdict" ] || { echo "ci-verify: kettle verify exited 0 without a VERIFIED verdict" >&2; exit 1; }
case $verdict in
    *"report only"*) echo "ci-verify: the evidence is not bound to any build (report only): rejected" >&2; exit 1 ;;
esac
