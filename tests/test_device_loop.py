"""The control loop end to end on a simulated clock: ADC twin -> loop -> emulated DX7."""

from __future__ import annotations

import threading

import numpy as np
import pytest

from dx7 import Voice
from dx7.sysex import ParameterChange, SingleVoice, parse_message
from device.control.controls import VoiceBank
from device.twins.linear_decoder import LinearDecoder
from device.control.loop import LoopSettings
from device.twins.sim import KnobScript, ScriptedButtons
from device.control.budget import busiest_window
from tests.device_helpers import make_loop

REST = [0.3, 0.62, 0.45, 0.81]


@pytest.mark.parametrize("takeover,fail_rate", [("pickup", 0.0), ("jump", 0.0), ("jump", 0.05)])
def test_ten_untouched_minutes_send_nothing(takeover, fail_rate):
    """ADS1115 at its default gain and data rate (128 SPS), 3 LSB rms noise, knobs
    untouched for 10 simulated minutes: after the start-up voice, not one message."""
    loop, clock, adc, synth = make_loop(KnobScript(4, REST), data_rate=128, fail_rate=fail_rate,
                                        takeover=takeover)
    loop.run(until=600.0)
    assert loop.stats.ticks > 0.95 * 600 * 32
    if fail_rate:
        assert adc.failures > 0.04 * adc.reads
    late = [r for r in synth.log if r.t > 0.5]
    assert late == []
    assert synth.log and len(synth.log[0].data) == 163  # the start-up voice
    if takeover == "pickup":
        assert len(synth.log) == 1


def _random_performance(seed: int, duration: float):
    rng = np.random.default_rng(seed)
    script = KnobScript(4, [0.5] * 4)
    for k in range(4):
        t = float(rng.uniform(0.2, 2.0))
        while t < duration - 1:
            over = float(rng.choice([0.0, 0.05, 0.3, 1.0, 3.0]))
            script.move(k, t, float(rng.uniform(0, 1)), over)
            t += over + float(rng.exponential(1.5))
    presses = sorted((float(rng.uniform(1, duration - 1)), str(rng.choice(["next", "previous", "random", "store",
                                                                           "panic"]))) for _ in range(12))
    return script, presses


def _check_dexed(payload: bytes, dexed) -> None:
    """dexed-py's own parser loads the voice without clamping anything."""
    raw = bytes(dexed.Patch.from_sysex(payload + bytes([0x3F])).to_raw())
    assert raw == payload


def test_long_performance_sends_only_valid_dx7_midi_within_budget(tmp_path):
    dexed = pytest.importorskip("dexed", reason="dexed-py (the independent parser) is not installed")
    script, presses = _random_performance(3, 150.0)
    loop, clock, adc, synth = make_loop(script, fail_rate=0.02, buttons=lambda c: ScriptedButtons(c, presses),
                                        bank=VoiceBank(tmp_path / "bank.syx"))
    loop.run(until=150.0)
    assert synth.errors == []
    assert loop.stats.decodes > 500 and len(synth.log) > 500
    state = list(Voice.init().values)
    kinds = {"dump": 0, "change": 0, "cc": 0}
    for r in synth.log:
        if r.data[0] != 0xF0:
            assert r.data in (bytes([0xB0, 120, 0]), bytes([0xB0, 123, 0]))
            kinds["cc"] += 1
            continue
        msg = parse_message(r.data)
        if isinstance(msg, SingleVoice):
            _check_dexed(msg.values, dexed)
            state = list(msg.values)
            kinds["dump"] += 1
        else:
            assert isinstance(msg, ParameterChange) and msg.channel == 0 and msg.parameter < 155
            state[msg.parameter] = msg.value
            _check_dexed(bytes(state), dexed)
            kinds["change"] += 1
    assert all(kinds.values()), kinds
    assert Voice(tuple(state)) == synth.voice == loop.voice
    assert busiest_window([r.t for r in synth.log], [len(r.data) for r in synth.log]) <= 2500
    assert len(VoiceBank(tmp_path / "bank.syx").voices()) == sum(1 for _, b in presses if b == "store")


def test_dexed_profile_is_not_budgeted_and_still_valid():
    script, _ = _random_performance(5, 20.0)
    loop, clock, adc, synth = make_loop(script, profile="dexed")
    loop.run(until=20.0)
    assert synth.errors == [] and synth.voice == loop.voice
    assert busiest_window([r.t for r in synth.log], [len(r.data) for r in synth.log]) > 2500


def test_cc_profile_sends_learned_controls_only():
    script, _ = _random_performance(6, 20.0)
    loop, clock, adc, synth = make_loop(script, profile="cc", takeover="jump")
    loop.run(until=20.0)
    assert synth.log and all(r.data[0] == 0xB0 and r.data[1] in (20, 21) and r.data[2] <= 127 for r in synth.log)
    last = {r.data[1]: r.data[2] for r in synth.log}
    assert last[20] == round(loop.voice["op1_output_level"] * 127 / 99)
    assert last[21] == round(loop.voice["feedback"] * 127 / 7)


