"""Rendering voices the way the data set did, and the audio measures evaluation reports.

Features follow the data set's convention (host_training.dataset.analysis): log-mel in dB
re mel power 1.0 with an absolute floor, so a model sees renders and recordings on the
scale it was trained on.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from dx7 import Voice
from host_training.audio.features import HOP, N_FFT, mel_filterbank, power_spectrogram
from host_training.audio.render import DexedRenderer, Note

FLOOR_DB = -80.0
SILENCE_DB = -60.0


@dataclass(frozen=True)
class RenderSettings:
    notes: tuple[tuple[int, int], ...]
    rate: int
    hold: float
    duration: float

    @classmethod
    def from_manifest(cls, settings: dict[str, Any]) -> RenderSettings:
        notes = tuple((int(n), int(v)) for n, v in settings["notes"])
        return cls(notes, int(settings["rate"]), float(settings["hold"]), float(settings["duration"]))

    def note(self, k: int) -> Note:
        n, v = self.notes[k]
        return Note(n, v, self.hold, self.duration)


def mel_power(audio: np.ndarray, rate: int, n_mels: int = 128) -> tuple[np.ndarray, np.ndarray]:
    """(mel power (n_mels, frames), power spectrogram (frames, bins)): the features before
    the log and the floor, where a gain is a product and a noise floor a sum."""
    power = power_spectrogram(audio, N_FFT, HOP)
    return mel_filterbank(rate, N_FFT, n_mels) @ power.T, power


def to_db(mel: np.ndarray) -> np.ndarray:
    """Mel power -> dB with the data set's absolute floor."""
    return 10.0 * np.log10(np.maximum(mel, 10 ** (FLOOR_DB / 10)))


def features_of(audio: np.ndarray, rate: int, n_mels: int = 128) -> tuple[np.ndarray, np.ndarray]:
    """(log-mel (n_mels, frames) dB with the absolute floor, power spectrogram (frames, bins))."""
    mel, power = mel_power(audio, rate, n_mels)
    return to_db(mel), power


def features_level_db(features: np.ndarray) -> np.ndarray:
    """Level (dB) of log-mel features (..., n_mels, frames): the mean over frames of the
    frame's summed mel power. A gain of g dB on a sound well over the floor adds g to it."""
    x = np.asarray(features)
    x = x.astype(np.result_type(x.dtype, np.float32), copy=False)  # float16 would lose the floor's power
    return 10.0 * np.log10(np.mean(np.sum(10.0 ** (x / 10.0), axis=-2), axis=-1))


def gain_to_level(notes: Sequence[np.ndarray], rate: int, level_db: float) -> float:
    """The gain that brings a sound's ``notes`` (audio), on average, to ``level_db`` on
    ``features_level_db``'s scale: a sound from elsewhere brought to the data set's level."""
    own = float(np.mean([features_level_db(features_of(a, rate)[0]) for a in notes]))
    return float(10 ** ((level_db - own) / 20))


