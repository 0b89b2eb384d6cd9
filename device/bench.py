"""``dxmacro bench device``: the control loop in real time against a simulated ADC that
takes its real conversion time per channel, measuring what a performer feels.

* latency from a knob move to the first MIDI byte: total, and beyond the ADC (from the
  end of the scan that first saw the move, i.e. what our code adds to the conversions),
* loop jitter (tick-to-tick interval spread),
* achieved scan rate against the ADC's physical limit (data rate / channels),
* CPU use of the process (process time / wall time, in % of one core).

Knob moves are sudden turns of 0.1-0.3 of the travel on a random knob every ~0.5 s; a
move counts for latency only when the link was quiet for 30 ms before it, so the tail
of the previous move cannot be mistaken for the answer to this one.
MERGE: the lead switches SimulatedADC for hardware's register-level ADS1115 emulation.
"""

from __future__ import annotations

import time
from dataclasses import dataclass

import numpy as np

from device.budget import ByteBudget, DIN_BYTES_PER_S, MAX_DIN_FRACTION
from device.linear_decoder import LinearDecoder
from device.loop import ControlLoop, LoopSettings
from device.mapping import KnobMapping
from device.profiles import make_profile
from device.sim import EmulatedDX7, KnobScript, RealClock, SimulatedADC


class TimedPort:
    """Records when each message reached the port (the first byte's departure) and the
    bytes; the emulated DX7 parses them after the run, so its parser's cost (a stand-in
    for the synth's own CPU) does not count as ours."""

    def __init__(self) -> None:
        self.times: list[float] = []
        self.data: list[bytes] = []

    def send(self, data: bytes) -> None:
        self.times.append(time.perf_counter())
        self.data.append(bytes(data))

    def reopen(self) -> None:
        pass


@dataclass
class BenchResult:
    profile: str
    data_rate: int
    channels: int
    duration_s: float
    events: int
    counted: int
    answered: int
    total_ms: tuple[float, float]  # p50, p99 from the physical move
    beyond_adc_ms: tuple[float, float]  # p50, p99 from the end of the scan that saw it
    scan_rate: float
    scan_limit: float
    jitter_ms: tuple[float, float]  # std, p99 |interval - median|
    cpu_percent: float
    read_ms: float  # mean wall time per scan inside the ADC read (conversions + waking up)
    other_ms: float  # mean wall time per tick outside it (our processing)
    ideal_read_ms: float
    messages: int
    bytes: int
    synth_errors: int
    synth_matches: bool

    def lines(self) -> list[str]:
        return [
            f"profile {self.profile}, ADS1115 emulation at {self.data_rate} SPS x {self.channels} channels, "
            f"{self.duration_s:.0f} s",
            f"knob moves: {self.events}, counted {self.counted} (quiet link before), answered {self.answered}",
            f"latency move -> first MIDI byte: p50 {self.total_ms[0]:.2f} ms, p99 {self.total_ms[1]:.2f} ms",
            f"latency beyond the ADC (scan end -> first byte): p50 {self.beyond_adc_ms[0]:.3f} ms, "
            f"p99 {self.beyond_adc_ms[1]:.3f} ms",
            f"scan rate: {self.scan_rate:.1f} scans/s of {self.scan_limit:.1f} possible "
            f"({100 * self.scan_rate / self.scan_limit:.1f} %)",
            f"per tick: ADC read {self.read_ms:.3f} ms (conversions alone {self.ideal_read_ms:.3f} ms), "
            f"everything else {self.other_ms:.3f} ms",
            f"loop jitter: std {self.jitter_ms[0]:.3f} ms, p99 |interval - median| {self.jitter_ms[1]:.3f} ms",
            f"CPU: {self.cpu_percent:.1f} % of one core; sent {self.messages} messages, {self.bytes} bytes",
            f"emulated DX7: {self.synth_errors} bad messages, ends with the loop's voice: {self.synth_matches}",
        ]


