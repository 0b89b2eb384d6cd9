"""sd_notify over a real datagram socket, and the OLED's simulated twin."""

from __future__ import annotations

import os
import socket

import numpy as np
import pytest

from device.control.display import DisplayState, KnobView, PngDisplay, render_image
from device.control.notify import Notifier


@pytest.mark.parametrize("abstract", [False, True])
def test_notify_sends_ready_and_paced_watchdog_pings(tmp_path, abstract):
    name = f"@dxmacro-test-{os.getpid()}" if abstract else str(tmp_path / "notify.sock")
    with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as server:
        server.bind("\0" + name[1:] if abstract else name)
        server.settimeout(2)
        n = Notifier({"NOTIFY_SOCKET": name, "WATCHDOG_USEC": "2000000"})
        assert n.watchdog_interval == 1.0
        assert n.ready("4 knobs")
        assert server.recv(100) == b"READY=1\nSTATUS=4 knobs"
        assert n.watchdog(10.0, healthy=True)
        assert not n.watchdog(10.5, healthy=True)  # too soon
        assert not n.watchdog(11.2, healthy=False)  # unhealthy: no ping
        assert n.watchdog(11.3, healthy=True)
        assert [server.recv(100), server.recv(100)] == [b"WATCHDOG=1", b"WATCHDOG=1"]


def test_notify_outside_systemd_is_silent():
    n = Notifier({})
    assert not n.enabled and not n.ready() and not n.watchdog(1.0, True)
    assert Notifier({"NOTIFY_SOCKET": "/nonexistent/sock"}).ready() is False
    assert Notifier({"WATCHDOG_USEC": "1000000", "WATCHDOG_PID": "1"}).watchdog_interval is None  # not our pid


def _state(**kw):
    base = dict(voice="DEV BELL", knobs=(KnobView("bright", 0.2, "live"), KnobView("attack", 0.7, "up", 0.9)),
                link=True, profile="dx7")
    base.update(kw)
    return DisplayState(**base)


def test_screen_renders_what_a_performer_needs(tmp_path):
    img = np.array(render_image(_state()))
    assert img.shape == (64, 128) and img.any()
    assert not np.array_equal(img, np.array(render_image(_state(link=False))))
    assert not np.array_equal(img, np.array(render_image(_state(voice="DEV PAD"))))
    moved = _state(knobs=(KnobView("bright", 0.8, "live"), KnobView("attack", 0.7, "up", 0.9)))
    diff = np.array(render_image(moved)) != img
    rows = np.flatnonzero(diff.any(axis=1))
    assert rows.min() >= 11 and rows.max() <= 21  # only the first knob's row changed
    tuned = _state(knobs=(KnobView("bright", 0.2, "live", tuned=True), KnobView("attack", 0.7, "up", 0.9)))
    diff = np.array(render_image(tuned)) != img
    rows, cols = np.flatnonzero(diff.any(axis=1)), np.flatnonzero(diff.any(axis=0))
    assert diff.any() and rows.min() >= 11 and rows.max() <= 21 and cols.min() >= 120  # a mark at the row's end
    d = PngDisplay(tmp_path / "screen.png")
    d.show(_state())
    assert d.save().read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
