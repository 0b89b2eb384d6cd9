"""The learnable parameter vector: how models see a voice and how their outputs become
DX7 values again.

Each of the 145 learnable parameters (all but the name) takes one or more slots:
continuous and integer parameters one slot scaled to [0, 1] (value / high);
categorical parameters (algorithm, curves, oscillator mode, LFO wave, the two sync
switches) a one-hot group with one slot per choice. Decoding rounds the scaled slots
and takes the argmax of each group, so any real vector decodes to a valid voice.
This module is pure numpy: the device decodes its int8 model's outputs with it.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from dx7.errors import DX7Error
from dx7.params import LEARNABLE_COUNT, PARAMS, Kind


@dataclass(frozen=True)
class Slot:
    param: int  # index into PARAMS
    start: int  # first slot in the vector
    width: int  # 1 for scaled parameters, the number of choices for one-hot groups

    @property
    def categorical(self) -> bool:
        return PARAMS[self.param].kind is Kind.CATEGORICAL


def _build() -> tuple[Slot, ...]:
    slots, pos = [], 0
    for p in PARAMS[:LEARNABLE_COUNT]:
        width = p.size if p.kind is Kind.CATEGORICAL else 1
        slots.append(Slot(p.index, pos, width))
        pos += width
    return tuple(slots)


SLOTS: tuple[Slot, ...] = _build()
VECTOR_SIZE: int = SLOTS[-1].start + SLOTS[-1].width  # 225
_SCALED = np.array([s.start for s in SLOTS if not s.categorical])
_SCALED_PARAMS = np.array([s.param for s in SLOTS if not s.categorical])
_SCALED_HIGH = np.array([PARAMS[s.param].high for s in SLOTS if not s.categorical], dtype=np.float32)
_GROUPS = tuple(s for s in SLOTS if s.categorical)


def encode(params: np.ndarray) -> np.ndarray:
    """(..., 145) DX7 values -> (..., VECTOR_SIZE) float32 vector."""
    p = np.asarray(params)
    if p.shape[-1] != LEARNABLE_COUNT:
        raise DX7Error(f"expected {LEARNABLE_COUNT} parameters, got shape {p.shape}")
    out = np.zeros(p.shape[:-1] + (VECTOR_SIZE,), dtype=np.float32)
    out[..., _SCALED] = p[..., _SCALED_PARAMS].astype(np.float32) / _SCALED_HIGH
    for s in _GROUPS:
        v = p[..., s.param].astype(np.int64)
        if np.any((v < 0) | (v >= s.width)):
            raise DX7Error(f"{PARAMS[s.param].name} outside 0..{s.width - 1}")
        np.put_along_axis(out[..., s.start : s.start + s.width], v[..., None], 1.0, axis=-1)
    return out


_FMAX = np.finfo(np.float32).max
_WIDEST = max(g.width for g in _GROUPS)
_GROUP_PARAMS = np.array([g.param for g in _GROUPS])
# Gather table for all one-hot groups at once: row g holds group g's slots, padded with
# an index one past the vector that reads -inf. One gather and one argmax decode every
# group, which keeps decoding at tens of microseconds in the device's control loop.
_TABLE = np.full((len(_GROUPS), _WIDEST), VECTOR_SIZE, dtype=np.intp)
for _row, _g in enumerate(_GROUPS):
    _TABLE[_row, : _g.width] = np.arange(_g.start, _g.start + _g.width)


def decode(vector: np.ndarray) -> np.ndarray:
    """(..., VECTOR_SIZE) real vector -> (..., 145) in-range DX7 values (uint8).

    Scaled slots are rounded and clipped (NaN counts as 0); each one-hot group takes
    its argmax (infinities saturate to the largest float, NaN loses to everything, ties
    go to the first choice)."""
    x = np.asarray(vector, dtype=np.float32)
    if x.shape[-1:] != (VECTOR_SIZE,):
        raise DX7Error(f"expected a {VECTOR_SIZE}-slot vector, got shape {x.shape}")
    nan = np.isnan(x)
    out = np.zeros(x.shape[:-1] + (LEARNABLE_COUNT,), dtype=np.uint8)
    scaled = np.where(nan[..., _SCALED], np.float32(0.0), x[..., _SCALED])
    scaled = np.clip(np.rint(np.clip(scaled, -1.0, 2.0) * _SCALED_HIGH), 0, _SCALED_HIGH)
    out[..., _SCALED_PARAMS] = scaled.astype(np.uint8)
    padded = np.full(x.shape[:-1] + (VECTOR_SIZE + 1,), -np.inf, dtype=np.float32)
    padded[..., :-1] = np.where(nan, -np.inf, np.clip(x, -_FMAX, _FMAX))
    out[..., _GROUP_PARAMS] = np.argmax(padded[..., _TABLE], axis=-1)
    return out


def slot(name: str) -> Slot:
    """The slot of the learnable parameter ``name`` (e.g. ``transpose``, ``op1_output_level``)."""
    from dx7.params import param

    return SLOTS[param(name).index]


def categorical_groups() -> tuple[Slot, ...]:
    return _GROUPS


def scaled_slots() -> np.ndarray:
    """Vector positions of the scaled (non-categorical) parameters."""
    return _SCALED.copy()


def scaled_highs() -> np.ndarray:
    """The DX7 range's top value of each scaled slot, in ``scaled_slots()`` order (a slot holds
    value / high)."""
    return _SCALED_HIGH.copy()
