"""A recording's own timing: every candidate is judged by rendering it as the recording was played.

Why: the data set renders every voice held 1.5 s in 2.0 s, but a recording is held as long as the
player held it and lasts as long as the file. Judged on the data set's grid, a note held 0.5 s
reads as a voice that dies early, and one held 3 s is cut before its release: the voice that
matches the grid is not the voice that was played. So a recording is read as (note-on, note-off,
end): the note-on is its onset (host_training.audio.onset; every candidate is heard from its own,
``played``), the end is the file's, and the note-off (the release start) is read from the sound
(host_training.audio.release) unless the user gives it (``--hold``), then checked by listening
(``read_hold``: the hold at which the best candidates render closest, a few hundred renders; kept
where one fits much closer there, ``match.NEAR_COPY_DB`` and ``match.LISTENED_SHARE``). The
retrieval compares only the frames both the recording and the data set's render hold the key
for (``shared_columns``), so it does not depend on the hold either (docs/model.md, "Match:
timing").
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass, replace
from functools import lru_cache

import numpy as np
import torch
from numpy.lib.stride_tricks import sliding_window_view

from dx7 import Voice
from host_training.audio.features import HOP, N_FFT, mel_filterbank
from host_training.audio.onset import find_onset
from host_training.audio.render import DexedRenderer, Note
from host_training.audio.sound import FLOOR_DB, RenderSettings, mel_distance
from host_training.model.baselines import Retrieval, retrieval_features

HOLD_STEP_S = 0.15  # the coarse grid of note-off times tried
HOLD_TIE_DB = 0.1  # note-offs this close to the best fit are one fit: the earliest is kept
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
    lead: float = 0.0  # seconds of the file before the note was heard: how late a voice may start (``played``)

    def at(self, note: int | None = None, hold: float | None = None) -> Take:
        return replace(self, note=self.note if note is None else note,
                       hold=self.hold if hold is None else min(hold, self.length))


def played(renderer: DexedRenderer, params: np.ndarray, take: Take) -> np.ndarray:
    """The voice played as the take was, from where it is first heard (``find_onset``, as the
    recording was read) but no later than the file lets it start: its note-on may lie as far
    before the recording's onset as the file has room (``take.lead``), no farther. So a voice
    that sounds 70 ms after its note-on (LFO-gated) lines up with a recording of itself made from
    its note-on, and a voice silent for 0.2 s is not judged against one heard at once in a file
    that starts with it (the delay would pass unheard). The key is held and the render lasts as
    much longer. Most voices sound at once: one render; the late ones need a second."""
    voice = Voice.from_parameters(np.asarray(params, dtype=np.uint8), "JUDGE")
    audio = renderer.render(voice, Note(take.note, take.velocity, take.hold, take.length))
    room = int(take.lead * renderer.sample_rate)
    if room == 0:  # a file that starts with its note (the usual case): no onset to read
        return audio
    start = min(find_onset(audio, renderer.sample_rate).start, room)
    if start == 0:
        return audio
    late = start / renderer.sample_rate
    return renderer.render(voice, Note(take.note, take.velocity, take.hold + late, take.length + late))[start:]


def distance(renderer: DexedRenderer, params: np.ndarray, take: Take) -> float:
    """Mean absolute log-mel difference (dB) between the voice played as the take was
    (``played``) and the take, over the take's own length: what `match` minimises and prints."""
    return mel_distance(fast_logmel(played(renderer, params, take), renderer.sample_rate), take.feat)


@lru_cache(maxsize=4)
def _window_and_bank(rate: int) -> tuple[np.ndarray, np.ndarray]:
    window = (0.5 - 0.5 * np.cos(2 * np.pi * np.arange(N_FFT) / N_FFT)).astype(np.float32)
    return window, mel_filterbank(rate, N_FFT).astype(np.float32)


def fast_logmel(audio: np.ndarray, rate: int) -> np.ndarray:
    """``sound.features_of``'s log-mel in float32 on a strided view: 4-5 times faster (the STFT,
    not the render, is most of a judgement). A distance over it is within 0.001 dB of one over
    ``features_of`` (a cell within a few hundredths of a dB, far under the floor's float32 steps)."""
    import scipy.fft

    window, bank = _window_and_bank(rate)
    x = np.pad(np.asarray(audio, dtype=np.float32), N_FFT // 2)
    spec = scipy.fft.rfft(sliding_window_view(x, N_FFT)[::HOP] * window, axis=1)
    power = spec.real ** 2 + spec.imag ** 2
    return 10.0 * np.log10(np.maximum(bank @ power.T, np.float32(10 ** (FLOOR_DB / 10))))


def takes_distance(renderer: DexedRenderer, params: np.ndarray, takes: Sequence[Take]) -> float:
    """Mean ``distance`` over several recordings of one sound."""
    return float(np.mean([distance(renderer, params, t) for t in takes]))


def hold_grid(length: float, step: float = HOLD_STEP_S) -> np.ndarray:
    """Coarse note-off times: every ``step`` from ``step`` on, and the end (no release heard)."""
    return np.unique(np.round(np.append(np.arange(step, length, step), length), 4))


def read_hold(renderer: DexedRenderer, candidates: Sequence[np.ndarray], take: Take,
              deadline: float = float("inf")) -> tuple[float, float]:
    """(note-off time, the best distance there): the hold at which one of ``candidates`` renders
    closest to ``take``. Coarse grid (``hold_grid``) over every candidate, then one STFT hop at a
    time within a step of the best for the best candidate. Of the holds within HOLD_TIE_DB of the
    best the earliest is kept: a note-off after the sound has died is not heard, and a later one
    would let a voice that dies while held pass for one whose release is long. Past ``deadline``
    the search stops where it is: one hold at least is judged, and in the fine search the best
    coarse one and the end, then the nearest holds first."""
    scores = []
    for i, p in enumerate(candidates):
        for h in hold_grid(take.length):
            if scores and time.monotonic() > deadline:
                break
            scores.append((distance(renderer, p, take.at(hold=float(h))), float(h), i))
    d0 = min(s[0] for s in scores)
    around, _, j = min((h, d, i) for d, h, i in scores if d <= d0 + HOLD_TIE_DB)
    hop = HOP / renderer.sample_rate
    fine = np.arange(around - HOLD_STEP_S, around + HOLD_STEP_S + hop / 2, hop)
    fine = fine[(fine > 0) & (fine < take.length)]
    fine = [around, take.length] + sorted(fine.tolist(), key=lambda h: abs(h - around))
    scores = []
    for k, h in enumerate(fine):
        if k >= 2 and time.monotonic() > deadline:
            break
        scores.append((distance(renderer, candidates[j], take.at(hold=float(h))), float(h)))
    d0 = min(s[0] for s in scores)
    hold, d = min((h, d) for d, h in scores if d <= d0 + HOLD_TIE_DB)
    return hold, d


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
