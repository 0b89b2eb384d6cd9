"""Real tag scores of any voices: render them with Dexed at the data set's notes, describe the
audio with the data set's own descriptor code and rank the scores against the data set.

Why: the knob sweep loss (host_training.model.knob_loss) reads tag scores through a surrogate MLP,
and a surrogate fitted only on the corpus's voices is wrong exactly where the head's knob
sweeps go. Measured on the tiny run (docs/results.md): the surrogate read a perfectly rising
own score (Spearman +1.00) along every knob's sweeps, while the rendered sweeps of three
knobs rose 0.26, 0.01 and -0.07. The trainer therefore renders a sample of the head's own
knob voices every epoch and refits the surrogate on them (``surrogate_render_voices``);
``dxmacro evaluate`` uses the same code for its knob figures.
"""

from __future__ import annotations

import threading
import warnings
from concurrent.futures import ThreadPoolExecutor
from typing import Callable

import numpy as np

from dx7 import Voice
from host_training.audio.sound import SILENCE_DB, RenderSettings, VoiceRenderer, features_of


class Pool:
    """Threads that render (dexed-py releases the GIL), one renderer per thread."""

    def __init__(self, settings: RenderSettings, threads: int) -> None:
        self.settings, self.local = settings, threading.local()
        self.ex = ThreadPoolExecutor(max(1, threads))

    def renderer(self) -> VoiceRenderer:
        if not hasattr(self.local, "r"):
            self.local.r = VoiceRenderer(self.settings)
        return self.local.r

    def map(self, fn: Callable, items: list) -> list:
        return list(self.ex.map(lambda it: fn(self.renderer(), it), items))


def descriptor_fn(settings: RenderSettings) -> Callable[[Voice, list[np.ndarray]], np.ndarray]:
    """Renders -> (K, D) descriptors with the data set's own definitions; tag scores are then
    computed with the data set's ``tags.scores`` over many voices at once (some scores are
    percentile ranks, which need the whole population)."""
    from host_training.dataset import descriptors
    from host_training.audio.features import N_FFT, power_spectrogram

    def fn(voice: Voice, audios: list[np.ndarray]) -> np.ndarray:
        desc = []
        for k, a in enumerate(audios):
            mel_db, _ = features_of(a, settings.rate)
            power = power_spectrogram(a, N_FFT)
            desc.append(descriptors.describe(a, power, mel_db, settings.rate, N_FFT, settings.notes[k][0],
                                             int(voice.values[descriptors.TRANSPOSE_INDEX]), settings.hold,
                                             SILENCE_DB))
        return np.array(desc, dtype=np.float32)

    return fn


class ScoreRenderer:
    """DX7 parameter arrays -> tag scores as ranks in [-1, 1] against the data set's voices,
    on the same scale as ``knob_loss.score_targets`` gives the data set itself."""

    def __init__(self, settings: RenderSettings, dataset_descriptors: np.ndarray, n_scores: int, threads: int) -> None:
        self.pool = Pool(settings, threads)
        self.describe = descriptor_fn(settings)
        self.reference = np.asarray(dataset_descriptors, dtype=np.float64)
        self.n_scores = n_scores
        # each score's finite values over the data set, sorted: what a new voice is ranked in
        # (the data set alone, as knob_loss.score_targets ranks it)
        ref = self._raw(self.reference)
        self.sorted_ref = [np.sort(col[np.isfinite(col)]) for col in ref.T]

    def _raw(self, desc: np.ndarray) -> np.ndarray:
        from host_training.dataset import tags

        with np.errstate(all="ignore"), warnings.catch_warnings():
            warnings.simplefilter("ignore", RuntimeWarning)  # all-NaN rows are silent voices
            return tags.scores(desc)[:, : self.n_scores]

    def descriptors(self, params: np.ndarray) -> np.ndarray:
        """(N, 145) DX7 values -> (N, K, D) descriptors of their renders."""
        def one(r: VoiceRenderer, p: np.ndarray) -> np.ndarray:
            v = Voice.from_parameters(p, "PROBE")
            return self.describe(v, r.all_notes(v))

        return np.stack(self.pool.map(one, list(params)))

    def scores(self, params: np.ndarray) -> np.ndarray:
        """(N, n_scores) float32 ranks (NaN where a voice is silent at every note)."""
        return self.rank(self.descriptors(params))

    def rank(self, desc: np.ndarray) -> np.ndarray:
        """(N, K, D) descriptors of rendered voices -> (N, n_scores) ranks against the data set."""
        desc = np.asarray(desc, dtype=np.float64)
        n_ref = len(self.reference)
        # Some scores rank a descriptor inside the population they are computed over
        # ("aggressive"): a probe's is computed beside the data set and a few other probes (at
        # most 1 % more voices), so the probes barely move one another's ranks.
        chunk = max(1, n_ref // 100)
        raw = np.concatenate([self._raw(np.concatenate([self.reference, desc[c : c + chunk]]))[n_ref:]
                              for c in range(0, len(desc), chunk)])
        out = np.full((len(desc), self.n_scores), np.nan, dtype=np.float32)
        for j, ref in enumerate(self.sorted_ref):
            new = raw[:, j]
            ok = np.isfinite(new)
            if len(ref) >= 2 and ok.any():
                # a value tied with reference voices gets the middle of their ranks
                mid = np.searchsorted(ref, new[ok], side="left") + np.searchsorted(ref, new[ok], side="right") - 1
                rank = 0.5 * mid / (len(ref) - 1)
                out[ok, j] = 2.0 * np.clip(rank, 0.0, 1.0) - 1.0
        return out
