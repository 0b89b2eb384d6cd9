"""The synth's MIDI port as the control loop sees it (``device.control.ports.MidiOut``), over
hardware/'s ports: rtmidi (ALSA on the Pi, JACK in CI and on a desktop) or the UART's
5-pin DIN out.

``ReopeningOutput`` turns a vanished port into a state, and its watcher thread does the
reopening: opening a port means a new rtmidi client (tens of milliseconds with JACK, plus
50 ms for the connection to settle), which must not stall the loop's ticks. The loop's
``reopen`` only asks whether the watcher has the port back. ``PortGone`` is hardware's, one
type for both sides (device.control.ports re-exports it).
"""

from __future__ import annotations

from dataclasses import dataclass

from hardware.errors import HardwareError, PortGone
from hardware.midi import ReopeningOutput, RtMidiOutput, SerialDinOutput

OUTPUT_APIS = ("alsa", "jack", "din")


@dataclass(frozen=True)
class PortSpec:
    api: str = "alsa"  # "alsa" (the Pi), "jack", or "din" (UART)
    port: str = ""  # rtmidi: port name (exact, prefix or substring; "" = the first); din: serial device
    client_name: str = "dxmacro"
    baudrate: int = 31250  # din only; 38400 with dtoverlay=midi-uart0

    def describe(self) -> str:
        return f"DIN on {self.port or '/dev/serial0'}" if self.api == "din" else f"{self.api}:{self.port or '(first)'}"


def opener(spec: PortSpec):
    if spec.api == "din":
        return lambda: SerialDinOutput(spec.port or "/dev/serial0", spec.baudrate)
    if spec.api in ("alsa", "jack"):
        return lambda: RtMidiOutput(spec.port, spec.api, client_name=spec.client_name)
    raise HardwareError(f"MIDI api must be one of {', '.join(OUTPUT_APIS)}, got {spec.api!r}")


class MidiPort:
    """``MidiOut`` over a ReopeningOutput. ``state`` is what status.json and the screen show.
    The watcher checks the port every 0.1 s, off the path from a knob's CC to its bytes (the
    port's own check before a send only runs when the watcher is late)."""

    def __init__(self, spec: PortSpec, poll_interval: float = 0.1) -> None:
        self.spec = spec
        self.out = ReopeningOutput(opener(spec), spec.port or spec.describe(), poll_interval=poll_interval).start()

    @property
    def name(self) -> str:
        port = self.out._port  # the opened port knows its full name (ALSA adds client:port numbers)
        return getattr(port, "name", None) or self.spec.port or self.spec.describe()

    @property
    def state(self) -> str:
        return "connected" if self.out.connected else "disconnected"

    @property
    def last_error(self) -> str | None:
        return self.out.last_error

    def send(self, data: bytes) -> None:
        try:
            self.out.send(data)
        except PortGone:
            raise
        except HardwareError as exc:  # a closed or broken port is gone as far as the loop is concerned
            with self.out._lock:
                self.out._drop(str(exc))
            raise PortGone(str(exc)) from None

    def reopen(self) -> None:
        if not self.out.connected:
            raise PortGone(f"MIDI port {self.spec.describe()} still absent ({self.out.last_error})")

    def close(self) -> None:
        self.out.close()
