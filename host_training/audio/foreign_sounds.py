"""Sounds a DX7 did not make: the evaluation's "foreign" stratum.

The issue asks for out-of-domain sounds beyond the synthetic generator's voices ("other
recordings if available"). No recordings ship with the project, so these are instruments of
other kinds of synthesis, played like the data set (any note, velocity, held then released):
a plucked string (Karplus-Strong), a subtractive synth (band-limited saw or square through a
resonant low-pass with its own envelope), a drawbar organ (additive, steady), a bell of
inharmonic partials (Risset's recipe) and a breathy bowed tone (harmonics with vibrato over
band-passed noise). Nothing here is an FM voice, so no training voice is a near-copy and the
retrieval's advantage on the corpus (docs/results.md) has nothing to feed on. Each sound is
drawn from a seed, so a report is repeatable; pure numpy and scipy, no sample files.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

import numpy as np
from scipy.signal import butter, lfilter, sosfilt

KINDS = ("pluck", "subtractive", "organ", "bell", "breath")


@dataclass(frozen=True)
class ForeignSound:
    """One instrument: ``play`` renders a note at the data set's timing."""

    kind: str
    seed: int
    gain: float = 1.0  # applied to every note

    @property
    def name(self) -> str:
        return f"{self.kind}-{self.seed}"

    def play(self, note: int, velocity: int, hold: float, duration: float, rate: int) -> np.ndarray:
        rng = np.random.default_rng(self.seed)  # the instrument's own settings: the same at every note
        n = int(round(duration * rate))
        f0 = 440.0 * 2.0 ** ((note - 69) / 12)
        audio = _PLAYERS[self.kind](rng, f0, n, int(round(hold * rate)), rate)
        return (self.gain * (velocity / 127.0) * audio).astype(np.float32)


def sounds(n: int, seed: int) -> list[ForeignSound]:
    """``n`` instruments, the kinds in turn, each with its own seed."""
    return [ForeignSound(KINDS[i % len(KINDS)], seed * 1000 + i) for i in range(n)]


def _envelope(n: int, hold: int, rate: int, attack: float, decay: float, sustain: float, release: float) -> np.ndarray:
    """Linear attack, exponential decay to ``sustain``, exponential release after ``hold``."""
    t = np.arange(n) / rate
    env = np.where(t < attack, t / max(attack, 1e-4), sustain + (1 - sustain) * np.exp(-(t - attack) / decay))
    after = np.arange(n) >= hold
    at_release = env[min(hold, n - 1)]
    env[after] = at_release * np.exp(-(t[after] - hold / rate) / release)
    return env


def _harmonics(f0: float, rate: int, n: int, weights: Callable[[np.ndarray], np.ndarray],
               phase_mod: np.ndarray | None = None) -> np.ndarray:
    """Sum of the harmonics below Nyquist (band-limited: no aliasing), amplitude ``weights(k)``."""
    k = np.arange(1, int(0.45 * rate / f0) + 1)
    t = np.arange(n) / rate
    phase = 2 * np.pi * f0 * t if phase_mod is None else 2 * np.pi * np.cumsum(f0 * phase_mod) / rate
    return (weights(k)[:, None] * np.sin(k[:, None] * phase[None, :])).sum(axis=0)


def _pluck(rng: np.random.Generator, f0: float, n: int, hold: int, rate: int) -> np.ndarray:
    period = max(2, int(round(rate / f0)))
    damping = rng.uniform(0.990, 0.999)
    bright = rng.uniform(0.3, 0.9)  # low-pass of the excitation
    burst = lfilter([bright], [1, bright - 1], rng.uniform(-1, 1, period))
    out = np.zeros(n)
    line = burst.copy()
    for start in range(0, n, period):  # one period at a time: the averaging loop of Karplus and Strong
        seg = line[: min(period, n - start)]
        out[start:start + len(seg)] = seg
        line = damping * 0.5 * (line + np.roll(line, -1))
        if start >= hold:
            line *= 0.9  # the string damped at note-off
    return 0.5 * out / max(np.abs(out).max(), 1e-9)


