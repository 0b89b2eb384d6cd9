"""The knob gates' verdict: a median that passes only by the luck of the voices drawn does not ship."""

import numpy as np
import pytest

from dxmacro.errors import DxmacroError
from host_training.jobs.knob_gates import KnobGates, pooled


def figures(selectivity: list[float]) -> dict:
    """One knob's figures as knob_report.knob_figures gives them, every gate but selectivity easy."""
    n = len(selectivity)
    per = {"spearman": [1.0] * n, "selectivity": selectivity, "largest_step_db": [1.0] * n,
           "pitch_changing": [False] * n, "score_change": [[0.1 * s, 0.1] for s in selectivity]}
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


def test_an_edge_knob_is_undecided_and_more_voices_decide_it():
    """Only a knob that passes at the median but not steadily asks for more voices; pooling two
    draws judges the knob on every sweep of both, as one draw of all those voices would."""
    gates = KnobGates()
    rng = np.random.default_rng(1)
    edge = figures(list(rng.uniform(0.3, 1.0, 32)) + list(rng.uniform(1.51, 5.0, 33)))
    assert gates.undecided(edge)
    assert not gates.undecided(figures(list(rng.uniform(2.5, 5.0, 65))))  # steady: decided
    assert not gates.undecided(figures(list(rng.uniform(0.3, 1.0, 65))))  # fails outright: decided
    more = figures(list(rng.uniform(1.8, 5.0, 64)))
    both = pooled(edge, more)
    alone = edge["per_sweep"]["selectivity"] + more["per_sweep"]["selectivity"]
    assert both["selectivity"] == pytest.approx(float(np.median(alone)))
    assert len(both["per_sweep"]["spearman"]) == 129 and both["wrong_sign"] == 0.0
    assert both["score_change"][1] == pytest.approx(0.1)
    assert gates.verdict(both) == ([], gates.steadiness(both)) and gates.steadiness(both) >= 0.8
