"""The on-device model store: verified bundles, an atomic ``active`` pointer, and crash recovery.

Layout of the store folder (one filesystem, so every rename is atomic)::

    models/<id>-<version>-<sha12>.dxm   installed bundles, never modified after install
    active                              name of the model the control loop runs (one line)
    previous                            name of the model a rollback returns to
    trial                               JSON, present while a fresh swap awaits its health check
    .upload-*.tmp, .*.tmp               half-written files; removed on open

Why this shape: a power cut may hit at any instruction. Every pointer change is "write a temp
file, fsync it, rename it over, fsync the folder", so after a reboot a pointer holds either the
old or the new name, never a mix. Bundles are renamed into ``models/`` only once complete and
verified, and ``open`` re-verifies whatever ``active`` names; a dangling or corrupt pointer falls
back to ``previous`` and then to the newest model that verifies.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import re
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from device.flashing.bundle_check import BundleInfo, BundleRejected, version_key
from dx7.files import atomic_write, fsync_dir
from dxmacro.errors import DxmacroError

MODELS = "models"
ACTIVE = "active"
PREVIOUS = "previous"
TRIAL = "trial"
FILE_MODE = 0o640  # the control loop reads the store through its group; only the flash service writes
_NAME_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._+-]{0,63}-[A-Za-z0-9][A-Za-z0-9._+-]{0,31}-[0-9a-f]{12}\.dxm$")

Verifier = Callable[[Path], BundleInfo]


class StoreError(DxmacroError):
    """A store operation that cannot be done (unknown model, nothing to roll back to, ...)."""


class StoreBusy(StoreError):
    """Another process or thread holds the store (a flash is in progress)."""


@dataclass(frozen=True)
class InstalledModel:
    name: str  # file name under models/, the only handle clients ever pass back
    info: BundleInfo
    installed_at: float

    def to_json(self) -> dict:
        return {"name": self.name, "model_id": self.info.model_id, "version": self.info.version,
                "format_version": self.info.format_version, "sha256": self.info.sha256,
                "installed_at": self.installed_at}


def durable_write(path: Path, data: bytes) -> None:
    """After a crash ``path`` is old or new, whole (see dx7.files.atomic_write)."""
    atomic_write(path, data, mode=FILE_MODE)


def model_file_name(info: BundleInfo) -> str:
    """``<id>-<version>-<sha12>.dxm``, refusing ids/versions that are not plain file-name words
    (a signed manifest is still not allowed to name a path)."""
    name = f"{info.model_id}-{info.version}-{info.sha256[:12]}.dxm"
    if not _NAME_RE.match(name) or ".." in name:
        raise BundleRejected(f"model id {info.model_id!r} / version {info.version!r} is not a safe file name "
                             "(letters, digits, '.', '_', '+', '-' only)")
    return name


def read_pointer(path: Path, pattern: re.Pattern[str]) -> str | None:
    """The file name a pointer file holds, or None when it is absent, unreadable or not a name
    ``pattern`` accepts (a pointer is never trusted to name a path)."""
    try:
        text = path.read_text(encoding="ascii").strip()
    except (OSError, UnicodeDecodeError):
        return None
    return text if pattern.match(text) else None


def verified_file(path: Path, verify: Callable[[Path], Any], name_of: Callable[[Any], str]) -> tuple[Any, float] | None:
    """(what ``verify`` reads of an installed file, its install time), or None when it does not
    verify or its name is not the one its content gives (``name_of``): renamed or swapped."""
    try:
        info = verify(path)
        st = path.stat()
    except (BundleRejected, OSError):
        return None
    return (info, st.st_mtime) if name_of(info) == path.name else None


class ModelStore:
    """One store folder. Open it with :meth:`open`, which repairs what a crash left behind."""

    def __init__(self, root: Path, verifier: Verifier) -> None:
        self.root = Path(root)
        self.models = self.root / MODELS
        self.verify = verifier
        self.recovered: list[str] = []  # what open() had to repair, for the log and the status page

    # ---- opening and recovery ------------------------------------------------------------------

    @classmethod
    def open(cls, root: str | os.PathLike[str], verifier: Verifier) -> ModelStore:
        store = cls(Path(root), verifier)
        store.root.mkdir(parents=True, exist_ok=True)
        store.models.mkdir(exist_ok=True)
        with store.locked(timeout=30.0):
            store._recover()
        return store

    @contextlib.contextmanager
    def locked(self, timeout: float = 0.0):
        """Exclusive use of the store across processes (flock; released by the kernel when the
        holder dies, so a power cut or SIGKILL never leaves it stuck)."""
        fd = os.open(self.root / ".lock", os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o644)
        try:
            deadline = time.monotonic() + timeout
            while True:
                try:
                    fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                    break
                except BlockingIOError:
                    if time.monotonic() >= deadline:
                        raise StoreBusy("the model store is busy: another flash is in progress") from None
                    time.sleep(0.05)
            yield self
        finally:
            os.close(fd)

    def _recover(self) -> None:
        """Remove half-written files; make ``active`` name a model that verifies (or none exist)."""
        for folder in (self.root, self.models):
            for p in folder.glob(".*.tmp"):
                p.unlink(missing_ok=True)
                self.recovered.append(f"removed leftover {p.name}")
        active = self._read_pointer(ACTIVE)
        if (self.root / TRIAL).exists() and self.trial() is None:  # names a model no longer active
            (self.root / TRIAL).unlink(missing_ok=True)
            self.recovered.append("removed a stale trial marker")
        if active is not None and self._verified(active) is not None:
            return
        if active is not None:
            self.recovered.append(f"active model {active} is missing or fails verification")
        fallback = self._read_pointer(PREVIOUS)
        if fallback is None or fallback == active or self._verified(fallback) is None:
            fallback = None
            for m in sorted(self.list(), key=lambda m: (version_key(m.info.version), m.installed_at), reverse=True):
                if m.name != active:
                    fallback = m.name
                    break
        if fallback is None:
            if active is not None or (self.root / ACTIVE).exists():
                (self.root / ACTIVE).unlink(missing_ok=True)
                fsync_dir(self.root)
            return
        self.recovered.append(f"fell back to {fallback}")
        durable_write(self.root / ACTIVE, (fallback + "\n").encode())
        (self.root / TRIAL).unlink(missing_ok=True)

    # ---- reading -------------------------------------------------------------------------------

    def _read_pointer(self, which: str) -> str | None:
        return read_pointer(self.root / which, _NAME_RE)

    def _verified(self, name: str) -> InstalledModel | None:
        got = verified_file(self.models / name, self.verify, model_file_name)
        return None if got is None else InstalledModel(name, *got)

    def list(self) -> list[InstalledModel]:
        """Every installed model that verifies, oldest first."""
        out = [m for p in self.models.glob("*.dxm") if (m := self._verified(p.name)) is not None]
        return sorted(out, key=lambda m: m.installed_at)

    def get(self, name: str) -> InstalledModel:
        if not _NAME_RE.match(name or ""):
            raise StoreError(f"{name!r} is not a model name (see the list of installed models)")
        m = self._verified(name)
        if m is None:
            raise StoreError(f"no installed model {name!r} that verifies")
        return m

    def active(self) -> InstalledModel | None:
        name = self._read_pointer(ACTIVE)
        return self._verified(name) if name else None

    def active_name(self) -> str | None:
        return self._read_pointer(ACTIVE)

    def previous_name(self) -> str | None:
        return self._read_pointer(PREVIOUS)

    def path(self, name: str) -> Path:
        return self.models / self.get(name).name

    def trial(self) -> dict | None:
        """The swap awaiting its health check, if any (survives a reboot)."""
        try:
            t = json.loads((self.root / TRIAL).read_text(encoding="utf-8"))
        except (OSError, ValueError):
            return None
        return t if isinstance(t, dict) and t.get("model") == self.active_name() else None

    # ---- writing -------------------------------------------------------------------------------

    def temp_upload(self) -> tuple[int, Path]:
        """A temp file inside the store (same filesystem, so install is a rename), cleaned on open."""
        fd, tmp = tempfile.mkstemp(prefix=".upload-", suffix=".tmp", dir=self.root)
        os.fchmod(fd, FILE_MODE)
        return fd, Path(tmp)

    def check_upgrade(self, info: BundleInfo, *, force: bool = False) -> None:
        """Refuse a downgrade (or the same version with other content) unless forced."""
        current = self.active()
        if current is None or force or current.info.model_id != info.model_id:
            return
        if version_key(info.version) < version_key(current.info.version):
            raise BundleRejected(f"{info.model_id} {info.version} is older than the active {current.info.version} "
                                 "(a downgrade; use --force to install it anyway)")

    def install(self, temp: Path, info: BundleInfo) -> InstalledModel:
        """Move an already verified temp file into models/ (idempotent for the same content)."""
        name = model_file_name(info)
        target = self.models / name
        with open(temp, "rb+") as f:
            os.fsync(f.fileno())
        if target.exists() and self._verified(name) is not None:
            temp.unlink(missing_ok=True)
        else:
            os.replace(temp, target)
            fsync_dir(self.models)
        m = self._verified(name)
        if m is None:
            raise StoreError(f"installed file {name} does not verify after the move (disk error?)")
        return m

    def activate(self, name: str, *, trial: bool = True) -> tuple[str | None, str]:
        """Point ``active`` at ``name``; the old active becomes ``previous``. With ``trial`` a marker
        records the swap until the health check confirms it. Returns (old, new)."""
        model = self.get(name)
        old = self.active_name()
        if old == model.name:
            return old, model.name
        if old is not None:
            durable_write(self.root / PREVIOUS, (old + "\n").encode())
        if trial and old is not None:
            durable_write(self.root / TRIAL, json.dumps({"model": model.name, "previous": old,
                                                          "since": time.time()}).encode())
        durable_write(self.root / ACTIVE, (model.name + "\n").encode())
        return old, model.name

    def confirm(self) -> None:
        """The health check passed: the swap is final."""
        if (self.root / TRIAL).exists():
            (self.root / TRIAL).unlink()
            fsync_dir(self.root)

    def rollback(self) -> tuple[str, str]:
        """Swap ``active`` and ``previous``. Returns (from, to)."""
        cur = self.active_name()
        t = self.trial()  # a crash mid-activate may have left ``previous`` already overwritten
        prev = t["previous"] if t and isinstance(t.get("previous"), str) else self.previous_name()
        if prev is None or prev == cur or self._verified(prev) is None:
            raise StoreError("no previous model to roll back to")
        if cur is not None:
            durable_write(self.root / PREVIOUS, (cur + "\n").encode())
        durable_write(self.root / ACTIVE, (prev + "\n").encode())
        (self.root / TRIAL).unlink(missing_ok=True)
        fsync_dir(self.root)
        return cur or "", prev

    def prune(self, keep: int = 4) -> list[str]:
        """Delete the oldest models beyond ``keep``, never the active or previous one."""
        protected = {self.active_name(), self.previous_name()}
        models = [m for m in self.list() if m.name not in protected]
        removed = []
        for m in models[: max(0, len(models) - max(0, keep - len(protected - {None})))]:
            (self.models / m.name).unlink(missing_ok=True)
            removed.append(m.name)
        if removed:
            fsync_dir(self.models)
        return removed

    def summary(self) -> dict:
        active = self.active()
        return {"active": active.to_json() if active else None, "previous": self.previous_name(),
                "trial": self.trial(), "models": [m.to_json() | {"active": m.name == (active and active.name)}
                                                  for m in self.list()],
                "recovered": list(self.recovered)}


__all__ = ["ModelStore", "InstalledModel", "StoreError", "model_file_name", "durable_write", "fsync_dir"]
