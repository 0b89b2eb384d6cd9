"""Voice banks in the model store: verified ``.dxb`` files and an atomic ``active-bank`` pointer.

Beside the models (device/flashing/store.py), in the same folder and under the same lock::

    banks/<name>-<sha12>.dxb    installed signed banks, never modified after install
    banks/local/                device-made banks (conversion.voice_bank.decode_local; nothing
                                that came over the flash service is ever written here)
    active-bank                 name of the bank the control loop steps through (one line);
                                absent: the model's anchors

The guarantees are the models': a bank is renamed into ``banks/`` only once complete and
verified (signature, hash, limits), the pointer changes by "write temp, fsync, rename, fsync
the folder", and ``open`` re-verifies what the pointer names (a pointer to a missing or
corrupt bank is removed: the loop falls back to the anchors). A bank is bound to one model:
it is installed and activated only while a model of that id is active; when the active model
later changes to another id, the pointer stays (a rollback brings the bank back) but the
bank does not *apply* and the loop uses the anchors; ``summary`` says so. Deleting the
active bank is refused (deactivate it first): what plays never changes as a side effect.
"""

from __future__ import annotations

import hashlib
import os
import re
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from device.flashing.bundle_check import BundleRejected
from device.flashing.store import ModelStore, StoreError, durable_write, read_pointer, verified_file
from dx7.files import fsync_dir

BANKS = "banks"
LOCAL = "local"
ACTIVE_BANK = "active-bank"
_FILE_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._+-]{0,47}-[0-9a-f]{12}\.dxb$")


class BankRejected(BundleRejected):
    """A voice bank that must not be installed or activated; the message says why."""


@dataclass(frozen=True)
class BankInfo:
    name: str  # the bank's name from its manifest
    model_id: str
    voices: int
    sha256: str  # of the whole file


@dataclass(frozen=True)
class InstalledBank:
    file: str  # file name under banks/, the handle clients pass back
    info: BankInfo
    installed_at: float

    def to_json(self) -> dict:
        return {"name": self.file, "bank": self.info.name, "model_id": self.info.model_id,
                "voices": self.info.voices, "sha256": self.info.sha256, "installed_at": self.installed_at}


BankVerifier = Callable[[Path], BankInfo]


def verify_bank_file(path: str | os.PathLike[str], public_key) -> BankInfo:
    """Verify one signed bank completely (conversion.voice_bank); BankRejected names the problem."""
    from conversion import voice_bank
    from dxmacro.errors import DxmacroError

    path = Path(path)
    try:
        if path.stat().st_size > voice_bank.MAX_BANK_BYTES:
            raise BankRejected(f"voice bank: {path.stat().st_size} bytes is over the {voice_bank.MAX_BANK_BYTES}-byte "
                               "limit")
        data = path.read_bytes()
    except OSError as exc:
        raise BankRejected(f"cannot read {path.name}: {exc.strerror or exc}") from None
    sha = hashlib.sha256(data).hexdigest()
    try:
        bank = voice_bank.decode(data, public_key, source="voice bank")
    except DxmacroError as exc:
        raise BankRejected(str(exc)) from None
    return BankInfo(bank.name, bank.model_id, len(bank.voices), sha)


def bank_file_name(info: BankInfo) -> str:
    name = f"{info.name}-{info.sha256[:12]}.dxb"
    if not _FILE_RE.match(name) or ".." in name:
        raise BankRejected(f"bank name {info.name!r} is not a safe file name")
    return name


