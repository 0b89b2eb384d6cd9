"""The knobs: potentiometers on one or more ADS1x15 chips, read through hardware/'s driver.

The same class runs on the Pi (smbus2 on ``/dev/i2c-N``) and in simulation (a FakeI2CBus
with the register-level ADS1x15 emulation, its datasheet noise and conversion time, and
injected transfer errors): only the bus differs, so the simulation exercises the real
driver code, pointer writes, OS-bit polling and all.

Knob numbering ("global channel"): chip ``i`` (its position in ``[adc] addresses``), input
``j`` is channel ``4 * i + j``. Chips are read in parallel (the same input converts on
every chip at once), so a scan takes one conversion per input in use, not per knob.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass, field

from hardware.ads1x15 import WAKE_UP_S, ADS1x15, AdcSettings, chip_of, read_parallel
from hardware.clock import Clock
from hardware.errors import HardwareError
from hardware.i2c import FakeI2CBus, I2CBus

log = logging.getLogger("dxmacro.device")


@dataclass(frozen=True)
class AdcLayout:
    """What the config says about the ADC board: chips, inputs used, gain, rate, pot supply."""

    chip: str = "ADS1115"
    addresses: tuple[int, ...] = (0x48,)
    channels: int = 4  # knobs = global channels 0..channels-1
    data_rate: int = 860
    fsr: float = 4.096  # +-4.096 V: a pot across 3.3 V uses 80 % of the codes
    vref: float = 3.3  # the pots' supply: position = volts / vref

    def inputs(self) -> list[int]:
        """The inputs converted each scan (on every chip)."""
        return list(range(min(4, self.channels)))

    def settings(self) -> AdcSettings:
        return AdcSettings(chip_of(self.chip), self.fsr, self.data_rate, "ready")


class AdcKnobs:
    """``device.control.ports.KnobReader`` over ADS1x15 chips: one position in 0..1 per knob, None
    for a channel whose I2C transfer failed (a failed read must never look like a move)."""

    def __init__(self, bus: I2CBus, layout: AdcLayout, clock: Clock) -> None:
        self.bus, self.layout, self.clock = bus, layout, clock
        settings = layout.settings()
        self.adcs = [ADS1x15(bus, a, settings, clock) for a in layout.addresses]
        self.inputs = layout.inputs()
        # One scan: a conversion (data period + wake-up) per input; the chips run in parallel.
        self.scan_period_s = len(self.inputs) * (1.0 / layout.data_rate + WAKE_UP_S)
        self.reads = 0
        self.failures = 0
        self.timeouts = 0
        self.on_scan: Callable[[float], None] | None = None  # bench hook: called with each scan's end time

    def read(self) -> list[float | None]:
        n = self.layout.channels
        try:
            codes = read_parallel(self.adcs, self.inputs)
        except HardwareError as exc:  # a conversion that never finished: a stuck or absent chip
            self.timeouts += 1
            for adc in self.adcs:
                adc._started_at = None
            log.warning("ADC scan failed", extra={"event": "adc_error", "reason": str(exc)})
            codes = [[None] * len(self.inputs) for _ in self.adcs]
        out: list[float | None] = [None] * n
        for i, (adc, row) in enumerate(zip(self.adcs, codes)):
            for j, code in zip(self.inputs, row):
                ch = 4 * i + j
                if ch < n:
                    out[ch] = None if code is None else adc.normalized(code, self.layout.vref)
        self.reads += n
        self.failures += sum(v is None for v in out)
        if self.on_scan is not None:
            self.on_scan(self.clock.now())
        return out


KnobInput = Callable[[int, float], float]  # (global channel, time) -> position 0..1


@dataclass
class EmulatedBoard:
    """The simulated ADC board: emulated chips on a FakeI2CBus, pots driven by a function of time."""

    bus: FakeI2CBus
    chips: list = field(default_factory=list)
    samples: list[tuple[int, float]] | None = None  # (channel, time) of every conversion, when recording


def emulated_board(layout: AdcLayout, clock: Clock, positions: KnobInput, *, fault_rate: float = 0.0,
                   extra_noise_lsb: float = 0.0, seed: int = 0, record: bool = False) -> EmulatedBoard:
    """Register-level ADS1x15 chips at the layout's addresses, each input a pot at
    ``positions(channel, t)`` of its travel between GND and ``vref``. ``extra_noise_lsb`` is
    what the board adds on top of the chip's datasheet noise (pot wiper, supply ripple)."""
    from hardware.ads1x15_sim import EmulatedADS1x15

    bus = FakeI2CBus(fault_rate=fault_rate, seed=seed)
    board = EmulatedBoard(bus, samples=[] if record else None)
    chip = chip_of(layout.chip)
    lsb_v = layout.fsr / (1 << (chip.bits - 1))
    for i, address in enumerate(layout.addresses):
        emu = EmulatedADS1x15(chip, clock=clock, seed=seed + 101 * i, vdd=layout.vref,
                              extra_noise_v=extra_noise_lsb * lsb_v)
        for j in range(4):
            ch = 4 * i + j
            if ch < layout.channels:
                emu.set_input(j, _pot(positions, ch, layout.vref, board.samples))
        bus.attach(address, emu)
        board.chips.append(emu)
    return board


def _pot(positions: KnobInput, ch: int, vref: float, samples: list | None) -> Callable[[float], float]:
    def volts(t: float) -> float:
        if samples is not None:
            samples.append((ch, t))
        return positions(ch, t) * vref

    return volts

