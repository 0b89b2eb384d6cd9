"""The register of a predicted voice (its transpose), read from the input by listening.

Why: the VAE's latent is trained to be pitch-independent (Tanaka et al.'s contrastive loss
pulls one voice's encodings at different notes together), and a voice transposed an octave
down and played an octave up sounds the same as the original, so the latent cannot hold the
transpose. The flow decodes it as 19-20 for every test voice (true: 12 or 24), a fourth or a
fifth away from both; with transpose made a one-hot group it picks 24 for 175 of 176 voices
(docs/results.md, "The register"). Where the played notes are known (evaluation, ``dxmacro
match``), the register is recovered by analysis by synthesis: the voice is rendered with
each of the five octave transposes (0, 12, 24, 36, 48; 98.0 % of the corpus sits on them) and
with its own, and the one closest to the input in log-mel is kept. The other parameters are
left as the model decoded them.

This is a host-side step: the device plays the decoder's voices as they are, and its knobs
are trained not to move the pitch (host_training.model.knob_loss).
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from dx7 import Voice
from dx7.params import param
from host_training.dataset.rendered_scores import Pool
from host_training.audio.sound import VoiceRenderer, notes_distance

REGISTERS = (0, 12, 24, 36, 48)
_TRANSPOSE = param("transpose").index


def with_transpose(params: np.ndarray, value: int) -> np.ndarray:
    out = np.array(params, dtype=np.uint8, copy=True)
    out[_TRANSPOSE] = value
    return out


def read_register(renderer: VoiceRenderer, params: np.ndarray, feats: Sequence[np.ndarray],
                  slots: Sequence[int], name: str = "REGISTER") -> tuple[np.ndarray, float]:
    """(145 DX7 values with the transpose that sounds closest to the input, that distance).

    ``feats[k]`` is the input's log-mel at note slot ``slots[k]`` (the data set's features);
    the distance is the mean absolute log-mel difference over those notes. Ties keep the
    lower transpose, and the voice's own transpose is among the candidates, so the result is
    never farther from the input than ``params``."""
    own = int(params[_TRANSPOSE])
    best: tuple[float, int] | None = None
    for value in sorted({own, *REGISTERS}):
        voice = Voice.from_parameters(with_transpose(params, value), name)
        d = notes_distance(renderer, voice, feats, slots)
        if best is None or d < best[0]:
            best = (d, value)
    return with_transpose(params, best[1]), best[0]


def read_registers(pool: Pool, params: np.ndarray, feats: np.ndarray) -> np.ndarray:
    """(N, 145) voices -> the same with each voice's register read at every note of its
    input ``feats`` (N, K, mels, frames; the data set's features), on the pool's threads."""
    slots = range(feats.shape[1])
    return np.stack(pool.map(lambda r, i: read_register(r, params[i], feats[i], slots)[0], list(range(len(params)))))
