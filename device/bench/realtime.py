"""``dxmacro bench device``: the control loop in real time, its knobs read by the real ADS1x15
driver from hardware's register-level ADS1115 emulation (conversion time per channel on the
real clock, datasheet noise, OS-bit polling over a FakeI2CBus), measuring what a performer feels.

* latency from a knob move to the first MIDI byte: total, and beyond the ADC (from the
  end of the scan that first saw the move, i.e. what our code adds to the conversions),
* loop jitter (tick-to-tick interval spread),
* achieved scan rate against the ADC's physical limit (data rate / channels),
* CPU use of the process (process time / wall time, in % of one core).

Knob moves are sudden turns of 0.1-0.3 of the travel on a random knob every ~0.5 s; a
move counts for latency only when the link was quiet for 30 ms before it, so the tail
of the previous move cannot be mistaken for the answer to this one. A channel's sample
time is when the emulated chip converted it (its input function is called then).
"""

from __future__ import annotations

import time
from dataclasses import dataclass

import numpy as np

from device.control.budget import ByteBudget, DIN_BYTES_PER_S, MAX_DIN_FRACTION
from device.control.knobs import AdcKnobs, AdcLayout, emulated_board
from hardware.ads1x15 import config_word
from device.twins.linear_decoder import LinearDecoder
from device.control.loop import ControlLoop, LoopSettings
from device.control.mapping import KnobMapping
from device.control.ports import Decoder
from device.control.profiles import make_profile
from device.twins.sim import EmulatedDX7, KnobScript, RealClock


class MeasuredClock(RealClock):
    """The real clock, keeping account of the driver's sleeps: asked for vs actually slept.
    The difference is the scheduler's lateness in waking us (the machine's load, not our code)."""

    def __init__(self, spin_s: float = 0.0) -> None:
        super().__init__(spin_s)
        self.asked = 0.0
        self.slept = 0.0
        self.sleeps = 0

    def sleep(self, seconds: float) -> None:
        if seconds <= 0:
            return
        t0 = time.monotonic()
        super().sleep(seconds)
        self.slept += time.monotonic() - t0
        self.asked += seconds
        self.sleeps += 1


class TimedBus:
    """The FakeI2CBus, timing every transfer (the emulated register access stands in for the
    ~0.1 ms a 400 kHz transfer takes on the Pi)."""

    def __init__(self, bus) -> None:
        self.bus = bus
        self.seconds = 0.0
        self.transfers = 0

    def write_i2c_block_data(self, addr, register, data):
        t0 = time.monotonic()
        try:
            return self.bus.write_i2c_block_data(addr, register, data)
        finally:
            self.seconds += time.monotonic() - t0
            self.transfers += 1

    def read_i2c_block_data(self, addr, register, length):
        t0 = time.monotonic()
        try:
            return self.bus.read_i2c_block_data(addr, register, length)
        finally:
            self.seconds += time.monotonic() - t0
            self.transfers += 1

    def close(self):
        self.bus.close()


class TimedPort:
    """Records when each message reached the port (the first byte's departure) and the
    bytes; the emulated DX7 parses them after the run, so its parser's cost (a stand-in
    for the synth's own CPU) does not count as ours."""

    def __init__(self) -> None:
        self.times: list[float] = []
        self.data: list[bytes] = []

    def send(self, data: bytes) -> None:
        self.times.append(time.monotonic())
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
    sleep_asked_ms: float  # per scan: what the driver asked to sleep
    sleep_late_ms: float  # per scan: how much later than asked the sleeps returned
    bus_ms: float  # per scan: time inside I2C transfers
    transfers: float  # I2C transfers per scan (start, OS-bit polls, result)
    sleeps: float  # the driver's sleeps per scan
    other_ms: float  # mean wall time per tick outside it (our processing)
    ideal_read_ms: float
    messages: int
    bytes: int
    synth_errors: int
    synth_matches: bool

    def lines(self) -> list[str]:
        return [
            f"profile {self.profile}, ADS1115 register-level emulation at {self.data_rate} SPS x {self.channels} "
            f"channels, "
            f"{self.duration_s:.0f} s",
            f"knob moves: {self.events}, counted {self.counted} (quiet link before), answered {self.answered}",
            f"latency move -> first MIDI byte: p50 {self.total_ms[0]:.2f} ms, p99 {self.total_ms[1]:.2f} ms",
            f"latency beyond the ADC (scan end -> first byte): p50 {self.beyond_adc_ms[0]:.3f} ms, "
            f"p99 {self.beyond_adc_ms[1]:.3f} ms",
            f"scan rate: {self.scan_rate:.1f} scans/s of {self.scan_limit:.1f} possible "
            f"({100 * self.scan_rate / self.scan_limit:.1f} %)",
            f"per tick: ADC read {self.read_ms:.3f} ms (conversions alone {self.ideal_read_ms:.3f} ms), "
            f"everything else {self.other_ms:.3f} ms",
            f"ADC read per scan: driver asked to sleep {self.sleep_asked_ms:.3f} ms ({self.sleeps:.1f} sleeps), woken late by "
            f"{self.sleep_late_ms:.3f} ms, I2C transfers {self.transfers:.1f} taking {self.bus_ms:.3f} ms",
            f"loop jitter: std {self.jitter_ms[0]:.3f} ms, p99 |interval - median| {self.jitter_ms[1]:.3f} ms",
            f"CPU: {self.cpu_percent:.1f} % of one core; sent {self.messages} messages, {self.bytes} bytes",
            f"emulated DX7: {self.synth_errors} bad messages, ends with the loop's voice: {self.synth_matches}",
        ]


