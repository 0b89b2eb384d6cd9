"""Int8 output levels on the DX7 grid: the decode head places them, the device undoes the placing.

Why: the decode head (conversion/export.py) clips each scaled slot to [0, 1], and the int8 output
has a step of 1/255 there: 2.55 levels per step of a 0..99 parameter, none of them on a DX7 step.
The device rounds the int8 level to a DX7 step afterwards, so every value is rounded twice, and one
whose fp32 output lies near the edge between two steps often lands on the wrong one. Rounding the
fp32 output to those levels alone cost 0.57-1.12 dB of log-mel over the sounding bins
(scripts/int8_audio_attribution.py, docs/results.md); on top of the graph's own error it costs
less: on the grid 0.8-1.2 points more values equal fp32's (docs/conversion.md).

On the grid, the head gives slot ``i`` the output ``(v + offset_i) / 255`` for a DX7 value ``v``:
one int8 level per DX7 step, each level on a step, so the int8 rounding *is* the DX7 rounding and
the only error left is the graph's own. ``offset_i`` (an integer in ``0..255 - high_i``) places
the slot's steps among the 256 levels with room for the fp32 output's overshoot on either side;
what falls outside saturates at a level that decodes to 0 or ``high_i``, as the clip did.

The head's int8 range is fitted on the calibration set. Its bottom is 0 whatever the data (TFLite
keeps 0 exactly representable), its top is the largest value seen, so it is [0, 1] only when some
slot reaches the top there: the slot that overshoots its top most gets ``offset = 255 - high``.
``fit`` returns None when no slot overshoots (the head then keeps the plain [0, 1] clip), and the
pipeline checks the converted model's levels (``pipeline.on_grid``).

The device computes the layout vector as ``clip(output * scale + shift, 0, 1)`` per slot
(``scale = 255 / high``, ``shift = -offset / high``; 1 and 0 on categorical slots), from the
manifest's ``quantization.output.affine``. Pure numpy: the device imports it.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from dx7 import layout

LEVELS = 255  # int8 steps across the head's [0, 1]


@dataclass(frozen=True)
class OutputGrid:
    """Per scaled slot (``layout.scaled_slots()`` order), the integer offset of its DX7 step 0."""

    offsets: np.ndarray

    def head_gain_shift(self) -> tuple[np.ndarray, np.ndarray]:
        """The head's affine on a scaled slot's [0, 1] value x: ``x * gain + shift`` in [0, 1]."""
        highs = layout.scaled_highs().astype(np.float64)
        return (highs / LEVELS).astype(np.float32), (self.offsets / LEVELS).astype(np.float32)

    def device_affine(self) -> tuple[np.ndarray, np.ndarray]:
        """(scale, shift) over the whole layout vector: ``vector = output * scale + shift``."""
        scale = np.ones(layout.VECTOR_SIZE, np.float64)
        shift = np.zeros(layout.VECTOR_SIZE, np.float64)
        highs = layout.scaled_highs().astype(np.float64)
        scale[layout.scaled_slots()] = LEVELS / highs
        shift[layout.scaled_slots()] = -self.offsets / highs
        return scale.astype(np.float32), shift.astype(np.float32)


def fit(outputs: np.ndarray) -> OutputGrid | None:
    """The grid for a decoder whose raw outputs (before the head) on the calibration set are
    ``outputs`` (n, VECTOR_SIZE); None when no slot overshoots its top there."""
    highs = layout.scaled_highs().astype(np.float64)
    over = np.asarray(outputs, np.float64)[:, layout.scaled_slots()].max(axis=0) * highs - highs  # DX7 steps
    top = int(np.argmax(over))
    if over[top] < 0:
        return None
    offsets = np.floor((LEVELS - highs) / 2)  # centred: room for overshoot both ways
    offsets[top] = LEVELS - highs[top]
    return OutputGrid(offsets.astype(np.int64))


def device_vector(output: np.ndarray, affine: tuple[np.ndarray, np.ndarray] | None) -> np.ndarray:
    """The layout vector from the model's dequantized output (the affine's inverse of the head's
    placing, clipped to [0, 1] as the plain head clips); ``affine`` None: the output itself."""
    if affine is None:
        return output
    return np.clip(output * affine[0] + affine[1], 0.0, 1.0).astype(np.float32)
