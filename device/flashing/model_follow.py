"""Following the flash service's store: the loop runs the model the ``active`` pointer names.

docs/flashing.md is the contract. A thread polls the pointer (``PointerWatcher``, one stat;
every 0.2 s by default) so loading and self-testing a new model never delays a tick; a
model that loads and passes the self-test (and fits this controller's knobs) is handed to
``ControlLoop.swap_decoder``, which applies it between two ticks. One that fails leaves
the old decoder playing and marks the model unhealthy, with the reason, so status.json
tells the flash service at once and it rolls back.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from device.control.ports import Decoder
from device.flashing.self_test import self_test
from device.flashing.status_file import PointerWatcher
from dxmacro.errors import DxmacroError

log = logging.getLogger("dxmacro.device")

Loader = Callable[[Path], Decoder]  # verifies the bundle and builds its decoder; raises DxmacroError


@dataclass
class ModelState:
    """What status.json says about the model: the file the pointer names, id/version from its
    manifest, and whether this loop can play it."""

    file: str | None = None
    id: str | None = None
    version: str | None = None
    ok: bool = True
    reason: str = ""
    loaded: list[str] = field(default_factory=list)  # every file swapped in, in order (tests, logs)

    def as_json(self) -> dict:
        return {"file": self.file, "id": self.id, "version": self.version}


def manifest_of(decoder: Decoder) -> dict:
    """id and version if the decoder carries its bundle's manifest (conversion's does)."""
    m = getattr(decoder, "manifest", None) or {}
    return {"id": m.get("model_id"), "version": m.get("version")} if isinstance(m, dict) else {}


def checked_decoder(path: Path, loader: Loader, fits: Callable[[Decoder], None]) -> Decoder:
    """Load, self-test and check that the model fits this controller; DxmacroError says why not."""
    decoder = loader(path)
    fits(decoder)  # first: "this controller's knob X needs dimension N" says more than a failed probe
    self_test(decoder)
    return decoder


def load_active(store: Path, loader: Loader, fits: Callable[[Decoder], None],
                state: ModelState) -> tuple[PointerWatcher, Decoder]:
    """The model active at start-up (DxmacroError when there is none that works)."""
    watcher = PointerWatcher(store)
    watcher.changed()
    path = watcher.model_path()
    state.file = watcher.name
    if path is None:
        raise DxmacroError(f"{store}: the model store has no active model (flash one with dxmacro flash)")
    try:
        decoder = checked_decoder(path, loader, fits)
    except DxmacroError as exc:
        state.ok, state.reason = False, f"cannot run {watcher.name}: {exc}"
        raise DxmacroError(state.reason) from None
    state.__dict__.update(manifest_of(decoder))
    state.loaded.append(watcher.name)
    return watcher, decoder


class ModelFollower(threading.Thread):
    def __init__(self, watcher: PointerWatcher, loader: Loader, fits: Callable[[Decoder], None],
                 swap: Callable[[Decoder], None], state: ModelState, stop: threading.Event,
                 interval_s: float = 0.2) -> None:
        super().__init__(name="model-follower", daemon=True)
        self.watcher, self.loader, self.fits, self.swap = watcher, loader, fits, swap
        self.state, self.stop, self.interval_s = state, stop, interval_s

    def run(self) -> None:
        while not self.stop.wait(self.interval_s):
            self.poll()

    def poll(self) -> bool:
        """Check the pointer once; True when a new model was swapped in."""
        if not self.watcher.changed():
            return False
        name, path = self.watcher.name, self.watcher.model_path()
        try:
            if path is None:
                raise DxmacroError("the store's active pointer is empty")
            new = checked_decoder(path, self.loader, self.fits)
        except DxmacroError as exc:
            self.state.file, self.state.id, self.state.version = name, None, None
            self.state.ok, self.state.reason = False, f"cannot run {name}: {exc}"
            log.error("new model refused; the previous one keeps playing",
                      extra={"event": "model_refused", "model": name, "reason": str(exc)})
            return False
        self.swap(new)
        self.state.file, self.state.ok, self.state.reason = name, True, ""
        self.state.id = self.state.version = None
        self.state.__dict__.update(manifest_of(new))
        self.state.loaded.append(name)
        log.info("new model loaded", extra={"event": "model_loaded", "model": name})
        return True