def run_bench(*, duration_s: float = 40.0, profile: str = "dexed", data_rate: int = 860, channels: int = 4,
              seed: int = 0, gap_s: float = 0.5, spin_s: float = 0.0, decoder: Decoder | None = None) -> BenchResult:
    """``decoder``: the int8 bundle's (``dxmacro bench device --bundle``), else the linear dev one."""
    rng = np.random.default_rng(seed)
    clock = MeasuredClock(spin_s)
    decoder = decoder or LinearDecoder()
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
    layout = AdcLayout(channels=channels, data_rate=data_rate)
    board = emulated_board(layout, clock, lambda ch, tt: script.position(ch, tt - start), seed=seed, record=True)
    bus = TimedBus(board.bus)
    adc = AdcKnobs(bus, layout, clock)
    scan_ends: list[float] = []
    adc.on_scan = scan_ends.append
    # The physical limit: this emulated part's own conversion time (its oscillator may be a few % off
    # nominal, as a real part's is) per input, the chips converting in parallel.
    s = layout.settings()
    conversion_s = board.chips[0].conversion_seconds(config_word(s.chip, 0, s.fsr, s.rate))
    ideal_scan_s = len(layout.inputs()) * conversion_s
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
        t0 = time.monotonic()
        try:
            return plain_read()
        finally:
            read_time[0] += time.monotonic() - t0

    adc.read = timed_read  # type: ignore[method-assign]
    loop.tick()  # the start-up voice, before the counters start
    clock.asked = clock.slept = bus.seconds = 0.0
    bus.transfers = clock.sleeps = 0
    ticks0 = loop.stats.ticks
    read_time[0] = 0.0
    cpu0, wall0 = time.process_time(), time.monotonic()
    loop.run(until=start + duration_s)
    wall = time.monotonic() - wall0
    cpu = (time.process_time() - cpu0) / wall * 100

    synth = EmulatedDX7(clock)
    for data in port.data:
        synth.apply(data)
    ends = np.array(scan_ends)
    n_scans = int(np.sum(ends >= start))
    sends = np.array(port.times)
    samples = [np.array([t for c, t in board.samples if c == k]) for k in range(channels)]
    total, beyond = [], []
    counted = answered = 0
    for t_change, k in events:
        before = sends[(sends < t_change) & (sends > t_change - 0.03)]
        if before.size:
            continue
        counted += 1
        # the first conversion of channel k after the move, and the end of the scan it was part of
        seen = samples[k][samples[k] >= t_change]
        if not seen.size:
            continue
        scan_end = ends[ends >= seen[0]]
        after = sends[sends >= t_change]
        if not after.size or after[0] > t_change + 0.1 or not scan_end.size:
            continue
        answered += 1
        total.append((after[0] - t_change) * 1e3)
        beyond.append((after[0] - scan_end[0]) * 1e3)
    ticks = loop.stats.ticks - ticks0
    starts = np.array([t for t in loop.stats.tick_starts if t >= start])
    intervals = np.diff(starts) * 1e3
    med = float(np.median(intervals))
    pct = lambda a, q: float(np.percentile(a, q)) if len(a) else float("nan")  # noqa: E731
    return BenchResult(
        profile=profile, data_rate=data_rate, channels=channels, duration_s=duration_s, events=len(events),
        counted=counted, answered=answered, total_ms=(pct(total, 50), pct(total, 99)),
        beyond_adc_ms=(pct(beyond, 50), pct(beyond, 99)),
        scan_rate=n_scans / duration_s, scan_limit=1.0 / ideal_scan_s,
        jitter_ms=(float(np.std(intervals)), pct(np.abs(intervals - med), 99)), cpu_percent=cpu,
        read_ms=read_time[0] / ticks * 1e3, other_ms=(wall - read_time[0]) / ticks * 1e3,
        sleep_asked_ms=clock.asked / ticks * 1e3, sleep_late_ms=(clock.slept - clock.asked) / ticks * 1e3,
        bus_ms=bus.seconds / ticks * 1e3, transfers=bus.transfers / ticks, sleeps=clock.sleeps / ticks,
        ideal_read_ms=ideal_scan_s * 1e3,
        messages=len(port.times), bytes=sum(map(len, port.data)), synth_errors=len(synth.errors),
        synth_matches=synth.voice == loop.voice)
