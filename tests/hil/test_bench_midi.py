"""``dxmacro bench midi`` over real JACK ports: it prints the transport alone beside the full path
(figures only: timings are not asserted on a shared machine), and the end-to-end matching."""

from __future__ import annotations

import numpy as np
import pytest

from device.bench.midi_latency import _end_to_end
from dxmacro.cli import main

pytestmark = pytest.mark.timeout(120)


def test_end_to_end_takes_the_first_arrival_of_the_path_kind_within_the_window() -> None:
    arrivals = [(1.010, bytes([0xB0, 21, 5])), (1.020, bytes([0xF0, 0x43, 0xF7])), (1.030, bytes([0xF0, 0x43, 0xF7])),
                (2.5, bytes([0xF0, 0x43, 0xF7]))]
    assert np.allclose(_end_to_end([1.0, 2.0], arrivals, 0.1, sysex=True), [20.0])  # 2.0: nothing within 0.1 s
    assert np.allclose(_end_to_end([1.0], arrivals, 0.1, sysex=False), [10.0])


def test_bench_midi_prints_transport_and_full_path_side_by_side(jack, capsys) -> None:
    assert main(["bench", "midi", "--moves", "10"]) == 0
    out = capsys.readouterr().out
    assert "1024-frame periods (21.3 ms)" in out and "load average" in out
    for row in ("CC received -> first byte sent, p50", "CC received -> first byte sent, p99",
                "controller sent -> synth received, p50", "controller sent -> synth received, p99"):
        line = next(line for line in out.splitlines() if line.startswith(row))
        transport, full, diff = (float(x) for x in line[len(row):].split())
        assert np.isfinite([transport, full]).all() and diff == pytest.approx(full - transport, abs=2e-3)
    assert "pass-through 10, 10 seen" in out
