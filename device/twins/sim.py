"""Simulated twins of what this machine cannot have: the buttons, a hardware DX7 on the
MIDI cable, scripted knob motion, and time itself.

The knob ADC is not simulated here: ``device.control.knobs.emulated_board`` puts hardware's
register-level ADS1x15 emulation on a FakeI2CBus and the real driver reads it, with
``KnobScript`` below giving each pot's position as a function of time. The emulated DX7
receives raw MIDI bytes and applies them with the same parser the rest of the project
trusts (dx7.sysex). Clocks are hardware.clock's (one clock drives the ADC emulation, the
driver's waits and the loop's schedule).
"""

from __future__ import annotations

import bisect
from collections.abc import Sequence
from dataclasses import dataclass, field

from dx7 import Voice
from dx7.errors import DX7Error
from dx7.params import PARAM_COUNT
from dx7.sysex import OP_SWITCH_PARAM, ParameterChange, SingleVoice, parse_message
from device.control.ports import PortGone
from hardware.clock import RealClock, SimClock

__all__ = ["EmulatedDX7", "KnobScript", "RealClock", "Received", "ScriptedButtons", "SimClock"]


class KnobScript:
    """Physical knob positions over time: piecewise-linear keyframes per channel,
    held before the first and after the last."""

    def __init__(self, channels: int, start: Sequence[float] | None = None) -> None:
        init = list(start) if start is not None else [0.5] * channels
        if len(init) != channels:
            raise ValueError(f"{channels} start positions expected, got {len(init)}")
        self.channels = channels
        self._t: list[list[float]] = [[-1e9] for _ in range(channels)]
        self._v: list[list[float]] = [[float(v)] for v in init]

    def move(self, channel: int, t: float, value: float, ramp_s: float = 0.0) -> None:
        """Turn ``channel`` to ``value``, arriving at ``t + ramp_s`` from where it is at ``t``."""
        ts, vs = self._t[channel], self._v[channel]
        if t < ts[-1]:
            raise ValueError(f"knob {channel}: moves must be added in time order ({t} < {ts[-1]})")
        here = self.position(channel, t)
        if ramp_s > 0 or t > ts[-1]:
            ts.append(t)
            vs.append(here)
        ts.append(t + max(ramp_s, 1e-9))
        vs.append(min(1.0, max(0.0, float(value))))

    def position(self, channel: int, t: float) -> float:
        ts, vs = self._t[channel], self._v[channel]
        i = bisect.bisect_right(ts, t)
        if i >= len(ts):
            return vs[-1]
        if i == 0:
            return vs[0]
        t0, t1, v0, v1 = ts[i - 1], ts[i], vs[i - 1], vs[i]
        return v0 + (v1 - v0) * (t - t0) / (t1 - t0)

    def end_time(self) -> float:
        return max(ts[-1] for ts in self._t)


@dataclass
class Received:
    t: float
    data: bytes


@dataclass
class EmulatedDX7:
    """A DX7 at the end of the cable, as a MidiOut: takes raw messages, parses them
    with dx7.sysex and applies voice dumps and parameter changes on its receive
    channel to its edit buffer. Anything malformed is kept in ``errors``.

    ``unplug(t0, t1)`` makes the port vanish between t0 and t1 (sends and reopens
    raise PortGone); after t1 a reopen succeeds."""

    clock: RealClock | SimClock
    channel: int = 0  # 0..15
    voice_values: list[int] = field(default_factory=lambda: list(Voice.init().values))
    op_mask: int = 0x3F
    log: list[Received] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)
    notes_off: int = 0
    reopened_at: list[float] = field(default_factory=list)
    _absent: list[tuple[float, float]] = field(default_factory=list)
    _open: bool = True

    def unplug(self, t0: float, t1: float) -> None:
        self._absent.append((t0, t1))

    def _present(self) -> bool:
        now = self.clock.now()
        return not any(a <= now < b for a, b in self._absent)

    def reopen(self) -> None:
        if not self._present():
            raise PortGone("emulated DX7: port absent")
        self._open = True
        self.reopened_at.append(self.clock.now())

    def send(self, data: bytes) -> None:
        if not self._open or not self._present():
            self._open = False
            raise PortGone("emulated DX7: port vanished")
        data = bytes(data)
        self.log.append(Received(self.clock.now(), data))
        self.apply(data)

    def apply(self, data: bytes) -> None:
        if not data:
            self.errors.append("empty message")
            return
        if data[0] == 0xF0:
            try:
                msg = parse_message(data)
            except DX7Error as exc:
                self.errors.append(f"bad sysex {data[:8].hex(' ')}: {exc}")
                return
            if isinstance(msg, SingleVoice) and msg.channel == self.channel:
                try:
                    self.voice_values = list(Voice.from_unpacked(msg.values, strict=True).values)
                except DX7Error as exc:
                    self.errors.append(f"voice dump out of range: {exc}")
            elif isinstance(msg, ParameterChange) and msg.channel == self.channel:
                if msg.parameter == OP_SWITCH_PARAM:
                    self.op_mask = msg.value
                else:
                    self.voice_values[msg.parameter] = msg.value
            elif not isinstance(msg, (SingleVoice, ParameterChange)):
                self.errors.append(f"unexpected sysex {type(msg).__name__}")
            return
        status = data[0]
        lengths = {0x80: 3, 0x90: 3, 0xA0: 3, 0xB0: 3, 0xC0: 2, 0xD0: 2, 0xE0: 3}
        kind = status & 0xF0
        if kind not in lengths or len(data) != lengths[kind] or any(b >= 0x80 for b in data[1:]):
            self.errors.append(f"bad channel message {data.hex(' ')}")
            return
        if kind == 0xB0 and data[1] in (120, 123) and (status & 0x0F) == self.channel:
            self.notes_off += 1

    @property
    def voice(self) -> Voice:
        return Voice(tuple(self.voice_values))

    def bytes_sent(self) -> int:
        return sum(len(r.data) for r in self.log)

    def stream(self) -> bytes:
        return b"".join(r.data for r in self.log)


assert PARAM_COUNT == 155


class ScriptedMidiIn:
    """Program Changes at given times (``(t, number)``), as a performer's controller sends them:
    Bank Select MSB (``number // 128``) first whenever it differs from the last one sent (it stays
    in force on the receiver); delivered on the first poll at or after their time."""

    def __init__(self, clock: RealClock | SimClock, programs: Sequence[tuple[float, int]] = (),
                 channel: int = 0) -> None:
        self.clock, self.channel = clock, channel
        self.programs = sorted(programs)
        self._next = 0
        self._msb = 0

    def poll(self) -> list[bytes]:
        out = []
        while self._next < len(self.programs) and self.programs[self._next][0] <= self.clock.now():
            n = self.programs[self._next][1]
            if n // 128 != self._msb:
                self._msb = n // 128
                out.append(bytes([0xB0 | self.channel, 0, self._msb]))
            out.append(bytes([0xC0 | self.channel, n % 128]))
            self._next += 1
        return out


class ScriptedButtons:
    """Button presses at given times, delivered on the first poll at or after them."""

    def __init__(self, clock: RealClock | SimClock, presses: Sequence[tuple[float, str]] = ()) -> None:
        self.clock = clock
        self.presses = sorted(presses)
        self._next = 0

    def poll(self) -> list[str]:
        out = []
        now = self.clock.now()
        while self._next < len(self.presses) and self.presses[self._next][0] <= now:
            out.append(self.presses[self._next][1])
            self._next += 1
        return out
