"""``dxmacro bench midi``: how long a controller's knob CC takes through the loop, beside the transport alone.

Two controller processes (hardware.midi_player) take turns on one schedule, one move each, on a
private JACK server (dummy backend, the period given): controller A's knob CC goes to the device's
loop (dexed profile by default: no byte budget, so the loop's own cost is measured, not DIN
pacing), whose voice change goes to the synth (the emulated DX7 on JACK); controller B's CC goes
through a bare pass-through (``PassThrough``: a process of its own with the same port classes the
device opens, read and written, nothing else) to the same synth. Interleaved, so both see the
same load; each send at a random phase of JACK's cycle.

Two measures, each for both paths:

* CC received -> first byte sent: from the CC's arrival stamp (``hardware.midi.RtMidiInput``:
  the poll before the one that found it, so waiting for the poll is counted) to the return of
  the send that hands the first byte of the voice change (pass-through: the CC itself) to JACK.
  This is the issue's measure: what happens between JACK handing us the CC and us handing JACK
  the bytes.
* controller sent -> synth received: end to end, as the player hears it, JACK included. rtmidi
  hands an event to JACK at the next period on each side, so this is one to two periods for both
  paths and what the loop adds disappears in the period unless it is late for one.
"""

from __future__ import annotations

import os
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np


@dataclass(frozen=True)
class PathFigures:
    """One path's latencies in milliseconds: in the process, and end to end at the synth."""

    inside_ms: np.ndarray
    end_to_end_ms: np.ndarray

    @staticmethod
    def pct(x: np.ndarray, q: float) -> float:
        return float(np.percentile(x, q)) if len(x) else float("nan")


@dataclass(frozen=True)
class MidiLatency:
    full: PathFigures
    transport: PathFigures
    moves: int
    period_frames: int
    rate: int
    profile: str
    load: tuple[float, float] = (float("nan"), float("nan"))  # 1-min load average at start, at end
    cpus: int = field(default_factory=lambda: os.cpu_count() or 0)

    TARGET_MS = 2.0

    def lines(self) -> list[str]:
        period = self.period_frames / self.rate * 1e3
        out = [f"JACK dummy backend, {self.rate} Hz, {self.period_frames}-frame periods ({period:.1f} ms); "
               f"profile {self.profile}; load average {self.load[0]:.2f} -> {self.load[1]:.2f} on {self.cpus} CPUs",
               f"{self.moves} moves on each path, interleaved: controller A -> dxmacro loop -> synth, "
               f"controller B -> bare pass-through -> synth",
               "",
               f"{'ms':<36}{'transport alone':>16}{'full path':>11}{'difference':>12}"]
        for title, key in (("CC received -> first byte sent", "inside_ms"),
                           ("controller sent -> synth received", "end_to_end_ms")):
            t, f = getattr(self.transport, key), getattr(self.full, key)
            for q in (50, 99):
                a, b = PathFigures.pct(t, q), PathFigures.pct(f, q)
                out.append(f"{title + f', p{q}':<36}{a:>16.3f}{b:>11.3f}{b - a:>12.3f}")
        n_full, n_thru = len(self.full.inside_ms), len(self.transport.inside_ms)
        out.append("")
        out.append(f"counted: full path {n_full} of {self.moves} moves (a move that leaves the voice as it was "
                   f"sends nothing), {len(self.full.end_to_end_ms)} seen at the synth; pass-through {n_thru}, "
                   f"{len(self.transport.end_to_end_ms)} seen")
        if n_full:
            p99 = PathFigures.pct(self.full.inside_ms, 99)
            diff = p99 - PathFigures.pct(self.transport.inside_ms, 99)
            verdict = "met" if p99 <= self.TARGET_MS else "not met"
            out.append(f"target p99 <= {self.TARGET_MS:g} ms beyond the transport: full path CC received -> first byte "
                       f"sent p99 {p99:.3f} ms ({diff:+.3f} ms over the pass-through): {verdict}")
        else:
            out.append("no knob CC changed the voice: nothing measured")
        return out


class PassThrough:
    """The transport alone: what arrives on ``source`` is sent on to ``target`` at once, through
    the same port classes the device uses (RtMidiInput read in the caller's thread, RtMidiOutput),
    with no dxmacro code in between; in a process of its own, as the device's loop is (a thread
    beside the loop would take the GIL from it). ``latencies()`` are arrival stamp -> send
    returned, in seconds. Run: ``python -m device.bench.midi_latency SOURCE TARGET``."""

    def __init__(self, source: str, target: str, timeout: float = 15.0) -> None:
        import subprocess
        import sys

        root = str(Path(__file__).resolve().parents[2])
        env = dict(os.environ, PYTHONPATH=os.pathsep.join([root, os.environ.get("PYTHONPATH", "")]).rstrip(os.pathsep))
        self.timeout = timeout
        self.process = subprocess.Popen([sys.executable, "-m", "device.bench.midi_latency", source, target],
                                        stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL,
                                        text=True, env=env)
        self._answer()

    def _answer(self) -> dict:
        import json
        import select

        from hardware.errors import HardwareError

        assert self.process.stdout is not None
        ready, _, _ = select.select([self.process.stdout], [], [], self.timeout)
        line = self.process.stdout.readline() if ready else ""
        if not line:
            raise HardwareError(f"the pass-through did not answer (exit code {self.process.poll()})")
        return json.loads(line)

    def latencies(self) -> list[float]:
        """Ends the pass-through; what it measured."""
        assert self.process.stdin is not None
        self.process.stdin.close()
        return self._answer()["latencies"]

    def close(self) -> None:
        if self.process.poll() is None:
            self.process.kill()
            self.process.wait(timeout=5)


