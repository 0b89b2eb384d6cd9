"""Parameter-space search for `dxmacro match`, bounded by wall time rather than by renders.

Why wall time: Dexed's engine renders a second of audio in well under 2 ms and the log-mel
costs about as much, so a few seconds hold hundreds to thousands of candidates; how many fit
depends on the note's length and the machine, and the user sets the time (``--seconds``).

Searches over the same parameters (the ones a listener hears most, as the greedy polish
always used, plus the sustain levels and fine frequencies that a line search cannot couple):
- ``greedy``: the line search the polish always was, run until the time is spent;
- ``cma_search``: CMA-ES (``cma``) on those parameters scaled to 0..1, rounded to DX7 values,
  started from the best candidates in turn (a restart when one run stops improving);
- ``greedy_then_cma`` (`match`'s default): the line search from each of the best candidates,
  then CMA-ES from the best voice found with the time left. At equal time the line search
  alone beats CMA-ES alone, and CMA-ES after it adds a little (docs/results.md).
docs/results.md ("Sound matching at a recording's timing") measures them at equal time.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

import numpy as np

from dx7.params import param

GREEDY_STEPS = (("output_level", 6), ("freq_coarse", 1), ("output_level", 2), ("eg_rate1", 12), ("eg_rate4", 12))


def greedy_moves() -> list[tuple[int, int, int]]:
    """(parameter index, step, high) of the greedy search, most audible first."""
    moves = []
    for name, step in GREEDY_STEPS:
        for op in range(1, 7):
            p = param(f"op{op}_{name}")
            moves += [(p.index, step, p.high), (p.index, -step, p.high)]
        if name == "freq_coarse":
            p = param("feedback")
            moves += [(p.index, 1, p.high), (p.index, -1, p.high)]
    return moves


CMA_FIELDS = ("output_level", "freq_coarse", "freq_fine", "eg_rate1", "eg_rate2", "eg_rate4", "eg_level2",
              "eg_level3")


def cma_params() -> tuple[np.ndarray, np.ndarray]:
    """(indices, highs) of the parameters CMA-ES moves: per operator CMA_FIELDS, and feedback."""
    ps = [param(f"op{op}_{f}") for op in range(1, 7) for f in CMA_FIELDS] + [param("feedback")]
    return np.array([p.index for p in ps]), np.array([p.high for p in ps], dtype=np.float64)


class OutOfTime(Exception):
    """The deadline passed: the search stops where it is."""


@dataclass
class Judge:
    """Distance (dB) of a voice's 145 values to the recording, each distinct voice rendered once.

    ``seen`` keeps every voice judged with its distance and its lineage (the candidate it
    grew from), which is what ``--candidates`` chooses from."""

    distance: Callable[[np.ndarray], float]
    deadline: float = float("inf")
    on_eval: Callable[[], None] | None = None
    seen: dict[bytes, tuple[float, str]] = field(default_factory=dict)
    evals: int = 0

    def __call__(self, params: np.ndarray, lineage: str, force: bool = False) -> float:
        key = np.asarray(params, dtype=np.uint8).tobytes()
        if key in self.seen:
            return self.seen[key][0]
        if not force and time.monotonic() > self.deadline:
            raise OutOfTime
        d = float(self.distance(np.asarray(params, dtype=np.uint8)))
        self.seen[key] = (d, lineage)
        self.evals += 1
        if self.on_eval is not None:
            self.on_eval()
        return d

    def best(self) -> tuple[np.ndarray, float, str]:
        key, (d, lineage) = min(self.seen.items(), key=lambda kv: kv[1][0])
        return np.frombuffer(key, dtype=np.uint8).copy(), d, lineage

    def ranked(self, n: int, distinct: int = 3) -> list[tuple[np.ndarray, float, str]]:
        """The ``n`` best voices judged that differ from every better one kept in at least
        ``distinct`` parameters (so a bank is not 32 copies of one voice a step apart)."""
        out: list[tuple[np.ndarray, float, str]] = []
        for key, (d, lineage) in sorted(self.seen.items(), key=lambda kv: kv[1][0]):
            p = np.frombuffer(key, dtype=np.uint8)
            if all(np.count_nonzero(p != q) >= distinct for q, _, _ in out):
                out.append((p.copy(), d, lineage))
                if len(out) == n:
                    break
        return out


def greedy(judge: Judge, start: np.ndarray, lineage: str) -> None:
    """Greedy line search from ``start``: a move that brings the voice closer is repeated
    while it does; passes over all moves until none helps or the time is spent."""
    params = np.asarray(start, dtype=np.int64).copy()
    d = judge(params, lineage, force=True)
    moves = greedy_moves()
    try:
        improved = True
        while improved:
            improved = False
            for index, step, high in moves:
                while True:
                    value = int(np.clip(params[index] + step, 0, high))
                    if value == params[index]:
                        break
                    trial = params.copy()
                    trial[index] = value
                    d_t = judge(trial, lineage)
                    if d_t >= d:
                        break
                    params, d, improved = trial, d_t, True
    except OutOfTime:
        pass


def cma_search(judge: Judge, starts: Sequence[tuple[np.ndarray, str]], sigma: float = 0.08,
               seed: int = 0) -> None:
    """CMA-ES from each of ``starts`` in turn (best first) until the time is spent; each run
    stops when it has not improved its best for a while (then the next start, or this one
    again with a wider step when the starts are used up)."""
    import cma

    index, high = cma_params()
    k = 0
    try:
        while True:
            start, lineage = starts[k % len(starts)]
            base = np.asarray(start, dtype=np.int64).copy()
            judge(base, lineage, force=True)
            x0 = base[index] / high
            s = sigma * (1 + k // len(starts))
            es = cma.CMAEvolutionStrategy(x0, s, {"bounds": [0.0, 1.0], "seed": seed + k + 1, "verbose": -9,
                                                   "tolfun": 1e-3, "tolstagnation": 30, "maxiter": 10_000})
            while not es.stop():
                xs = es.ask()
                fs = []
                for x in xs:
                    trial = base.copy()
                    trial[index] = np.clip(np.round(np.asarray(x) * high), 0, high).astype(np.int64)
                    fs.append(judge(trial, lineage))
                es.tell(xs, fs)
            k += 1
    except OutOfTime:
        pass


def greedy_starts(judge: Judge, starts: Sequence[tuple[np.ndarray, str]]) -> None:
    """The greedy search from each of ``starts`` in turn (best first) while time is left: a
    line search stops where no move helps, often well within the time (docs/results.md)."""
    for start, lineage in starts:
        if time.monotonic() > judge.deadline:
            break
        greedy(judge, start, lineage)


def greedy_then_cma(judge: Judge, starts: Sequence[tuple[np.ndarray, str]]) -> None:
    """The greedy search from each start, then CMA-ES from the best voice found with the time left."""
    greedy_starts(judge, starts)
    if time.monotonic() < judge.deadline:
        best, _, lineage = judge.best()
        cma_search(judge, [(best, lineage)] + list(starts), sigma=0.04)


SEARCHES = {"cma": cma_search, "greedy": greedy_starts, "greedy+cma": greedy_then_cma}
