"""The device's MIDI input ([midi] input): opened and watched in a thread of its own, drained by the loop.

Why a thread: opening a port is a new rtmidi client (tens of milliseconds with JACK, plus the
connection settling) and a vanished port is retried every ``retry_s``; neither may stall a tick.
The loop takes what arrived with ``poll()`` (never blocks) or sleeps in ``wait()`` until it does.
A missing or unplugged port is a state (``state``, ``last_error``) the screen and status.json
show, never an error of the loop.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from typing import Any

from hardware.errors import HardwareError

log = logging.getLogger("dxmacro.device")


class ListeningPort:
    """``opener()`` returns an input with ``wait(timeout) -> bool``, ``drain() -> [(t, bytes)]``,
    ``alive()`` and ``close()``: hardware.midi.RtMidiInput with ``threaded=False``, so the loop's
    own thread reads rtmidi's queue while it waits.

    Why the loop reads the port itself: a message handed from a reader thread to this thread
    and on to the loop crossed two threads, each hand-off a wake-up and a wait for the GIL on a
    busy box. This thread now only opens the port and checks every ``check_s`` that it is still
    there (and closes it when it is not; the loop then reads nothing until it is back)."""

    def __init__(self, opener: Callable[[], Any], name: str, *, retry_s: float = 0.5,
                 check_s: float = 0.25) -> None:
        self.opener, self.name, self.retry_s, self.check_s = opener, name, retry_s, check_s
        self.last_error: str | None = None
        self._port: Any = None
        self.connects = 0  # opens so far: a change means the controller came (back)
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name=f"midi-listen:{name}", daemon=True)

    def start(self) -> ListeningPort:
        self._thread.start()
        return self

    @property
    def state(self) -> str:
        return "connected" if self._port is not None else "disconnected"

    def _run(self) -> None:
        while not self._stop.is_set():
            if self._port is None:
                try:
                    self._port = self.opener()
                    self.last_error = None
                    self.connects += 1
                    log.info("MIDI input open", extra={"event": "midi_in_open", "port": self.name})
                except HardwareError as exc:  # PortGone, JackUnavailable: absent for now
                    if str(exc) != self.last_error:
                        log.warning("MIDI input absent", extra={"event": "midi_in_absent", "reason": str(exc)})
                    self.last_error = str(exc)
                    self._stop.wait(self.retry_s)
                    continue
            if self._stop.wait(self.check_s):
                break
            try:
                ok, why = self._port.alive(), f"MIDI port {self.name!r} vanished"
            except HardwareError as exc:
                ok, why = False, str(exc)
            if not ok:
                self.last_error = why
                log.warning("MIDI input gone", extra={"event": "midi_in_gone", "reason": why})
                self._close_port()

    def _close_port(self) -> None:
        port, self._port = self._port, None
        if port is not None:
            try:
                port.close()
            except HardwareError:
                pass

    def wait(self, timeout: float) -> bool:
        """Block until a message arrives or ``timeout`` passes; True when one did. The loop
        waits here instead of sleeping to its next tick, so a knob's CC is handled at once."""
        port = self._port
        if port is None:
            self._stop.wait(max(0.0, timeout))
            return False
        return port.wait(timeout)

    def poll(self) -> list[bytes]:
        return [data for _, data in self.poll_timed()]

    def poll_timed(self) -> list[tuple[float, bytes]]:
        """What arrived, with each message's arrival time (time.monotonic, stamped by the port)."""
        port = self._port
        return port.drain() if port is not None else []

    def close(self) -> None:
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join(timeout=2)
        self._close_port()