class BankStore:
    """The banks of one model store. Open with :meth:`open`, which repairs what a crash left."""

    def __init__(self, models: ModelStore, verifier: BankVerifier) -> None:
        self.models = models
        self.root = models.root
        self.folder = models.root / BANKS
        self.verify = verifier
        self.recovered: list[str] = []

    @classmethod
    def open(cls, models: ModelStore, verifier: BankVerifier) -> BankStore:
        store = cls(models, verifier)
        (store.folder / LOCAL).mkdir(parents=True, exist_ok=True)
        with models.locked(timeout=30.0):
            store._recover()
        return store

    def _recover(self) -> None:
        for p in self.folder.glob(".*.tmp"):
            p.unlink(missing_ok=True)
            self.recovered.append(f"removed leftover banks/{p.name}")
        name = self.active_name()
        if (self.root / ACTIVE_BANK).exists() and (name is None or self._verified(name) is None):
            self.recovered.append(f"active bank {name} is missing or fails verification: back to the anchors")
            (self.root / ACTIVE_BANK).unlink(missing_ok=True)
            fsync_dir(self.root)

    # ---- reading -------------------------------------------------------------------------------

    def _verified(self, file: str) -> InstalledBank | None:
        got = verified_file(self.folder / file, self.verify, bank_file_name)
        return None if got is None else InstalledBank(file, *got)

    def list(self) -> list[InstalledBank]:
        """Every installed bank that verifies, oldest first."""
        out = [b for p in self.folder.glob("*.dxb") if (b := self._verified(p.name)) is not None]
        return sorted(out, key=lambda b: b.installed_at)

    def get(self, file: str) -> InstalledBank:
        if not _FILE_RE.match(file or ""):
            raise StoreError(f"{file!r} is not a bank name (see the list of installed banks)")
        b = self._verified(file)
        if b is None:
            raise StoreError(f"no installed bank {file!r} that verifies")
        return b

    def active_name(self) -> str | None:
        return read_pointer(self.root / ACTIVE_BANK, _FILE_RE)

    def active(self) -> InstalledBank | None:
        name = self.active_name()
        return self._verified(name) if name else None

    def applies(self) -> tuple[InstalledBank | None, str]:
        """(the active bank if it is for the active model, else None; why not, in words)."""
        bank = self.active()
        if bank is None:
            return None, "no active bank: the device steps through the model's anchors"
        model = self.models.active()
        if model is None or model.info.model_id != bank.info.model_id:
            return None, (f"active bank {bank.file} was made for model {bank.info.model_id}, the active model is "
                          f"{model.info.model_id if model else 'none'}: the device steps through the model's anchors")
        return bank, f"the device steps through {bank.file}"

    def path(self, file: str) -> Path:
        return self.folder / self.get(file).file

    # ---- writing (the caller holds the store's lock) -------------------------------------------

    def require_active_model(self, info: BankInfo) -> None:
        model = self.models.active()
        if model is None:
            raise BankRejected("no active model: a voice bank's latents only mean something to one model; "
                               "flash the model first")
        if model.info.model_id != info.model_id:
            raise BankRejected(f"voice bank {info.name} was made for model {info.model_id}, not for the active "
                               f"model {model.info.model_id}")

    def install(self, temp: Path, info: BankInfo) -> InstalledBank:
        """Move an already verified temp file into banks/ (idempotent for the same content)."""
        name = bank_file_name(info)
        target = self.folder / name
        with open(temp, "rb+") as f:
            os.fsync(f.fileno())
        if target.exists() and self._verified(name) is not None:
            temp.unlink(missing_ok=True)
        else:
            os.replace(temp, target)
            fsync_dir(self.folder)
        bank = self._verified(name)
        if bank is None:
            raise StoreError(f"installed bank {name} does not verify after the move (disk error?)")
        return bank

    def activate(self, file: str) -> tuple[str | None, str]:
        """Point ``active-bank`` at ``file`` (made for the active model). Returns (old, new)."""
        bank = self.get(file)
        self.require_active_model(bank.info)
        old = self.active_name()
        if old != bank.file:
            durable_write(self.root / ACTIVE_BANK, (bank.file + "\n").encode())
        return old, bank.file

    def deactivate(self) -> str | None:
        """No active bank: the loop steps through the model's anchors. Returns the old name."""
        old = self.active_name()
        if (self.root / ACTIVE_BANK).exists():
            (self.root / ACTIVE_BANK).unlink()
            fsync_dir(self.root)
        return old

    def delete(self, file: str) -> str:
        if not _FILE_RE.match(file or "") or not (self.folder / file).is_file():
            raise StoreError(f"no installed bank {file!r}")
        if file == self.active_name():
            raise StoreError(f"{file} is the active bank; deactivate it first (or activate another)")
        (self.folder / file).unlink()
        fsync_dir(self.folder)
        return file

    def summary(self) -> dict:
        active = self.active_name()
        applied, reason = self.applies()
        return {"active": active, "applies": applied is not None, "reason": reason,
                "banks": [b.to_json() | {"active": b.file == active} for b in self.list()],
                "recovered": list(self.recovered)}