def _pass_through(source: str, target: str) -> int:
    """The pass-through process: forward until stdin ends, then print the latencies."""
    import json
    import sys

    from hardware.midi import RtMidiInput, RtMidiOutput

    inp = RtMidiInput(source, "jack", client_name="bench-thru-in", threaded=False)
    out = RtMidiOutput(target, "jack", client_name="bench-thru-out")
    latencies: list[float] = []
    done = threading.Event()
    threading.Thread(target=lambda: (sys.stdin.read(), done.set()), daemon=True).start()
    print(json.dumps({"ready": True}), flush=True)
    while not done.is_set():
        if not inp.wait(0.05):
            out.alive()  # the port check, off the path (as the device's watcher does it)
            continue
        for t, data in inp.drain():
            out.send(data)
            latencies.append(time.monotonic() - t)
    print(json.dumps({"latencies": latencies}), flush=True)
    inp.close()
    out.close()
    return 0


def _end_to_end(sent: list[float], arrivals: list[tuple[float, bytes]], window: float, sysex: bool) -> np.ndarray:
    """For each send time, the first arrival of the path's kind (sysex: the loop's voice change;
    otherwise a control change: the pass-through's) within ``window`` after it, in ms."""
    times = np.array(sorted(t for t, d in arrivals if (d[0] == 0xF0) == sysex))
    out = []
    for s in sent:
        i = int(np.searchsorted(times, s))
        if i < len(times) and times[i] - s < window:
            out.append((times[i] - s) * 1e3)
    return np.array(out)


def run_midi_latency(*, moves: int = 200, profile: str = "dexed", seed: int = 0, period: int = 1024,
                     rate: int = 48000, decoder=None) -> MidiLatency:
    from device.control.config import parse_config
    from device.control.midi_port import MidiPort, PortSpec
    from device.runtime import build_loop, open_midi_input
    from device.twins.linear_decoder import LinearDecoder
    from hardware.clock import RealClock
    from hardware.dx7_emulator import DX7Emulator
    from hardware.jack import JackServer
    from hardware.midi_player import MidiPlayer

    rng = np.random.default_rng(seed)
    period_s = period / rate
    # One schedule for both controllers, A and B taking turns every ``interval`` plus a random part
    # of a period (each send at a random phase of JACK's cycle, on both paths): a path's moves are
    # >= 3 periods apart, so the arrivals of one never reach into the next one's window.
    interval = max(0.03, 2 * period_s)
    with JackServer("dxmacro-bench-midi", rate=rate, period=period) as _server:
        emu = DX7Emulator("bench-dx7", 1).start()
        ctl = MidiPlayer("bench-ctl").start()
        ctl_b = MidiPlayer("bench-ctl-b").start()
        midi_in = port = thru = None
        try:
            decoder = decoder or LinearDecoder()
            cfg = parse_config({"knob": [{"knob": 0, "cc": 20}],
                                "midi": {"profile": profile, "api": "jack", "port": emu.input_port,
                                         "input": ctl.port, "input_api": "jack"}}, Path("bench.toml"))
            midi_in = open_midi_input(cfg)
            port = MidiPort(PortSpec("jack", emu.input_port, client_name="dxmacro-bench"))
            thru = PassThrough(ctl_b.port, emu.input_port)
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
            since = len(emu.log())
            value, script_a, script_b = pickup, [], []
            for k in range(2 * moves):
                if k % 2 == 0:
                    value = int(np.clip(value + rng.choice([-1, 1]) * rng.integers(3, 12), 0, 127))
                at = k * interval + rng.uniform(0, period_s)
                (script_a if k % 2 == 0 else script_b).append((at, bytes([0xB0, 20 if k % 2 == 0 else 21, value])))
            load_start = os.getloadavg()[0]
            start = time.monotonic() + 0.2
            ctl.start_play(script_a, at=start)  # the players keep the schedule; this process only waits
            ctl_b.start_play(script_b, at=start)
            run_s = 2 * moves * interval + 10
            sent_full, sent_thru = ctl.sent(run_s), ctl_b.sent(run_s)
            time.sleep(max(0.3, 3 * period_s))
            load_end = os.getloadavg()[0]
            stop.set()
            runner.join(timeout=5)
            arrivals = [(a.time, a.data) for a in emu.log(since)]
            window = 2 * interval  # the next move of the same path comes later than this
            full = PathFigures(np.array(loop.stats.cc_latencies) * 1e3, _end_to_end(sent_full, arrivals, window, True))
            transport = PathFigures(np.array(thru.latencies()) * 1e3,
                                    _end_to_end(sent_thru, arrivals, window, False))
            return MidiLatency(full, transport, moves, period, rate, profile, (load_start, load_end))
        finally:
            for closer in (getattr(thru, "close", None), getattr(midi_in, "close", None),
                           getattr(port, "close", None), ctl_b.stop, ctl.stop, emu.stop):
                if closer is not None:
                    closer()


if __name__ == "__main__":
    import sys

    sys.exit(_pass_through(*sys.argv[1:3]))
