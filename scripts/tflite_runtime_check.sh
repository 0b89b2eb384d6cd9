#!/usr/bin/env bash
# The device path on tflite-runtime, the Pi's fallback interpreter where numpy < 2 (issue 5):
# a venv with only numpy < 2, tflite-runtime and cryptography (no ai-edge-litert, torch or
# tensorflow), then `dxmacro bundle verify --self-test` on a bundle from `dxmacro convert`.
#   scripts/tflite_runtime_check.sh MODEL.dxm SIGNING.pub        (VENV=... to choose the venv)
set -euo pipefail
repo="$(cd "$(dirname "$0")/.." && pwd)"
bundle="$1" pubkey="$2"
venv="${VENV:-${XDG_CACHE_HOME:-$HOME/.cache}/dxmacro/tflite-runtime-venv}"
[ -x "$venv/bin/python" ] || python3 -m venv "$venv"
"$venv/bin/python" -m pip install --quiet --disable-pip-version-check "numpy<2" "tflite-runtime>=2.14" "cryptography>=42"
"$venv/bin/python" -c 'import numpy, tflite_runtime; print("numpy", numpy.__version__, "tflite-runtime", tflite_runtime.__version__)'
PYTHONPATH="$repo" "$venv/bin/python" -m dxmacro bundle verify "$bundle" --pubkey "$pubkey" --self-test
