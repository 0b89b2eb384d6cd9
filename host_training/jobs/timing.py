"""A recording's own timing: every candidate is judged by rendering it as the recording was played.

Why: the data set renders every voice held 1.5 s in 2.0 s, but a recording is held as long as the
player held it and lasts as long as the file. Judged on the data set's grid, a note held 0.5 s
reads as a voice that dies early, and one held 3 s is cut before its release: the voice that
matches the grid is not the voice that was played. So a recording is read as (note-on, note-off,
end): the note-on is its onset (``match.find_onset``), the end is the file's, and the note-off
(the release start) is read by listening (``read_hold``: the hold at which the nearest candidates
render closest, which costs a few hundred renders) unless the user gives it (``--hold``). The
retrieval compares only the frames both the recording and the data set's render hold the key
for (``shared_columns``), so it does not depend on the hold either (docs/model.md, "Match:
timing").
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import torch

from dx7 import Voice
from host_training.audio.features import HOP, N_FFT
from host_training.audio.render import DexedRenderer, Note
from host_training.audio.sound import RenderSettings, features_of
from host_training.model.baselines import Retrieval, retrieval_features

HOLD_STEP_S = 0.1  # the coarse grid of note-off times tried
SAFE_HOLD_S = 0.3  # frames before this are compared while the hold is not known yet


@dataclass(frozen=True)
class Take:
    """One recording as it is judged: its log-mel over its own length, played at ``note`` and
    ``velocity``, the key held ``hold`` seconds of ``length`` (hold = length: no release heard)."""

    feat: np.ndarray  # (n_mels, frames) log-mel from the note-on to the end
    note: int
    velocity: int
    length: float
    hold: float

    def at(self, note: int | None = None, hold: float | None = None) -> Take:
        return Take(self.feat, self.note if note is None else note, self.velocity, self.length,
                    self.hold if hold is None else min(hold, self.length))


def distance(renderer: DexedRenderer, params: np.ndarray, take: Take) -> float:
    """Mean absolute log-mel difference (dB) between the voice rendered at the take's note and
    timing and the take, over the take's own length: what `match` minimises and prints."""
    voice = Voice.from_parameters(np.asarray(params, dtype=np.uint8), "JUDGE")
    audio = renderer.render(voice, Note(take.note, take.velocity, take.hold, take.length))
    f = features_of(audio, renderer.sample_rate)[0]
    t = min(f.shape[1], take.feat.shape[1])
    return float(np.mean(np.abs(f[:, :t] - take.feat[:, :t])))


def takes_distance(renderer: DexedRenderer, params: np.ndarray, takes: Sequence[Take]) -> float:
    """Mean ``distance`` over several recordings of one sound."""
    return float(np.mean([distance(renderer, params, t) for t in takes]))


def hold_grid(length: float, step: float = HOLD_STEP_S) -> np.ndarray:
    """Coarse note-off times: every ``step`` from ``step`` on, and the end (no release heard)."""
    return np.unique(np.round(np.append(np.arange(step, length, step), length), 4))


def read_hold(renderer: DexedRenderer, candidates: Sequence[np.ndarray], take: Take,
              around: float | None = None) -> tuple[float, float]:
    """(note-off time, the best distance there): the hold at which one of ``candidates`` renders
    closest to ``take``. Coarse grid (``hold_grid``) over every candidate, then one STFT hop at a
    time within a step of the best for the best candidate; ``around``: only that fine search,
    about ``around``."""
    best = (np.inf, take.length, 0)
    if around is None:
        for j, p in enumerate(candidates):
            for h in hold_grid(take.length):
                d = distance(renderer, p, take.at(hold=float(h)))
                if d < best[0]:
                    best = (d, float(h), j)
        around = best[1]
    hop = HOP / renderer.sample_rate
    fine = np.arange(around - HOLD_STEP_S, around + HOLD_STEP_S + hop / 2, hop)
    for h in np.append(fine[(fine > 0) & (fine < take.length)], take.length):
        d = distance(renderer, candidates[best[2]], take.at(hold=float(h)))
        if d < best[0]:
            best = (d, float(h), best[2])
    return best[1], best[0]


def shared_columns(end_s: float, settings: RenderSettings, pool: int) -> int:
    """Pooled time columns of the retrieval grid whose STFT frames lie wholly before ``end_s``
    and before the data set's own note-off: the part of the note both hold the key for."""
    end = min(end_s, settings.hold, settings.duration)
    frames = int((end * settings.rate - N_FFT // 2) // HOP) + 1
    return max(1, frames // pool)


def nearest_voices(retrieval: Retrieval, heard: Sequence[np.ndarray], columns: int | None, k: int) -> np.ndarray:
    """Indices of the ``k`` training voices nearest to the notes ``heard`` (log-mel on the data
    set's grid), each note against the voice's nearest note slot, over the first ``columns``
    pooled time columns (None: all; ``shared_columns``). Squared distances summed over notes."""
    n, slots, d = retrieval.db.shape
    m = heard[0].shape[0] // retrieval.pool
    db = retrieval.db.reshape(n, slots, m, -1)
    cols = db.shape[-1] if columns is None else min(columns, db.shape[-1])
    db = db[..., :cols]
    total = torch.zeros(n)
    for h in heard:
        q = torch.from_numpy(retrieval_features(np.asarray(h)[None, None], retrieval.pool))[0, 0]
        q = q.reshape(m, -1)[:, :cols]
        total += ((db - q) ** 2).sum((2, 3)).min(1).values
    return torch.topk(total, min(k, n), largest=False).indices.numpy()
