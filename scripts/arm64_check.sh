#!/usr/bin/env bash
# Proves the device side installs and runs on Raspberry Pi OS's base -- Debian bookworm,
# arm64, Python 3.11 -- with no compiler: aarch64 wheels only. Runs in an arm64 chroot under
# qemu-user, so it is functional proof only; its timings are not a Pi's.
#
#   sudo scripts/arm64_check.sh [ROOT]      (ROOT: default /var/tmp/dxmacro-arm64)
#
# Needs root, debootstrap, qemu-user-static and binfmt-support (Debian packages); makes the
# chroot with debootstrap the first time (about 15 minutes), then reuses it.
set -euo pipefail
ROOT=${1:-/var/tmp/dxmacro-arm64}
REPO=$(cd "$(dirname "$0")/.." && pwd)

if [ ! -x "$ROOT/usr/bin/python3" ]; then
    debootstrap --arch=arm64 --variant=minbase --include=python3,python3-venv,ca-certificates \
        bookworm "$ROOT" http://deb.debian.org/debian
fi
cp /etc/resolv.conf "$ROOT/etc/resolv.conf"
# Where this machine reaches PyPI through a proxy with its own CA, pip in the chroot needs it too.
# Use this machine's trust store (pip's configured one if any).
CERT=${PIP_CERT:-$(python3 -m pip config get global.cert 2>/dev/null || echo /etc/ssl/certs/ca-certificates.crt)}

# Our own package as a wheel (pure Python), built here; everything else comes from PyPI.
rm -rf "$ROOT/opt/dxmacro" && mkdir -p "$ROOT/opt/dxmacro/wheels"
SRC=$(mktemp -d)
git -C "$REPO" archive HEAD | tar -x -C "$SRC"  # the committed tree, no stale build folders
python3 -m pip wheel --quiet --no-deps --wheel-dir "$ROOT/opt/dxmacro/wheels" "$SRC"
rm -rf "$SRC"
cp "$REPO/scripts/arm64_smoke.py" "$ROOT/opt/dxmacro/"
[ -n "${BUNDLE:-}" ] && cp "$BUNDLE" "$ROOT/opt/dxmacro/model.dxm"
PIP_CERT_ENV=()
if [ -n "$CERT" ] && [ -f "$CERT" ]; then
    cp "$CERT" "$ROOT/opt/dxmacro/pip-ca.crt"
    PIP_CERT_ENV=(PIP_CERT=/opt/dxmacro/pip-ca.crt)
fi

mountpoint -q "$ROOT/proc" || mount -t proc proc "$ROOT/proc"
trap 'umount "$ROOT/proc" 2>/dev/null || true' EXIT
chroot "$ROOT" /usr/bin/env -i PATH=/usr/bin:/bin HOME=/root "${PIP_CERT_ENV[@]}" /bin/bash -euo pipefail -c '
    echo "machine: $(uname -m), $(python3 --version), $(. /etc/os-release; echo $PRETTY_NAME)"
    if command -v gcc cc >/dev/null 2>&1; then echo "a compiler is present: the check would not prove anything"; exit 1; fi
    [ -x /opt/venv/bin/python ] || python3 -m venv /opt/venv
    /opt/venv/bin/pip uninstall --quiet --yes dxmacro 2>/dev/null || true  # same version number, new code
    /opt/venv/bin/pip install --quiet --disable-pip-version-check --only-binary=:all: \
        "$(ls /opt/dxmacro/wheels/dxmacro-*.whl)[device]"
    /opt/venv/bin/pip list --disable-pip-version-check 2>/dev/null | grep -iE "numpy|litert|tflite|rtmidi|lgpio|luma|smbus|crypto|torch|tensorflow" || true
    cd /opt/dxmacro && /opt/venv/bin/python arm64_smoke.py
'
