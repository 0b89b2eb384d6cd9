"""The learnable vector: encode/decode, and decode's semantics on any real input."""

import numpy as np
import pytest

from dx7 import layout
from dx7.errors import DX7Error
from dx7.params import PARAMS


def _reference_decode(x: np.ndarray) -> np.ndarray:
    """The definition, one parameter at a time."""
    out = np.zeros(145, dtype=np.uint8)
    for s in layout.SLOTS:
        if s.categorical:
            fmax = np.finfo(np.float32).max  # infinities saturate to the largest float
            raw = x[s.start : s.start + s.width]
            group = np.where(np.isnan(raw), -np.inf, np.clip(raw, -fmax, fmax))
            out[s.param] = int(np.argmax(group))
        else:
            v = 0.0 if np.isnan(x[s.start]) else float(np.clip(x[s.start], -1.0, 2.0))
            out[s.param] = int(np.clip(np.rint(np.float32(v) * np.float32(PARAMS[s.param].high)), 0, PARAMS[s.param].high))
    return out


def test_sizes():
    assert layout.VECTOR_SIZE == 225 and len(layout.categorical_groups()) == 22
    assert len(layout.scaled_slots()) == 123


def test_round_trip_of_valid_parameters():
    rng = np.random.default_rng(0)
    params = np.stack([[rng.integers(0, PARAMS[i].high + 1) for i in range(145)] for _ in range(200)]).astype(np.uint8)
    vec = layout.encode(params)
    assert vec.shape == (200, 225) and vec.min() >= 0 and vec.max() <= 1
    assert np.array_equal(layout.decode(vec), params)


def test_decode_matches_the_definition_on_adversarial_vectors():
    rng = np.random.default_rng(7)
    fmax = np.finfo(np.float32).max
    batch = []
    for i in range(600):
        x = rng.normal(0.5, 1.5, layout.VECTOR_SIZE).astype(np.float32)
        for k, value in ((3, np.nan), (4, np.inf), (5, -np.inf), (6, fmax)):
            if i % k == 0:
                x[rng.integers(0, layout.VECTOR_SIZE, 30)] = value
        if i % 7 == 0:
            x = np.round(x)  # ties inside one-hot groups go to the first choice
        assert np.array_equal(layout.decode(x), _reference_decode(x)), i
        batch.append(x)
    assert np.array_equal(layout.decode(np.stack(batch)), np.stack([_reference_decode(x) for x in batch]))
    assert np.array_equal(layout.decode(np.full(225, np.nan)), _reference_decode(np.full(225, np.nan)))


def test_slot_names_a_parameter_s_place_in_the_vector():
    from dx7.layout import SLOTS, slot
    from dx7.params import param

    assert slot("transpose") == SLOTS[param("transpose").index]
    assert slot("algorithm").width == 32 and slot("transpose").width == 1
    with pytest.raises(DX7Error, match="unknown DX7 parameter"):
        slot("op7_output_level")
