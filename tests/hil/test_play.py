"""``dxmacro play`` as a user runs it, over real JACK ports: a controller process (hardware.midi_player)
and the emulated DX7 as the synth. Unknown ports are one line; knobs and notes reach the synth;
garbage MIDI is ignored; the controller unplugged and back is reconnected; Ctrl-C leaves no note
sounding."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time

import pytest

from hardware.midi_player import MidiPlayer

from tests.device_helpers import wait_until

pytestmark = [pytest.mark.hil]


def _wait(cond, timeout: float = 8.0) -> bool:
    return wait_until(cond, timeout)


def _play(*args: str, **kw) -> subprocess.Popen:
    # Ctrl-C as a terminal delivers it: a test run started in the background (CI scripts, nohup ... &)
    # inherits SIGINT ignored, and Python then leaves it ignored in the child, so restore the default
    return subprocess.Popen([sys.executable, "-m", "dxmacro", "play", "--api", "jack", "--linear", *args],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=dict(os.environ),
                            preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL), **kw)


@pytest.mark.timeout(120)
def test_dxmacro_play_over_jack(emulator_factory):
    emu = emulator_factory(channel=1)
    ctl = MidiPlayer("keys").start()
    bad = _play("--controller", "no such controller", "--synth", emu.input_port)
    out, err = bad.communicate(timeout=30)
    assert bad.returncode == 1 and err.strip().count("\n") == 0 and "Traceback" not in err
    assert err.startswith("dxmacro: error: no MIDI input port 'no such controller'") and ctl.port in err
    proc = _play("--controller", ctl.port, "--synth", emu.input_port)
    try:
        start = emu.edit_buffer()
        assert _wait(lambda: emu.state()["voice"]["name"] != "" and len(emu.log()) > 0), proc.stderr
        time.sleep(0.5)
        start = emu.edit_buffer()
        # garbage first: stray data bytes, a sysex that is not a DX7's, a cut-short CC, a program beyond the voices
        ctl.play([(0.0, bytes([0xF0, 0x01, 0x02, 0xF7])), (0.0, bytes([0xB0, 20])), (0.0, bytes([0xC0, 120])),
                  (0.0, bytes([0xF0, 0x43, 0x00, 0x09, 0x20, 0x00, 0x01, 0xF7]))])
        ctl.play([(0.004, bytes([0xB0, 20, v])) for v in range(0, 128, 2)] + [(0.0, bytes([0x90, 60, 100]))])
        assert _wait(lambda: emu.state()["notes"] == [60])
        assert _wait(lambda: emu.edit_buffer() != start)
        # the controller unplugged and back: play reconnects and the knob plays again
        ctl.stop()
        time.sleep(1.0)
        ctl = MidiPlayer("keys").start()
        time.sleep(1.5)
        moved = emu.edit_buffer()
        ctl.play([(0.004, bytes([0xB0, 21, v])) for v in range(0, 128, 2)] + [(0.0, bytes([0x90, 64, 100]))])
        assert _wait(lambda: 64 in emu.state()["notes"] and emu.edit_buffer() != moved)
        assert proc.poll() is None
        proc.send_signal(signal.SIGINT)  # Ctrl-C
        out, err = proc.communicate(timeout=20)
        assert proc.returncode == 0, err
        assert "Traceback" not in err and "all notes off sent" in out
        assert _wait(lambda: emu.state()["notes"] == [])
        assert emu.log()[-1].data == bytes([0xB0, 123, 0])
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.communicate()
        ctl.stop()