def run_bench(*, duration_s: float = 40.0, profile: str = "dexed", data_rate: int = 860, channels: int = 4,
              seed: int = 0, gap_s: float = 0.5) -> BenchResult:
    rng = np.random.default_rng(seed)
    clock = RealClock()
    decoder = LinearDecoder()
    script = KnobScript(channels, [0.5] * channels)
    start = clock.now() + 0.5  # let the first dump and the filters settle
    events: list[tuple[float, int]] = []
    t = 0.3
    pos = [0.5] * channels
    while t < duration_s - 0.5:
        k = int(rng.integers(channels))
        step = float(rng.uniform(0.1, 0.3)) * (1 if pos[k] < 0.5 else -1)
        pos[k] += step
        script.move(k, t, pos[k], 0.0)
        events.append((start + t, k))
        t += gap_s * float(rng.uniform(0.8, 1.2))
    adc = SimulatedADC(clock, lambda ch, tt: script.position(ch, tt - start), channels, data_rate, seed=seed,
                       record=True)
    port = TimedPort()
    budget = ByteBudget(MAX_DIN_FRACTION * DIN_BYTES_PER_S) if profile == "dx7" else None
    loop = ControlLoop(
        knobs=adc, port=port, decoder=decoder, clock=clock, budget=budget, profile=make_profile(profile, 0),
        mappings=lambda d: [KnobMapping(i, k.dim, k.name, k.low, k.high) for i, k in enumerate(d.knobs[:channels])],
        settings=LoopSettings(rate_hz=10000.0, takeover="jump"))
    loop.stats.record_ticks = True
    read_time = [0.0]
    plain_read = adc.read

    def timed_read():
        t0 = time.perf_counter()
        try:
            return plain_read()
        finally:
            read_time[0] += time.perf_counter() - t0

    adc.read = timed_read  # type: ignore[method-assign]
    cpu0, wall0 = time.process_time(), time.perf_counter()
    loop.run(until=start + duration_s)
    wall = time.perf_counter() - wall0
    cpu = (time.process_time() - cpu0) / wall * 100

    synth = EmulatedDX7(clock)
    for data in port.data:
        synth.apply(data)
    scans = [s for s in adc.scans if s.end >= start]
    sends = np.array(port.times)
    total, beyond = [], []
    counted = answered = 0
    scan_ends = np.array([s.end for s in adc.scans])
    for t_change, k in events:
        before = sends[(sends < t_change) & (sends > t_change - 0.03)]
        if before.size:
            continue
        counted += 1
        # the first scan whose sample of channel k was taken after the move
        idx = next((i for i, s in enumerate(adc.scans) if s.sample_times[k] >= t_change), None)
        if idx is None:
            continue
        after = sends[sends >= t_change]
        if not after.size or after[0] > t_change + 0.1:
            continue
        answered += 1
        total.append((after[0] - t_change) * 1e3)
        beyond.append((after[0] - scan_ends[idx]) * 1e3)
    starts = np.array([t for t in loop.stats.tick_starts if t >= start])
    intervals = np.diff(starts) * 1e3
    med = float(np.median(intervals))
    pct = lambda a, q: float(np.percentile(a, q)) if len(a) else float("nan")  # noqa: E731
    return BenchResult(
        profile=profile, data_rate=data_rate, channels=channels, duration_s=duration_s, events=len(events),
        counted=counted, answered=answered, total_ms=(pct(total, 50), pct(total, 99)),
        beyond_adc_ms=(pct(beyond, 50), pct(beyond, 99)),
        scan_rate=len(scans) / duration_s, scan_limit=data_rate / channels,
        jitter_ms=(float(np.std(intervals)), pct(np.abs(intervals - med), 99)), cpu_percent=cpu,
        read_ms=read_time[0] / loop.stats.ticks * 1e3, other_ms=(wall - read_time[0]) / loop.stats.ticks * 1e3,
        ideal_read_ms=adc.scan_period_s * 1e3,
        messages=len(port.times), bytes=sum(map(len, port.data)), synth_errors=len(synth.errors),
        synth_matches=synth.voice == loop.voice)