def mean_mel_power(audio: np.ndarray, rate: int, n_mels: int = 128) -> np.ndarray:
    """(n_mels,) mean mel power over the STFT frames that lie wholly inside ``audio`` (at
    least N_FFT samples): the zero-padded frames at the edges would read the level low."""
    x = np.asarray(audio, dtype=np.float64)
    if len(x) < N_FFT:
        raise ValueError(f"{len(x)} samples: a mean mel power needs {N_FFT}")
    first = -(-(N_FFT // 2) // HOP)  # frame i spans samples i * HOP -+ N_FFT / 2
    last = (len(x) - N_FFT // 2) // HOP
    inner = power_spectrogram(x, N_FFT, HOP)[first:last + 1]
    return mel_filterbank(rate, N_FFT, n_mels) @ inner.mean(axis=0)


def level_db(audio: np.ndarray) -> float:
    a = np.asarray(audio, dtype=np.float64)
    return float(10 * np.log10(max(float(np.mean(a * a)), 1e-24)))


class VoiceRenderer:
    """Renders a voice at the data set's notes, caching nothing (one per thread)."""

    def __init__(self, settings: RenderSettings) -> None:
        self.s = settings
        self.r = DexedRenderer(settings.rate)

    def audio(self, voice: Voice, k: int) -> np.ndarray:
        return self.r.render(voice, self.s.note(k))

    def all_notes(self, voice: Voice) -> list[np.ndarray]:
        return [self.audio(voice, k) for k in range(len(self.s.notes))]


def mel_distance(a: np.ndarray, b: np.ndarray) -> float:
    """Mean absolute difference (dB) of two log-mels (n_mels, frames) over the frames both have:
    the distance every match candidate is judged by."""
    t = min(a.shape[1], b.shape[1])
    return float(np.mean(np.abs(a[:, :t] - b[:, :t])))


def feature_distance(renderer: VoiceRenderer, voice: Voice, feat: np.ndarray, k: int) -> float:
    """``mel_distance`` between ``voice`` rendered at note slot ``k`` and ``feat`` (features in the
    data set's convention, e.g. a recording's): what the matcher and the register search minimise."""
    return mel_distance(features_of(renderer.audio(voice, k), renderer.s.rate)[0], feat)


def notes_distance(renderer: VoiceRenderer, voice: Voice, feats: Sequence[np.ndarray], slots: Sequence[int]) -> float:
    """Mean of ``feature_distance`` over the notes ``feats[i]`` at note slots ``slots[i]``:
    how the register search and the matcher judge a voice against several notes."""
    return float(np.mean([feature_distance(renderer, voice, f, k) for f, k in zip(feats, slots)]))


def mfcc(mel_db: np.ndarray, n: int) -> np.ndarray:
    """(n, frames) MFCCs: orthonormal DCT-II of the dB log-mel over the mel axis."""
    from scipy.fft import dct

    return dct(mel_db, type=2, norm="ortho", axis=0)[:n]


def aligned_spectra(candidate: np.ndarray, reference: np.ndarray,
                    rate: int) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """(log-mel of candidate, of reference, magnitude spectrogram of candidate, of reference),
    cut to the frames both have: what the audio measures compare."""
    mc, pc = features_of(candidate, rate)
    mr, pr = features_of(reference, rate)
    f = min(mc.shape[1], mr.shape[1])
    return mc[:, :f], mr[:, :f], np.sqrt(pc[:f]), np.sqrt(pr[:f])


def compare(candidate: np.ndarray, reference: np.ndarray, rate: int) -> dict[str, float]:
    """Audio measures of one render against its reference (same note)."""
    mc, mr, mag_c, mag_r = aligned_spectra(candidate, reference, rate)
    # undefined for a silent reference (division by ~0): NaN, left out of the summaries
    sc = (float(np.linalg.norm(mag_r - mag_c) / np.linalg.norm(mag_r)) if level_db(reference) >= SILENCE_DB
          else float("nan"))
    return {"spectral_convergence": sc, "logmel_mae_db": float(np.mean(np.abs(mc - mr))),
            "mfcc13_mae": float(np.mean(np.abs(mfcc(mc, 13) - mfcc(mr, 13)))),
            "mfcc40_mae": float(np.mean(np.abs(mfcc(mc, 40) - mfcc(mr, 40))))}


def param_measures(pred: np.ndarray, true: np.ndarray) -> dict[str, float]:
    """Numeric parameter MAE in DX7 units, categorical accuracy and the transpose error in
    semitones of one voice (the transpose on its own because every note follows it: a voice
    an octave off is wrong at every note, whatever its timbre)."""
    from dx7.layout import categorical_groups
    from dx7.params import param

    cat = np.array([s.param for s in categorical_groups()])
    num = np.setdiff1d(np.arange(len(true)), cat)
    p, t = np.asarray(pred, dtype=np.float64), np.asarray(true, dtype=np.float64)
    if np.isnan(t).any():  # a sound no DX7 voice made (the evaluation's "foreign" stratum)
        return {"param_mae": float("nan"), "categorical_acc": float("nan"), "transpose_error": float("nan")}
    tr = param("transpose").index
    return {"param_mae": float(np.mean(np.abs(p[num] - t[num]))), "categorical_acc": float(np.mean(p[cat] == t[cat])),
            "transpose_error": float(abs(p[tr] - t[tr]))}
