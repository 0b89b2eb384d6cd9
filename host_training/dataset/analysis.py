"""One voice in, everything the data set stores about its sound out: render at each
(note, velocity), log-mel, descriptors, level, and the pooled embedding the splits use.

Log-mel: host_training.audio.features' definition (2048-point periodic Hann STFT, hop 512,
centred, 128 Slaney mel bands 0 Hz..Nyquist), in dB re mel power 1.0 with an ABSOLUTE
floor (``floor_db``, default -80 dB) instead of features.log_mel's "80 dB under this
render's peak": the level of a note (its velocity, the voice's loudness) is information
the models must see, so every spectrogram shares one reference. For scale: a full-scale
sine gives about +16 dB in its mel band. Stored as float16 (0.03 dB steps in this range).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from dx7 import Voice
from host_training.dataset import descriptors
from host_training.audio.features import HOP, N_FFT, mel_filterbank
from host_training.audio.render import Note, Renderer

EMBED_MEL_POOL = 8  # 128 mel bands -> 16
EMBED_TIME_BINS = 8  # frames -> 8 bins


_WINDOW = (0.5 - 0.5 * np.cos(2 * np.pi * np.arange(N_FFT) / N_FFT)).astype(np.float32)


def power_spectrogram32(audio: np.ndarray) -> np.ndarray:
    """features.power_spectrogram (same centred, zero-padded periodic-Hann STFT) in float32:
    about twice as fast, and the difference (< 0.001 dB where above the floor, checked in
    tests/test_dataset_features.py) is far below the float16 storage step."""
    x = np.pad(np.asarray(audio, dtype=np.float32), N_FFT // 2)
    frames = np.lib.stride_tricks.sliding_window_view(x, N_FFT)[::HOP]
    spec = np.fft.rfft(frames * _WINDOW, axis=1)
    return spec.real**2 + spec.imag**2


@dataclass(frozen=True)
class AnalysisSettings:
    notes: tuple[tuple[int, int], ...]
    rate: int
    hold: float
    duration: float
    n_mels: int = 128
    floor_db: float = -80.0
    silence_db: float = -70.0

    @property
    def frames(self) -> int:
        return 1 + int(round(self.duration * self.rate)) // HOP


@dataclass
class VoiceAnalysis:
    features: np.ndarray  # (K, n_mels, frames) float16
    descriptors: np.ndarray  # (K, D) float32
    rms_db: np.ndarray  # (K,) float32, whole render
    embedding: np.ndarray  # (E,) float32


def embed(features: np.ndarray) -> np.ndarray:
    """Pooled multi-note log-mel (K x 16 bands x 8 time bins), from the stored float16
    features so it can be recomputed from a built data set. Distances between voices are
    RMS differences of this vector, in dB."""
    f = np.asarray(features, dtype=np.float32)
    k, m, t = f.shape
    f = f.reshape(k, m // EMBED_MEL_POOL, EMBED_MEL_POOL, t).mean(axis=2)
    bins = np.array_split(np.arange(t), EMBED_TIME_BINS)
    return np.stack([f[:, :, b].mean(axis=2) for b in bins], axis=2).reshape(-1).astype(np.float32)


def analyse(renderer: Renderer, voice: Voice, s: AnalysisSettings) -> VoiceAnalysis:
    fb = mel_filterbank(s.rate, N_FFT, s.n_mels).astype(np.float32)
    k = len(s.notes)
    feats = np.empty((k, s.n_mels, s.frames), dtype=np.float16)
    descs = np.empty((k, len(descriptors.NAMES)), dtype=np.float32)
    rms = np.empty(k, dtype=np.float32)
    transpose = int(voice.values[descriptors.TRANSPOSE_INDEX])
    for i, (note, velocity) in enumerate(s.notes):
        audio = renderer.render(voice, Note(note, velocity, s.hold, s.duration))
        power = power_spectrogram32(audio)
        mel_db = 10.0 * np.log10(np.maximum(fb @ power.T, np.float32(10 ** (s.floor_db / 10))))
        feats[i] = mel_db.astype(np.float16)
        a64 = audio.astype(np.float64)
        rms[i] = 10 * np.log10(max(float(np.mean(a64 * a64)), 1e-24))
        descs[i] = descriptors.describe(audio, power, mel_db, s.rate, N_FFT, note, transpose, s.hold,
                                        s.silence_db)
    return VoiceAnalysis(feats, descs, rms, embed(feats))
