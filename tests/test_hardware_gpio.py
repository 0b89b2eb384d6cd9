"""FakeGPIO keeps RPi.GPIO's semantics: pull-ups, edges, bouncetime, setup errors."""

from __future__ import annotations

import pytest

from hardware import gpio as G
from hardware.clock import SimClock
from hardware.gpio import Button, FakeGPIO, Led


def fake():
    g = FakeGPIO(SimClock())
    g.setmode(G.BCM)
    return g


def test_button_reads_pull_up_and_press():
    g = fake()
    b = Button(g, 17)
    assert g.input(17) == G.HIGH and not b.pressed
    g.press(17)
    assert g.input(17) == G.LOW and b.pressed
    g.release(17)
    assert not b.pressed


def test_bouncing_press_gives_one_callback_and_a_later_press_another():
    g = fake()
    presses = []
    Button(g, 27, on_press=lambda: presses.append(g.clock.now()), bouncetime_ms=30)
    g.bounce(27, transitions=8, interval=0.001)
    assert len(presses) == 1
    g.release(27)
    g.clock.sleep(0.005)
    g.press(27)  # within 30 ms of the first edge: still bounce
    assert len(presses) == 1
    g.release(27)
    g.clock.sleep(0.05)
    g.press(27)
    assert len(presses) == 2


def test_without_bouncetime_every_chatter_edge_counts():
    g = fake()
    edges = []
    g.setup(5, G.IN, pull_up_down=G.PUD_UP)
    g.add_event_detect(5, G.BOTH, callback=edges.append)
    g.bounce(5, transitions=4, interval=0.001)
    assert len(edges) == 5  # chatter L, H, L, H, then the contact settles low
    g.release(5)
    assert len(edges) == 6


def test_led_levels_and_history():
    g = fake()
    led = Led(g, 22)
    assert g.level(22) == G.LOW
    led.on()
    g.clock.sleep(0.5)
    led.toggle()
    assert g.level(22) == G.LOW and not led.is_on
    assert [(t, level) for t, _, level in g.history] == [(0.0, G.LOW), (0.0, G.HIGH), (0.5, G.LOW)]


def test_misuse_raises_like_rpi_gpio():
    g = FakeGPIO(SimClock())
    with pytest.raises(RuntimeError, match="setmode"):
        g.setup(4, G.IN)
    g.setmode(G.BCM)
    with pytest.raises(RuntimeError, match="setup"):
        g.input(4)
    g.setup(4, G.IN)
    with pytest.raises(RuntimeError, match="OUTPUT"):
        g.output(4, 1)
    g.add_event_detect(4, G.FALLING)
    with pytest.raises(RuntimeError, match="Conflicting"):
        g.add_event_detect(4, G.FALLING)
    g.cleanup()
    with pytest.raises(RuntimeError):
        g.input(4)
