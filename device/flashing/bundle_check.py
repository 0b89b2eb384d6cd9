"""The one place where flashing meets the bundle format of ``conversion/bundle.py``.

The store and the service only need: "is this file a genuine, complete, compatible bundle, and
which model/version is it" (:func:`verify_file`) and "does it compute the golden vectors on this
device" (:func:`run_self_test`, in a separate process so a crashing or hanging TFLite kernel cannot
take the service down). Everything else about the format stays in conversion/.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

from dxmacro.errors import DxmacroError


class BundleRejected(DxmacroError):
    """A bundle that must not be installed; the message is the reason shown to the user."""


@dataclass(frozen=True)
class BundleInfo:
    model_id: str
    version: str
    format_version: int
    sha256: str  # of the whole .dxm file
    manifest: dict


def version_key(version: str) -> tuple:
    """Order "1.2.10" after "1.2.9"; numeric parts compare as numbers, others as text after them."""
    return tuple((0, int(p), "") if p.isdigit() else (1, 0, p) for p in re.split(r"[.+-]", str(version)))


def file_sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 16), b""):
            h.update(chunk)
    return h.hexdigest()


def load_public_key(path: str | os.PathLike[str]):
    """The signing key's public half, in whatever form conversion/keys.py stores it."""
    from conversion import keys

    return keys.load_public_key(Path(path))


def _read_verified(path: Path, public_key):
    """conversion's reader: Ed25519 signature over the manifest, SHA-256 of every member, format
    version. Its DxmacroError messages are the reasons users see."""
    from conversion import bundle

    try:
        return bundle.read(path, public_key)
    except DxmacroError as exc:
        raise BundleRejected(str(exc)) from None


def verify_file(path: str | os.PathLike[str], public_key) -> BundleInfo:
    """Verify one bundle file completely; raise BundleRejected naming the problem."""
    path = Path(path)
    try:
        sha = file_sha256(path)
    except OSError as exc:
        raise BundleRejected(f"cannot read {path.name}: {exc.strerror or exc}") from None
    b = _read_verified(path, public_key)
    m = b.manifest
    return BundleInfo(model_id=str(m["model_id"]), version=str(m["version"]),
                      format_version=int(m["format_version"]), sha256=sha, manifest=dict(m))


class CachingVerifier:
    """verify_file (or another verify(path, key), e.g. a voice bank's) with a cache keyed by the file's identity: installed models are never modified,
    so the status page and the list need not re-hash them on every poll. A new process (a reboot)
    starts with an empty cache, so recovery always verifies afresh."""

    def __init__(self, public_key, verify=None) -> None:
        self.public_key = public_key
        self._verify = verify or verify_file  # device/flashing/bank_store.verify_bank_file for banks
        self._cache: dict[tuple, object] = {}

    def __call__(self, path: Path):
        try:
            st = os.stat(path)
        except OSError as exc:
            raise BundleRejected(f"{Path(path).name}: {exc.strerror or exc}") from None
        key = (str(path), st.st_dev, st.st_ino, st.st_size, st.st_mtime_ns)
        info = self._cache.get(key)
        if info is None:
            info = self._verify(path, self.public_key)
            if len(self._cache) > 64:
                self._cache.clear()
            self._cache[key] = info
        return info


def self_test_figures(path: Path, public_key) -> dict:
    """In-process self-test (what the child process runs): the bundle's golden vectors through the
    real TFLite runtime."""
    from conversion import bundle
    from conversion.runtime import TFLiteDecoder

    b = bundle.read(path, public_key)
    return TFLiteDecoder(b).self_test()


def run_self_test(path: Path, public_key_file: str | os.PathLike[str], timeout: float = 60.0) -> dict:
    """Run ``python -m device.flashing.self_test`` on ``path``; return its figures or raise BundleRejected."""
    root = str(Path(__file__).resolve().parents[2])  # the child imports the same code as we do
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(filter(None, [root, os.environ.get("PYTHONPATH")])))
    cmd = [sys.executable, "-m", "device.flashing.self_test", "--public-key", str(public_key_file), str(path)]
    try:
        proc = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, env=env)
    except subprocess.TimeoutExpired:
        raise BundleRejected(f"self-test did not finish within {timeout:g} s") from None
    lines = proc.stdout.strip().splitlines()
    try:
        result = json.loads(lines[-1]) if lines else {}
    except ValueError:
        result = {}
    if proc.returncode != 0 or "error" in result or not result:
        reason = result.get("error") or (proc.stderr.strip().splitlines() or [f"exit status {proc.returncode}"])[-1]
        if proc.returncode < 0:
            reason = f"self-test process killed by signal {-proc.returncode}"
        raise BundleRejected(reason if reason.startswith("self-test") else f"self-test failed: {reason}")
    return result
