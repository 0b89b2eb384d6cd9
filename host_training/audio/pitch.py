"""The note a recording plays, heard from its spectrum.

`dxmacro match` renders every candidate voice and compares it with the recording, so it has to
render them at the recording's note; a recording need not be at one of the data set's notes.
Subharmonic summation (Hermes, 1988): each candidate fundamental scores the weighted sum of the
spectrum's peaks at its harmonics, the h-th weighted 0.84^(h-1), so a fundamental whose
harmonics are all there beats its octave below (which adds nothing at the odd harmonics) and
its octave above (which misses the odd ones). FM voices are often inharmonic, so the result is a
guess, right to the pitch class for 83-92 % of 24 test voices at six notes
(docs/model.md, "Recordings: the note"); the octave is left to the register step.
"""

from __future__ import annotations

import numpy as np

LOWEST, HIGHEST = 24, 108  # MIDI notes searched (C1..C8)
STEP = 0.25  # semitones between candidate fundamentals
HARMONICS = 12
WEIGHT = 0.84  # of each harmonic over the one below (Hermes's value)
WINDOW_S = 0.5  # of the note read, from its start
TOLERANCE = 0.25  # semitones either side of a harmonic where its peak is looked for
FFT_SIZE = 1 << 15


def sounding_note(note: np.ndarray, rate: int) -> float:
    """The MIDI note (fractional) whose harmonics the spectrum of the first WINDOW_S of
    ``note`` (samples from the onset on) holds most strongly."""
    seg = np.asarray(note[: int(WINDOW_S * rate)], dtype=np.float64)
    if len(seg) < 2:
        raise ValueError("too short to hear a note")
    spec = np.abs(np.fft.rfft(seg * np.hanning(len(seg)), max(FFT_SIZE, len(seg))))
    freqs = np.fft.rfftfreq(max(FFT_SIZE, len(seg)), 1.0 / rate)
    candidates = np.arange(LOWEST, HIGHEST + STEP / 2, STEP)
    scores = np.zeros(len(candidates))
    for h in range(1, HARMONICS + 1):
        f = h * 440.0 * 2.0 ** ((candidates - 69) / 12)
        lo = np.searchsorted(freqs, f * 2.0 ** (-TOLERANCE / 12))
        hi = np.searchsorted(freqs, f * 2.0 ** (TOLERANCE / 12))
        inside = f < rate / 2
        band = np.array([spec[a:b + 1].max() if ok and b >= a else 0.0 for a, b, ok in zip(lo, hi, inside)])
        scores += WEIGHT ** (h - 1) * band
    return float(candidates[int(np.argmax(scores))])
