"""The knob gates' verdict: a median that passes only by the luck of the voices drawn does not ship."""

import numpy as np
import pytest

from dxmacro.errors import DxmacroError
from host_training.jobs.knob_gates import KnobGates


def figures(selectivity: list[float]) -> dict:
    """One knob's figures as knob_report.knob_figures gives them, every gate but selectivity easy."""
    n = len(selectivity)
    per = {"spearman": [1.0] * n, "selectivity": selectivity, "largest_step_db": [1.0] * n,
           "pitch_changing": [False] * n}
    return {"spearman": 1.0, "wrong_sign": 0.0, "selectivity": float(np.median(selectivity)),
            "largest_step_db": 1.0, "pitch_changing": 0.0, "per_sweep": per}


def test_a_median_on_the_edge_is_not_steady_and_does_not_ship():
    gates = KnobGates()
    rng = np.random.default_rng(1)
    # half the voices far above the gate, half far below: the median lands just over 1.5 by chance
    edge = list(rng.uniform(0.3, 1.0, 32)) + list(rng.uniform(1.51, 5.0, 33))
    f = figures(edge)
    assert f["selectivity"] >= 1.5 and gates.failures(f) == []
    failures, steady = gates.verdict(f)
    assert 0.3 < steady < 0.8 and failures and "redraws" in failures[0]
    # the same gate with a clear margin: every redraw passes
    clear = figures(list(rng.uniform(2.5, 5.0, 65)))
    assert gates.verdict(clear) == ([], 1.0)
    # a knob that fails outright says so by the gate it misses, not by its steadiness
    low = figures(list(rng.uniform(0.3, 1.0, 65)))
    failures, steady = gates.verdict(low)
    assert steady == 0.0 and failures[0].startswith("selectivity")


def test_steadiness_reads_every_gate_from_the_sweeps():
    gates = KnobGates()
    f = figures([3.0] * 40)
    f["per_sweep"]["pitch_changing"] = [True] * 4 + [False] * 36  # 10 % of sweeps change the pitch
    assert gates.steadiness(f) < 0.3  # a redraw passes only when it happens to miss most of those sweeps
    f = figures([3.0] * 40)
    f["per_sweep"]["spearman"] = [-0.5] * 8 + [1.0] * 32  # 20 % wrong sign
    assert gates.steadiness(f) < 0.3  # a redraw passes only when it happens to miss most of those sweeps


def test_steadiness_gate_is_read_from_toml_and_checked(tmp_path):
    path = tmp_path / "gates.toml"
    path.write_text("[knob_gates]\nsteadiness_min = 0.5\n")
    assert KnobGates.from_toml(path).steadiness_min == 0.5
    path.write_text("[knob_gates]\nsteadiness_min = 1.5\n")
    with pytest.raises(DxmacroError, match="steadiness_min"):
        KnobGates.from_toml(path)
