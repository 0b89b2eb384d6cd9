"""A MIDI controller as the knob board, on a simulated clock: 7-bit, 14-bit and relative controls
through the real loop (build_loop from a config) into the emulated DX7; an ADC board and a
controller together; thru (notes in order, on the synth's channel, counted by the byte budget,
released when the controller goes); MIDI learn (one turn, written to the config, read back)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from device.control.budget import busiest_window
from device.control.config import load_config, parse_config
from device.control.learn import Learner, classify, with_binding, write_binding
from device.control.midi_knobs import CCBinding, MidiKnobs, detents
from device.runtime import build_loop, simulated_knobs
from device.twins.linear_decoder import LinearDecoder
from device.twins.sim import EmulatedDX7, SimClock
from dx7.sysex import parse_message
from dxmacro.errors import DxmacroError
from tests.device_helpers import Inbox


def _cfg(knobs: list[dict], profile: str = "dexed", **midi) -> object:
    doc = {"adc": {"channels": 4}, "knob": knobs,
           "midi": {"profile": profile, "channel": 3, "input": "controller", **midi}}
    return parse_config(doc, Path("t.toml"))


def _loop(cfg, adc_positions=None):
    clock = SimClock()
    synth = EmulatedDX7(clock, channel=cfg.channel - 1)
    inbox = Inbox()
    adc = simulated_knobs(cfg, clock, lambda ch, t: adc_positions[ch]) if adc_positions is not None else None
    loop = build_loop(cfg, decoder=LinearDecoder(), knobs=adc, port=synth, clock=clock, midi_in=inbox)
    return loop, clock, synth, inbox


def _run(loop, clock, seconds: float) -> None:
    loop.run(until=clock.now() + seconds)


def test_relative_encodings_and_14_bit_values():
    assert [detents("twos", v) for v in (1, 3, 127, 125, 64)] == [1, 3, -1, -3, -64]
    assert [detents("offset", v) for v in (65, 67, 63, 61)] == [1, 3, -1, -3]
    assert [detents("sign", v) for v in (1, 3, 65, 67)] == [1, 3, -1, -3]
    k = MidiKnobs([CCBinding(7, None, "14bit"), CCBinding(20, 1, "absolute")])
    assert k.feed(bytes([0xB0, 7, 0x40])) and k.read()[0] == (0x40 << 7) / 16383  # MSB: LSB taken as 0
    assert k.feed(bytes([0xB5, 39, 0x7F])) and k.read()[0] == ((0x40 << 7) | 0x7F) / 16383
    assert not k.feed(bytes([0xB0, 20, 5]))  # CC 20 on another channel than the binding's
    assert k.feed(bytes([0xB1, 20, 127])) and k.read()[1] == 1.0
    assert not k.feed(bytes([0xB1, 20]))  # garbage: cut short
    assert not k.feed(bytes([0x91, 20, 5]))


@pytest.mark.parametrize("mode", ["absolute", "14bit"])
def test_absolute_controls_sweep_and_the_synth_ends_with_the_loops_voice(mode):
    cfg = _cfg([{"knob": 0, "cc": 16, "cc_mode": mode}, {"knob": 1, "cc": 17, "cc_mode": mode, "cc_channel": 2}])
    loop, clock, synth, inbox = _loop(cfg)
    _run(loop, clock, 0.05)
    start = loop.voice
    assert synth.voice == start
    # pick knob 0 up at its pickup point, then sweep it to the top in 64 steps, 5 ms apart
    pickup = loop.mappings[0].to_position(float(loop.base[loop.mappings[0].dim]))
    sent_before = loop.stats.messages
    for i in range(65):
        pos = pickup + (1.0 - pickup) * i / 64
        if mode == "absolute":
            inbox.pending.append(bytes([0xB0, 16, round(pos * 127)]))
        else:
            v = round(pos * 16383)
            inbox.pending += [bytes([0xB0, 16, v >> 7]), bytes([0xB0, 48, v & 0x7F])]
        _run(loop, clock, 0.005)
    _run(loop, clock, 0.05)
    assert loop.channels[0].takeover.live and loop.channels[0].position == 1.0  # no filter lag: exactly the CC
    assert loop.voice != start and synth.voice == loop.voice and loop.stats.messages > sent_before
    assert not synth.errors
    # knob 1 listens on channel 2 only
    before = loop.voice
    inbox.pending.append(bytes([0xB0, 17, 0]))
    _run(loop, clock, 0.05)
    assert loop.channels[1].position is None and loop.voice == before


@pytest.mark.parametrize("mode,up,down", [("twos", 1, 127), ("offset", 65, 63), ("sign", 1, 65)])
def test_relative_encoder_starts_on_the_voice_and_gives_it_back(mode, up, down):
    cfg = _cfg([{"knob": 0, "cc": 20, "cc_mode": mode, "cc_step": 0.01}])
    loop, clock, synth, inbox = _loop(cfg)
    _run(loop, clock, 0.05)
    start = loop.voice
    assert loop.channels[0].takeover.live  # an encoder has nothing to pick up
    for _ in range(30):
        inbox.pending.append(bytes([0xB0, 20, up]))
        _run(loop, clock, 0.004)
    _run(loop, clock, 0.05)
    assert loop.voice != start and synth.voice == loop.voice
    for _ in range(30):
        inbox.pending.append(bytes([0xB0, 20, down]))
        _run(loop, clock, 0.004)
    _run(loop, clock, 0.05)
    assert loop.voice == start and synth.voice == start  # back the same detents: the voice, exactly
    # next voice: the encoder is placed on its value at once
    loop.press("next")
    _run(loop, clock, 0.05)
    m = loop.mappings[0]
    assert loop.channels[0].position == pytest.approx(m.to_position(float(loop.base[m.dim])))
    assert synth.voice == loop.voice


def test_an_adc_board_and_a_controller_together():
    cfg = _cfg([{"channel": 0, "knob": 0}, {"knob": 1, "cc": 21}])
    pots = [0.5, 0.5, 0.5, 0.5]
    loop, clock, synth, inbox = _loop(cfg, adc_positions=pots)
    assert [m.channel for m in loop.mappings] == [0, 4]  # the controller's knob follows the board's 4 channels
    _run(loop, clock, 0.3)
    start = loop.voice
    for m, ch in zip(loop.mappings[:1], loop.channels[:1]):  # the pot: to its pickup point, then away
        pots[0] = m.to_position(float(loop.base[m.dim]))
    _run(loop, clock, 0.5)
    pots[0] = 0.0 if pots[0] > 0.5 else 1.0
    _run(loop, clock, 0.5)
    after_pot = loop.voice
    assert after_pot != start
    p1 = loop.mappings[1].to_position(float(loop.base[loop.mappings[1].dim]))
    for v in range(round(p1 * 127), 128):
        inbox.pending.append(bytes([0xB0, 21, v]))
        _run(loop, clock, 0.003)
    _run(loop, clock, 0.05)
    assert loop.voice != after_pot and synth.voice == loop.voice


def test_thru_keeps_order_moves_to_the_synth_channel_and_the_budget_counts_it():
    cfg = _cfg([{"knob": 0, "cc": 16}], profile="dx7")
    loop, clock, synth, inbox = _loop(cfg)
    _run(loop, clock, 0.05)
    played = []
    rng = np.random.default_rng(4)
    pickup = loop.mappings[0].to_position(float(loop.base[loop.mappings[0].dim]))
    t = 0
    for i in range(400):  # notes, bend, mod wheel, sustain, aftertouch on channel 1 while the knob sweeps
        n = int(rng.integers(36, 96))
        msgs = [bytes([0x90, n, 100]), bytes([0xE0, 0, int(rng.integers(0, 128))]), bytes([0xB0, 1, i % 128]),
                bytes([0xD0, i % 128]), bytes([0x80, n, 0])]
        if i % 50 == 0:
            msgs.append(bytes([0xB0, 64, 127 if i % 100 == 0 else 0]))
        played += msgs
        inbox.pending += msgs + [bytes([0xB0, 16, round((pickup + (1 - pickup) * i / 399) * 127)])]
        inbox.pending.append(bytes([0xF8]))  # a clock byte: not passed
        _run(loop, clock, 0.004)
        t += 1
    _run(loop, clock, 2.0)
    channel_msgs = [r.data for r in synth.log if r.data[0] != 0xF0]
    assert channel_msgs == [bytes([(m[0] & 0xF0) | 2]) + m[1:] for m in played]  # in order, on channel 3
    for r in synth.log:  # every message whole: sysex parses, nothing else inside one
        if r.data[0] == 0xF0:
            parse_message(r.data)
    assert synth.voice == loop.voice and not synth.errors
    times = [r.t for r in synth.log]
    assert busiest_window(times, [len(r.data) for r in synth.log]) <= 2500  # notes counted in the budget


def test_controller_gone_releases_held_notes_and_stop_sends_all_notes_off():
    cfg = _cfg([{"knob": 0, "cc": 16}])
    loop, clock, synth, inbox = _loop(cfg)
    inbox.pending += [bytes([0x90, 60, 90]), bytes([0x90, 64, 90]), bytes([0xB0, 64, 127])]
    _run(loop, clock, 0.02)
    assert loop.thru.held and loop.thru.sustain
    inbox.state = "disconnected"
    _run(loop, clock, 0.02)
    tail = [r.data for r in synth.log][-4:]
    assert tail == [bytes([0x82, 60, 0]), bytes([0x82, 64, 0]), bytes([0xB2, 64, 0]), bytes([0xB2, 123, 0])]
    inbox.state, inbox.connects = "connected", 2
    inbox.pending.append(bytes([0x90, 67, 90]))
    _run(loop, clock, 0.02)
    loop.release_notes()
    assert [r.data for r in synth.log][-2:] == [bytes([0x82, 67, 0]), bytes([0xB2, 123, 0])]


@pytest.mark.parametrize("turn,expect", [
    ([(0, 20, v) for v in range(40, 60)], CCBinding(20, 0, "absolute")),
    ([(2, 5, 64), (2, 37, 10), (2, 5, 65), (2, 37, 3)], CCBinding(5, 2, "14bit")),
    ([(0, 30, 1)] * 5 + [(0, 30, 127)] * 5, CCBinding(30, 0, "twos")),
    ([(0, 30, 65)] * 4 + [(0, 30, 63)] * 4, CCBinding(30, 0, "offset")),
    ([(0, 30, 1)] * 4 + [(0, 30, 66)] * 4, CCBinding(30, 0, "sign")),
])
def test_learn_tells_the_kind_of_control_from_one_turn(turn, expect):
    assert classify(turn) == expect


CONFIG = """# my box
[midi]
profile = "dexed"   # Dexed over USB
input = "controller"