def test_port_that_vanishes_is_reopened_within_a_second_and_gets_the_whole_voice():
    script = KnobScript(4, [0.5] * 4)
    script.move(0, 1.0, 0.0, 1.0)
    script.move(0, 2.5, 1.0, 6.0)  # turning while the cable is out
    loop, clock, adc, synth = make_loop(script, takeover="jump")
    synth.unplug(3.0, 5.0)
    loop.run(until=10.0)
    assert loop.stats.port_gone == 1 and loop.stats.reopened == 1
    assert 5.0 <= synth.reopened_at[0] <= 6.0
    assert not [r for r in synth.log if 3.0 <= r.t < 5.0]
    first_back = next(r for r in synth.log if r.t >= 5.0)
    assert len(first_back.data) == 163 and first_back.t - 5.0 < 1.0
    assert synth.voice == loop.voice and loop.link_up
    assert loop.stats.ticks > 0.9 * 10 * 215  # the loop kept its pace throughout


def test_buttons_switch_voices_store_and_panic(tmp_path):
    dec = LinearDecoder()
    presses = [(1.0, "next"), (2.0, "store"), (3.0, "random"), (4.0, "previous"), (5.0, "previous"),
               (6.0, "panic")]
    loop, clock, adc, synth = make_loop(KnobScript(4, REST), buttons=lambda c: ScriptedButtons(c, presses),
                                        bank=VoiceBank(tmp_path / "bank.syx"), decoder=dec)
    loop.run(until=1.5)
    assert synth.voice == dec.anchors[1].voice  # sent exactly, not re-decoded
    assert loop.display_state().knobs[0].state in ("up", "down")  # waiting for pickup
    loop.run(until=2.5)
    assert VoiceBank(tmp_path / "bank.syx").voices() == [dec.anchors[1].voice]
    loop.run(until=3.5)
    assert synth.voice.name.startswith("RANDOM") and synth.voice == loop.voice
    loop.run(until=5.5)
    assert synth.voice == dec.anchors[-1].voice  # previous from anchor 0 wraps
    loop.run(until=6.5)
    assert synth.notes_off == 2


def test_soft_takeover_sends_nothing_until_the_knob_reaches_the_voice():
    dec = LinearDecoder()
    target = (dec.anchors[0].latent[0] - dec.knobs[0].low) / (dec.knobs[0].high - dec.knobs[0].low)
    start = 0.05 if target > 0.3 else 0.95
    script = KnobScript(4, [start] + REST[1:])
    script.move(0, 1.0, 0.5 * (start + target), 1.0)  # halfway: still waiting
    script.move(0, 3.0, 1.0 - start, 2.0)  # through the voice's value
    loop, clock, adc, synth = make_loop(script, decoder=dec)
    loop.run(until=2.9)
    assert len(synth.log) == 1
    loop.run(until=6.0)
    assert len(synth.log) > 1 and loop.channels[0].takeover.live
    half = 0.5 * (start + target)
    crossing = 3.0 + 2.0 * (target - half) / (1.0 - start - half)
    assert synth.log[1].t >= crossing - 0.1


def test_swap_decoder_from_another_thread_applies_between_ticks():
    script, _ = _random_performance(9, 10.0)
    loop, clock, adc, synth = make_loop(script)
    new = LinearDecoder(seed=42)
    loop.run(until=3.0)
    t = threading.Thread(target=loop.swap_decoder, args=(new,))
    t.start()
    t.join()
    assert loop.decoder is not new  # not mid-tick: only at the next tick
    loop.tick()
    assert loop.decoder is new and loop.stats.swaps == 1
    loop.run(until=10.0)
    assert synth.voice == loop.voice and synth.errors == []


def test_a_decoder_that_starts_failing_stops_the_watchdog_not_the_loop():
    class Flaky(LinearDecoder):
        fail = False

        def decode(self, latent):
            if self.fail:
                raise RuntimeError("interpreter invoke failed")
            return super().decode(latent)

    class Pings:
        def __init__(self):
            self.healthy = []

        def watchdog(self, now, healthy):
            self.healthy.append(healthy)

    dec = Flaky()
    script, _ = _random_performance(4, 6.0)
    pings = Pings()
    loop, clock, adc, synth = make_loop(script, decoder=dec, notifier=pings, takeover="jump")
    loop.run(until=3.0)
    assert all(pings.healthy)
    dec.fail = True
    sent = len(synth.log)
    loop.run(until=6.0)
    assert loop.stats.decode_errors > 0 and not pings.healthy[-1]
    assert synth.errors == [] and len(synth.log) >= sent  # nothing garbled went out


def test_fixed_rate_below_the_adc_limit():
    loop, clock, adc, synth = make_loop(KnobScript(4, REST), settings=LoopSettings(rate_hz=100.0))
    loop.run(until=10.0)
    assert abs(loop.stats.ticks - 1000) <= 2
