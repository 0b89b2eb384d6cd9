"""MIDI learn while the device plays: from the status page or from a held button.

``dxmacro device learn`` (the CLI) stops nothing but needs a shell; here the running loop learns:

* **The status page**: the flash service (a separate process and user) cannot reach the loop, so
  ``request_learn`` leaves a request in the model store, the one folder the flash service writes and
  the loop reads (``learn-request.json``: request id and knob, replaced atomically). The loop's
  ``LearnDesk`` looks at it every ``CHECK_S`` (one stat), and publishes how the learn goes in
  status.json (``learn``), which the page shows. No socket, no signal, no shared user: the same
  contract as the ``active`` pointer (device.flashing.status_file).
* **A button**: hold ``[buttons] panic`` and turn a control on the controller: it binds to knob 1,
  the next control turned to knob 2, and so on while the button is held; ``next`` / ``previous``
  while it is held choose the knob instead of a voice. Why panic: it is the one existing button
  whose press is harmless before learning (all notes off); next, previous, random and store change
  or save the voice.

Either way the next control turned (one turn, told apart by ``device.control.learn.classify``)
is written into device.toml by the CLI's writer (``write_binding``: the [[knob]] table edited as
text, checked, replaced atomically), so it survives a restart. A knob that is already a
controller's is rebound at once; a pot or a new knob becomes the controller's at the next start
(the loop's knob layout is fixed while it runs).
"""

from __future__ import annotations

import json
import logging
import math
import os
import secrets
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from device.control.learn import Learner, write_binding
from device.control.midi_knobs import CCBinding
from dxmacro.errors import DxmacroError

if TYPE_CHECKING:
    from device.control.loop import ControlLoop

log = logging.getLogger("dxmacro.device")

REQUEST_FILE = "learn-request.json"
CHECK_S = 0.1  # how often the loop looks for a request from the page
TIMEOUT_S = 60.0  # a learn from the page that hears no control ends
HOLD_BUTTON = "panic"
MAX_KNOB = 63


def request_learn(store_root: str | os.PathLike[str], knob: int | None) -> dict[str, Any]:
    """The flash service's half: ask the loop to learn [[knob]] ``knob`` (0-based; None cancels).
    Written atomically; the loop answers in status.json under ``learn`` with this request id."""
    from dx7.files import atomic_write

    if knob is not None and (isinstance(knob, bool) or not isinstance(knob, int) or not 0 <= knob <= MAX_KNOB):
        raise DxmacroError(f"knob must be a whole number 0..{MAX_KNOB} (0 = the first knob), got {knob!r}")
    root = Path(store_root)
    if not root.is_dir():
        raise DxmacroError(f"the model store {root} does not exist")
    request = {"request": secrets.token_hex(6), "knob": knob, "time": time.time()}
    try:
        atomic_write(root / REQUEST_FILE, json.dumps(request).encode(), mode=0o640)
    except OSError as exc:
        raise DxmacroError(f"cannot leave the learn request in {root}: {exc}") from None
    return request


def request_from_body(store_root: str | os.PathLike[str], body: dict[str, Any]) -> dict[str, Any]:
    """What the flash service's ``POST /api/learn`` answers: ``{"knob": N}`` (0-based) starts a
    learn, ``{"cancel": true}`` ends one."""
    if body.get("cancel") is True:
        return {"learn": request_learn(store_root, None)}
    if "knob" not in body:
        raise DxmacroError('give {"knob": N} (0 = the first knob) or {"cancel": true}')
    return {"learn": request_learn(store_root, body["knob"])}


def read_request(path: Path) -> dict[str, Any] | None:
    try:
        doc = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    if not isinstance(doc, dict) or not isinstance(doc.get("request"), str):
        return None
    knob = doc.get("knob")
    if knob is not None and (isinstance(knob, bool) or not isinstance(knob, int) or not 0 <= knob <= MAX_KNOB):
        return None
    return doc


@dataclass
class LearnState:
    """What status.json says under ``learn`` (the page shows it)."""

    state: str = "idle"  # idle | listening | bound | failed | timed out | cancelled
    knob: int | None = None
    source: str | None = None  # page | button
    request: str | None = None
    binding: str | None = None
    applies: str | None = None  # now | at the next start
    reason: str | None = None
    last: str | None = None  # the binding written before this learn (a held button learns several)
    extra: dict[str, Any] = field(default_factory=dict)

    def as_json(self) -> dict[str, Any]:
        out = {k: v for k, v in self.__dict__.items() if k != "extra" and v is not None}
        return out | self.extra


