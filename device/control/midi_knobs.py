"""Knobs on a MIDI controller: a ``KnobReader`` fed by control changes from the performer's input.

The loop's one MIDI input (device.control.midi_in) is polled once per tick; each control change
that matches a binding is fed here (``feed``), and ``read()`` then returns every knob's position
like the ADC does, so the same soft takeover and mapping apply. Three kinds of controls:

* ``absolute``: a 7-bit CC, value / 127;
* ``14bit``: MSB on CC n (0..31), LSB on CC n + 32; an MSB sets the LSB to 0 (MIDI 1.0: "when an
  MSB is received, the receiver should set its concept of the LSB to zero"), an LSB refines it;
* relative encoders, each message a signed count of detents: ``twos`` (two's complement:
  1 = +1, 127 = -1), ``offset`` (binary offset: 65 = +1, 63 = -1), ``sign`` (sign-magnitude:
  1 = +1, 65 = -1). Their position is virtual: ``place`` puts it on the voice's value when a
  voice is chosen, so an encoder never needs picking up.

Why no 1-euro filter here: a CC carries no ADC noise (the controller already settled it) and a
low-pass delays a step by tens of milliseconds; ``SMOOTHING`` passes values through (cutoff
infinite) and keeps the pots' soft takeover. A controller that jitters by one step at rest
can be given a dead band with ``hysteresis``.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

from device.control.smoothing import SmoothingSettings

MODES = ("absolute", "14bit", "twos", "offset", "sign")
RELATIVE = ("twos", "offset", "sign")
SMOOTHING = SmoothingSettings(min_cutoff_hz=math.inf, beta=0.0, hysteresis=0.0)


@dataclass(frozen=True)
class CCBinding:
    """One knob's control: ``channel`` 0..15 (None: any), ``control`` 0..119 (the MSB for 14bit),
    ``mode`` from MODES, ``step`` the travel (0..1) of one encoder detent."""

    control: int
    channel: int | None = None
    mode: str = "absolute"
    step: float = 1.0 / 128

    def __post_init__(self) -> None:
        if self.mode not in MODES:
            raise ValueError(f"CC mode must be one of {', '.join(MODES)}, got {self.mode!r}")
        if self.mode == "14bit" and not 0 <= self.control < 32:
            raise ValueError(f"a 14-bit control's MSB is CC 0..31 (its LSB CC + 32), got {self.control}")

    def hears(self, status: int, control: int) -> bool:
        if self.channel is not None and (status & 0x0F) != self.channel:
            return False
        return control == self.control or (self.mode == "14bit" and control == self.control + 32)

    def describe(self) -> str:
        ch = "any channel" if self.channel is None else f"channel {self.channel + 1}"
        cc = f"CC {self.control}/{self.control + 32}" if self.mode == "14bit" else f"CC {self.control}"
        return f"{cc} {self.mode} on {ch}"


def detents(mode: str, value: int) -> int:
    """The signed count of detents a relative encoder's value means."""
    if mode == "twos":
        return value - 128 if value >= 64 else value
    if mode == "offset":
        return value - 64
    if mode == "sign":
        return -(value & 0x3F) if value & 0x40 else value & 0x3F
    raise ValueError(f"not a relative mode: {mode!r}")


