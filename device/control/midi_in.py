"""The device's MIDI input ([midi] input): listened to in a thread of its own, polled by the loop.

Why a thread: opening a port is a new rtmidi client (tens of milliseconds with JACK, plus the
connection settling) and a vanished port is retried every ``retry_s``; neither may stall a tick.
The loop takes what arrived with ``poll()`` (never blocks). A missing or unplugged port is a
state (``state``, ``last_error``) the screen and status.json show, never an error of the loop.
"""

from __future__ import annotations

import logging
import queue
import threading
from collections.abc import Callable
from typing import Any

from hardware.errors import HardwareError

log = logging.getLogger("dxmacro.device")


class ListeningPort:
    """``opener()`` returns an input with ``receive(timeout) -> (t, bytes) | None`` (raising
    hardware's PortGone when the port vanished) and ``close()``: hardware.midi.RtMidiInput."""

    def __init__(self, opener: Callable[[], Any], name: str, *, retry_s: float = 0.5) -> None:
        self.opener, self.name, self.retry_s = opener, name, retry_s
        self.last_error: str | None = None
        self._port: Any = None
        self._queue: queue.Queue[tuple[float, bytes]] = queue.Queue(maxsize=4096)
        self.connects = 0  # opens so far: a change means the controller came (back)
        self._arrived = threading.Event()
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
            try:
                got = self._port.receive(0.1)
            except HardwareError as exc:
                self.last_error = str(exc)
                log.warning("MIDI input gone", extra={"event": "midi_in_gone", "reason": str(exc)})
                self._close_port()
                continue
            if got is not None:
                try:
                    self._queue.put_nowait(got)
                except queue.Full:  # nobody polls: drop the oldest rather than grow without bound
                    self._queue.get_nowait()
                    self._queue.put_nowait(got)
                self._arrived.set()

    def _close_port(self) -> None:
        port, self._port = self._port, None
        if port is not None:
            try:
                port.close()
            except HardwareError:
                pass

    def wait(self, timeout: float) -> bool:
        """Block until a message arrives or ``timeout`` passes; True when one arrived. The loop
        waits here instead of sleeping to its next tick, so a knob's CC is handled at once."""
        got = self._arrived.wait(max(0.0, timeout))
        self._arrived.clear()
        return got and not self._queue.empty()

    def poll(self) -> list[bytes]:
        return [data for _, data in self.poll_timed()]

    def poll_timed(self) -> list[tuple[float, bytes]]:
        """What arrived, with each message's arrival time (time.monotonic, stamped by the port)."""
        out = []
        while True:
            try:
                out.append(self._queue.get_nowait())
            except queue.Empty:
                return out

    def close(self) -> None:
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join(timeout=2)
        self._close_port()
