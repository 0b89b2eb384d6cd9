"""Flashing, transport-free: receive a bundle into the store, check it, self-test it, swap it in,
and watch the control loop's health until the swap is confirmed or rolled back.

The HTTP service (device/flashing/flash_service.py), the USB-stick import and the tests all go through
:class:`Flasher`, so every path into the store runs the same checks in the same order:

    stream to a temp file in the store (size limit while reading)
    -> signature, every member hash, format version (conversion/bundle.py)
    -> safe name, no downgrade unless forced
    -> golden-vector self-test in a separate process
    -> rename into models/, atomic ``active`` swap (old one kept as ``previous``)
    -> health window: the loop must report a healthy tick on the new model, else rollback.
"""

from __future__ import annotations

import collections
import os
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import BinaryIO

from conversion.bundle import MAX_BUNDLE_BYTES
from device.flashing.bank_store import BankStore, bank_file_name
from device.flashing.bundle_check import BundleRejected, version_key
from device.flashing.status_file import age_s, read_status
from device.flashing.store import InstalledModel, ModelStore, StoreBusy, StoreError, model_file_name
from dxmacro.errors import DxmacroError
from dxmacro.inputs import number

CHUNK = 64 * 1024


class FlashBusy(StoreBusy):
    """Another flash or a health window is running; flashes are strictly one at a time."""


class UploadTooLarge(BundleRejected):
    pass


# Each number setting's range (lo, hi, whole number?): a NaN health window would open a trial that
# never ends (and survives restarts); a limit over the bundle reader's lets 56 MiB land on the card
# before the refusal.
LIMITS: dict[str, tuple[float, float, bool]] = {
    "max_bytes": (1024, MAX_BUNDLE_BYTES, True),
    "health_window_s": (0.5, 600.0, False),
    "stale_s": (0.1, 600.0, False),
    "self_test_timeout_s": (1.0, 3600.0, False),
    "keep_models": (1, 100, True),
}


@dataclass
class FlashConfig:
    max_bytes: int = MAX_BUNDLE_BYTES  # the bundle reader refuses more; so does the upload, while it streams
    status_file: Path | None = None  # the control loop's heartbeat; None = no health check
    health_window_s: float = 8.0  # a swap is confirmed only after this long without a failure
    stale_s: float = 3.0  # no tick for this long during the window = the loop is not running
    self_test_timeout_s: float = 60.0
    keep_models: int = 4

    def __post_init__(self) -> None:
        for name, (lo, hi, whole) in LIMITS.items():
            number(getattr(self, name), name, lo=lo, hi=hi, integer=whole)


@dataclass
class EventLog:
    """Recent service events for /api/status and the page (errors flagged).

    Refusals (a wrong token, a bad upload) are kept apart from the history (installs, swaps,
    rollbacks, health checks), each in its own bounded queue: fifty wrong-token requests cannot
    push the last install and rollback off the log."""

    size: int = 50
    events: collections.deque = field(default_factory=lambda: collections.deque(maxlen=50))  # the history
    refusals: collections.deque = field(default_factory=lambda: collections.deque(maxlen=50))
    lock: threading.Lock = field(default_factory=threading.Lock)

    def add(self, message: str, *, error: bool = False, refused: bool = False) -> None:
        event = {"time": time.time(), "level": "error" if error or refused else "info", "message": message}
        with self.lock:
            (self.refusals if refused else self.events).append(event)

    def recent(self) -> list[dict]:
        with self.lock:
            return sorted([*self.events, *self.refusals], key=lambda e: e["time"])


def _naming(exc: DxmacroError, temp: Path, source: str) -> DxmacroError:
    """The refusal with the uploaded file's name where the checks named the store's temp file."""
    if str(temp) not in str(exc):
        return exc
    renamed = DxmacroError.__new__(type(exc))
    DxmacroError.__init__(renamed, str(exc).replace(str(temp), source))
    return renamed


