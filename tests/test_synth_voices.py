import numpy as np
import pytest

from dx7 import Voice

pytest.importorskip("dexed", reason="dexed-py is not installed")
from host_training.audio.synth_voices import audibility, carriers, default_figures, generate  # noqa: E402


def test_seeded_and_valid():
    a, b, c = generate(50, seed=3), generate(50, seed=3), generate(50, seed=4)
    assert a == b and a != c
    assert all(isinstance(v, Voice) and Voice(v.values) == v for v in a)
    assert len({v.content_key() for v in generate(500, seed=1)}) == 500


def test_statistics_follow_the_fitted_figures():
    figs = default_figures()
    voices = generate(3000, seed=0)
    car_levels, mod_levels = [], []
    for v in voices:
        car = carriers(v["algorithm"])
        for op in range(1, 7):
            (car_levels if op in car else mod_levels).append(v[f"op{op}_output_level"])
    def fitted_mean(role):
        h = np.array(figs[role]["histograms"][16], dtype=float)  # field 16 = output level
        return (h * np.arange(len(h))).sum() / h.sum()
    assert abs(np.mean(car_levels) - fitted_mean("carrier")) < 2.0
    assert abs(np.mean(mod_levels) - fitted_mean("modulator")) < 2.0
    assert np.mean(car_levels) > np.mean(mod_levels) + 10  # carriers are louder: role matters
    algs = np.bincount([v["algorithm"] for v in voices], minlength=32) / len(voices)
    fitted = np.array(figs["algorithm"]) / np.sum(figs["algorithm"])
    assert np.abs(algs - fitted).max() < 0.03


def test_most_voices_are_audible():
    result = audibility(generate(60, seed=7), notes=(48, 60, 72))
    assert all(frac >= 0.9 for frac in result.values()), result
