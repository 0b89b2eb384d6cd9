"""``dxmacro bench midi``: how long a controller's knob CC takes through the loop, over real JACK ports.

A controller process (hardware.midi_player) turns a knob on its JACK port; the device's input
stamps each CC when it comes out of JACK (hardware.midi.RtMidiInput); the loop (dexed profile, no
byte budget: the loop's own cost, not the DIN pacing) measures from that stamp to the first byte
of the voice change it hands to the synth's port (the emulated DX7 on JACK). That is the latency
beyond the transport: JACK adds its period on each side (its figures are docs/hil.md's).
"""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np


@dataclass(frozen=True)
class MidiLatency:
    latencies_ms: np.ndarray
    moves: int
    period_frames: int
    rate: int
    profile: str

    def lines(self) -> list[str]:
        lat = self.latencies_ms
        period = self.period_frames / self.rate * 1e3
        out = [f"JACK dummy backend, {self.rate} Hz, {self.period_frames}-frame periods ({period:.1f} ms); "
               f"profile {self.profile}, loop rate 1000 Hz"]
        if len(lat) == 0:
            return out + ["no knob CC changed the voice: nothing measured"]
        out.append(f"knob CC received -> first byte sent: p50 {np.percentile(lat, 50):.3f} ms, "
                   f"p99 {np.percentile(lat, 99):.3f} ms, max {lat.max():.3f} ms "
                   f"({len(lat)} of {self.moves} moves changed the voice; target p99 <= 2 ms)")
        return out


def run_midi_latency(*, moves: int = 200, interval_s: float = 0.03, profile: str = "dexed", seed: int = 0,
                     period: int = 1024, rate: int = 48000, decoder=None) -> MidiLatency:
    from device.control.config import parse_config
    from device.control.midi_port import MidiPort, PortSpec
    from device.runtime import build_loop, open_midi_input
    from device.twins.linear_decoder import LinearDecoder
    from hardware.clock import RealClock
    from hardware.dx7_emulator import DX7Emulator
    from hardware.jack import JackServer
    from hardware.midi_player import MidiPlayer

    rng = np.random.default_rng(seed)
    with JackServer(f"dxmacro-bench-midi", rate=rate, period=period) as _server:
        emu = DX7Emulator("bench-dx7", 1).start()
        ctl = MidiPlayer("bench-ctl").start()
        midi_in = port = None
        try:
            decoder = decoder or LinearDecoder()
            cfg = parse_config({"knob": [{"knob": 0, "cc": 20}],
                                "midi": {"profile": profile, "api": "jack", "port": emu.input_port,
                                         "input": ctl.port, "input_api": "jack"}}, Path("bench.toml"))
            midi_in = open_midi_input(cfg)
            port = MidiPort(PortSpec("jack", emu.input_port, client_name="dxmacro-bench"))
            loop = build_loop(cfg, decoder=decoder, knobs=None, port=port, clock=RealClock(spin_s=3e-4),
                              midi_in=midi_in)
            stop = threading.Event()
            runner = threading.Thread(target=loop.run, kwargs={"stop": stop}, daemon=True)
            runner.start()
            end = time.monotonic() + 10
            while midi_in.state != "connected" and time.monotonic() < end:
                time.sleep(0.05)
            time.sleep(0.3)
            m = loop.mappings[0]
            pickup = round(m.to_position(float(loop.base[m.dim])) * 127)
            ctl.play([(0.0, bytes([0xB0, 20, pickup]))])  # picked up at its pickup point
            time.sleep(0.3)
            loop.stats.record_ticks = True
            value = pickup
            script = []
            for _ in range(moves):  # one CC at a time, far enough apart that each is its own JACK period
                value = int(np.clip(value + rng.choice([-1, 1]) * rng.integers(3, 12), 0, 127))
                script.append((interval_s, bytes([0xB0, 20, value])))
            ctl.play(script)
            time.sleep(0.3)
            stop.set()
            runner.join(timeout=5)
            return MidiLatency(np.array(loop.stats.cc_latencies) * 1e3, moves, period, rate, profile)
        finally:
            for closer in (getattr(midi_in, "close", None), getattr(port, "close", None), ctl.stop, emu.stop):
                if closer is not None:
                    closer()
