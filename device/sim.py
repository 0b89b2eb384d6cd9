"""Simulated twins of what this machine cannot have: the knob ADC, the buttons, a
hardware DX7 on the MIDI cable, and time itself.

They work at the level of the real protocol: the ADC returns quantised 16-bit codes
with the chip's noise after one conversion time per channel; the emulated DX7 receives
raw MIDI bytes and applies them with the same parser the rest of the project trusts
(dx7.sysex). Until the hardware branch lands, the ADC twin stands in for its
register-level ADS1115 emulation; the lead swaps it in.
"""

from __future__ import annotations

import bisect
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

import numpy as np

from dx7 import Voice
from dx7.errors import DX7Error
from dx7.params import PARAM_COUNT
from dx7.sysex import OP_SWITCH_PARAM, ParameterChange, SingleVoice, parse_message
from device.ports import PortGone

# ADS1115 at its default gain (+-2.048 V full scale): 62.5 uV per LSB; the datasheet's
# noise at that gain is a few LSB rms depending on the data rate.
ADS1115_FULL_SCALE = 32767
ADS1115_NOISE_LSB = 3.0
ADS1115_DATA_RATES = (8, 16, 32, 64, 128, 250, 475, 860)


class RealClock:
    """perf_counter time; sleeps with time.sleep (the real drivers do the same)."""

    def now(self) -> float:
        return time.perf_counter()

    def sleep_until(self, t: float, spin_s: float = 0.0) -> None:
        """Sleep; with ``spin_s``, wake that much early and poll (as a driver polls the
        ADS1115's conversion-ready bit) so the wake-up is not late by the scheduler's slack."""
        dt = t - time.perf_counter() - spin_s
        if dt > 0:
            time.sleep(dt)
        while spin_s and time.perf_counter() < t:
            pass


class SimClock:
    """Virtual time: sleeping jumps ahead, so long performances run in seconds."""

    def __init__(self, start: float = 0.0) -> None:
        self.t = float(start)

    def now(self) -> float:
        return self.t

    def sleep_until(self, t: float, spin_s: float = 0.0) -> None:
        if t > self.t:
            self.t = float(t)

    def advance(self, dt: float) -> None:
        self.t += max(0.0, dt)


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
class ScanRecord:
    sample_times: list[float]
    end: float


class SimulatedADC:
    """Knob positions as an ADS1115 delivers them: one conversion of ``1/data_rate``
    per channel (single-shot, mux switched per channel), the result quantised to a
    16-bit code with Gaussian noise of ``noise_lsb`` rms, and a failed I2C transfer
    (``None``) with probability ``fail_rate``."""

    def __init__(self, clock: RealClock | SimClock, positions: Callable[[int, float], float], channels: int = 4,
                 data_rate: int = 860, noise_lsb: float = ADS1115_NOISE_LSB, fail_rate: float = 0.0,
                 seed: int = 0, record: bool = False) -> None:
        if data_rate not in ADS1115_DATA_RATES:
            raise ValueError(f"ADS1115 data rate must be one of {ADS1115_DATA_RATES}, got {data_rate}")
        if not 1 <= channels <= 4:
            raise ValueError(f"ADS1115 has 4 single-ended inputs, got {channels} channels")
        self.clock = clock
        self.positions = positions
        self.channels = channels
        self.conversion_s = 1.0 / data_rate
        self.scan_period_s = channels * self.conversion_s
        self.poll_s = 0.00015  # the last 150 us of a conversion are polled, not slept
        self.noise_lsb = noise_lsb
        self.fail_rate = fail_rate
        self.rng = np.random.default_rng(seed)
        self.record = record
        self.scans: list[ScanRecord] = []
        self.reads = 0
        self.failures = 0

    def read(self) -> list[float | None]:
        out: list[float | None] = []
        times = []
        for ch in range(self.channels):
            self.clock.sleep_until(self.clock.now() + self.conversion_s, spin_s=self.poll_s)
            t = self.clock.now()
            times.append(t)
            self.reads += 1
            if self.fail_rate and self.rng.random() < self.fail_rate:
                self.failures += 1
                out.append(None)
                continue
            code = round(self.positions(ch, t) * ADS1115_FULL_SCALE + self.rng.normal(0.0, self.noise_lsb))
            out.append(min(ADS1115_FULL_SCALE, max(0, code)) / ADS1115_FULL_SCALE)
        if self.record:
            self.scans.append(ScanRecord(times, self.clock.now()))
        return out


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
