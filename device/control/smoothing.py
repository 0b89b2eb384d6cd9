"""From noisy raw knob readings to deliberate knob positions.

Three stages per knob, each answering one problem:

* ``OneEuro``: the 1-euro filter (Casiez, Roussel, Vogel, CHI 2012) - a low-pass whose
  cutoff rises with the knob's speed, so a resting knob is heavily smoothed (no ADC
  noise reaches the synth) while a fast turn passes almost unfiltered (no lag).
* ``Hysteresis``: the output moves only when the filtered value has left a dead band
  around the last output, so residual noise at rest never produces a MIDI message.
* ``SoftTakeover``: after a voice change the knobs no longer match the voice; a knob
  takes control only once it has been turned through the voice's value ("pickup"),
  so the sound never jumps.

A failed read (None) leaves a knob exactly where it was: it is not a move.
"""

from __future__ import annotations

import math
from dataclasses import dataclass


@dataclass(frozen=True)
class SmoothingSettings:
    min_cutoff_hz: float = 1.0  # cutoff at rest: lower = steadier
    beta: float = 20.0  # how fast the cutoff rises with speed: higher = less lag when turning
    d_cutoff_hz: float = 1.0  # smoothing of the speed estimate itself
    hysteresis: float = 0.003  # dead band in knob units (0..1); ADS1115 noise is ~1e-4
    pickup_tolerance: float = 0.02  # how close a knob must come to the voice's value to take over


def _alpha(cutoff_hz: float, dt: float) -> float:
    tau = 1.0 / (2.0 * math.pi * cutoff_hz)
    return 1.0 / (1.0 + tau / dt)


class OneEuro:
    """One knob's adaptive low-pass filter."""

    def __init__(self, s: SmoothingSettings) -> None:
        self.s = s
        self.x: float | None = None
        self.dx = 0.0
        self.t = 0.0

    def update(self, value: float, t: float) -> float:
        if self.x is None:
            self.x, self.t = value, t
            return value
        dt = t - self.t
        if dt <= 0:
            return self.x
        self.t = t
        raw_dx = (value - self.x) / dt
        self.dx += _alpha(self.s.d_cutoff_hz, dt) * (raw_dx - self.dx)
        cutoff = self.s.min_cutoff_hz + self.s.beta * abs(self.dx)
        self.x += _alpha(cutoff, dt) * (value - self.x)
        return self.x


class Hysteresis:
    """Moves only when the input leaves a dead band of +-width around the output."""

    def __init__(self, width: float) -> None:
        self.width = width
        self.out: float | None = None

    def update(self, value: float) -> bool:
        """True when the output changed."""
        if self.out is None or abs(value - self.out) > self.width:
            self.out = value
            return True
        # Let a knob reach its end stops exactly: 0 and 1 are where performers park.
        if (value <= 0.0 or value >= 1.0) and value != self.out:
            self.out = value
            return True
        return False


class SoftTakeover:
    """Pickup per knob: ``arm(target)`` after a voice change; the knob is live again
    once it crosses ``target`` or comes within the tolerance of it."""

    def __init__(self, tolerance: float) -> None:
        self.tolerance = tolerance
        self.target: float | None = None
        self.side = 0.0

    @property
    def live(self) -> bool:
        return self.target is None

    def arm(self, target: float, position: float | None) -> None:
        self.target = min(1.0, max(0.0, target))
        self.side = 0.0 if position is None else math.copysign(1.0, position - self.target)
        if position is not None and abs(position - self.target) <= self.tolerance:
            self.target = None

    def release(self) -> None:
        self.target = None

    def update(self, position: float) -> bool:
        """True when this update made the knob live."""
        if self.target is None:
            return False
        diff = position - self.target
        if abs(diff) <= self.tolerance or (self.side and math.copysign(1.0, diff) != self.side):
            self.target = None
            return True
        if not self.side:
            self.side = math.copysign(1.0, diff)
        return False

    def direction(self, position: float | None) -> str:
        """"live", or which way to turn to pick the knob up: "up" / "down"."""
        if self.target is None:
            return "live"
        if position is None:
            return "wait"
        return "up" if position < self.target else "down"


class KnobChannel:
    """Filter + hysteresis + takeover for one knob; ``position`` is the deliberate
    position (None until the first good read)."""

    def __init__(self, s: SmoothingSettings) -> None:
        self.filter = OneEuro(s)
        self.hyst = Hysteresis(s.hysteresis)
        self.takeover = SoftTakeover(s.pickup_tolerance)

    @property
    def position(self) -> float | None:
        return self.hyst.out

    def place(self, position: float) -> None:
        """A knob without a position of its own (a relative encoder) starts here, live: the
        filter and dead band settle on it at once, nothing to pick up."""
        self.filter.x = position
        self.filter.dx = 0.0
        self.hyst.out = position
        self.takeover.release()

    def update(self, raw: float | None, t: float) -> bool:
        """Feed one reading; True when the deliberate position moved while live, or the
        knob just became live (both change what the knob asks of the voice)."""
        if raw is None or not math.isfinite(raw):
            return False
        moved = self.hyst.update(self.filter.update(min(1.0, max(0.0, raw)), t))
        if not moved:
            return False
        if self.takeover.live:
            return True
        return self.takeover.update(self.hyst.out)  # type: ignore[arg-type]
