"""A voice edited by the change between two others: what relative knobs play.

``relative_voice(voice, at_base, moved)``: a continuous parameter is ``voice + (moved - at_base)``,
clipped to its range. What the performer chose the voice for stays the voice's own:

* every categorical parameter (algorithm, waveforms, curves, oscillator modes, sync): the
  decoder's choice flips between near-equal logits, and a flip swaps the voice's structure for
  the decoder's (a jump of several dB between two knob positions, docs/results.md);
* the pitch a player hears: transpose, the pitch EG, and each carrier's coarse and fine frequency
  under the voice's algorithm (dx7.algorithms). A knob that retunes a carrier is a register jump,
  which the knob reports found in 3-8 % of sweeps before this rule and cannot find after it.
  Modulators' frequencies and every carrier's detune remain the knobs' to move (timbre).

The device plays it (device.control.relative: at_base and moved are the decoder's voices at the
chosen voice's latent and at the knob-moved one) and the host's knob report measures it; the
training objective's view of it is host_training.model.knob_loss.relative_view.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from dx7.algorithms import CARRIERS
from dx7.layout import categorical_groups
from dx7.params import HIGHS, LEARNABLE_COUNT, param

_HIGHS = np.array(HIGHS[:LEARNABLE_COUNT], dtype=np.int64)
_CATEGORICAL = np.zeros(LEARNABLE_COUNT, dtype=bool)
_CATEGORICAL[[g.param for g in categorical_groups()]] = True
PITCH_PARAMS = ("transpose",) + tuple(f"pitch_eg_{k}{i}" for k in ("rate", "level") for i in range(1, 5))
PITCH = np.zeros(LEARNABLE_COUNT, dtype=bool)
PITCH[[param(n).index for n in PITCH_PARAMS]] = True
_ALGORITHM = param("algorithm").index
# per algorithm (row), the parameters that set its carriers' frequencies
CARRIER_TUNING = np.zeros((len(CARRIERS), LEARNABLE_COUNT), dtype=bool)
for _a, _ops in enumerate(CARRIERS):
    CARRIER_TUNING[_a, [param(f"op{n}_{f}").index for n in _ops for f in ("freq_coarse", "freq_fine")]] = True


def held(voice: np.ndarray) -> np.ndarray:
    """(145,) bool: the parameters of ``voice`` that relative knobs never change."""
    return _CATEGORICAL | PITCH | CARRIER_TUNING[int(voice[_ALGORITHM])]


def relative_voice(voice: np.ndarray, at_base: np.ndarray, moved: np.ndarray) -> np.ndarray:
    """The 145 values of ``voice`` changed as the decoder's output changes from ``at_base``
    (decode(z_base)) to ``moved`` (decode(z_moved)); all three are DX7 values."""
    voice, at_base, moved = (np.asarray(a, dtype=np.int64) for a in (voice, at_base, moved))
    out = np.clip(voice + (moved - at_base), 0, _HIGHS)
    return np.where(held(voice), voice, out)


def tuned_voice(voice: np.ndarray, at_base: np.ndarray,
                moves: Sequence[tuple[np.ndarray, np.ndarray | None]]) -> np.ndarray:
    """Several knobs at once, each passing on only the parameters tuned for this voice: ``voice``
    plus, for every ``(moved, mask)``, the decoder's change from ``at_base`` to ``moved`` (the
    latent with that one knob's dimension moved) where ``mask`` (145 bool; None: every parameter)
    allows it; clipped, and what relative knobs hold kept. One knob with mask None is
    :func:`relative_voice`. Why per knob: a mask says which changes carry that knob's sound on this
    voice (host_training.jobs.knob_tune); a joint decode would mix the knobs' changes."""
    voice, at_base = np.asarray(voice, dtype=np.int64), np.asarray(at_base, dtype=np.int64)
    out = voice.copy()
    for moved, mask in moves:
        change = np.asarray(moved, dtype=np.int64) - at_base
        out += change if mask is None else np.where(mask, change, 0)
    return np.where(held(voice), voice, np.clip(out, 0, _HIGHS))
