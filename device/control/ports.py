"""The small interfaces the control loop talks to, so it runs the same on the Pi
(hardware/ drivers through device/control/knobs.py, device/control/midi_port.py, device/control/gpio_controls.py;
conversion/ TFLite decoder) and in simulation (the same drivers over emulated chips,
device/twins/sim.py, device/twins/linear_decoder.py). Everything here is structural
(``typing.Protocol``): no inheritance needed. ``PortGone`` is hardware.errors' (the loop
keeps running when it is raised, marks the link down and retries ``reopen()``).
"""

from __future__ import annotations

from typing import Protocol, runtime_checkable

import numpy as np

from conversion.runtime import Anchor, KnobInfo  # what a decoder knows; defined with the bundle reader
from hardware.errors import PortGone  # one type for "the port vanished", raised by hardware.midi's ports

__all__ = ["Anchor", "BUTTON_EVENTS", "Buttons", "Clock", "Decoder", "Display", "KnobInfo", "KnobReader", "MidiIn", "MidiOut",
           "PortGone"]


@runtime_checkable
class KnobReader(Protocol):
    """Raw knob positions from the ADC.

    ``read()`` scans every channel once and returns one position in 0..1 per knob,
    or ``None`` for a channel whose read failed (an I2C ``OSError``): a failed read
    must never look like a knob move. ``scan_period_s`` is the physical limit of one
    scan (channels x one conversion at the ADC's data rate): the loop cannot tick
    faster than that."""

    scan_period_s: float

    def read(self) -> list[float | None]: ...


@runtime_checkable
class MidiOut(Protocol):
    """One output port. ``send`` takes exactly one complete MIDI message (sysex or a
    channel message) and raises :class:`PortGone` when the port has vanished;
    ``reopen`` tries to open it again and raises :class:`PortGone` while it is still
    absent."""

    def send(self, data: bytes) -> None: ...

    def reopen(self) -> None: ...


@runtime_checkable
class Decoder(Protocol):
    """Latent code -> 145 DX7 values. The product is conversion.runtime.TFLiteDecoder
    (int8 model from the signed bundle); device.twins.linear_decoder is the development one."""

    latent_size: int
    knobs: tuple[KnobInfo, ...]
    anchors: tuple[Anchor, ...]

    def decode(self, latent: np.ndarray) -> np.ndarray:
        """(latent_size,) float32 -> (145,) uint8 in-range DX7 values."""
        ...


@runtime_checkable
class MidiIn(Protocol):
    """The performer's MIDI input: what arrived since the last poll, whole messages, never blocking
    (device.control.midi_in.ListeningPort)."""

    def poll(self) -> list[bytes]: ...


BUTTON_EVENTS = ("next", "previous", "random", "store", "panic")


@runtime_checkable
class Buttons(Protocol):
    """Debounced button presses since the last poll, as names from BUTTON_EVENTS."""

    def poll(self) -> list[str]: ...


@runtime_checkable
class Display(Protocol):
    def show(self, state: object) -> None: ...


@runtime_checkable
class Clock(Protocol):
    """Time for the loop: hardware.clock.RealClock (time.monotonic, the clock status.json's
    last_tick is judged on) on the device, hardware.clock.SimClock in simulation so ten
    minutes of playing run in seconds. The ADC driver waits on the same clock."""

    def now(self) -> float: ...

    def sleep_until(self, t: float) -> None: ...