def judge_health(status: dict | None, model: str, since: float, now: float, cfg: FlashConfig,
                 seen_healthy: bool) -> tuple[str, str, bool]:
    """One look at the loop's heartbeat during a health window.

    Returns ("ok" | "wait" | "fail", reason, seen_healthy so far). Fails at once on an explicit ``healthy: false`` for
    the new model, or when the heartbeat stops; at the end of the window a swap without a single
    healthy tick on the new model fails too."""
    elapsed = now - since
    if status is not None:
        ticking = age_s(status, now) <= cfg.stale_s
        on_new = status.get("model", {}).get("file") == model if isinstance(status.get("model"), dict) else False
        if on_new and ticking and status.get("healthy") is False:
            errs = status.get("errors") or []
            last = errs[-1].get("message") if errs and isinstance(errs[-1], dict) else None
            return "fail", "the control loop reports the new model unhealthy" + (f": {last}" if last else ""), False
        if not ticking and elapsed >= cfg.stale_s:
            return "fail", f"the control loop has not ticked for {min(age_s(status, now), 1e6):.1f} s", seen_healthy
        if on_new and ticking and status.get("healthy") is True:
            seen_healthy = True
    elif elapsed >= cfg.stale_s:
        return "fail", "the control loop publishes no status", seen_healthy
    if elapsed >= cfg.health_window_s:
        if seen_healthy:
            return "ok", "healthy", True
        return "fail", f"no healthy tick on the new model within {cfg.health_window_s:g} s", False
    return "wait", "healthy so far" if seen_healthy else "waiting for the control loop", seen_healthy


class Upload:
    """One body arriving piece by piece into a temp file inside the store (``.upload-*.tmp``),
    never into memory: the size limit and the deadline (time.monotonic) are checked on every
    piece, so the blocking reader (USB, tests) and the HTTP service's async reader refuse alike."""

    def __init__(self, store: ModelStore, length: int | None, limit: int, deadline: float | None) -> None:
        fd, self.path = store.temp_upload()
        self._file = os.fdopen(fd, "wb")
        self.length, self.limit, self.deadline = length, limit, deadline
        self.got = 0

    def wanted(self) -> int:
        """How many bytes to ask for next; 0 once the declared length is in."""
        return CHUNK if self.length is None else min(CHUNK, self.length - self.got)

    def add(self, chunk: bytes) -> None:
        if self.deadline is not None and time.monotonic() > self.deadline:
            raise BundleRejected(f"upload too slow: {self.got + len(chunk)} bytes in the time allowed")
        self.got += len(chunk)
        if self.got > self.limit:
            raise UploadTooLarge(f"bundle exceeds the limit of {self.limit} bytes")
        self._file.write(chunk)

    def finish(self) -> Path:
        """The whole body on disk (fsynced): its temp path. Blocks on the fsync."""
        self._file.flush()
        os.fsync(self._file.fileno())
        self._file.close()
        if self.length is not None and self.got < self.length:
            raise BundleRejected(f"upload truncated: received {self.got} of {self.length} bytes")
        if self.got == 0:
            raise BundleRejected("empty upload")
        return self.path

    def discard(self) -> None:
        self._file.close()
        self.path.unlink(missing_ok=True)


