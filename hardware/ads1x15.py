"""Driver for TI ADS1115 (16-bit) and ADS1015 (12-bit) I2C ADCs, single-shot per channel.

Register map (both chips): pointer 0 = conversion, 1 = config, 2/3 = comparator thresholds.
Config register bits (MSB first):

* 15 OS: write 1 starts a single conversion; reads 0 while converting, 1 when idle
* 14:12 MUX: 100..111 = AIN0..AIN3 against GND (single-ended; used here),
  000..011 = the differential pairs
* 11:9 PGA: full-scale range +-6.144, 4.096, 2.048, 1.024, 0.512, 0.256 V
* 8 MODE: 1 = single-shot / power-down (used here), 0 = continuous
* 7:5 DR: data rate code (tables below)
* 4:0 comparator: COMP_MODE, COMP_POL, COMP_LAT, COMP_QUE (11 = comparator off)

The conversion register is big-endian two's complement; the ADS1015 left-aligns its
12 bits (the low 4 bits read 0). Single-shot conversion time is one data period
(the filter settles in one cycle) plus about 25 us of wake-up, and the internal
oscillator may run up to 10 % slow, so a driver that waits by the clock must wait
``1.1 / DR`` plus the wake-up; the driver can instead poll the OS bit.

Several chips are read in parallel: start the same channel on every chip, then
collect from each, so four boards take one conversion time per channel, not four.
"""

from __future__ import annotations

import errno
from collections.abc import Sequence
from dataclasses import dataclass
from enum import Enum

from hardware.clock import Clock, RealClock
from hardware.errors import AdcTimeout, HardwareError, I2CError
from hardware.i2c import I2CBus

REG_CONVERSION, REG_CONFIG, REG_LO_THRESH, REG_HI_THRESH = 0, 1, 2, 3
OS_BIT = 1 << 15
MODE_SINGLE = 1 << 8
COMP_QUE_DISABLE = 0b11
CONFIG_RESET = 0x8583  # power-on default: AIN0-AIN1, +-2.048 V, single-shot, DR code 4, comparator off
ADDRESSES = (0x48, 0x49, 0x4A, 0x4B)  # ADDR pin tied to GND, VDD, SDA, SCL

# full-scale range (V) -> PGA code
PGA = {6.144: 0, 4.096: 1, 2.048: 2, 1.024: 3, 0.512: 4, 0.256: 5}
PGA_FSR = (6.144, 4.096, 2.048, 1.024, 0.512, 0.256, 0.256, 0.256)  # codes 5..7 all mean +-0.256 V

WAKE_UP_S = 25e-6  # power-up from the power-down state before a single-shot conversion
OSCILLATOR_TOLERANCE = 0.10  # data-rate variation, max, over temperature


class Chip(Enum):
    ADS1115 = "ADS1115"
    ADS1015 = "ADS1015"

    @property
    def data_rates(self) -> tuple[int, ...]:
        """Samples per second by DR code 0..7 (the ADS1015's codes 6 and 7 are both 3300)."""
        if self is Chip.ADS1115:
            return (8, 16, 32, 64, 128, 250, 475, 860)
        return (128, 250, 490, 920, 1600, 2400, 3300, 3300)

    @property
    def bits(self) -> int:
        return 16 if self is Chip.ADS1115 else 12

    @property
    def default_rate(self) -> int:
        return 128 if self is Chip.ADS1115 else 1600


def chip_of(name: str | Chip) -> Chip:
    if isinstance(name, Chip):
        return name
    try:
        return Chip(name.upper())
    except ValueError:
        raise HardwareError(f"unknown ADC chip {name!r} (known: ADS1115, ADS1015)") from None


def conversion_time(data_rate: int, *, worst_case: bool = True) -> float:
    """Seconds from the OS write until the result is in the conversion register."""
    period = 1.0 / data_rate
    return WAKE_UP_S + (period * (1 + OSCILLATOR_TOLERANCE) if worst_case else period)


def config_word(chip: Chip, channel: int, fsr: float, data_rate: int) -> int:
    """The config register value that starts one single-ended conversion on ``channel``."""
    if not 0 <= channel <= 3:
        raise HardwareError(f"ADS1x15 channel must be 0..3, got {channel}")
    if fsr not in PGA:
        raise HardwareError(f"full-scale range must be one of {sorted(PGA)} V, got {fsr}")
    if data_rate not in chip.data_rates:
        raise HardwareError(f"{chip.value} data rate must be one of {sorted(set(chip.data_rates))} SPS, "
                            f"got {data_rate}")
    mux = 0b100 | channel
    dr = chip.data_rates.index(data_rate)
    return OS_BIT | mux << 12 | PGA[fsr] << 9 | MODE_SINGLE | dr << 5 | COMP_QUE_DISABLE


def decode_conversion(chip: Chip, msb: int, lsb: int) -> int:
    """Big-endian two's complement; 12-bit chips are shifted down to their own code range."""
    raw = msb << 8 | lsb
    if raw & 0x8000:
        raw -= 1 << 16
    return raw >> 4 if chip is Chip.ADS1015 else raw


