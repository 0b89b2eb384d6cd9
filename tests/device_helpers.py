"""Shared builders for the device tests: a loop on a simulated clock, its knobs read by the real
ADS1x15 driver from hardware's register-level emulation on a FakeI2CBus."""

from __future__ import annotations

from device.control.budget import DIN_BYTES_PER_S, MAX_DIN_FRACTION, ByteBudget
from device.control.knobs import AdcKnobs, AdcLayout, emulated_board
from device.twins.linear_decoder import LinearDecoder
from device.control.loop import ControlLoop, LoopSettings
from device.control.mapping import KnobMapping
from device.control.profiles import make_profile
from device.twins.sim import EmulatedDX7, KnobScript, SimClock


def knob_maps(decoder):
    return [KnobMapping(i, k.dim, k.name, k.low, k.high) for i, k in enumerate(decoder.knobs)]


def make_loop(script: KnobScript, *, profile="dx7", data_rate=860, noise_lsb=3.0, fail_rate=0.0, seed=0,
              takeover="pickup", buttons=None, bank=None, decoder=None, notifier=None, settings=None, voices=None):
    """``noise_lsb``: board noise on top of the chip's datasheet noise; ``fail_rate``: the fraction
    of I2C transfers that fail (FakeI2CBus fault injection, reads and writes)."""
    clock = SimClock()
    layout = AdcLayout(channels=script.channels, data_rate=data_rate)
    board = emulated_board(layout, clock, script.position, fault_rate=fail_rate, extra_noise_lsb=noise_lsb, seed=seed)
    adc = AdcKnobs(board.bus, layout, clock)
    synth = EmulatedDX7(clock)
    budget = ByteBudget(MAX_DIN_FRACTION * DIN_BYTES_PER_S) if profile == "dx7" else None
    loop = ControlLoop(knobs=adc, port=synth, decoder=decoder or LinearDecoder(), mappings=knob_maps,
                       profile=make_profile(profile, 0, {"op1_output_level": 20, "feedback": 21}), clock=clock,
                       budget=budget, buttons=buttons(clock) if buttons else None, bank=bank, notifier=notifier, voices=voices,
                       settings=settings or LoopSettings(takeover=takeover, random_seed=seed))
    return loop, clock, adc, synth




def wait_until(cond, timeout: float = 5.0, poll_s: float = 0.02) -> bool:
    """Real-time tests: True as soon as ``cond()`` holds, False when ``timeout`` seconds pass first."""
    import time

    end = time.monotonic() + timeout
    while time.monotonic() < end:
        if cond():
            return True
        time.sleep(poll_s)
    return cond()


class Inbox:
    """A MidiIn twin with the shared port's surface: what a test puts in arrives at the next poll."""

    def __init__(self) -> None:
        self.pending: list[bytes] = []
        self.state = "connected"
        self.connects = 1

    def poll(self) -> list[bytes]:
        out, self.pending = self.pending, []
        return out