[[knob]]
channel = 0         # the first pot
knob = 0

[[knob]]
knob = 1
cc = 99             # will be replaced
name = "bright"     # kept

[display]
kind = "none"
"""


def test_learn_binds_in_one_turn_writes_the_config_and_survives_a_restart(tmp_path):
    path = tmp_path / "device.toml"
    path.write_text(CONFIG)
    learner = Learner(quiet_s=0.3)
    cfg = load_config(path)
    loop, clock, synth, inbox = _loop(cfg, adc_positions=[0.5] * 4)
    loop.learn(learner)
    for v in range(30, 50):  # one turn of an absolute knob on channel 5
        inbox.pending.append(bytes([0xB4, 23, v]))
        _run(loop, clock, 0.01)
    inbox.pending.append(bytes([0x94, 60, 100]))  # a note while learning still plays
    _run(loop, clock, 0.5)
    binding = learner.done(clock.now())
    assert binding == CCBinding(23, 4, "absolute")
    assert bytes([0x90, 60, 100]) in [r.data for r in synth.log]  # moved to the synth's channel 1
    write_binding(path, 1, binding)
    text = path.read_text()
    assert "# my box" in text and "# the first pot" in text and 'name = "bright"     # kept' in text
    assert "cc = 99" not in text and "cc = 23" in text and "cc_channel = 5" in text
    # a restart: the config read back binds the control; turning it moves knob 2
    cfg2 = load_config(path)
    loop2, clock2, synth2, inbox2 = _loop(cfg2, adc_positions=[0.5] * 4)
    _run(loop2, clock2, 0.3)
    start = loop2.voice
    p = loop2.mappings[1].to_position(float(loop2.base[loop2.mappings[1].dim]))
    for v in range(round(p * 127), 128):
        inbox2.pending.append(bytes([0xB4, 23, v]))
        _run(loop2, clock2, 0.003)
    _run(loop2, clock2, 0.05)
    assert loop2.voice != start and synth2.voice == loop2.voice
    # a third knob appended; a binding that makes the config invalid is refused and the file kept
    write_binding(path, 2, CCBinding(2, None, "twos", 0.02))
    assert load_config(path).knobs[2].cc_mode == "twos"
    bad = CCBinding(5, None, "14bit")
    object.__setattr__(bad, "control", 40)  # a 14-bit MSB out of 0..31: the edited config would not load
    before = path.read_text()
    with pytest.raises(DxmacroError, match="MSB"):
        write_binding(path, 0, bad)
    assert path.read_text() == before
    assert load_config(path).knobs[2].cc == 2
    assert "\nchannel = 0" not in with_binding(CONFIG, 0, CCBinding(7))  # the ADC channel goes


def test_a_knob_that_went_through_its_pickup_point_within_one_tick_is_picked_up():
    """JACK hands CCs over once per period: ten of them can arrive between two reads."""
    cfg = _cfg([{"knob": 0, "cc": 16}])
    loop, clock, synth, inbox = _loop(cfg)
    _run(loop, clock, 0.02)
    m = loop.mappings[0]
    pickup = m.to_position(float(loop.base[m.dim]))
    lo = max(0, round(pickup * 127) - 12)
    inbox.pending += [bytes([0xB0, 16, v]) for v in range(lo, min(127, lo + 24) + 1)]  # all in one tick
    _run(loop, clock, 0.002)
    assert loop.channels[0].takeover.live
    assert loop.channels[0].position == min(127, lo + 24) / 127 and synth.voice == loop.voice
    # a batch that stays on one side of the pickup point does not pick the knob up
    loop.press("next")
    _run(loop, clock, 0.002)
    p2 = m.to_position(float(loop.base[m.dim]))
    far = [0, 1, 2] if p2 > 0.5 else [127, 126, 125]
    inbox.pending += [bytes([0xB0, 16, v]) for v in far]
    _run(loop, clock, 0.002)
    assert not loop.channels[0].takeover.live
