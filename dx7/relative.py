"""A voice edited by the change between two others: what relative knobs play.

``relative_voice(voice, at_base, moved)``: a continuous parameter is ``voice + (moved - at_base)``,
clipped to its range; a categorical one (algorithm, waveform, curve, oscillator mode, sync) keeps
the voice's value unless ``moved`` chose another than ``at_base``, then takes ``moved``'s. The
device plays it (device.control.relative: at_base and moved are the decoder's voices at the
chosen voice's latent and at the knob-moved one) and the host's knob report measures it.
"""

from __future__ import annotations

import numpy as np

from dx7.layout import categorical_groups
from dx7.params import HIGHS, LEARNABLE_COUNT

_HIGHS = np.array(HIGHS[:LEARNABLE_COUNT], dtype=np.int64)
_CATEGORICAL = np.zeros(LEARNABLE_COUNT, dtype=bool)
_CATEGORICAL[[g.param for g in categorical_groups()]] = True


def relative_voice(voice: np.ndarray, at_base: np.ndarray, moved: np.ndarray) -> np.ndarray:
    """The 145 values of ``voice`` changed as the decoder's output changes from ``at_base``
    (decode(z_base)) to ``moved`` (decode(z_moved)); all three are DX7 values."""
    voice, at_base, moved = (np.asarray(a, dtype=np.int64) for a in (voice, at_base, moved))
    out = np.clip(voice + (moved - at_base), 0, _HIGHS)
    return np.where(_CATEGORICAL, np.where(moved != at_base, moved, voice), out)
