"""Log-mel spectrograms: the one definition used to check rendering, build data sets
and evaluate models.

Settings (the foundation issue's definition): 2048-point periodic Hann STFT, hop
512, centred frames with zero padding, power spectrum, 128 Slaney-style mel bands
from 0 Hz to Nyquist (triangular, area-normalised, as librosa's default), 10*log10,
floored ``top_db`` dB under the reference's peak. Pure numpy, so no librosa/numba.
"""

from __future__ import annotations

from functools import lru_cache

import numpy as np

N_FFT = 2048
HOP = 512
N_MELS = 128
TOP_DB = 80.0


def _hz_to_mel(f: np.ndarray) -> np.ndarray:
    f = np.asarray(f, dtype=np.float64)
    lin = f / (200.0 / 3)
    log_part = 15.0 + np.log(np.maximum(f, 1e-10) / 1000.0) / (np.log(6.4) / 27.0)
    return np.where(f >= 1000.0, log_part, lin)


def _mel_to_hz(m: np.ndarray) -> np.ndarray:
    m = np.asarray(m, dtype=np.float64)
    lin = m * (200.0 / 3)
    log_part = 1000.0 * np.exp((np.log(6.4) / 27.0) * (m - 15.0))
    return np.where(m >= 15.0, log_part, lin)


@lru_cache(maxsize=16)
def mel_filterbank(sample_rate: int, n_fft: int = N_FFT, n_mels: int = N_MELS) -> np.ndarray:
    """(n_mels, n_fft // 2 + 1) Slaney mel filters."""
    fft_freqs = np.linspace(0, sample_rate / 2, n_fft // 2 + 1)
    mel_pts = np.linspace(_hz_to_mel(np.array(0.0)), _hz_to_mel(np.array(sample_rate / 2)), n_mels + 2)
    hz = _mel_to_hz(mel_pts)
    fdiff = np.diff(hz)
    ramps = hz[:, None] - fft_freqs[None, :]
    lower = -ramps[:-2] / fdiff[:-1, None]
    upper = ramps[2:] / fdiff[1:, None]
    weights = np.maximum(0, np.minimum(lower, upper))
    weights *= (2.0 / (hz[2:] - hz[:-2]))[:, None]
    weights.flags.writeable = False
    return weights


def power_spectrogram(audio: np.ndarray, n_fft: int = N_FFT, hop: int = HOP) -> np.ndarray:
    """(frames, n_fft // 2 + 1) power of a centred, zero-padded Hann STFT."""
    x = np.asarray(audio, dtype=np.float64)
    x = np.pad(x, n_fft // 2)
    n_frames = 1 + (len(x) - n_fft) // hop
    idx = np.arange(n_fft)[None, :] + hop * np.arange(n_frames)[:, None]
    window = 0.5 - 0.5 * np.cos(2 * np.pi * np.arange(n_fft) / n_fft)
    spec = np.fft.rfft(x[idx] * window, axis=1)
    return spec.real**2 + spec.imag**2


def mel_power(audio: np.ndarray, sample_rate: int, n_mels: int = N_MELS) -> np.ndarray:
    """(n_mels, frames) mel power."""
    return mel_filterbank(sample_rate, N_FFT, n_mels) @ power_spectrogram(audio).T


def log_mel(audio: np.ndarray, sample_rate: int, *, ref_peak: float | None = None, top_db: float = TOP_DB,
            n_mels: int = N_MELS) -> np.ndarray:
    """(n_mels, frames) log-mel in dB. Values below ``peak - top_db`` are floored, where
    the peak is ``ref_peak`` (to compare two renders against the same reference) or this
    spectrogram's own maximum."""
    mel_db = 10.0 * np.log10(np.maximum(mel_power(audio, sample_rate, n_mels), 1e-20))
    peak = float(mel_db.max()) if ref_peak is None else ref_peak
    return np.maximum(mel_db, peak - top_db)


def log_mel_difference(candidate: np.ndarray, reference: np.ndarray, sample_rate: int) -> np.ndarray:
    """|dB difference| per mel bin and frame, both floored 80 dB under the reference's peak."""
    return sounding_difference(candidate, reference, sample_rate)[0]


def sounding_difference(candidate: np.ndarray, reference: np.ndarray,
                        sample_rate: int) -> tuple[np.ndarray, np.ndarray]:
    """``log_mel_difference`` and a mask of the bins and frames where either render sounds
    (above the floor). Why: where both are floored the difference is 0 whatever the two
    voices are, so a median over every bin measures how much of the spectrogram a sound
    leaves silent as well as how far the two renders differ (docs/results.md)."""
    ref = log_mel(reference, sample_rate)
    floor = float(ref.max()) - TOP_DB
    cand = log_mel(candidate, sample_rate, ref_peak=float(ref.max()))
    frames = min(ref.shape[1], cand.shape[1])
    ref, cand = ref[:, :frames], cand[:, :frames]
    return np.abs(cand - ref), (ref > floor) | (cand > floor)


def rms_db(audio: np.ndarray) -> float:
    """Level in dB full scale (RMS); -inf-safe floor at -200 dB."""
    rms = float(np.sqrt(np.mean(np.square(np.asarray(audio, dtype=np.float64))))) if len(audio) else 0.0
    return 20.0 * np.log10(max(rms, 1e-10))
