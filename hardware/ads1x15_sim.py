"""A register-level ADS1115/ADS1015 for a FakeI2CBus: pointer register, config writes,
the OS bit low while converting, results only after the conversion time on the clock,
and Gaussian input noise at the level the datasheet gives.

Noise model. TI's ADS111x datasheet (SBAS444, table "Noise in uVRMS (uVPP) at
VDD = 3.3 V", inputs shorted, typical) lists the RMS noise as one LSB everywhere: it
rounds noise below one LSB up, so the RMS column is the LSB size, not a measurement.
The peak-to-peak column is the informative one: one LSB (no code flicker beyond a
transition) up to 64 SPS, growing to several LSBs at 860 SPS. We model the analog
noise as Gaussian with sigma = Vpp / 6.6 (the usual crest factor for 99.9 % of
samples) before quantisation. The ADS1015 shares the ADS1115's modulator and
front end; its datasheet calls it noise-free at 12 bits. We give it the ADS1115's
noise at the nearest rate, scaled by sqrt(DR / 860) above 860 SPS, which is far
below its 12-bit LSB and so leaves it noise-free except right at code transitions,
as observed on real parts. ``extra_noise_v`` adds what the board adds (pot wiper,
supply ripple), zero by default.
"""

from __future__ import annotations

import math
import threading
from collections.abc import Callable

import numpy as np

from hardware.ads1x15 import (
    CONFIG_RESET,
    MODE_SINGLE,
    OS_BIT,
    OSCILLATOR_TOLERANCE,
    PGA_FSR,
    REG_CONFIG,
    REG_CONVERSION,
    REG_HI_THRESH,
    REG_LO_THRESH,
    WAKE_UP_S,
    Chip,
    chip_of,
)
from hardware.clock import Clock, RealClock

FSR_ORDER = (6.144, 4.096, 2.048, 1.024, 0.512, 0.256)
# ADS1115 typical peak-to-peak noise in microvolts by data rate, columns in FSR_ORDER.
ADS1115_NOISE_UVPP: dict[int, tuple[float, ...]] = {
    8: (187.5, 125.0, 62.5, 31.25, 15.62, 7.81),
    16: (187.5, 125.0, 62.5, 31.25, 15.62, 7.81),
    32: (187.5, 125.0, 62.5, 31.25, 15.62, 7.81),
    64: (187.5, 125.0, 62.5, 31.25, 15.62, 7.81),
    128: (187.5, 125.0, 62.5, 31.25, 15.62, 12.35),
    250: (252.09, 148.28, 84.03, 39.54, 16.06, 18.53),
    475: (266.92, 227.38, 79.08, 56.84, 32.13, 25.95),
    860: (430.06, 266.93, 118.7, 65.73, 55.68, 35.21),
}
CREST_FACTOR = 6.6
# mux code -> (positive input, negative input); None = GND
MUX_INPUTS = {0: (0, 1), 1: (0, 3), 2: (1, 3), 3: (2, 3), 4: (0, None), 5: (1, None), 6: (2, None), 7: (3, None)}


def noise_sigma_volts(chip: Chip, data_rate: int, fsr: float) -> float:
    """Gaussian sigma of the input-referred noise, in volts (see the module docstring)."""
    column = FSR_ORDER.index(fsr)
    rates = sorted(ADS1115_NOISE_UVPP)
    if data_rate in ADS1115_NOISE_UVPP:
        uvpp = ADS1115_NOISE_UVPP[data_rate][column]
    elif data_rate > 860:
        uvpp = ADS1115_NOISE_UVPP[860][column] * math.sqrt(data_rate / 860)
    else:
        nearest = min(rates, key=lambda r: abs(math.log(r / data_rate)))
        uvpp = ADS1115_NOISE_UVPP[nearest][column]
    del chip  # same front end on both chips
    return uvpp * 1e-6 / CREST_FACTOR