class Flasher:
    def __init__(self, store: ModelStore, public_key_file: Path, cfg: FlashConfig | None = None,
                 self_test: Callable[[Path], dict] | None = None, banks: BankStore | None = None) -> None:
        from device.flashing.bank_store import verify_bank_file
        from device.flashing.bundle_check import CachingVerifier, load_public_key, run_self_test

        self.store = store
        self.cfg = cfg or FlashConfig()
        self.public_key_file = Path(public_key_file)
        self._self_test = self_test or (lambda p: run_self_test(p, self.public_key_file, self.cfg.self_test_timeout_s))
        self.log = EventLog()
        self._health_thread: threading.Thread | None = None
        self._health_done = threading.Event()
        self._health_done.set()
        self._state_lock = threading.Lock()
        self.last_result: dict | None = None
        self.health: dict = {"state": "idle"}
        self.banks = banks or BankStore.open(store, CachingVerifier(load_public_key(public_key_file),
                                                                    verify_bank_file))
        for line in store.recovered + self.banks.recovered:
            self.log.add(f"store recovery: {line}", error=True)
        self._adopt_trial()

    def _adopt_trial(self) -> bool:
        """A swap awaiting its health check that nobody in this process watches (we rebooted in
        its window, or another process started it and died): judge it from now. True if pending."""
        t = self.store.trial()
        if t is None:
            return False
        with self._state_lock:
            if self._health_done.is_set():
                self._start_health(t["model"])
        return True

    def check_idle(self) -> None:
        """Refuses (FlashBusy) while the last swap is in its health check."""
        if self._adopt_trial():
            raise FlashBusy("the last swap is still in its health check; try again in a few seconds")

    # ---- receiving ---------------------------------------------------------------------------

    def upload(self, length: int | None, limit: int | None = None, deadline: float | None = None) -> Upload:
        """A temp file in the store for a body of ``length`` bytes (None: up to EOF), fed piece by
        piece; ``limit`` is at most the configured ``max_bytes``."""
        limit = min(limit or self.cfg.max_bytes, self.cfg.max_bytes)
        if length is not None and length > limit:
            raise UploadTooLarge(f"bundle is {length} bytes; the limit is {limit} bytes")
        return Upload(self.store, length, limit, deadline)

    def receive(self, stream: BinaryIO, length: int | None, limit: int | None = None,
                deadline: float | None = None) -> Path:
        """Copy ``length`` bytes (or up to EOF) from a blocking ``stream`` into a temp file in the
        store (an :class:`Upload`). Returns the temp path (caller installs or deletes)."""
        upload = self.upload(length, limit, deadline)
        try:
            while want := upload.wanted():
                try:
                    chunk = stream.read(want)
                except OSError as exc:  # client vanished or stalled past the socket timeout
                    raise BundleRejected(f"upload interrupted after {upload.got} bytes: {exc}") from None
                if not chunk:
                    break
                upload.add(chunk)
            return upload.finish()
        except BaseException:
            upload.discard()
            raise

    # ---- the checks and the swap ---------------------------------------------------------------

    def flash_stream(self, stream: BinaryIO, length: int | None, *, force: bool = False,
                     source: str = "upload", activate: bool = True, deadline: float | None = None) -> dict:
        """Receive, check, self-test, install and activate one bundle: the whole flash."""
        self.check_idle()
        try:  # the whole body first, outside the lock: a slow or trickling upload never blocks a flash
            tmp = self.receive(stream, length, deadline=deadline)  # or a rollback
        except DxmacroError as exc:
            self.log.add(f"{source} refused: {exc}", error=True, refused=True)
            raise
        return self.flash_received(tmp, force=force, source=source, activate=activate)

    def flash_received(self, tmp: Path, *, force: bool = False, source: str = "upload", activate: bool = True) -> dict:
        """Check, self-test, install and activate a bundle already received whole into the store's
        temp file ``tmp`` (consumed either way); only now is the store locked."""
        try:
            self.check_idle()
            with self.store.locked():
                result = self._flash_file(tmp, force=force, source=source)
                if activate:
                    result |= self._swap(self.store.get(result["installed"]))
        finally:
            tmp.unlink(missing_ok=True)  # installed (renamed away) or refused
        self.last_result = result
        return result

    def flash_path(self, path: Path, **kw) -> dict:
        with open(path, "rb") as f:
            return self.flash_stream(f, os.fstat(f.fileno()).st_size, **kw)

    def _flash_file(self, temp: Path, *, force: bool, source: str) -> dict:
        """Check, self-test and install a received temp file (consumed either way). Store locked."""
        try:
            info = self.store.verify(temp)
            model_file_name(info)  # refuses ids/versions that would name a path
            self.store.check_upgrade(info, force=force)
            t0 = time.monotonic()
            figures = self._self_test(temp)
            self_test_s = time.monotonic() - t0
        except DxmacroError as exc:
            temp.unlink(missing_ok=True)
            exc = _naming(exc, temp, source)
            self.log.add(f"{source} refused: {exc}", error=True, refused=True)
            raise exc from None
        model = self.store.install(temp, info)
        self.log.add(f"{source}: installed {model.name} (self-test {figures})")
        return {"installed": model.name, "model_id": info.model_id, "version": info.version,
                "self_test": figures | {"seconds": round(self_test_s, 3)}, "source": source}

    def _swap(self, model: InstalledModel) -> dict:
        """Point ``active`` at ``model`` and open its health window. Store locked."""
        watch = self.cfg.status_file is not None
        old, new = self.store.activate(model.name, trial=watch)
        self.store.prune(self.cfg.keep_models)
        if old == new:
            return {"active": new, "previous": self.store.previous_name(), "health": "unchanged"}
        self.log.add(f"activated {new} (previous {old})")
        bank, reason = self.banks.applies()
        if bank is None and self.banks.active_name() is not None:
            self.log.add(reason)
        if watch and old is not None:
            with self._state_lock:
                self._start_health(new)
            return {"active": new, "previous": old, "health": "pending"}
        self.store.confirm()
        return {"active": new, "previous": old, "health": "not checked"}

    def activate(self, name: str) -> dict:
        self.check_idle()
        with self.store.locked(timeout=5.0):
            return self._swap(self.store.get(name))

    def rollback(self, reason: str = "requested") -> dict:
        t0 = time.monotonic()
        with self.store.locked(timeout=5.0):
            frm, to = self.store.rollback()
        self.log.add(f"rolled back from {frm} to {to} ({reason})", error=reason != "requested")
        return {"active": to, "rolled_back_from": frm, "reason": reason, "seconds": round(time.monotonic() - t0, 4)}

    # ---- voice banks (no self-test or health window: a bank holds verified values, no code) ---------

    def flash_bank_stream(self, stream: BinaryIO, length: int | None, *, source: str = "bank upload",
                          activate: bool = True, deadline: float | None = None) -> dict:
        """Receive, verify (signature, hash, limits, made for the active model), install and activate
        one voice bank."""
        from conversion.voice_bank import MAX_BANK_BYTES

        try:  # the whole body first, outside the lock (as flash_stream)
            tmp = self.receive(stream, length, MAX_BANK_BYTES, deadline=deadline)
        except DxmacroError as exc:
            self.log.add(f"{source} refused: {exc}", error=True, refused=True)
            raise
        return self.flash_bank_received(tmp, source=source, activate=activate)

    def flash_bank_received(self, tmp: Path, *, source: str = "bank upload", activate: bool = True) -> dict:
        """Verify, install and activate a voice bank already received whole into ``tmp`` (consumed
        either way)."""
        try:
            with self.store.locked():
                try:
                    info = self.banks.verify(tmp)
                    bank_file_name(info)
                    self.banks.require_active_model(info)
                except DxmacroError as exc:
                    self.log.add(f"{source} refused: {exc}", error=True, refused=True)
                    raise
                bank = self.banks.install(tmp, info)
                result = {"installed": bank.file, "bank": info.name, "model_id": info.model_id,
                          "voices": info.voices, "source": source}
                self.log.add(f"{source}: installed bank {bank.file} ({info.voices} voices)")
                if activate:
                    result |= self._activate_bank(bank.file)
        finally:
            tmp.unlink(missing_ok=True)  # installed (renamed away) or refused
        self.last_result = result
        return result

    def flash_bank_path(self, path: Path, **kw) -> dict:
        with open(path, "rb") as f:
            return self.flash_bank_stream(f, os.fstat(f.fileno()).st_size, **kw)

    def _activate_bank(self, name: str) -> dict:
        old, new = self.banks.activate(name)
        if old != new:
            self.log.add(f"activated bank {new} (was {old or 'the anchors'})")
        return {"active_bank": new, "previous_bank": old}

    def activate_bank(self, name: str) -> dict:
        with self.store.locked(timeout=5.0):
            return self._activate_bank(name)

    def deactivate_bank(self) -> dict:
        with self.store.locked(timeout=5.0):
            old = self.banks.deactivate()
        if old:
            self.log.add(f"deactivated bank {old}: the device steps through the model's anchors")
        return {"active_bank": None, "previous_bank": old}

    def delete_bank(self, name: str) -> dict:
        with self.store.locked(timeout=5.0):
            self.banks.delete(name)
        self.log.add(f"deleted bank {name}")
        return {"deleted": name}

    # ---- health window -----------------------------------------------------------------------

    def _start_health(self, model: str) -> None:
        """Start watching ``model`` (caller holds _state_lock)."""
        self._health_done.clear()
        self.health = {"state": "checking", "model": model, "since": time.time()}
        self._health_thread = threading.Thread(target=self._watch, args=(model,), daemon=True, name="health")
        self._health_thread.start()

    def _watch(self, model: str) -> None:
        since = time.monotonic()
        seen = False
        try:
            while True:
                if self.store.active_name() != model:  # rolled back or replaced by hand meanwhile
                    self.health = {"state": "superseded", "model": model}
                    return
                status = read_status(self.cfg.status_file)
                verdict, reason, seen = judge_health(status, model, since, time.monotonic(), self.cfg, seen)
                if verdict == "ok":
                    with self.store.locked(timeout=5.0):
                        if self.store.active_name() == model:
                            self.store.confirm()
                    self.health = {"state": "confirmed", "model": model,
                                   "seconds": round(time.monotonic() - since, 3)}
                    self.log.add(f"{model} confirmed healthy")
                    return
                if verdict == "fail":
                    try:
                        r = self.rollback(reason)
                    except StoreError as exc:
                        self.health = {"state": "failed", "model": model, "reason": f"{reason}; {exc}"}
                        self.log.add(f"health check of {model} failed ({reason}) and rollback failed: {exc}",
                                     error=True)
                        return
                    self.health = {"state": "rolled back", "model": model, "reason": reason,
                                   "active": r["active"], "seconds": round(time.monotonic() - since, 3)}
                    return
                time.sleep(0.1)
        except Exception as exc:  # noqa: BLE001 - report, never die silently with the trial open
            self.health = {"state": "failed", "model": model, "reason": repr(exc)}
            self.log.add(f"health watch of {model} crashed: {exc!r}", error=True)
        finally:
            self._health_done.set()

    def health_pending(self) -> bool:
        return not self._health_done.is_set()

    def wait_health(self, timeout: float | None = None) -> dict:
        self._health_done.wait(timeout)
        return dict(self.health)

    # ---- USB stick -----------------------------------------------------------------------------

    def import_folder(self, folder: Path, *, force: bool = False) -> dict:
        """Every ``*.dxm`` in ``folder`` (not below it) goes through the same checks as an upload;
        the highest version that passes becomes active."""
        folder = Path(folder)
        if not folder.is_dir():
            raise DxmacroError(f"USB folder {folder} does not exist (is the stick mounted?)")
        files = sorted(p for p in folder.glob("*.dxm") if p.is_file())
        if not files:
            raise DxmacroError(f"no *.dxm bundles in {folder}")
        self.check_idle()
        installed, refused = [], []
        with self.store.locked():
            for p in files:
                try:
                    with open(p, "rb") as f:
                        tmp = self.receive(f, os.fstat(f.fileno()).st_size)
                    installed.append(self._flash_file(tmp, force=force, source=f"USB {p.name}"))
                except (DxmacroError, OSError) as exc:
                    refused.append({"file": p.name, "reason": str(exc)})
            result: dict = {"installed": installed, "refused": refused}
            if installed:
                best = max(installed, key=lambda r: version_key(r["version"]))
                result |= self._swap(self.store.get(best["installed"]))
        self.last_result = result
        return result

    def status(self) -> dict:
        loop = read_status(self.cfg.status_file)
        if loop is not None:
            loop = loop | {"age_s": round(min(age_s(loop), 1e9), 3)}
        return {"store": self.store.summary(), "banks": self.banks.summary(), "loop": loop, "health": self.health,
                "last_result": self.last_result, "events": self.log.recent(),
                "max_bytes": self.cfg.max_bytes}
