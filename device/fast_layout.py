"""dx7.layout.decode, vectorised for the control loop.

dx7.layout.decode loops over the 22 one-hot groups in Python: about 0.6-1 ms per voice
on this machine, a fifth of the ADC's whole scan period. This does the same with one
gather into a padded (groups x widest) table and one argmax (tens of microseconds).
It must agree with dx7.layout.decode bit for bit (tests/test_device_decoder.py checks
it on random and adversarial vectors); dx7.layout stays the definition.
"""

from __future__ import annotations

import numpy as np

from dx7 import layout
from dx7.errors import DX7Error
from dx7.params import LEARNABLE_COUNT, PARAMS

_SCALED = layout.scaled_slots()
_GROUPS = layout.categorical_groups()
_SCALED_PARAMS = np.array([s.param for s in layout.SLOTS if not s.categorical])
_HIGH = np.array([PARAMS[p].high for p in _SCALED_PARAMS], dtype=np.float32)
_GROUP_PARAMS = np.array([g.param for g in _GROUPS])
_FMAX = np.finfo(np.float32).max
_WIDEST = max(g.width for g in _GROUPS)
# Index table into the vector with one extra "padding" column at VECTOR_SIZE.
_TABLE = np.full((len(_GROUPS), _WIDEST), layout.VECTOR_SIZE, dtype=np.intp)
for _row, _g in enumerate(_GROUPS):
    _TABLE[_row, : _g.width] = np.arange(_g.start, _g.start + _g.width)


def decode(vector: np.ndarray) -> np.ndarray:
    """(VECTOR_SIZE,) real vector -> (145,) uint8, identical to dx7.layout.decode."""
    x = np.asarray(vector, dtype=np.float32)
    if x.shape != (layout.VECTOR_SIZE,):
        raise DX7Error(f"expected a {layout.VECTOR_SIZE}-slot vector, got shape {x.shape}")
    out = np.zeros(LEARNABLE_COUNT, dtype=np.uint8)
    nan = np.isnan(x)
    # np.nan_to_num's semantics without its overhead: NaN -> 0 (scaled) or -inf (groups,
    # below everything else), +-inf -> +-largest float (clip does that).
    s = x[_SCALED]
    s = np.where(nan[_SCALED], np.float32(0.0), s)
    scaled = np.clip(np.rint(np.clip(s, -1.0, 2.0) * _HIGH), 0, _HIGH)
    out[_SCALED_PARAMS] = scaled.astype(np.uint8)
    padded = np.empty(layout.VECTOR_SIZE + 1, dtype=np.float32)
    padded[:-1] = np.where(nan, -np.inf, np.clip(x, -_FMAX, _FMAX))
    padded[-1] = -np.inf
    out[_GROUP_PARAMS] = np.argmax(padded[_TABLE], axis=1)
    return out
