"""A MIDI controller as the knob board, over real JACK ports: a controller process (hardware.midi_player)
sends 7-bit, 14-bit and relative sweeps with notes between them -> the device's one MIDI input ->
the control loop (dx7 profile, byte budget) -> the emulated DX7. The synth must end with the voice
the loop computed, receive the notes in the order played and never inside a sysex; the controller
unplugged with a note held leaves no note sounding, and plugged back it plays the knobs again."""

from __future__ import annotations

import threading
import time
from pathlib import Path

import numpy as np
import pytest

from device.control.config import parse_config
from device.control.midi_port import MidiPort, PortSpec
from device.runtime import build_loop, open_midi_input
from device.twins.linear_decoder import LinearDecoder
from device.twins.sim import RealClock
from dx7.sysex import parse_message
from hardware.midi_player import MidiPlayer

from tests.device_helpers import wait_until

pytestmark = [pytest.mark.hil]


def _wait(cond, timeout: float = 5.0) -> bool:
    return wait_until(cond, timeout)


def _sweeps(loop) -> tuple[list[tuple[float, bytes]], list[bytes]]:
    """Knob 1 (7-bit CC 16) and knob 2 (14-bit CC 2/34) from their pickup points to the far end,
    knob 3 (two's-complement encoder on CC 30) 40 detents up and 15 down; a note every 10 messages."""
    msgs: list[bytes] = []
    p = [m.to_position(float(loop.base[m.dim])) for m in loop.mappings]
    for i in range(81):
        msgs.append(bytes([0xB0, 16, round((p[0] + (1 - p[0]) * i / 80) * 127)]))
    for i in range(81):
        v = round((p[1] * (1 - i / 80)) * 16383)
        msgs += [bytes([0xB0, 2, v >> 7]), bytes([0xB0, 34, v & 0x7F])]
    msgs += [bytes([0xB0, 30, 1])] * 40 + [bytes([0xB0, 30, 127])] * 15
    played, out = [], []
    note = 40
    for i, m in enumerate(msgs):
        out.append((0.002, m))
        if i % 10 == 0:
            on, off = bytes([0x90, note, 90]), bytes([0x80, note, 0])
            out += [(0.0, on), (0.0, off)]
            played += [on, off]
            note = 40 + (note - 39) % 40
    return out, played


