"""Throughput of the data set builder against the raw work it wraps.

raw       : render + log-mel + descriptors of the voices in one loop, one process, no I/O
pipeline 1: build_dataset with 1 worker (chunks saved to disk, resumable, then stored)
pipeline N: the same with N worker processes
Targets (issue 3): pipeline 1 >= 70 % of raw; pipeline 2 >= 1.7 x pipeline 1.
"""

from __future__ import annotations

import tempfile
import time
from collections.abc import Callable

from dx7 import Voice
from host_training.dataset.analysis import analyse
from host_training.dataset.build import BuildSettings, build_dataset


def bench(voices: list[Voice], settings: BuildSettings, workers: list[int],
          say: Callable[[str], None] = print) -> dict[str, float]:
    from host_training.render import DexedRenderer

    a = settings.analysis()
    renderer = DexedRenderer(settings.rate)
    t = time.perf_counter()
    for v in voices:
        analyse(renderer, v, a)
    raw = len(voices) / (time.perf_counter() - t)
    say(f"raw (1 process, no I/O): {raw:7.2f} voices/s")
    out = {"raw": raw}
    for w in workers:
        with tempfile.TemporaryDirectory(prefix="dxmacro-bench-") as d:
            t = time.perf_counter()
            build_dataset(voices, d, settings, workers=w)
            speed = len(voices) / (time.perf_counter() - t)
        out[f"workers_{w}"] = speed
        say(f"pipeline, {w} worker{'s' if w > 1 else ' '}:  {speed:7.2f} voices/s  ({speed / raw:.0%} of raw)")
    if "workers_1" in out:
        for w in workers:
            if w > 1:
                say(f"speed-up {w} workers / 1 worker: {out[f'workers_{w}'] / out['workers_1']:.2f}x")
    return out
