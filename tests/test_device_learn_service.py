"""MIDI learn while the loop plays (device.control.learn_service), on a simulated clock: the panic
button held (GpioButtons over the simulated GPIO) while controls turn on a scripted MIDI input,
through the real loop from a config file; a request from the page through the model store; the
bindings written into the config survive a restart."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from device.control.config import load_config
from device.control.gpio_controls import GpioButtons
from device.control.learn_service import REQUEST_FILE, LearnDesk, read_request, request_learn
from device.control.midi_knobs import CCBinding
from device.runtime import build_loop, simulated_knobs
from device.twins.linear_decoder import LinearDecoder
from device.twins.sim import EmulatedDX7, SimClock
from dxmacro.errors import DxmacroError
from hardware.gpio import BCM, FakeGPIO
from tests.device_helpers import Inbox

PANIC, NEXT = 26, 5
CONFIG = """# my box
[adc]
channels = 4

[midi]
profile = "dexed"
input = "controller"

[[knob]]
channel = 0         # the first pot
knob = 0

[[knob]]
knob = 1
cc = 99             # a controller knob, rebound live

[buttons]
panic = 26
next = 5
"""


def _loop(path: Path, store: Path | None = None):
    cfg = load_config(path)
    clock = SimClock()
    gpio = FakeGPIO(clock)
    gpio.setmode(BCM)
    buttons = GpioButtons(gpio, cfg.buttons)
    synth = EmulatedDX7(clock, channel=cfg.channel - 1)
    inbox = Inbox()
    adc = simulated_knobs(cfg, clock, lambda ch, t: 0.5) if cfg.uses_adc else None  # as run_device does
    loop = build_loop(cfg, decoder=LinearDecoder(), knobs=adc, port=synth, clock=clock, buttons=buttons,
                      midi_in=inbox)
    if store is not None:
        loop.learn_desk = LearnDesk(cfg.path, store, has_input=True, controller_tables=(1,))
    return loop, clock, gpio, inbox


def _run(loop, clock, seconds: float) -> None:
    loop.run(until=clock.now() + seconds)


def _turn(loop, clock, inbox, messages: list[bytes]) -> None:
    for m in messages:
        inbox.pending.append(m)
        _run(loop, clock, 0.01)


def test_hold_panic_and_turn_controls_binds_knob_after_knob(tmp_path):
    path = tmp_path / "device.toml"
    path.write_text(CONFIG)
    loop, clock, gpio, inbox = _loop(path)
    _run(loop, clock, 0.1)
    voice = loop.cycler.index
    gpio.press(PANIC)
    _run(loop, clock, 0.05)
    assert loop.learn_desk.state.state == "listening" and loop.learn_desk.state.knob == 0
    _turn(loop, clock, inbox, [bytes([0xB4, 23, v]) for v in range(30, 50)])  # an absolute knob, channel 5
    _run(loop, clock, 0.5)
    state = loop.learn_desk.state
    assert state.state == "listening" and state.knob == 1  # still held: the next control is knob 2's
    assert state.last == "knob 1: CC 23 absolute on channel 5 (at the next start)"  # it was a pot
    # a 14-bit control for knob 2, which is already the controller's: rebound in the running loop
    _turn(loop, clock, inbox, [m for v in range(40, 60) for m in (bytes([0xB0, 7, v]), bytes([0xB0, 39, 5]))])
    _run(loop, clock, 0.5)
    assert loop.learn_desk.state.last == "knob 2: CC 7/39 14bit on channel 1 (now)"
    assert loop.midi_knobs.bindings[0] == CCBinding(7, 0, "14bit")
    gpio.release(PANIC)
    _run(loop, clock, 0.05)
    assert loop.learner is None
    # next / previous while panic is held choose the knob, not a voice
    gpio.press(PANIC)
    _run(loop, clock, 0.05)
    for _ in range(2):
        gpio.press(NEXT)
        gpio.release(NEXT)
        _run(loop, clock, 0.05)
    assert loop.learn_desk.state.knob == 2 and loop.cycler.index == voice
    _turn(loop, clock, inbox, [bytes([0xB0, 16, v]) for v in (1, 1, 1, 127, 127)])  # an encoder, two's complement
    gpio.release(PANIC)  # let go before it rested: the turn is bound all the same
    _run(loop, clock, 0.05)
    assert loop.learn_desk.state.state == "bound" and loop.learn_desk.state.binding == "CC 16 twos on channel 1"
    # a restart reads every binding back, comments kept
    text = path.read_text()
    assert "# my box" in text and "panic = 26" in text and "# the first pot" not in text  # a pot no more
    cfg = load_config(path)
    assert [(k.cc, k.cc_mode) for k in cfg.knobs] == [(23, "absolute"), (7, "14bit"), (16, "twos")]
    loop2, clock2, _, inbox2 = _loop(path)
    _run(loop2, clock2, 0.3)
    start = loop2.voice
    p = loop2.mappings[0].to_position(float(loop2.base[loop2.mappings[0].dim]))
    _turn(loop2, clock2, inbox2, [bytes([0xB4, 23, v]) for v in range(round(p * 127), 128)])
    assert loop2.voice != start  # the learned control plays knob 1


def test_a_request_from_the_page_through_the_store(tmp_path):
    path = tmp_path / "device.toml"
    path.write_text(CONFIG)
    store = tmp_path / "store"
    store.mkdir()
    request_learn(store, 0)  # left before the loop started: not a new request
    loop, clock, _, inbox = _loop(path, store)
    _run(loop, clock, 0.3)
    assert loop.learn_desk.state.state == "idle"
    req = request_learn(store, 1)
    assert read_request(store / REQUEST_FILE)["request"] == req["request"]
    _run(loop, clock, 0.3)
    assert loop.learn_desk.state.as_json() | {} == {"state": "listening", "knob": 1, "source": "page",
                                                   "request": req["request"], "available": True, "page": True}
    _turn(loop, clock, inbox, [bytes([0xB2, 30, v]) for v in range(60, 40, -1)])
    _run(loop, clock, 0.6)
    assert loop.learn_desk.state.as_json()["binding"] == "CC 30 absolute on channel 3"
    assert loop.learn_desk.state.applies == "now" and load_config(path).knobs[1].cc == 30
    # cancelled; and a page learn that hears nothing ends
    req = request_learn(store, 0)
    _run(loop, clock, 0.3)
    request_learn(store, None)
    _run(loop, clock, 0.3)
    assert loop.learn_desk.state.state == "cancelled" and loop.learner is None
    loop.learn_desk.timeout_s = 1.0
    request_learn(store, 0)
    _run(loop, clock, 1.5)
    assert loop.learn_desk.state.state == "timed out"


def test_bad_requests_and_a_config_that_cannot_be_written(tmp_path):
    store = tmp_path / "store"
    store.mkdir()
    for bad in (-1, 64, True, 1.5, "2"):
        with pytest.raises(DxmacroError, match="knob must be"):
            request_learn(store, bad)  # type: ignore[arg-type]
    with pytest.raises(DxmacroError, match="does not exist"):
        request_learn(tmp_path / "nowhere", 0)
    (store / REQUEST_FILE).write_text(json.dumps({"request": "x", "knob": 99}))
    assert read_request(store / REQUEST_FILE) is None
    # knob 5 of a config with 2 [[knob]] tables: refused in words, the file kept
    path = tmp_path / "device.toml"
    path.write_text(CONFIG)
    loop, clock, gpio, inbox = _loop(path, store)
    request_learn(store, 5)
    _run(loop, clock, 0.3)
    _turn(loop, clock, inbox, [bytes([0xB0, 23, v]) for v in range(30, 40)])
    _run(loop, clock, 0.6)
    state = loop.learn_desk.state
    assert state.state == "failed" and "learn one of 1..3" in state.reason and path.read_text() == CONFIG


def test_the_flash_service_route_leaves_the_request_in_the_store(tmp_path):
    from tests.flash_fixtures import Bundles
    from tests.flash_server import Service

    svc = Service(tmp_path, Bundles(tmp_path / "bundles"))
    try:
        body = json.dumps({"knob": 2}).encode()
        assert svc.request("POST", "/api/learn", body, token=None)[0] == 401  # a write: the flash token
        code, doc = svc.request("POST", "/api/learn", body, headers={"Content-Type": "application/json"})
        assert code == 200 and doc["learn"]["knob"] == 2
        assert read_request(tmp_path / "store" / REQUEST_FILE)["request"] == doc["learn"]["request"]
        code, doc = svc.request("POST", "/api/learn", json.dumps({"cancel": True}).encode())
        assert code == 200 and doc["learn"]["knob"] is None
        for bad in ({"knob": "2"}, {"knob": -1}, {}):
            code, doc = svc.request("POST", "/api/learn", json.dumps(bad).encode())
            assert code == 400 and ("knob must be" in doc["error"] or "give" in doc["error"])
        assert svc.request("POST", "/api/learn", b"not json")[0] == 422
    finally:
        svc.close()