@pytest.mark.timeout(150)
def test_controller_sweeps_notes_in_order_and_unplugged_controller_over_jack(emulator_factory):
    emu = emulator_factory(channel=2)
    ctl = MidiPlayer("ctl").start()
    decoder = LinearDecoder()
    cfg = parse_config({"knob": [{"knob": 0, "cc": 16}, {"knob": 1, "cc": 2, "cc_mode": "14bit"},
                                 {"knob": 2, "cc": 30, "cc_mode": "twos", "cc_step": 0.01}],
                        "midi": {"profile": "dx7", "api": "jack", "port": emu.input_port, "channel": 2,
                                 "reopen_interval_s": 0.1, "input": ctl.port, "input_api": "jack"}},
                       Path("ctl.toml"))
    clock = RealClock()
    midi_in = open_midi_input(cfg)
    port = MidiPort(PortSpec("jack", emu.input_port, client_name="dxmacro-ctl-test"))
    loop = build_loop(cfg, decoder=decoder, knobs=None, port=port, clock=clock, midi_in=midi_in)
    loop.stats.record_ticks = True
    stop = threading.Event()
    runner = threading.Thread(target=loop.run, kwargs={"stop": stop}, daemon=True)
    runner.start()
    try:
        assert _wait(lambda: midi_in.state == "connected"), midi_in.last_error
        assert _wait(lambda: emu.edit_buffer() == loop.voice)
        start = loop.voice
        since = len(emu.log())
        script, played = _sweeps(loop)
        ctl.play(script)
        assert _wait(lambda: all(ch.position is not None for ch in loop.channels))
        assert all(ch.takeover.live for ch in loop.channels), [(ch.position, ch.takeover.target) for ch in loop.channels]
        assert loop.channels[0].position == 1.0 and loop.channels[1].position == 0.0
        # the synth ends with the voice the loop computed (the budget paces the dx7 profile)
        assert _wait(lambda: emu.edit_buffer() == loop.voice and not loop.profile.pending, timeout=8.0)
        assert loop.voice != start
        arrivals = emu.log(since)
        notes = [a.data for a in arrivals if a.data[0] & 0xF0 in (0x80, 0x90)]
        assert notes == [bytes([(m[0] & 0xF0) | 1]) + m[1:] for m in played]  # in order, on channel 2
        for a in arrivals:  # each arrival one whole message: every sysex parses and was applied
            if a.data[0] == 0xF0:
                parse_message(a.data)
                assert not a.verdict.startswith("rejected"), a.verdict
        lat = np.array(loop.stats.cc_latencies) * 1e3
        print(f"\nCC received -> first byte sent (dx7 profile, {len(lat)} CCs that sent): "
              f"p50 {np.percentile(lat, 50):.3f} ms, p99 {np.percentile(lat, 99):.3f} ms")
        # a note held, then the controller unplugged: the synth is left with nothing sounding
        ctl.play([(0.0, bytes([0x90, 72, 100])), (0.0, bytes([0xB0, 64, 127]))])
        assert _wait(lambda: emu.state()["notes"] == [72])
        ctl.stop()  # its port closes, as a USB controller's does when pulled (a SIGKILLed JACK client's
        # port lingers ~20 s on this server: jackd -S waits out its client timeout first)
        assert _wait(lambda: midi_in.state == "disconnected")
        assert _wait(lambda: emu.state()["notes"] == [])
        assert runner.is_alive()
        # plugged back: it plays the knobs again
        ctl = MidiPlayer("ctl").start()
        assert _wait(lambda: midi_in.state == "connected"), midi_in.last_error
        time.sleep(0.2)
        before = loop.voice
        ctl.play([(0.003, bytes([0xB0, 30, 1]))] * 20)
        assert _wait(lambda: loop.voice != before and emu.edit_buffer() == loop.voice, timeout=8.0)
    finally:
        stop.set()
        runner.join(timeout=5)
        loop.release_notes()
        midi_in.close()
        port.close()
        ctl.stop()


@pytest.mark.timeout(90)
def test_dxmacro_device_learn_binds_one_turn_over_jack(jack, tmp_path):
    """`dxmacro device learn`: one turn of a 14-bit control over JACK binds knob 2; the file keeps its
    comments and loads again (a restart reads the binding)."""
    import subprocess
    import sys

    from device.control.config import load_config

    ctl = MidiPlayer("learnme").start()
    path = tmp_path / "device.toml"
    path.write_text(f'# the box\n[midi]\napi = "jack"\ninput = "{ctl.port}"   # my controller\n\n'
                    f'[[knob]]\nknob = 0\ncc = 16\n')
    proc = subprocess.Popen([sys.executable, "-m", "dxmacro", "device", "learn", "--config", str(path), "--knob", "2",
                             "--timeout", "20"], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        assert proc.stdout.readline().startswith("knob 2: turn a control")
        time.sleep(1.0)  # the input port connects
        turn = []
        for v in range(3000, 9000, 300):
            turn += [(0.01, bytes([0xB3, 5, v >> 7])), (0.0, bytes([0xB3, 37, v & 0x7F]))]
        ctl.play(turn)
        out, err = proc.communicate(timeout=20)
    finally:
        if proc.poll() is None:
            proc.kill()
        ctl.stop()
    assert proc.returncode == 0, err
    assert "knob 2: CC 5/37 14bit on channel 4" in out
    text = path.read_text()
    assert text.startswith("# the box") and "# my controller" in text
    knob = load_config(path).knobs[1]
    assert (knob.cc, knob.cc_mode, knob.cc_channel, knob.knob) == (5, "14bit", 4, 1)
