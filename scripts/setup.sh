#!/usr/bin/env bash
# Installs what Kettle needs on a Debian bookworm machine, idempotently.
# Called by `make setup`; safe to run again (it skips what is already there).
set -euo pipefail

log() { printf 'setup: %s\n' "$*"; }

if [ "$(id -u)" -ne 0 ]; then
    echo "setup: run as root (apt-get needs it)" >&2
    exit 2
fi

export DEBIAN_FRONTEND=noninteractive

# QEMU with SNP support (>= 9.1) is only in bookworm-backports.
BACKPORTS=/etc/apt/sources.list.d/kettle-bookworm-backports.sources
if [ ! -f "$BACKPORTS" ]; then
    log "adding bookworm-backports to apt sources"
    cat >"$BACKPORTS" <<'SRC'
Types: deb
URIs: http://deb.debian.org/debian
Suites: bookworm-backports
Components: main
Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg
SRC
    rm -f /var/lib/apt/lists/.kettle-updated
fi

PKGS=(
    # kernel build (make kernel; it fetches the pinned linux-source-6.12 itself)
    build-essential bc bison flex libelf-dev libssl-dev cpio xz-utils lz4
    # firmware build (make ovmf): edk2's AmdSev package from Debian's source
    dpkg-dev quilt nasm acpica-tools uuid-dev grub-efi-amd64-bin dosfstools mtools python3
    # guest tests, benchmarks and the demo (pkg-config: snpguest, the bench's peer, builds against libssl)
    qemu-utils debootstrap git ca-certificates python3-venv file hyperfine pkg-config
    # bundle disks: mkfs.erofs writes them (kettle bundle disk), fsck.erofs and veritysetup
    # (the dm-verity peer of kettle-image's hash trees) check them
    erofs-utils cryptsetup-bin
)
BACKPORT_PKGS=(qemu-system-x86)

missing=()
for p in "${PKGS[@]}" "${BACKPORT_PKGS[@]}"; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' || missing+=("$p")
done
qemu_ok=0
if command -v qemu-system-x86_64 >/dev/null; then
    v=$(qemu-system-x86_64 --version | sed -n 's/.*version \([0-9]*\)\..*/\1/p')
    [ "${v:-0}" -ge 9 ] && qemu_ok=1
fi

if [ "${#missing[@]}" -gt 0 ] || [ "$qemu_ok" -eq 0 ]; then
    if [ ! -f /var/lib/apt/lists/.kettle-updated ]; then
        log "apt-get update"
        apt-get update -qq
        touch /var/lib/apt/lists/.kettle-updated
    fi
    if [ "${#missing[@]}" -gt 0 ]; then
        log "installing: ${missing[*]}"
    fi
    apt-get install -y -qq --no-install-recommends "${PKGS[@]}" >/dev/null
    apt-get install -y -qq --no-install-recommends -t bookworm-backports "${BACKPORT_PKGS[@]}" >/dev/null
fi
log "qemu: $(qemu-system-x86_64 --version | head -n1)"

# Independent implementations the tests compare against, in a venv of our own.
VENV=${KETTLE_VENV:-/opt/kettle-venv}
PY_PKGS=(sev-snp-measure in-toto-attestation rfc8785)
if [ ! -x "$VENV/bin/python" ]; then
    log "creating python venv $VENV"
    python3 -m venv "$VENV"
fi
if ! "$VENV/bin/python" -c 'import rfc8785, in_toto_attestation, sevsnpmeasure' 2>/dev/null; then
    log "installing python peers: ${PY_PKGS[*]}"
    "$VENV/bin/pip" install -q "${PY_PKGS[@]}"
fi
log "done"
