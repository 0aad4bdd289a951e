# Shell functions the two pinned image builds (build-kernel.sh, build-ovmf.sh)
# share. Sourced, not run: the caller sets NAME (its log prefix) and PIN (its
# pin file) first. This file is part of both builds' cache keys.

log() { printf '%s: %s\n' "$NAME" "$*"; }
die() { printf '%s: error: %s\n' "$NAME" "$*" >&2; exit 1; }

# pin_value KEY: the value of KEY=... in the pin file.
pin_value() {
    local v
    v=$(sed -n "s/^$1=//p" "$PIN")
    [ -n "$v" ] || die "$PIN has no '$1=' line"
    printf '%s' "$v"
}

# sha256_of FILE: FILE's SHA-256, hex.
sha256_of() {
    sha256sum <"$1" | cut -d' ' -f1
}

# verified FILE SHA256: FILE exists and has that SHA-256.
verified() {
    [ -f "$1" ] && [ "$(sha256_of "$1")" = "$2" ]
}

# pkg_version PKG: the installed version of PKG, or nothing.
pkg_version() {
    dpkg-query -W -f='${Status} ${Version}' "$1" 2>/dev/null | sed -n 's/^install ok installed //p'
}

# file_package FILE: the Debian package that installed FILE (a resolved path;
# tried with and without the /usr prefix, as bookworm still ships some
# packages, dosfstools among them, in /sbin and /bin).
file_package() {
    local f=$1 alt p pkg
    case $f in
        /usr/*) alt=${f#/usr} ;;
        *) alt=/usr$f ;;
    esac
    for p in "$f" "$alt"; do
        pkg=$(dpkg-query -S "$p" 2>/dev/null | grep -v '^diversion ' | sed -n '1s/^\([^:]*\)\(:[^:]*\)\?: .*/\1/p')
        [ -n "$pkg" ] && { printf '%s' "$pkg"; return 0; }
    done
    return 1
}
