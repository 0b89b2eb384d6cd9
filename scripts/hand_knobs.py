"""What a hand-written FM knob scores on the evaluation's knob metric: a reference for the learnt ones.

    python scripts/hand_knobs.py DATA [VOICES]

For each of the six knobs, an edit of the DX7 values that the manual says gives more of the
knob's upper tag, and nothing else (raise the modulators' output levels for "bright", the
vibrato depth for "moving", slow the carriers' decay for "long"...). Each edit is applied at
9 positions t in [-1, 1] to the first VOICES (default 24) test voices, and the sweeps are
scored exactly as `dxmacro evaluate` scores the learnt knobs' sweeps (evaluate.sweep_scores,
evaluate.knob_correlations). Prints per knob the median own-score Spearman, the median
|correlation| with the other scores, and that median for each other score: which
descriptors move together when only the knob's own parameters move (docs/results.md).
"""

import sys
from collections.abc import Callable

import numpy as np
from dexed import get_carriers

from dx7.params import PARAMS
from host_training.dataset import open_dataset
from host_training.dataset.tags import PAIRS
from host_training.evaluate import knob_correlations, sweep_scores
from host_training.rendered_scores import Pool
from host_training.sound import RenderSettings

_INDEX = {p.name: i for i, p in enumerate(PARAMS)}
_HIGH = {p.name: p.high for p in PARAMS}


def _ops(p: np.ndarray, carriers: bool) -> list[int]:
    """The operators (1..6) that are carriers (or modulators) in the voice's algorithm."""
    heard = {int(c) + 1 for c in get_carriers(int(p[_INDEX["algorithm"]]))}
    return [op for op in range(1, 7) if (op in heard) == carriers]


def _add(p: np.ndarray, name: str, amount: float) -> None:
    p[_INDEX[name]] = int(np.clip(round(int(p[_INDEX[name]]) + amount), 0, _HIGH[name]))


def _floor(p: np.ndarray, name: str, value: int) -> None:
    p[_INDEX[name]] = max(int(p[_INDEX[name]]), value)


def bright(p: np.ndarray, t: float) -> None:
    for op in _ops(p, carriers=False):  # the modulation index
        _add(p, f"op{op}_output_level", 12 * t)


def aggressive(p: np.ndarray, t: float) -> None:
    for op in _ops(p, carriers=False):
        _add(p, f"op{op}_output_level", 8 * t)
    for op in _ops(p, carriers=True):  # a faster attack
        _add(p, f"op{op}_eg_rate1", 25 * t)


def moving(p: np.ndarray, t: float) -> None:
    _floor(p, "pitch_mod_sens", 3)  # the same for every position: only the depth moves
    _floor(p, "lfo_speed", 30)
    p[_INDEX["lfo_delay"]] = 0
    p[_INDEX["lfo_pm_depth"]] = int(round(20 + 20 * t))


def long(p: np.ndarray, t: float) -> None:
    for op in _ops(p, carriers=True):  # slower decay and release
        for stage in (2, 3, 4):
            _add(p, f"op{op}_eg_rate{stage}", -20 * t)


def metallic(p: np.ndarray, t: float) -> None:
    for op in _ops(p, carriers=False):  # ratios off the harmonic ones
        _add(p, f"op{op}_freq_fine", 30 * t)


def swelling(p: np.ndarray, t: float) -> None:
    for op in _ops(p, carriers=True):  # a slower attack
        _add(p, f"op{op}_eg_rate1", -30 * t)


KNOBS: list[Callable[[np.ndarray, float], None]] = [bright, aggressive, moving, long, metallic, swelling]


def main() -> None:
    data = sys.argv[1]
    n = int(sys.argv[2]) if len(sys.argv) > 2 else 24
    ds = open_dataset(data)
    pool = Pool(RenderSettings.from_manifest(ds.settings), 2)
    voices = np.asarray(ds.params)[ds.indices("test")[:n]]
    pos = np.linspace(-1.0, 1.0, 9)
    names = [upper for _, upper, _ in PAIRS]
    owns, crosses = [], []
    for d, knob in enumerate(KNOBS):
        sweeps = []
        for v in voices:
            steps = np.repeat(v[None], len(pos), 0)
            for row, t in zip(steps, pos):
                knob(row, t)
            sweeps.append(steps)
        scores, _ = sweep_scores(pool, sweeps)
        own, others = knob_correlations(pos, scores, d)
        per = np.abs(np.array(others)).reshape(len(sweeps), -1)  # (sweeps, other scores)
        owns.append(np.median(own))
        crosses.append(np.median(per))
        print(f"{knob.__name__:10s} own {owns[-1]:+.2f} | others {crosses[-1]:.2f} | "
              + " ".join(f"{name} {m:.2f}" for name, m in zip(names[:d] + names[d + 1:], np.median(per, 0))),
              flush=True)
    print(f"median own {np.median(owns):.2f}, others {np.median(crosses):.2f}")


if __name__ == "__main__":
    main()
