"""The parity report's audio figures (conversion.parity.audio_difference), on Dexed renders."""

from __future__ import annotations

import numpy as np
import pytest

from conversion import parity
from dx7 import Voice

# INIT VOICE is one sine carrier: most of its log-mel lies under the 80 dB floor
SINE = Voice.init().replace({"op1_output_level": 98})


def _pair(edit: dict[str, int]) -> tuple[np.ndarray, np.ndarray]:
    a = SINE.parameters[None].astype(np.int64)
    b = SINE.replace(edit).parameters[None].astype(np.int64)
    return a, b


def test_identical_voices_differ_by_nothing():
    a, _ = _pair({})
    out = parity.audio_difference(a, a.copy(), count=1)
    assert out["median_db"] == 0.0 and out["sounding_median_db"] == 0.0
    assert 0.0 < out["sounding_share_median"] < 1.0


def test_the_sounding_bins_show_a_step_the_gate_median_hides():
    """One output-level step louder (about 0.75 dB) on a sine: the gate's median over every bin
    and frame is 0, because most of them are floored in both renders; over the bins that sound
    the step shows."""
    a, b = _pair({"op1_output_level": 99})
    out = parity.audio_difference(a, b, count=1)
    assert out["sounding_share_median"] < 0.5
    assert out["median_db"] == pytest.approx(0.0, abs=1e-6)
    assert 0.3 < out["sounding_median_db"] < 1.5
