"""Sound descriptors of one rendered note: the measurable side of the semantic tags.

Each is a plain signal measure (no learned model) so a tag can be traced back to a
number a person can check. All use the render's own spectrum; levels are dB re full
scale (1.0 = Dexed's plugin output at 0 dBFS).

loudness_db     RMS level of the held part (note-on .. hold), dBFS. Not perceptually
                weighted (no K-weighting): the tags only need an ordering.
centroid_hz     spectral centroid, frames weighted by their energy (active frames only).
rolloff_hz      frequency below which 85 % of the active frames' energy lies.
flatness        spectral flatness (geometric / arithmetic mean of power), frame energy
                weighted; 0 = pure tones, 1 = white noise.
attack_s        time from note-on until the amplitude envelope (RMS, 5.8 ms steps at
                22.05 kHz) first reaches 90 % of its peak.
decay_s         time from the envelope's peak until it first falls 20 dB below it (through
                the release); the rest of the render when it never does (censored).
flux_db         amount of movement: RMS change in dB of the level-normalised log-mel
                spectrum between consecutive active frames (level decay alone is not
                movement, a changing spectral shape is).
inharmonicity   0 for a spectrum of harmonics, ~0.5 for noise, 1 for partials exactly between
                harmonics: 2 x power-weighted mean distance of the spectral peaks of the held
                part (one long Hann FFT, <= 1.4 Hz bins) from the nearest multiple of f0/2, where f0
                is the played note including the voice's transpose. Half of f0 because DX7
                carriers often run at ratio 0.5 (a sub-octave is still harmonic).

A note whose RMS over the whole render is below the silence threshold gets NaN for every
descriptor: an absent sound has no centroid.
"""

from __future__ import annotations

import numpy as np

NAMES = ["loudness_db", "centroid_hz", "rolloff_hz", "flatness", "attack_s", "decay_s", "flux_db",
         "inharmonicity"]
ACTIVE_DB = 60.0  # frames within this many dB of the loudest frame count as active
ROLLOFF = 0.85
ENV_HOP = 128
DECAY_DB = 20.0
PEAK_RANGE_DB = 50.0  # spectral peaks within this of the highest enter inharmonicity
TRANSPOSE_INDEX = 144  # dx7 parameter index of "transpose" (24 = no transposition)


def note_f0(note: int, transpose: int) -> float:
    return 440.0 * 2.0 ** ((note + transpose - 24 - 69) / 12.0)


def _envelope(audio: np.ndarray) -> np.ndarray:
    n = len(audio) // ENV_HOP
    frames = audio[: n * ENV_HOP].astype(np.float64).reshape(n, ENV_HOP)
    return np.sqrt(np.mean(frames * frames, axis=1))


def _inharmonicity(held: np.ndarray, rate: int, f0: float) -> float:
    if len(held) < 256:
        return float("nan")
    n = 1 << int(np.ceil(np.log2(max(len(held), 2 * rate / max(f0, 1.0)))))
    n = min(max(n, 8192), 1 << 15)
    spec = np.abs(np.fft.rfft(held * np.hanning(len(held)), n=n)) ** 2
    db = 10 * np.log10(spec + 1e-30)
    lo = int(np.ceil(20.0 * n / rate))  # ignore DC and sub-audio
    core = db[lo:-1]
    is_peak = (core > db[lo - 1 : -2]) & (core >= db[lo + 1 :]) & (core > db.max() - PEAK_RANGE_DB)
    k = np.flatnonzero(is_peak) + lo
    if len(k) == 0:
        return float("nan")
    # parabolic interpolation of each peak's position in bins
    a, b, c = db[k - 1], db[k], db[k + 1]
    denom = a - 2 * b + c
    offset = np.where(np.abs(denom) > 1e-12, 0.5 * (a - c) / np.where(denom == 0, 1, denom), 0.0)
    freqs = (k + np.clip(offset, -0.5, 0.5)) * rate / n
    ratio = freqs / (f0 / 2.0)
    dist = np.abs(ratio - np.round(ratio))
    w = spec[k]
    return float(2.0 * np.sum(w * dist) / np.sum(w))


def describe(audio: np.ndarray, power: np.ndarray, mel_db: np.ndarray, rate: int, n_fft: int, note: int,
             transpose: int, hold: float, silence_db: float) -> np.ndarray:
    """Descriptors (len(NAMES),) float32 of one note. ``power`` is the (frames, n_fft//2+1)
    power spectrogram and ``mel_db`` the (n_mels, frames) log-mel of the same audio."""
    out = np.full(len(NAMES), np.nan, dtype=np.float32)
    audio = np.asarray(audio, dtype=np.float64)
    total_rms = np.sqrt(np.mean(audio * audio)) if len(audio) else 0.0
    if 20 * np.log10(max(total_rms, 1e-12)) < silence_db:
        return out
    held = audio[: max(1, int(round(hold * rate)))]
    out[0] = 10 * np.log10(max(np.mean(held * held), 1e-24))

    freqs = np.arange(power.shape[1]) * rate / n_fft
    energy = power.sum(axis=1)
    active = energy > energy.max() * 10 ** (-ACTIVE_DB / 10)
    p = power[active]
    e = energy[active]
    centroids = (p @ freqs) / e
    out[1] = np.sum(centroids * e) / e.sum()
    cum = np.cumsum(p.sum(axis=0))
    out[2] = freqs[min(int(np.searchsorted(cum, ROLLOFF * cum[-1])), len(freqs) - 1)]
    floor = power.max() * 1e-12  # keeps log() finite in digital silence between partials
    gm = np.exp(np.mean(np.log(p + floor), axis=1))
    am = np.mean(p + floor, axis=1)
    out[3] = np.sum(gm / am * e) / e.sum()

    env = _envelope(audio)
    peak_i = int(np.argmax(env))
    peak = env[peak_i]
    out[4] = (int(np.argmax(env >= 0.9 * peak)) + 1) * ENV_HOP / rate
    below = np.flatnonzero(env[peak_i:] < peak * 10 ** (-DECAY_DB / 20))
    end = below[0] if len(below) else len(env) - peak_i
    out[5] = end * ENV_HOP / rate

    shape = mel_db[:, active] - mel_db[:, active].mean(axis=0, keepdims=True)
    out[6] = float(np.sqrt(np.mean(np.diff(shape, axis=1) ** 2))) if shape.shape[1] > 1 else 0.0

    out[7] = _inharmonicity(held[int(0.05 * rate):] if len(held) > 0.1 * rate else held, rate,
                            note_f0(note, transpose))
    return out
