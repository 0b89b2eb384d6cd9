"""Byte budget, coalescing and the output profiles, message by message."""

from __future__ import annotations

import numpy as np
from hypothesis import given, settings, strategies as st

from dx7 import Voice
from dx7.sysex import ParameterChange, SingleVoice, parse_message
from device.control.budget import ByteBudget
from device.control.profiles import CCProfile, EchoCC, SysexProfile
from device.control.budget import busiest_window


@settings(max_examples=60, deadline=None)
@given(st.lists(st.tuples(st.floats(0.0, 0.05), st.sampled_from([3, 7, 163])), min_size=1, max_size=400))
def test_budget_never_exceeds_its_rate_in_any_one_second_window(events):
    b = ByteBudget(2500.0)
    t, times, sizes = 0.0, [], []
    for dt, n in events:
        t += dt
        if b.allows(t, n):
            b.spend(t, n)
            times.append(t)
            sizes.append(n)
    assert busiest_window(times, sizes) <= 2500


def test_budget_paces_a_long_stream_near_its_rate():
    b = ByteBudget(2500.0)
    sent = 0
    for i in range(10_000):  # 10 s, offering a dump every millisecond
        if b.allows(i / 1000, 163):
            b.spend(i / 1000, 163)
            sent += 163
    assert 0.9 * 25_000 <= sent <= 25_000


def _collect(profile, budget_msgs=None):
    out = []

    def send(data):
        if budget_msgs is not None and len(out) >= budget_msgs:
            return False
        out.append(data)
        return True

    profile.pump(send)
    return out


def test_sysex_profile_sends_a_dump_first_then_only_differences():
    p = SysexProfile("dx7", 2)
    v = Voice.init()
    p.set_target(v.values)
    first = _collect(p)
    assert len(first) == 1 and parse_message(first[0]) == SingleVoice.of(v, 2)
    p.set_target(v.replace({"feedback": 5, "op1_output_level": 80}).values)
    msgs = [parse_message(m) for m in _collect(p)]
    assert sorted((m.parameter, m.value, m.channel) for m in msgs) == [(121, 80, 2), (135, 5, 2)]
    assert _collect(p) == []


def test_sysex_profile_prefers_a_dump_when_it_is_fewer_bytes():
    p = SysexProfile("dx7", 0)
    v = Voice.init()
    p.set_target(v.values)
    _collect(p)
    many = v.replace({f"op{op}_eg_rate{r}": 10 for op in range(1, 7) for r in range(1, 5)})  # 24 changes
    p.set_target(many.values)
    msgs = _collect(p)
    assert len(msgs) == 1 and len(msgs[0]) == 163  # 24 x 7 = 168 > 163


def test_refused_sends_coalesce_to_the_latest_value():
    p = SysexProfile("dx7", 0)
    v = Voice.init()
    p.set_target(v.values)
    _collect(p)
    for level in (10, 20, 30, 40):
        p.set_target(v.replace({"op1_output_level": level, "feedback": 1}).values)
        _collect(p, budget_msgs=0)  # the budget refuses everything for a while
    p.set_target(v.replace({"op1_output_level": 55, "feedback": 1}).values)
    msgs = [parse_message(m) for m in _collect(p)]
    assert [(m.parameter, m.value) for m in msgs] == [(121, 55), (135, 1)]  # once each, latest, oldest first
    # a parameter that went back to what the synth has is not sent at all
    p.set_target(v.replace({"op1_output_level": 70, "feedback": 1}).values)
    p.set_target(v.replace({"op1_output_level": 55, "feedback": 1}).values)
    assert _collect(p) == []


def test_invalidate_resends_the_whole_voice():
    p = SysexProfile("dexed", 0)
    p.set_target(Voice.init().values)
    _collect(p)
    p.invalidate()
    msgs = _collect(p)
    assert len(msgs) == 1 and len(msgs[0]) == 163


def test_cc_profile_scales_values_and_sends_changes_only():
    p = CCProfile(3, {"op1_output_level": 20, "feedback": 21})
    v = Voice.init()
    p.set_target(v.values)
    assert sorted(_collect(p)) == sorted([bytes([0xB3, 20, 127]), bytes([0xB3, 21, 0])])
    p.set_target(v.replace({"feedback": 7}).values)
    assert _collect(p) == [bytes([0xB3, 21, 127])]


def test_echo_sends_knob_positions_as_ccs():
    e = EchoCC(15, [20, 21])
    e.set_positions([0.0, 1.0])
    assert _collect(e) == [bytes([0xBF, 20, 0]), bytes([0xBF, 21, 127])]
    e.set_positions([0.001, None])
    assert _collect(e) == []


def test_parameter_changes_are_valid_dx7_messages():
    p = SysexProfile("dx7", 0)
    rng = np.random.default_rng(0)
    v = Voice.init()
    p.set_target(v.values)
    _collect(p)
    vals = list(v.values)
    for idx in rng.choice(145, 10, replace=False):
        vals[idx] = 0
    p.set_target(vals)
    for m in _collect(p):
        assert isinstance(parse_message(m), (ParameterChange, SingleVoice))