@dataclass(frozen=True)
class AdcSettings:
    chip: Chip = Chip.ADS1115
    fsr: float = 4.096
    data_rate: int | None = None  # None: the chip's fastest
    wait: str = "ready"  # "ready": poll the OS bit; "time": sleep the worst-case conversion time

    def __post_init__(self) -> None:
        if self.wait not in ("ready", "time"):
            raise HardwareError(f"ADC wait mode must be 'ready' or 'time', got {self.wait!r}")
        config_word(self.chip, 0, self.fsr, self.rate)  # validates

    @property
    def rate(self) -> int:
        return max(self.chip.data_rates) if self.data_rate is None else self.data_rate


class ADS1x15:
    """One chip at one address. Not thread-safe: one control loop owns it."""

    def __init__(self, bus: I2CBus, address: int = 0x48, settings: AdcSettings | None = None,
                 clock: Clock | None = None) -> None:
        if address not in ADDRESSES:
            raise HardwareError(f"ADS1x15 address must be one of {', '.join(f'0x{a:02X}' for a in ADDRESSES)}, "
                                f"got 0x{address:02X}")
        self.bus = bus
        self.address = address
        self.settings = settings or AdcSettings()
        self.clock = clock or RealClock()
        self._started_at: float | None = None

    @property
    def chip(self) -> Chip:
        return self.settings.chip

    @property
    def lsb_volts(self) -> float:
        return self.settings.fsr / (1 << (self.chip.bits - 1))

    @property
    def full_scale_code(self) -> int:
        return (1 << (self.chip.bits - 1)) - 1

    def _write(self, register: int, value: int) -> None:
        try:
            self.bus.write_i2c_block_data(self.address, register, [value >> 8 & 0xFF, value & 0xFF])
        except OSError as exc:
            raise I2CError(exc.errno, f"I2C write to 0x{self.address:02X} register {register} failed: "
                                      f"{exc.strerror or exc}") from None

    def _read(self, register: int) -> tuple[int, int]:
        try:
            data = self.bus.read_i2c_block_data(self.address, register, 2)
        except OSError as exc:
            raise I2CError(exc.errno, f"I2C read from 0x{self.address:02X} register {register} failed: "
                                      f"{exc.strerror or exc}") from None
        if len(data) != 2:
            raise I2CError(errno.EIO, f"I2C read from 0x{self.address:02X} returned {len(data)} bytes, expected 2")
        return data[0], data[1]

    # -- single-shot protocol ---------------------------------------------------------
    def start(self, channel: int) -> None:
        """Begin one conversion of AINx against GND."""
        s = self.settings
        self._write(REG_CONFIG, config_word(s.chip, channel, s.fsr, s.rate))
        self._started_at = self.clock.now()

    def ready(self) -> bool:
        msb, _ = self._read(REG_CONFIG)
        return bool(msb & 0x80)

    def _ready_tolerant(self) -> bool:
        # A failed poll is not a failed conversion: the result waits in the chip, so poll again.
        try:
            return self.ready()
        except I2CError:
            return False

    def wait(self) -> None:
        """Block (on the clock) until the conversion started last is done."""
        if self._started_at is None:
            raise HardwareError(f"ADS1x15 at 0x{self.address:02X}: wait() without start()")
        rate = self.settings.rate
        worst = conversion_time(rate)
        elapsed = self.clock.now() - self._started_at
        if self.settings.wait == "time":
            if worst > elapsed:
                self.clock.sleep(worst - elapsed)
            return
        # Sleep most of a nominal period first (nothing to see before), then poll in 1/20 periods.
        if 0.9 / rate > elapsed:
            self.clock.sleep(0.9 / rate - elapsed)
        step = max(1.0 / rate / 20, 50e-6)
        deadline = self._started_at + 2 * worst + 0.005
        while not self._ready_tolerant():
            if self.clock.now() > deadline:
                raise AdcTimeout(f"ADS1x15 at 0x{self.address:02X}: conversion not ready after "
                                 f"{(self.clock.now() - self._started_at) * 1e3:.1f} ms")
            self.clock.sleep(step)

    def collect(self) -> int:
        """Wait for the conversion and return its signed code."""
        self.wait()
        self._started_at = None
        return decode_conversion(self.chip, *self._read(REG_CONVERSION))

    def read_raw(self, channel: int) -> int:
        self.start(channel)
        return self.collect()

    def read_volts(self, channel: int) -> float:
        return self.read_raw(channel) * self.lsb_volts

    def normalized(self, code: int, vref: float) -> float:
        """A code as a fraction of ``vref`` (the pot's supply), clipped to 0..1."""
        return min(1.0, max(0.0, code * self.lsb_volts / vref))


def read_parallel(adcs: Sequence[ADS1x15], channels: Sequence[int] = (0, 1, 2, 3)) -> list[list[int | None]]:
    """Codes ``[chip][channel]``, converting one channel on all chips at once.

    A chip whose transfer fails (I2CError) gets None for that channel and the others
    go on: one bad read must not cost every knob its reading."""
    out: list[list[int | None]] = [[None] * len(channels) for _ in adcs]
    for j, ch in enumerate(channels):
        started = []
        for i, adc in enumerate(adcs):
            try:
                adc.start(ch)
                started.append(i)
            except I2CError:
                pass
        for i in started:
            try:
                out[i][j] = adcs[i].collect()
            except I2CError:
                adcs[i]._started_at = None
    return out
