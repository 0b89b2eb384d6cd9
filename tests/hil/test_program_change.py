"""Program Change over real JACK ports: a controller's port -> the device's MIDI input -> the
control loop (relative knobs) -> the emulated DX7, which must hold each chosen cartridge voice
byte for byte, also after every knob has been turned away and brought back; an unplugged
controller port is reported and reopened while the loop keeps running."""

from __future__ import annotations

import threading
import time
from pathlib import Path

import numpy as np
import pytest

from device.control.config import parse_config
from device.control.midi_port import MidiPort, PortSpec
from device.control.program import with_latents
from device.runtime import build_loop, open_midi_input, simulated_knobs
from device.twins.linear_decoder import LinearDecoder
from device.twins.sim import RealClock
from dx7 import Voice
from hardware.midi import RtMidiOutput

from tests.device_helpers import wait_until

pytestmark = [pytest.mark.hil]


def _wait(cond, timeout: float = 3.0) -> bool:
    return wait_until(cond, timeout)


@pytest.mark.timeout(120)
def test_program_change_and_relative_knobs_over_jack(emulator_factory):
    emu = emulator_factory(channel=1)
    controller = RtMidiOutput("knobs-and-programs", "jack", client_name="pc-test", virtual=True)
    rng = np.random.default_rng(21)
    cartridge = [Voice.init().replace({"algorithm": int(rng.integers(0, 32)), "feedback": int(rng.integers(0, 8)),
                                       "op3_output_level": int(rng.integers(0, 100)),
                                       "op1_freq_coarse": int(rng.integers(0, 4))}, name=f"CART {i:02d}")
                 for i in range(32)]
    decoder = LinearDecoder()
    cfg = parse_config({"adc": {"channels": len(decoder.knobs)},
                        "midi": {"profile": "dx7", "api": "jack", "port": emu.input_port, "channel": 1,
                                 "reopen_interval_s": 0.1, "input": controller.name, "input_api": "jack"}},
                       Path("pc.toml"))
    positions = [0.5] * len(decoder.knobs)
    clock = RealClock()
    knobs = simulated_knobs(cfg, clock, lambda ch, t: positions[ch])
    midi_in = open_midi_input(cfg)
    port = MidiPort(PortSpec("jack", emu.input_port, client_name="dxmacro-pc-test"))
    loop = build_loop(cfg, decoder=decoder, knobs=knobs, port=port, clock=clock, midi_in=midi_in)
    loop.set_voices(with_latents(tuple(cartridge), decoder))
    stop = threading.Event()
    runner = threading.Thread(target=loop.run, kwargs={"stop": stop}, daemon=True)
    runner.start()
    try:
        assert _wait(lambda: midi_in.state == "connected"), midi_in.last_error
        for n in (0, 5, 17, 31):
            controller.send(bytes([0xC0, n]))
            assert _wait(lambda: emu.edit_buffer() == cartridge[n]), (n, emu.edit_buffer().name)
        # every knob picked up at its pickup point, turned to the far end, brought back
        z = loop.base
        pickups = [m.to_position(float(z[m.dim])) for m in loop.mappings]
        for k, p in enumerate(pickups):
            positions[k] = p
        time.sleep(0.4)
        assert all(ch.takeover.live for ch in loop.channels)
        for k, p in enumerate(pickups):
            positions[k] = 0.0 if p > 0.5 else 1.0
        assert _wait(lambda: emu.edit_buffer() != cartridge[31])  # the knobs edit the voice
        for k, p in enumerate(pickups):
            positions[k] = p
        assert _wait(lambda: emu.edit_buffer() == cartridge[31], timeout=4.0)  # and give it back exactly
        # the controller is unplugged: said, and the loop goes on; plugged back: it listens again
        ticks = loop.stats.ticks
        controller.close()
        assert _wait(lambda: midi_in.state == "disconnected", timeout=4.0)
        assert _wait(lambda: loop.stats.ticks > ticks + 50) and runner.is_alive()
        controller = RtMidiOutput("knobs-and-programs", "jack", client_name="pc-test", virtual=True)
        assert _wait(lambda: midi_in.state == "connected", timeout=5.0), midi_in.last_error
        time.sleep(0.1)
        controller.send(bytes([0xC0, 3]))
        assert _wait(lambda: emu.edit_buffer() == cartridge[3])
    finally:
        stop.set()
        runner.join(timeout=5)
        midi_in.close()
        port.close()
        controller.close()
