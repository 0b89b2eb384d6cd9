"""The carrier table against Dexed's engine, and carrier retuning in semitones."""

from __future__ import annotations

import math

import numpy as np
import pytest

from dx7 import Voice
from dx7.algorithms import CARRIERS, carrier_retune_semitones, operator_frequency


def test_every_algorithms_carriers_sound_alone_and_its_modulators_do_not():
    pytest.importorskip("dexed", reason="dexed-py (Dexed's engine) is not installed")
    from host_training.audio.render import DexedRenderer, Note

    renderer = DexedRenderer(22050)
    for alg in range(32):
        for op in range(1, 7):
            levels = {f"op{n}_output_level": (99 if n == op else 0) for n in range(1, 7)}
            voice = Voice.init().replace({"algorithm": alg, "feedback": 0, **levels,
                                          **{f"op{n}_eg_level1": 99 for n in range(1, 7)},
                                          **{f"op{n}_eg_level2": 99 for n in range(1, 7)},
                                          **{f"op{n}_eg_level3": 99 for n in range(1, 7)}})
            rms = float(np.sqrt(np.mean(renderer.render(voice, Note(60, 100, 0.2, 0.25)) ** 2)))
            assert (rms > 1e-3) == (op in CARRIERS[alg]), (alg + 1, op, rms)


def test_carrier_retuning_is_measured_in_semitones():
    v = Voice.init()  # algorithm 1, OP1 (a carrier) at ratio 1.00, full level
    up = v.replace({"op1_freq_coarse": 2})
    assert operator_frequency(up.values, 1) == ("ratio", 2.0)
    assert carrier_retune_semitones(v.values, up.values) == pytest.approx(12.0)
    assert carrier_retune_semitones(v.values, v.replace({"op2_freq_coarse": 7}).values) == 0.0  # a modulator
    assert carrier_retune_semitones(v.values, v.replace({"op1_freq_fine": 6}).values) == pytest.approx(
        12 * math.log2(1.06))
    assert carrier_retune_semitones(v.values, v.replace({"op1_osc_mode": 1}).values) == math.inf
