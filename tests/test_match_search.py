"""`match`'s parameter searches (host_training.jobs.search) on a distance that needs no render."""

import time

import numpy as np
import pytest

from dx7 import Voice
from host_training.jobs.search import Judge, SEARCHES, cma_params, greedy_moves

pytest.importorskip("cma")  # imported here, not inside a search's time
TARGET = Voice.init().parameters.astype(np.int64)


def judge(seconds: float) -> Judge:
    """A judge whose distance is how far the audible parameters lie from TARGET's (mean, in steps)."""
    index, _ = cma_params()
    moved = sorted({i for i, _, _ in greedy_moves()} | set(index.tolist()))
    return Judge(lambda p: float(np.mean(np.abs(p[moved].astype(np.int64) - TARGET[moved]))),
                 time.monotonic() + seconds)


def start() -> np.ndarray:
    p = TARGET.copy()
    index, high = cma_params()
    rng = np.random.default_rng(0)
    p[index] = np.clip(p[index] + rng.integers(-9, 10, len(index)), 0, high.astype(np.int64))
    return p


def test_every_search_improves_on_its_start_and_never_loses_it():
    for name, search in SEARCHES.items():
        j = judge(1.0)
        d0 = j(start(), "start", force=True)
        search(j, [(start(), "start")])
        assert j.best()[1] <= d0 and j.evals > 1, name
        if name.startswith("greedy"):  # a line search's first moves help here at once
            assert j.best()[1] < d0, name


def test_the_greedy_search_ends_where_no_move_helps():
    j = judge(60.0)  # time enough: it stops by itself
    SEARCHES["greedy"](j, [(start(), "start")])
    best, d, _ = j.best()
    for index, step, high in greedy_moves():
        trial = best.astype(np.int64).copy()
        trial[index] = int(np.clip(trial[index] + step, 0, high))
        assert j.distance(trial.astype(np.uint8)) >= d


def test_cma_after_the_greedy_search_never_loses_what_the_greedy_search_found():
    """greedy+cma runs the greedy search from the same starts first: its best is the greedy one or better."""
    g, gc = judge(1.0), judge(1.0)
    SEARCHES["greedy"](g, [(start(), "start")])
    SEARCHES["greedy+cma"](gc, [(start(), "start")])
    assert gc.best()[1] <= g.best()[1]
    greedy_best = g.best()[0].astype(np.uint8).tobytes()
    assert greedy_best in gc.seen  # the same greedy path, then CMA-ES from its end
