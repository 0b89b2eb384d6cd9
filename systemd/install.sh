#!/usr/bin/env bash
# Install dxmacro on Raspberry Pi OS (Debian bookworm based): users, virtualenv, config, units.
#
#   sudo systemd/install.sh --public-key signing.pub            # full install, services started
#   systemd/install.sh --stage /tmp/root --public-key k.pub     # lay the files out under a folder only
#                                                               # (no apt, users or systemctl; used by tests)
#
# Idempotent: re-running upgrades the code and units and keeps the config, token and model store.
set -euo pipefail

SRC="$(cd "$(dirname "$0")/.." && pwd)"
STAGE=""
PUBKEY=""
PORT=8080

usage() { sed -n '2,8p' "$0" | sed 's/^# \{0,1\}//'; exit "${1:-0}"; }
while [ $# -gt 0 ]; do
    case "$1" in
        --stage) STAGE="${2:?--stage needs a folder}"; shift 2 ;;
        --public-key) PUBKEY="${2:?--public-key needs a file}"; shift 2 ;;
        --port) PORT="${2:?--port needs a number}"; shift 2 ;;
        -h|--help) usage 0 ;;
        *) echo "install.sh: unknown argument $1" >&2; usage 2 ;;
    esac
done

ROOT="${STAGE%/}"
say() { echo "install.sh: $*"; }
die() { echo "install.sh: error: $*" >&2; exit 1; }

[ -n "$PUBKEY" ] || die "--public-key FILE is required (the Ed25519 public key models are signed with)"
[ -f "$PUBKEY" ] || die "public key $PUBKEY does not exist"
if [ -z "$STAGE" ] && [ "$(id -u)" -ne 0 ]; then die "run as root (sudo), or use --stage DIR"; fi

if [ -z "$STAGE" ]; then
    say "installing system packages"
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -q
    apt-get install -y -q python3-venv python3-dev i2c-tools
    if command -v raspi-config >/dev/null; then
        raspi-config nonint do_i2c 0 || say "could not enable I2C with raspi-config; enable it by hand"
    fi
    for g in i2c gpio audio dialout; do getent group "$g" >/dev/null || groupadd --system "$g"; done
    getent group dxmacro >/dev/null || groupadd --system dxmacro
    id dxmacro >/dev/null 2>&1 || useradd --system --gid dxmacro --groups i2c,gpio,audio,dialout \
        --home-dir /nonexistent --no-create-home --shell /usr/sbin/nologin dxmacro
    id dxmacro-flash >/dev/null 2>&1 || useradd --system --gid dxmacro \
        --home-dir /nonexistent --no-create-home --shell /usr/sbin/nologin dxmacro-flash

    say "installing the code into /opt/dxmacro/venv"
    mkdir -p /opt/dxmacro
    rm -rf /opt/dxmacro/src.new && cp -a "$SRC" /opt/dxmacro/src.new
    rm -rf /opt/dxmacro/src && mv /opt/dxmacro/src.new /opt/dxmacro/src
    [ -x /opt/dxmacro/venv/bin/python ] || python3 -m venv /opt/dxmacro/venv
    /opt/dxmacro/venv/bin/pip install --quiet --upgrade pip
    /opt/dxmacro/venv/bin/pip install --quiet "/opt/dxmacro/src[device]"
fi

say "writing config and units under ${ROOT:-/}"
install -d -m 0755 "$ROOT/etc/dxmacro" "$ROOT/etc/systemd/system" "$ROOT/media/dxmacro"
install -m 0644 "$PUBKEY" "$ROOT/etc/dxmacro/signing.pub"
if [ ! -f "$ROOT/etc/dxmacro/flash.toml" ]; then
    cat > "$ROOT/etc/dxmacro/flash.toml" <<EOF
# dxmacro flash service (dxmacro flash-service serve --config this-file); see docs/flashing.md
store = "/var/lib/dxmacro/store"
token_file = "/etc/dxmacro/flash.token"
public_key = "/etc/dxmacro/signing.pub"
status_file = "/run/dxmacro/status.json"
host = "0.0.0.0"   # the technician's laptop flashes over the network; "127.0.0.1" keeps it on the Pi
port = $PORT
max_bytes = 8388608   # the bundle reader's own limit
health_window_s = 8.0
usb_dir = "/media/dxmacro"
EOF
fi
if [ ! -f "$ROOT/etc/dxmacro/device.toml" ]; then
    # what dxmacro-device.service starts with: the flash service's store, verified with the same key,
    # and the heartbeat the flash service's health check reads (docs/device.md for every other key)
    cat > "$ROOT/etc/dxmacro/device.toml" <<EOF
# dxmacro control loop (dxmacro device run --config this-file); see docs/device.md
[device]
status_file = "/run/dxmacro/status.json"

[model]
decoder = "bundle"
store = "/var/lib/dxmacro/store"
public_key = "/etc/dxmacro/signing.pub"
EOF
fi
if [ ! -s "$ROOT/etc/dxmacro/flash.token" ]; then
    umask 077
    head -c 24 /dev/urandom | base64 | tr '+/' '-_' > "$ROOT/etc/dxmacro/flash.token"
    umask 022
    say "new flash token in /etc/dxmacro/flash.token (give it to the technicians, keep it off the page)"
fi
chmod 0600 "$ROOT/etc/dxmacro/flash.token"
install -m 0644 "$SRC/systemd/dxmacro-device.service" "$SRC/systemd/dxmacro-flash.service" "$ROOT/etc/systemd/system/"

if [ -z "$STAGE" ]; then
    chown dxmacro-flash "$ROOT/etc/dxmacro/flash.token"  # the flash service only, not the loop
    # MIDI learn: the loop replaces its own device.toml (temp + rename in this folder); the sticky
    # bit keeps it from renaming or deleting what it does not own (flash.token, flash.toml, the key)
    chown root:dxmacro "$ROOT/etc/dxmacro" && chmod 1775 "$ROOT/etc/dxmacro"
    chown dxmacro:dxmacro "$ROOT/etc/dxmacro/device.toml"
    systemctl daemon-reload
    systemctl enable --now dxmacro-device.service dxmacro-flash.service
    say "done: status page on http://$(hostname).local:$PORT/"
else
    say "staged under $STAGE (nothing started)"
fi
