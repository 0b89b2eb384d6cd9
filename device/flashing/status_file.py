"""The contract between the control loop and the flash service (see docs/flashing.md).

The control loop publishes ``status.json`` in its run directory (``/run/dxmacro``) a few times a
second; the flash service reads it for ``/api/status`` and the status page, and judges the health
of a freshly swapped model by it. The loop learns about a new model by watching the store's
``active`` pointer (:class:`PointerWatcher`); no signal, no socket, no shared user needed.

``monotonic`` (CLOCK_MONOTONIC, the same clock in every process of one boot) is what staleness is
judged on: a Pi has no real-time clock and its wall time jumps when NTP syncs after boot.
"""

from __future__ import annotations

import json
import os
import tempfile
import time
from pathlib import Path

SCHEMA = 1


def write_status(path: str | os.PathLike[str], status: dict) -> None:
    """Atomically replace the status file (temp + rename; no fsync: /run is tmpfs, and a lost
    heartbeat after a power cut means nothing). Adds schema, pid and both clocks."""
    path = Path(path)
    doc = {"schema": SCHEMA, "pid": os.getpid(), "time": time.time(), "monotonic": time.monotonic()} | status
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            json.dump(doc, f, separators=(",", ":"))
        os.chmod(tmp, 0o644)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def read_status(path: str | os.PathLike[str] | None) -> dict | None:
    """The last published status, or None when there is none (loop not running) or it is unreadable."""
    if path is None:
        return None
    try:
        doc = json.loads(Path(path).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    return doc if isinstance(doc, dict) and doc.get("schema") == SCHEMA else None


def age_s(status: dict, now: float | None = None) -> float:
    """Seconds since the loop's last tick (infinite when the file has no usable tick)."""
    tick = status.get("last_tick")
    if not isinstance(tick, (int, float)):
        return float("inf")
    return (time.monotonic() if now is None else now) - float(tick)


class PointerWatcher:
    """Tells the control loop when the store's ``active`` pointer names another model.

    Cheap enough to call every tick (one stat); reads the name only when the file changed."""

    def __init__(self, store_root: str | os.PathLike[str]) -> None:
        self.pointer = Path(store_root) / "active"
        self._stamp: tuple | None = None
        self.name: str | None = None

    def changed(self) -> bool:
        """True once for every change of the pointer's content (including the first call)."""
        try:
            st = os.stat(self.pointer)
            stamp = (st.st_ino, st.st_mtime_ns, st.st_size)
        except OSError:
            stamp = None
        if stamp == self._stamp and self._stamp is not None:
            return False
        self._stamp = stamp
        try:
            name = self.pointer.read_text(encoding="ascii").strip() or None
        except (OSError, UnicodeDecodeError):
            name = None
        if name == self.name and stamp is not None:
            return False
        self.name = name
        return True

    def model_path(self) -> Path | None:
        return self.pointer.parent / "models" / self.name if self.name else None
