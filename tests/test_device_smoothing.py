"""Smoothing, hysteresis, soft takeover and the knob -> latent mapping."""

from __future__ import annotations

import numpy as np
import pytest

from device.control.mapping import KnobMapping, latent_from
from device.control.smoothing import KnobChannel, SmoothingSettings, SoftTakeover

ADS1115_FULL_SCALE = 32767  # codes of a 16-bit two's-complement ADC, positive half


def test_resting_knob_with_adc_noise_never_moves_after_the_first_reading():
    rng = np.random.default_rng(0)
    ch = KnobChannel(SmoothingSettings())
    ch.takeover.release()
    moves = 0
    for i in range(200_000):  # 15 minutes at 215 scans/s
        code = round(0.4321 * ADS1115_FULL_SCALE + rng.normal(0, 3.0))
        moves += ch.update(code / ADS1115_FULL_SCALE, i / 215.0)
    assert moves == 1  # the first reading only


def test_a_fast_turn_passes_in_the_first_tick_and_settles_close():
    ch = KnobChannel(SmoothingSettings())
    ch.takeover.release()
    dt = 4 / 860
    for i in range(100):
        ch.update(0.3, i * dt)
    assert ch.update(0.5, 100 * dt)  # the very first scan after a 0.2 jump moves the output
    for i in range(101, 1000):
        ch.update(0.5, i * dt)
    assert abs(ch.position - 0.5) <= SmoothingSettings().hysteresis


def test_failed_reads_are_not_moves():
    ch = KnobChannel(SmoothingSettings())
    ch.takeover.release()
    ch.update(0.7, 0.0)
    assert not any(ch.update(None, t * 0.01) for t in range(1, 100))
    assert ch.position == 0.7


def test_soft_takeover_waits_for_the_knob_to_cross_the_voice_value():
    t = SoftTakeover(0.02)
    t.arm(0.6, 0.2)
    assert not t.live and t.direction(0.2) == "up"
    assert not t.update(0.3) and not t.update(0.5)
    assert t.update(0.65)  # crossed (jumped over 0.6 between two scans)
    assert t.live
    t.arm(0.6, 0.9)
    assert t.direction(0.9) == "down"
    assert t.update(0.595)  # within tolerance from above
    t.arm(0.5, 0.505)  # already there: live at once
    assert t.live


@pytest.mark.parametrize("curve", ["linear", "centre", 2.0, 0.5])
@pytest.mark.parametrize("invert", [False, True])
def test_mapping_round_trips_and_is_monotonic(curve, invert):
    m = KnobMapping(0, 3, "x", -2.0, 3.0, curve, invert)
    pos = np.linspace(0, 1, 101)
    lat = np.array([m.to_latent(p) for p in pos])
    assert lat.min() == pytest.approx(-2.0) and lat.max() == pytest.approx(3.0)
    d = np.diff(lat)
    assert (d <= 1e-12).all() if invert else (d >= -1e-12).all()
    for p in pos:
        assert m.to_position(m.to_latent(p)) == pytest.approx(p, abs=1e-9)
    assert m.to_position(99.0) == (0.0 if invert else 1.0)  # beyond the range: the end stop


def test_latent_from_sets_only_live_knobs():
    maps = [KnobMapping(0, 1, "a", -1, 1), KnobMapping(1, 4, "b", 0, 2)]
    base = np.arange(8, dtype=np.float32)
    z = latent_from(base, maps, [1.0, 0.5], [True, False])
    assert z[1] == 1.0 and z[4] == 4.0 and base[1] == 1.0
