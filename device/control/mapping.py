"""Knob position (0..1) -> latent value, and back (for soft takeover).

Each knob moves one latent dimension over a useful range that the bundle's manifest
gives (where the training data actually lives), optionally narrowed, curved or
inverted by the config. The curve spends the knob's travel where the performer wants
detail: "linear", "centre" (finer around the middle, where most voices sit in a
Gaussian prior) or a number g (position ** g: g > 1 finer near the low end).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class KnobMapping:
    channel: int  # ADC channel
    dim: int  # latent dimension
    name: str
    low: float
    high: float
    curve: str | float = "linear"
    invert: bool = False

    def _shape(self, u: float) -> float:
        if self.curve == "linear":
            return u
        if self.curve == "centre":
            c = 2.0 * u - 1.0
            return 0.5 + 0.5 * math.copysign(c * c, c)
        return u ** float(self.curve)

    def _unshape(self, f: float) -> float:
        if self.curve == "linear":
            return f
        if self.curve == "centre":
            c = 2.0 * f - 1.0
            return 0.5 + 0.5 * math.copysign(math.sqrt(abs(c)), c)
        return f ** (1.0 / float(self.curve))

    def to_latent(self, position: float) -> float:
        u = min(1.0, max(0.0, position))
        if self.invert:
            u = 1.0 - u
        return self.low + self._shape(u) * (self.high - self.low)

    def to_position(self, latent: float) -> float:
        """Where the knob must be to give ``latent`` (clipped to the knob's travel)."""
        span = self.high - self.low
        f = min(1.0, max(0.0, (latent - self.low) / span)) if span else 0.0
        u = self._unshape(f)
        return 1.0 - u if self.invert else u


def latent_from(base: np.ndarray, mappings: list[KnobMapping], positions: list[float | None],
                live: list[bool]) -> np.ndarray:
    """The base latent (the current voice's code) with each live knob's dimension set."""
    z = np.array(base, dtype=np.float32, copy=True)
    for m, pos, on in zip(mappings, positions, live):
        if on and pos is not None:
            z[m.dim] = m.to_latent(pos)
    return z