class LearnDesk:
    """The loop's half: watches for page requests and the held button, runs one ``Learner`` at a
    time through the loop (``loop.learn``), writes each binding into ``config_path``.

    ``tick`` runs at the end of the loop's tick, after the MIDI bytes went out, so learning adds
    nothing between a knob's CC and its bytes; ``take_press`` is asked first about each button."""

    def __init__(self, config_path: Path, store_root: Path | None, *, has_input: bool,
                 controller_tables: tuple[int, ...] = (), quiet_s: float = 0.4, timeout_s: float = TIMEOUT_S,
                 check_s: float = CHECK_S) -> None:
        """``controller_tables``: the [[knob]] tables (0-based) that were the controller's knobs when
        the loop was built, in order: the running loop's ``midi_knobs.bindings``."""
        self.config_path = Path(config_path)
        self.controller_tables = tuple(controller_tables)
        self.request_path = Path(store_root) / REQUEST_FILE if store_root is not None else None
        self.has_input, self.quiet_s, self.timeout_s, self.check_s = has_input, quiet_s, timeout_s, check_s
        self.state = LearnState()
        self.state.extra = {"available": has_input, "page": self.request_path is not None}
        self._learner: Learner | None = None
        self._started = 0.0
        self._next_check = 0.0
        self._stamp: tuple | None = None
        self._seen: str | None = None
        self._holding = False
        if self.request_path is not None:  # a request left from before a restart is not a new one
            old = read_request(self.request_path)
            self._seen = old["request"] if old else None

    # -- what starts and ends a learn ------------------------------------------------------------
    def start(self, loop: ControlLoop, knob: int, source: str, request: str | None = None) -> None:
        """Listen for the next control turned, for [[knob]] ``knob`` (0-based)."""
        self._learner = Learner(quiet_s=self.quiet_s)
        self._started = loop.clock.now()
        self.state = LearnState("listening", knob, source, request, extra=self.state.extra)
        loop.learn(self._learner)
        loop._message = f"learn knob {knob + 1}: turn a control"
        log.info("learning", extra={"event": "learn", "knob": knob, "source": source})

    def stop(self, loop: ControlLoop, state: str, reason: str | None = None) -> None:
        self._learner = None
        loop.learn(None)
        self.state.state, self.state.reason = state, reason

    def take_press(self, loop: ControlLoop, event: str) -> bool:
        """True when a button press was a learn action (next / previous while the button is held)."""
        if not self._holding or event not in ("next", "previous") or self.state.knob is None:
            return False
        knob = max(0, min(MAX_KNOB, self.state.knob + (1 if event == "next" else -1)))
        self.start(loop, knob, "button")
        return True

    def tick(self, loop: ControlLoop, now: float) -> None:
        self._button(loop)
        if self.request_path is not None and now >= self._next_check:
            self._next_check = now + self.check_s
            self._page(loop)
        if self._learner is None:
            return
        try:
            binding = self._learner.done(now)
        except DxmacroError as exc:  # nothing usable was heard
            self.stop(loop, "failed", str(exc))
            return
        if binding is not None:
            self._bind(loop, binding)
        elif self.state.source == "page" and now - self._started > self.timeout_s:
            self.stop(loop, "timed out", f"no control was turned within {self.timeout_s:g} s")

    def _button(self, loop: ControlLoop) -> None:
        held = getattr(loop.buttons, "held", None)
        holding = bool(held is not None and self.has_input and held(HOLD_BUTTON))
        if holding and not self._holding:
            self._holding = True
            self.start(loop, 0, "button")
        elif not holding and self._holding:
            self._holding = False
            if self._learner is not None and self.state.source == "button":
                binding = self._learner.done(math.inf) if self._learner.seen else None
                if binding is not None:  # a turn in progress when the button was let go: bind it
                    self._bind(loop, binding)
                else:
                    self.stop(loop, "idle")

    def _page(self, loop: ControlLoop) -> None:
        assert self.request_path is not None
        try:
            st = os.stat(self.request_path)
            stamp = (st.st_ino, st.st_mtime_ns, st.st_size)
        except OSError:
            return
        if stamp == self._stamp:
            return
        self._stamp = stamp
        doc = read_request(self.request_path)
        if doc is None or doc["request"] == self._seen:
            return
        self._seen = doc["request"]
        if doc["knob"] is None:
            if self._learner is not None:
                self.stop(loop, "cancelled")
            self.state.request = doc["request"]
            return
        if not self.has_input:
            self.state = LearnState("failed", doc["knob"], "page", doc["request"],
                                    reason="no MIDI input to learn from ([midi] input in device.toml)",
                                    extra=self.state.extra)
            return
        self.start(loop, doc["knob"], "page", doc["request"])

    # -- the binding --------------------------------------------------------------------------------
    def _bind(self, loop: ControlLoop, binding: CCBinding) -> None:
        knob, source = self.state.knob, self.state.source
        assert knob is not None
        try:
            write_binding(self.config_path, knob, binding)
        except (DxmacroError, ValueError, OSError) as exc:  # a read-only /etc, a config that would not load
            self.stop(loop, "failed", str(exc))
            loop._message = "learn failed"
            log.error("learn not written", extra={"event": "learn_failed", "reason": str(exc)})
            return
        applies = "now" if self._apply(loop, knob, binding) else "at the next start"
        self._learner = None
        loop.learn(None)
        self.state = LearnState("bound", knob, source, self.state.request, binding.describe(), applies,
                                extra=self.state.extra)
        loop._message = f"knob {knob + 1}: {binding.describe()}"
        log.info("learned", extra={"event": "learned", "knob": knob, "binding": binding.describe(), "applies": applies})
        if source == "button" and self._holding:  # still held: the next control turned is the next knob's
            self.start(loop, min(MAX_KNOB, knob + 1), "button")
            self.state.last = f"knob {knob + 1}: {binding.describe()} ({applies})"

    def _apply(self, loop: ControlLoop, knob: int, binding: CCBinding) -> bool:
        """Rebind a knob that was already the controller's when the loop started, in the running
        loop (its position stays until the new control moves: soft takeover); a pot or a new knob
        waits for the next start."""
        midi = loop.midi_knobs
        if midi is None or knob not in self.controller_tables:
            return False
        j = self.controller_tables.index(knob)
        if j >= len(midi.bindings):
            return False
        midi.bindings[j] = binding
        return True
