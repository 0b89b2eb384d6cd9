"""Throughput of the data set builder against the raw work it wraps.

raw       : render + log-mel + descriptors of the voices in one loop, one process, one BLAS
            thread (multi-threaded BLAS burns a second core for ~5 %: not a fair baseline), no I/O
pipeline 1: build_dataset with 1 worker (chunks saved to disk, resumable, then stored)
pipeline N: the same with N worker processes
Targets (issue 3): pipeline 1 >= 70 % of raw; pipeline 2 >= 1.7 x pipeline 1.

Besides wall-clock speed it prints CPU seconds per voice (this process and its workers):
on a shared machine the wall clock measures the neighbours, the CPU time measures us.
"""


from __future__ import annotations

import resource
import tempfile
import time
from collections.abc import Callable

from dx7 import Voice
from host_training.dataset.analysis import analyse
from host_training.dataset.build import BuildSettings, build_dataset, single_threaded_blas


def _cpu() -> float:
    me, kids = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
    return me.ru_utime + me.ru_stime + kids.ru_utime + kids.ru_stime


def bench(voices: list[Voice], settings: BuildSettings, workers: list[int],
          say: Callable[[str], None] = print) -> dict[str, float]:
    from host_training.audio.render import DexedRenderer

    a = settings.analysis()
    renderer = DexedRenderer(settings.rate)
    with single_threaded_blas():  # one process on one core: the baseline the workers multiply
        t, c = time.perf_counter(), _cpu()
        for v in voices:
            analyse(renderer, v, a)
        raw = len(voices) / (time.perf_counter() - t)
        raw_cpu = (_cpu() - c) / len(voices)
    say(f"raw (1 process, 1 thread, no I/O): {raw:7.2f} voices/s   {raw_cpu * 1000:6.1f} CPU ms/voice")
    out = {"raw": raw, "raw_cpu_ms": raw_cpu * 1000}
    for w in workers:
        with tempfile.TemporaryDirectory(prefix="dxmacro-bench-") as d:
            t, c = time.perf_counter(), _cpu()
            build_dataset(voices, d, settings, workers=w)
            speed = len(voices) / (time.perf_counter() - t)
            cpu = (_cpu() - c) / len(voices)
        out[f"workers_{w}"] = speed
        out[f"workers_{w}_cpu_ms"] = cpu * 1000
        say(f"pipeline, {w} worker{'s' if w > 1 else ' '}:  {speed:7.2f} voices/s   {cpu * 1000:6.1f} CPU ms/voice "
            f"({speed / raw:.0%} of raw speed, raw/pipeline CPU {raw_cpu / cpu:.0%})")
    if "workers_1" in out:
        for w in workers:
            if w > 1:
                say(f"speed-up {w} workers / 1 worker: {out[f'workers_{w}'] / out['workers_1']:.2f}x")
    return out
