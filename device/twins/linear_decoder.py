"""A DEVELOPMENT decoder, not the product: a fixed, seeded linear map from an 8-value
latent code to dx7.layout's learnable vector, decoded with dx7.layout.decode.

It exists so that the control loop, its tests, the bench and the demo run against a
real, deterministic decoder before the trained int8 model (conversion.runtime's
TFLiteDecoder) is merged. Six variants of INIT VOICE are its anchors and decode to
themselves exactly (the map is fitted through them); in between, a seeded component
that vanishes at the anchors makes the knobs move many parameters at once, as a
trained decoder does. Knob names here are placeholders, not learned semantics.
"""

from __future__ import annotations

import numpy as np

from dx7 import Voice
from dx7 import layout
from device.control.ports import Anchor, KnobInfo

LATENT_SIZE = 8
KNOB_NAMES = ("bright", "attack", "motion", "body")
KNOB_RANGE = (-2.5, 2.5)


def anchor_voices() -> list[Voice]:
    """INIT VOICE and five hand-made variants of it (algorithm, ratios, levels, EGs)."""
    init = Voice.init()
    return [
        init,
        init.replace({"algorithm": 4, "feedback": 5, "op2_output_level": 82, "op2_freq_coarse": 3,
                      "op1_eg_rate2": 40, "op1_eg_level3": 0, "op2_eg_rate2": 30, "op2_eg_level3": 0}, name="DEV BELL"),
        init.replace({"algorithm": 21, "feedback": 7, "op2_output_level": 75, "op1_eg_rate1": 60,
                      "op2_eg_rate1": 55, "op2_freq_coarse": 1, "lfo_pm_depth": 8, "pitch_mod_sens": 3},
                     name="DEV BRASS"),
        init.replace({"algorithm": 31, "op1_eg_rate1": 25, "op1_eg_rate4": 20, "op2_output_level": 90,
                      "op2_eg_rate1": 20, "op2_detune": 10, "lfo_am_depth": 12,
                      "lfo_wave": 4}, name="DEV PAD"),
        init.replace({"algorithm": 15, "op2_output_level": 88, "op2_freq_coarse": 1, "op2_eg_rate2": 70,
                      "op2_eg_level3": 20, "op1_eg_rate2": 60, "op1_eg_level3": 60, "transpose": 12},
                     name="DEV BASS"),
        init.replace({"algorithm": 31, "op2_output_level": 99, "op2_freq_coarse": 2, "op3_output_level": 90,
                      "op3_freq_coarse": 4, "op1_eg_rate4": 80}, name="DEV ORGAN"),
    ]


class LinearDecoder:
    """Deterministic for a given seed: same latent, same voice, on every machine."""

    def __init__(self, seed: int = 0, spread: float = 0.12) -> None:
        voices = anchor_voices()
        rng = np.random.default_rng(seed)
        k = len(voices)
        z = rng.normal(0.0, 1.0, size=(k, LATENT_SIZE))
        targets = layout.encode(np.stack([v.parameters for v in voices])).astype(np.float64)
        a = np.hstack([z, np.ones((k, 1))])  # (k, L+1): affine map
        fit = np.linalg.pinv(a) @ targets
        _, _, vt = np.linalg.svd(a)
        null = vt[k:].T  # (L+1, L+1-k), a @ null == 0: adding it keeps the anchors exact
        extra = null @ rng.normal(0.0, spread, size=(null.shape[1], layout.VECTOR_SIZE))
        m = fit + extra
        self._w = m[:LATENT_SIZE].astype(np.float32)
        self._b = m[LATENT_SIZE].astype(np.float32)
        self.latent_size = LATENT_SIZE
        self.knobs = tuple(KnobInfo(i, n, *KNOB_RANGE) for i, n in enumerate(KNOB_NAMES))
        self.anchors = tuple(Anchor(v.name.strip(), v, z[i].astype(np.float32)) for i, v in enumerate(voices))

    def decode(self, latent: np.ndarray) -> np.ndarray:
        x = np.asarray(latent, dtype=np.float32).reshape(self.latent_size)
        return layout.decode(x @ self._w + self._b)