def _subtractive(rng: np.random.Generator, f0: float, n: int, hold: int, rate: int) -> np.ndarray:
    square = rng.random() < 0.5
    raw = _harmonics(f0, rate, n, lambda k: (k % 2 == 1) / k if square else 1.0 / k)
    cutoff_env = _envelope(n, hold, rate, 0.005, rng.uniform(0.1, 0.6), rng.uniform(0.1, 0.5), 0.2)
    lo, hi = rng.uniform(2, 4) * f0, rng.uniform(8, 30) * f0
    out = np.zeros(n)
    block = 256
    zi = None
    for s in range(0, n, block):  # the filter's cutoff follows its envelope block by block
        fc = min(lo + (hi - lo) * cutoff_env[s], 0.45 * rate)
        sos = butter(2, fc, "lowpass", fs=rate, output="sos")
        if zi is None:
            zi = np.zeros((sos.shape[0], 2))
        out[s:s + block], zi = sosfilt(sos, raw[s:s + block], zi=zi)
    amp = _envelope(n, hold, rate, rng.uniform(0.002, 0.05), 0.3, rng.uniform(0.5, 0.9), rng.uniform(0.1, 0.4))
    return 0.4 * out * amp


def _organ(rng: np.random.Generator, f0: float, n: int, hold: int, rate: int) -> np.ndarray:
    footages = np.array([0.5, 1.5, 1, 2, 3, 4, 5, 6, 8])  # the drawbars' pitches, in harmonics of the 8' bar
    draw = rng.integers(0, 9, len(footages)) / 8.0
    draw[2] = max(draw[2], 0.5)
    t = np.arange(n) / rate
    out = sum(d * np.sin(2 * np.pi * f * f0 * t) for f, d in zip(footages, draw) if f * f0 < 0.45 * rate)
    amp = _envelope(n, hold, rate, 0.003, 1.0, 1.0, 0.05)
    return 0.25 * out * amp / max(draw.sum(), 1e-9) * 3


def _bell(rng: np.random.Generator, f0: float, n: int, hold: int, rate: int) -> np.ndarray:
    # Risset's bell: partial ratios, amplitudes and durations (relative), spread a little per instrument
    ratios = np.array([0.56, 0.56, 0.92, 0.92, 1.19, 1.7, 2.0, 2.74, 3.0, 3.76, 4.07])
    amps = np.array([1.0, 0.67, 1.0, 1.8, 2.67, 1.67, 1.46, 1.33, 1.33, 1.0, 1.33])
    durs = np.array([1.0, 0.9, 0.65, 0.55, 0.325, 0.35, 0.25, 0.2, 0.15, 0.1, 0.075])
    ratios = ratios * rng.uniform(0.98, 1.02, len(ratios)) + np.array([0, 1, 0, 1.7, 0, 0, 0, 0, 0, 0, 0]) / f0
    length = rng.uniform(1.0, 3.0)
    t = np.arange(n) / rate
    out = np.zeros(n)
    for r, a, d in zip(ratios, amps, durs):
        if r * f0 < 0.45 * rate:
            out += a * np.exp(-t / (d * length / 4)) * np.sin(2 * np.pi * r * f0 * t + rng.uniform(0, 2 * np.pi))
    out[hold:] *= np.exp(-(t[hold:] - hold / rate) / 0.3)
    return 0.5 * out / max(np.abs(out).max(), 1e-9)


def _breath(rng: np.random.Generator, f0: float, n: int, hold: int, rate: int) -> np.ndarray:
    t = np.arange(n) / rate
    vibrato = 1 + rng.uniform(0.002, 0.008) * np.sin(2 * np.pi * rng.uniform(4.5, 6.5) * t) * np.minimum(t / 0.4, 1)
    rolloff = rng.uniform(1.0, 2.0)
    tone = _harmonics(f0, rate, n, lambda k: k ** -rolloff, vibrato)
    band = min(max(f0 * rng.uniform(1.5, 4), 100.0), 0.4 * rate)
    sos = butter(2, [band / 1.5, min(band * 1.5, 0.45 * rate)], "bandpass", fs=rate, output="sos")
    noise = sosfilt(sos, rng.normal(0, 1, n))
    noise *= rng.uniform(0.05, 0.3) * np.abs(tone).max() / max(np.abs(noise).max(), 1e-9)
    amp = _envelope(n, hold, rate, rng.uniform(0.05, 0.25), 0.5, 0.8, rng.uniform(0.1, 0.3))
    return 0.4 * (tone + noise) * amp


_PLAYERS = {"pluck": _pluck, "subtractive": _subtractive, "organ": _organ, "bell": _bell, "breath": _breath}
