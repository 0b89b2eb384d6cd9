"""Following the store's active voice bank: next / previous step through its voices.

The flash service points ``active-bank`` at an installed bank (device/flashing/bank_store.py).
A thread polls that pointer and the running model's id (one stat each, every 0.2 s, as
model_follow.py polls ``active``) and hands the loop ``ControlLoop.set_voices(voices)`` when the
bank applies, or ``None`` (the model's anchors) when there is none, it cannot be read, or it was
made for another model than the one playing: a latent means something to one model only.
``ControlLoop.swap_decoder`` drops the voices itself; the follower sees the new model's id and
gives the bank back when it is made for that model.
"""

from __future__ import annotations

import logging
import os
import threading
from collections.abc import Callable
from pathlib import Path

from conversion.runtime import Anchor
from dxmacro.errors import DxmacroError

log = logging.getLogger("dxmacro.device")

ACTIVE_BANK = "active-bank"  # device/flashing/bank_store.py's pointer (not imported: that module is the writer's)
BANKS = "banks"
RECEIVED = Path(BANKS) / "local" / "received.dxb"  # the voices last received over MIDI (a device-made bank)

Voices = tuple[Anchor, ...]


def active_bank_voices(store: Path, model_id: str | None, latent_size: int) -> tuple[Voices | None, str]:
    """(the active bank's voices if it is for ``model_id``, else None; what the device steps through, in words).
    The store verified the bank's signature at install and never modifies it; the reader checks
    every hash, limit and value again here."""
    from conversion import voice_bank

    try:
        name = (store / ACTIVE_BANK).read_text(encoding="ascii").strip()
    except FileNotFoundError:
        return received_voices(store, model_id, latent_size)
    except (OSError, UnicodeDecodeError) as exc:
        return None, f"active-bank pointer unreadable ({exc}): the model's anchors"
    if not name or "/" in name or name.startswith("."):
        return None, "active-bank pointer is empty or not a bank name: the model's anchors"
    try:
        bank = voice_bank.read(store / BANKS / name, None)
        bank.require_model(model_id or "(unknown)")
    except DxmacroError as exc:
        return None, f"{exc}: the model's anchors"
    if bank.latent_size != latent_size:
        return None, f"bank {name} has latents of size {bank.latent_size}, the model {latent_size}: the model's anchors"
    return bank.anchors(), f"bank {name} ({len(bank.voices)} voices)"


def received_voices(store: Path, model_id: str | None, latent_size: int) -> tuple[Voices | None, str]:
    """Without an active bank: the voices last received over MIDI, if they were given latents of
    the model playing; else the model's anchors."""
    from conversion import voice_bank

    path = store / RECEIVED
    if not path.exists():
        return None, "no active bank: the model's anchors"
    try:
        bank = voice_bank.read_local(path)
        bank.require_model(model_id or "(unknown)")
    except DxmacroError as exc:
        return None, f"no active bank, received voices not for this model ({exc}): the model's anchors"
    if bank.latent_size != latent_size:
        return None, "no active bank, received voices of another latent size: the model's anchors"
    return bank.anchors(), f"no active bank: the {len(bank.voices)} voices last received over MIDI"


def keep_received(store: Path, model_id: str | None, voices: Voices) -> None:
    """Keep voices received over MIDI (a bulk dump) as the device's own bank, so they are what
    next / previous step through again after a restart while no bank is active. Atomic."""
    import numpy as np

    from conversion import voice_bank

    if not model_id:
        raise DxmacroError("received voices not kept: the model playing has no id")
    data = voice_bank.encode_local("received", model_id, [a.voice for a in voices],
                                   np.stack([np.asarray(a.latent, np.float32) for a in voices]))
    try:
        (store / RECEIVED).parent.mkdir(parents=True, exist_ok=True)
        voice_bank.write(store / RECEIVED, data)
    except OSError as exc:
        raise DxmacroError(f"received voices not kept in {store / RECEIVED}: {exc.strerror or exc}") from None


class BankFollower(threading.Thread):
    """Polls ``active-bank`` and the running model (``model()``: its file, id and latent size; the
    file too, since a swap to another version of the same model drops the voices as well); calls
    ``set_voices`` when any of them changes."""

    def __init__(self, store: Path, model: Callable[[], tuple[str | None, str | None, int]],
                 set_voices: Callable[[Voices | None], None], stop: threading.Event, interval_s: float = 0.2) -> None:
        super().__init__(name="bank-follower", daemon=True)
        self.store, self.model, self.set_voices, self.stop, self.interval_s = Path(store), model, set_voices, stop, \
            interval_s
        self._seen: tuple | None = None
        self.reason = ""
        self.voices: Voices | None = None

    def _stamp(self) -> tuple:
        try:
            st = os.stat(self.store / ACTIVE_BANK)
            pointer = (st.st_ino, st.st_mtime_ns, st.st_size)
        except OSError:
            pointer = None
        return pointer, self.model()

    def poll(self) -> bool:
        """Look once; True when the voices handed to the loop changed (or on the first look)."""
        stamp = self._stamp()
        if stamp == self._seen:
            return False
        self._seen = stamp
        _, model_id, latent_size = stamp[1]
        self.voices, self.reason = active_bank_voices(self.store, model_id, latent_size)
        self.set_voices(self.voices)
        log.info("voices follow the store", extra={"event": "bank", "reason": self.reason,
                                                    "voices": len(self.voices) if self.voices else 0})
        return True

    def run(self) -> None:
        while not self.stop.wait(self.interval_s):
            try:
                self.poll()
            except Exception as exc:  # noqa: BLE001 - never die silently; the anchors keep playing
                log.error("bank follower failed", extra={"event": "bank_error", "reason": repr(exc)})