class EmulatedADS1x15:
    """One chip. Inputs are pin voltages (volts against GND), set by tests or a bench
    script: a float, or a callable of clock time for moving knobs."""

    def __init__(self, chip: str | Chip = Chip.ADS1115, *, clock: Clock | None = None, seed: int = 0,
                 vdd: float = 3.3, oscillator_error: float | None = None, extra_noise_v: float = 0.0) -> None:
        self.chip = chip_of(chip)
        self.clock = clock or RealClock()
        self.vdd = vdd
        self.extra_noise_v = extra_noise_v
        self._rng = np.random.default_rng(seed)
        if oscillator_error is None:  # this part's own clock error, fixed for its life
            oscillator_error = float(np.clip(self._rng.normal(0.0, 0.03), -OSCILLATOR_TOLERANCE,
                                             OSCILLATOR_TOLERANCE))
        self.oscillator_error = oscillator_error
        self._inputs: list[float | Callable[[float], float]] = [0.0] * 4
        self._lock = threading.Lock()
        self.config = CONFIG_RESET
        self.conversion = 0
        self.lo_thresh, self.hi_thresh = 0x8000, 0x7FFF
        self._busy_until: float | None = None  # end of the conversion in progress
        self._busy_config = CONFIG_RESET
        self._continuous_since: float | None = None
        self.conversions = 0

    # -- what tests and bench scripts drive ------------------------------------------
    def set_input(self, channel: int, volts: float | Callable[[float], float]) -> None:
        with self._lock:
            self._inputs[channel] = volts

    def set_knob(self, channel: int, fraction: float) -> None:
        """A pot between GND and VDD turned to ``fraction`` of its travel."""
        self.set_input(channel, fraction * self.vdd)

    def conversion_seconds(self, config: int) -> float:
        rate = self.chip.data_rates[config >> 5 & 7]
        return WAKE_UP_S + (1.0 / rate) * (1.0 + self.oscillator_error)

    # -- the converter -------------------------------------------------------------------
    def _pin(self, index: int | None, t: float) -> float:
        if index is None:
            return 0.0
        v = self._inputs[index]
        v = v(t) if callable(v) else v
        return min(max(v, -0.3), self.vdd + 0.3)  # ESD diodes clamp the pins

    def _convert(self, config: int, t: float) -> int:
        pos, neg = MUX_INPUTS[config >> 12 & 7]
        fsr = PGA_FSR[config >> 9 & 7]
        rate = self.chip.data_rates[config >> 5 & 7]
        sigma = math.hypot(noise_sigma_volts(self.chip, rate, fsr), self.extra_noise_v)
        v = self._pin(pos, t) - self._pin(neg, t) + float(self._rng.normal(0.0, sigma))
        half = 1 << (self.chip.bits - 1)
        code = min(max(math.floor(v / (fsr / half) + 0.5), -half), half - 1)  # plain ints: np.clip costs ~5 us
        self.conversions += 1
        return (code << 4 if self.chip is Chip.ADS1015 else code) & 0xFFFF

    def _update(self) -> None:
        now = self.clock.now()
        if self._busy_until is not None and now >= self._busy_until:
            self.conversion = self._convert(self._busy_config, self._busy_until)
            self._busy_until = None
        if self._continuous_since is not None:
            period = self.conversion_seconds(self.config)
            if now - self._continuous_since >= period:  # the latest completed period
                done = self._continuous_since + period * math.floor((now - self._continuous_since) / period)
                self.conversion = self._convert(self.config, done)
                self._continuous_since = done

    # -- I2CDevice --------------------------------------------------------------------------
    def i2c_write(self, register: int, data: bytes) -> None:
        with self._lock:
            self._update()
            if len(data) < 2:  # a pointer-only write, or an incomplete one the chip ignores
                return
            value = data[0] << 8 | data[1]
            reg = register & 3
            if reg == REG_CONFIG:
                self._write_config(value)
            elif reg == REG_LO_THRESH:
                self.lo_thresh = value
            elif reg == REG_HI_THRESH:
                self.hi_thresh = value
            # the conversion register is read-only

    def _write_config(self, value: int) -> None:
        single = bool(value & MODE_SINGLE)
        self.config = value & ~OS_BIT
        if not single:
            if self._continuous_since is None:
                self._continuous_since = self.clock.now() + WAKE_UP_S
            return
        self._continuous_since = None
        # OS=1 starts a conversion only from the power-down state; during one it is ignored.
        if value & OS_BIT and self._busy_until is None:
            self._busy_config = value
            self._busy_until = self.clock.now() + self.conversion_seconds(value)

    def i2c_read(self, register: int, length: int) -> bytes:
        with self._lock:
            self._update()
            reg = register & 3
            if reg == REG_CONVERSION:
                value = self.conversion
            elif reg == REG_CONFIG:
                idle = self._busy_until is None and self._continuous_since is None
                value = self.config | (OS_BIT if idle else 0)
            elif reg == REG_LO_THRESH:
                value = self.lo_thresh
            else:
                value = self.hi_thresh
            raw = bytes([value >> 8, value & 0xFF])
            return (raw * (length // 2 + 1))[:length]  # the chip repeats the register when clocked on
