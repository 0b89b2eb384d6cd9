"""Dexed, live: a note held through a knob turn, into the Dexed twin (hardware.dexed_twin: Dexed's
documented MIDI behaviour), rendered with Dexed's engine (dexed-py). With the dexed_live profile
(MIDI-learned CCs) the held note changes its sound during the turn and ends on the voice the loop
computed; with plain sysex parameter changes (the dexed profile) it keeps its old sound to the end,
sample for sample, and only the next note has the new voice; a voice dump cuts it off."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from device.control.config import parse_config
from device.control.profiles import LIVE_PARAMS, live_cc
from device.control.program import with_latents
from device.runtime import build_loop
from device.twins.linear_decoder import LinearDecoder
from device.twins.sim import SimClock
from dx7 import Voice
from hardware.dexed_twin import DexedState, DexedTwinPort, SoundingNote

RATE = 44100
DEXED_SETUP = {live_cc(p): p for p in range(LIVE_PARAMS)}  # the one-time MIDI learn in Dexed (docs/device.md)


@pytest.fixture(scope="module")
def renderer():
    dexed_render = pytest.importorskip("host_training.audio.render")
    return dexed_render.DexedRenderer(RATE)


class Inbox:
    def __init__(self) -> None:
        self.pending: list[bytes] = []
        self.state, self.connects = "connected", 1

    def poll(self) -> list[bytes]:
        out, self.pending = self.pending, []
        return out


def held_note(renderer, note: SoundingNote, end: float) -> np.ndarray:
    """What the twin's note sounded like: each stretch rendered with the voice data it sounded with
    from then on (Dexed's refresh keeps the note going: each stretch is cut from a render of the
    whole note with that stretch's voice), silence after a panic cut it."""
    from host_training.audio.render import Note

    hold = min(note.released or end, end) - note.start
    total = end - note.start
    out = np.zeros(round(total * RATE), np.float32)
    stops = [t for t, _ in note.voices[1:]] + [note.cut if note.cut is not None else end]
    for (t0, values), t1 in zip(note.voices, stops):
        audio = renderer.render(Voice(values), Note(note.note, note.velocity, hold, total))
        a, b = round((t0 - note.start) * RATE), round((t1 - note.start) * RATE)
        out[a:b] = audio[a:b]
    return out


def _perform(profile: str, *, press_next: bool = False):
    """A note struck at 0.1 s and held to 1.6 s; knob 1 turned from its pickup point to the far end
    between 0.5 and 0.7 s (or, with ``press_next``, the next voice chosen at 0.5 s); a second note
    at 1.7 s."""
    cfg = parse_config({"knob": [{"knob": 0, "cc": 16}],
                        "midi": {"profile": profile, "channel": 1, "input": "controller"}}, Path("live.toml"))
    clock = SimClock()
    dexed = DexedState(DEXED_SETUP)
    port = DexedTwinPort(dexed, clock)
    inbox = Inbox()
    decoder = LinearDecoder()
    loop = build_loop(cfg, decoder=decoder, knobs=None, port=port, clock=clock, midi_in=inbox)
    if press_next:  # two voices far apart: algorithm, feedback and levels all differ
        pair = (Voice.init().replace({"algorithm": 4, "op1_output_level": 99}, name="FIRST"),
                Voice.init().replace({"algorithm": 21, "feedback": 6, "op2_output_level": 90, "op3_output_level": 80,
                                      "op4_output_level": 85, **{f"op{i}_eg_rate1": 60 for i in range(1, 7)},
                                      **{f"op{i}_eg_rate2": 40 for i in range(1, 7)},
                                      **{f"op{i}_freq_coarse": 3 for i in range(1, 7)}}, name="SECOND"))
        loop.set_voices(with_latents(pair, decoder))
    loop.run(until=0.1)
    start_voice = loop.voice
    inbox.pending.append(bytes([0x90, 57, 100]))
    loop.run(until=0.5)
    if press_next:
        loop.press("next")
    else:
        m = loop.mappings[0]
        p = m.to_position(float(loop.base[m.dim]))
        far = 0 if p > 0.5 else 127
        for v in np.linspace(round(p * 127), far, 40).round().astype(int):
            inbox.pending.append(bytes([0xB0, 16, int(v)]))
            loop.run(until=clock.now() + 0.005)
    loop.run(until=1.6)
    inbox.pending.append(bytes([0x80, 57, 0]))
    loop.run(until=1.7)
    inbox.pending.append(bytes([0x90, 57, 100]))
    loop.run(until=1.8)
    return loop, dexed, start_voice


def _rms(x: np.ndarray) -> float:
    return float(np.sqrt(np.mean(np.square(x, dtype=np.float64))))


def test_learned_ccs_change_the_held_note_and_sysex_does_not(renderer):
    from host_training.audio.render import Note

    live_loop, live, start = _perform("dexed_live")
    plain_loop, plain, start2 = _perform("dexed")
    assert start == start2 and live_loop.voice == plain_loop.voice != start  # the same turn, the same voice
    # the synth ends with the voice the loop computed either way ...
    assert live.voice == live_loop.voice and plain.voice == plain_loop.voice
    first_live, first_plain = live.history[0], plain.history[0]
    # ... but only the learned CCs reached the sounding note
    assert Voice(first_live.voices[-1][1]) == live_loop.voice and len(first_live.voices) > 10
    assert len(first_plain.voices) == 1 and Voice(first_plain.voices[0][1]) == start
    assert live.panics == plain.panics == 1  # the start-up dump only: parameter changes never cut a note
    assert first_live.cut is None and first_plain.cut is None

    end = 1.6
    heard_live, heard_plain = held_note(renderer, first_live, end), held_note(renderer, first_plain, end)
    unchanged = renderer.render(start, Note(57, 100, end - 0.1, end - 0.1))
    after = slice(round((0.8 - 0.1) * RATE), round((end - 0.1) * RATE))  # after the turn, note still held
    before = slice(0, round((0.5 - 0.1) * RATE))
    assert np.array_equal(heard_live[before], unchanged[before]) and np.array_equal(heard_plain, unchanged)
    change = _rms(heard_live[after] - unchanged[after]) / _rms(unchanged[after])
    print(f"\nheld note after the turn vs. before it: dexed_live {change:.2f} of its rms changed; "
          f"plain sysex 0.00 (identical samples)")
    assert _rms(unchanged[after]) > 1e-3 and change > 0.1
    # with plain sysex only the next note has the new voice
    assert Voice(plain.history[1].voices[0][1]) == plain_loop.voice


def test_a_voice_dump_cuts_the_held_note_off(renderer):
    loop, dexed, _ = _perform("dx7", press_next=True)  # the dx7 profile sends a new voice as one dump
    note = dexed.history[0]
    assert dexed.panics == 2 and note.cut == pytest.approx(0.5, abs=0.002)
    heard = held_note(renderer, note, 1.6)
    cut = round((note.cut - note.start) * RATE)
    assert _rms(heard[:cut]) > 1e-3 and not heard[cut:].any()
    live_loop, live, _ = _perform("dexed_live", press_next=True)  # dexed_live changes voices by CCs: no cut
    assert live.history[0].cut is None and live.panics == 1 and live.voice == live_loop.voice