class MidiKnobs:
    """``KnobReader`` over CC bindings: knob i is binding i. ``feed`` takes one raw message and
    says whether it was a knob's; positions are None until a knob's first message (relative
    knobs: until ``place``)."""

    scan_period_s = 0.0  # reading costs nothing: the loop's rate alone sets the pace

    def __init__(self, bindings: Sequence[CCBinding]) -> None:
        self.bindings = list(bindings)
        self.positions: list[float | None] = [None] * len(self.bindings)
        self._msb: list[int] = [0] * len(self.bindings)
        self._span: list[tuple[float, float] | None] = [None] * len(self.bindings)
        self._swept: list[tuple[float, float] | None] = [None] * len(self.bindings)
        self.received = 0

    def feed(self, data: bytes) -> bool:
        if len(data) != 3 or (data[0] & 0xF0) != 0xB0 or data[1] > 0x7F or data[2] > 0x7F:
            return False
        control, value = data[1], data[2]
        hit = False
        for i, b in enumerate(self.bindings):
            if not b.hears(data[0], control):
                continue
            hit = True
            if b.mode == "absolute":
                self.positions[i] = value / 127.0
            elif b.mode == "14bit":
                if control == b.control:
                    self._msb[i] = value
                    self.positions[i] = (value << 7) / 16383.0
                else:
                    self.positions[i] = ((self._msb[i] << 7) | value) / 16383.0
            else:
                start = self.positions[i] if self.positions[i] is not None else 0.5
                self.positions[i] = min(1.0, max(0.0, start + detents(b.mode, value) * b.step))
            pos, span = self.positions[i], self._span[i]
            self._span[i] = (pos, pos) if span is None else (min(span[0], pos), max(span[1], pos))  # type: ignore
        self.received += hit
        return hit

    def read(self) -> list[float | None]:
        """Where each knob is now; the travel since the last read starts from here."""
        self._swept = self._span
        self._span = [None if p is None else (p, p) for p in self.positions]
        return list(self.positions)

    def swept(self, channel: int) -> tuple[float, float] | None:
        """The travel (low, high) of a knob since the previous read, this read's position included:
        several CCs arrive in one tick (JACK hands them over once per period), and soft takeover
        must see a knob that went through the voice's value within them."""
        return self._swept[channel] if 0 <= channel < len(self._swept) else None

    def place(self, channel: int, position: float) -> bool:
        """Put a relative knob at ``position`` (a voice was chosen); False for absolute ones,
        whose position is the controller's."""
        if 0 <= channel < len(self.bindings) and self.bindings[channel].mode in RELATIVE:
            self.positions[channel] = min(1.0, max(0.0, position))
            return True
        return False

    def smoothing_for(self, channel: int) -> SmoothingSettings | None:
        return SMOOTHING if 0 <= channel < len(self.bindings) else None


class CombinedKnobs:
    """Several readers as one: the ADC board's channels first, then the controller's knobs
    (channel ``offset + i``). ``parts`` are (offset, reader)."""

    def __init__(self, readers: Sequence[object]) -> None:
        self.parts: list[tuple[int, object]] = []
        offset = 0
        for r in readers:
            self.parts.append((offset, r))
            offset += self._width(r)
        self.scan_period_s = sum(r.scan_period_s for _, r in self.parts)  # type: ignore[attr-defined]

    @staticmethod
    def _width(reader: object) -> int:
        if isinstance(reader, MidiKnobs):
            return len(reader.bindings)
        return int(reader.layout.channels)  # type: ignore[attr-defined]  # AdcKnobs

    def read(self) -> list[float | None]:
        out: list[float | None] = []
        for _, r in self.parts:
            try:
                got = r.read()  # type: ignore[attr-defined]
            except OSError:
                got = [None] * self._width(r)
            out.extend(got)
        return out

    def _locate(self, channel: int) -> tuple[object, int] | None:
        for offset, r in reversed(self.parts):
            if channel >= offset:
                return r, channel - offset
        return None

    def place(self, channel: int, position: float) -> bool:
        got = self._locate(channel)
        return bool(got) and hasattr(got[0], "place") and got[0].place(got[1], position)  # type: ignore[union-attr]

    def swept(self, channel: int) -> tuple[float, float] | None:
        got = self._locate(channel)
        return got[0].swept(got[1]) if got is not None and hasattr(got[0], "swept") else None  # type: ignore

    def smoothing_for(self, channel: int) -> SmoothingSettings | None:
        got = self._locate(channel)
        if got is None or not hasattr(got[0], "smoothing_for"):
            return None
        return got[0].smoothing_for(got[1])  # type: ignore[union-attr]
