"""The DX7's 32 algorithms: which operators are carriers (heard directly), and what an
operator's frequency is. Why: a knob that retunes a carrier changes the pitch a player hears
(a register jump), while retuning a modulator changes the timbre; telling them apart needs both.

The carrier table is the DX7's (manual, algorithm chart); tests/test_dx7_algorithms.py checks
every entry against Dexed's engine (an operator alone at full level sounds iff it is a carrier).
"""

from __future__ import annotations

import math
from collections.abc import Sequence

from dx7.params import param

# operator numbers (1..6, as on the panel) whose output is heard, per algorithm 1..32
CARRIERS: tuple[frozenset[int], ...] = tuple(frozenset(c) for c in (
    (1, 3), (1, 3), (1, 4), (1, 4), (1, 3, 5), (1, 3, 5), (1, 3), (1, 3),
    (1, 3), (1, 4), (1, 4), (1, 3), (1, 3), (1, 3), (1, 3), (1,),
    (1,), (1,), (1, 4, 5), (1, 2, 4), (1, 2, 4, 5), (1, 3, 4, 5), (1, 2, 4, 5), (1, 2, 3, 4, 5),
    (1, 2, 3, 4, 5), (1, 2, 4), (1, 2, 4), (1, 3, 6), (1, 2, 3, 5), (1, 2, 3, 6), (1, 2, 3, 4, 5),
    (1, 2, 3, 4, 5, 6),
))
_OP = {n: {k: param(f"op{n}_{k}").index for k in ("output_level", "osc_mode", "freq_coarse", "freq_fine",
                                                      "detune")} for n in range(1, 7)}
_ALGORITHM = param("algorithm").index


def carriers(values: Sequence[int]) -> frozenset[int]:
    """The carrier operators (1..6) of a voice's algorithm (``values``: its DX7 parameter values)."""
    return CARRIERS[int(values[_ALGORITHM])]


def operator_frequency(values: Sequence[int], op: int) -> tuple[str, float]:
    """(mode, value) of operator ``op``: ("ratio", multiple of the note's frequency) or ("fixed",
    Hz), detune included (about 1/7 of a cent per step, as on the DX7)."""
    o = _OP[op]
    coarse, fine, detune = int(values[o["freq_coarse"]]), int(values[o["freq_fine"]]), int(values[o["detune"]]) - 7
    cents = detune * 1.0
    if int(values[o["osc_mode"]]) == 1:  # fixed frequency: 1, 10, 100, 1000 Hz times 10^(fine/100)
        return "fixed", 10.0 ** (coarse % 4) * 10.0 ** (fine / 100.0) * 2.0 ** (cents / 1200.0)
    return "ratio", (0.5 if coarse == 0 else float(coarse)) * (1.0 + fine / 100.0) * 2.0 ** (cents / 1200.0)


def carrier_retune_semitones(a: Sequence[int], b: Sequence[int]) -> float:
    """The largest change, in semitones, of a sounding carrier's frequency from voice ``a`` to voice
    ``b`` (carriers of either voice's algorithm, sounding in both: output level > 0); a carrier that
    switches between ratio and fixed mode counts as infinitely retuned."""
    worst = 0.0
    for op in carriers(a) | carriers(b):
        lvl = _OP[op]["output_level"]
        if int(a[lvl]) == 0 or int(b[lvl]) == 0:
            continue
        (ma, fa), (mb, fb) = operator_frequency(a, op), operator_frequency(b, op)
        if ma != mb:
            return math.inf
        worst = max(worst, abs(12.0 * math.log2(fb / fa)))
    return worst
