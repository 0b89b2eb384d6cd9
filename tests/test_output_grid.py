"""The decode head's DX7 grid (conversion/output_grid.py): where it puts each slot's steps among
the int8 levels, and that the device's affine undoes the head's placing. Pure numpy."""

import numpy as np

from conversion import output_grid
from dx7 import layout

SCALED = layout.scaled_slots()
HIGHS = layout.scaled_highs().astype(np.float64)


def _outputs(low: float, high: float, n: int = 64, seed: int = 0) -> np.ndarray:
    """Raw decoder outputs whose scaled slots span [low, high] (in [0, 1] units)."""
    out = np.random.default_rng(seed).uniform(0.2, 0.8, (n, layout.VECTOR_SIZE))
    out[0, SCALED] = low
    out[1, SCALED] = high
    return out


def test_every_step_of_every_slot_is_one_level_and_the_top_is_reached():
    outputs = _outputs(-0.1, 1.2)
    outputs[1, SCALED[7]] = 1.5  # the slot that overshoots most
    grid = output_grid.fit(outputs)
    assert grid is not None and grid.offsets.dtype.kind == "i"
    assert np.all(grid.offsets >= 0) and np.all(grid.offsets + HIGHS <= output_grid.LEVELS)
    assert grid.offsets[7] == output_grid.LEVELS - HIGHS[7]
    others = np.delete(np.arange(len(SCALED)), 7)
    assert np.array_equal(grid.offsets[others], np.floor((output_grid.LEVELS - HIGHS[others]) / 2))
    gain, shift = grid.head_gain_shift()
    head = (outputs[:, SCALED] * gain + shift) * output_grid.LEVELS  # in int8 levels
    assert head.max() >= output_grid.LEVELS  # the head's clip saturates at the top (0 is kept by TFLite)
    # DX7 value v of slot i sits exactly on level v + offset_i
    values = np.arange(100)[:, None] * np.ones(len(SCALED))
    values = np.minimum(values, HIGHS)
    levels = (values / HIGHS * gain + shift) * output_grid.LEVELS
    assert np.allclose(levels, values + grid.offsets, atol=1e-3)


def test_the_device_affine_inverts_the_head_and_clips_as_the_plain_head_does():
    grid = output_grid.fit(_outputs(-0.2, 1.1))
    gain, shift = grid.head_gain_shift()
    x = np.random.default_rng(1).uniform(0, 1, (8, layout.VECTOR_SIZE)).astype(np.float32)
    head = x.copy()
    head[:, SCALED] = x[:, SCALED] * gain + shift
    affine = grid.device_affine()
    assert np.allclose(output_grid.device_vector(head, affine), x, atol=1e-5)
    assert np.allclose(layout.decode(output_grid.device_vector(head, affine)), layout.decode(x))
    # a level below step 0 or above the top decodes to 0 / high, as the clip to [0, 1] did
    params = [s.param for s in layout.SLOTS if not s.categorical]
    low = np.zeros((1, layout.VECTOR_SIZE), np.float32)
    assert np.all(layout.decode(output_grid.device_vector(low, affine))[0, params] == 0)
    top = np.ones((1, layout.VECTOR_SIZE), np.float32)
    assert np.array_equal(layout.decode(output_grid.device_vector(top, affine))[0, params], HIGHS)
    assert output_grid.device_vector(head, None) is head


def test_no_grid_when_the_calibration_never_passes_the_top():
    """The top of the head's int8 range is fitted on the calibration set; with no slot past its
    top it would be short of 1, and the grid's levels would not sit on the steps."""
    assert output_grid.fit(_outputs(0.1, 0.9)) is None
    assert output_grid.fit(_outputs(-0.5, 0.99)) is None
    assert output_grid.fit(_outputs(0.1, 1.02)) is not None
