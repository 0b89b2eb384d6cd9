"""ADS1x15 driver against the register-level emulation on a fake I2C bus."""

from __future__ import annotations

import errno
import math

import numpy as np
import pytest

from hardware.ads1x15 import (
    ADS1x15,
    AdcSettings,
    Chip,
    REG_CONFIG,
    REG_CONVERSION,
    config_word,
    conversion_time,
    read_parallel,
)
from hardware.ads1x15_sim import EmulatedADS1x15, noise_sigma_volts
from hardware.clock import RealClock, SimClock
from hardware.errors import HardwareError, I2CError
from hardware.i2c import FakeI2CBus

FSRS = (6.144, 4.096, 2.048, 1.024, 0.512, 0.256)


def rig(chip=Chip.ADS1115, *, fsr=4.096, rate=None, wait="ready", fault_rate=0.0, seed=1, **emu):
    clock = SimClock()
    bus = FakeI2CBus(fault_rate=fault_rate, seed=seed)
    sim = EmulatedADS1x15(chip, clock=clock, seed=seed, **emu)
    bus.attach(0x48, sim)
    adc = ADS1x15(bus, 0x48, AdcSettings(chip, fsr, rate, wait), clock)
    return clock, bus, sim, adc


@pytest.mark.parametrize("chip", list(Chip))
@pytest.mark.parametrize("fsr", FSRS)
def test_every_gain_and_rate_reads_the_input(chip, fsr):
    for rate in sorted(set(chip.data_rates)):
        clock, _, sim, adc = rig(chip, fsr=fsr, rate=rate)
        lsb = adc.lsb_volts
        sigma = noise_sigma_volts(chip, rate, fsr)
        for volts in (0.0, min(0.37 * fsr, 3.3), min(0.81 * fsr, 3.3), -0.1):
            sim.set_input(2, volts)
            code = adc.read_raw(2)
            expected = volts / lsb  # a pin slightly below GND still reads negative codes, as on the chip
            assert abs(code - expected) <= 1 + 6 * sigma / lsb, (chip, fsr, rate, volts, code, expected)
        # above full scale the code clips at the top code
        sim.set_input(0, 3.6 if fsr < 3.3 else 3.3)
        top = adc.read_raw(0)
        if fsr < 3.3:
            assert top == adc.full_scale_code


def test_config_word_bits():
    # AIN3 single-ended, +-0.256 V, single-shot, 860 SPS, comparator off
    assert config_word(Chip.ADS1115, 3, 0.256, 860) == 0b1_111_101_1_111_00011
    assert config_word(Chip.ADS1015, 0, 2.048, 1600) == 0b1_100_010_1_100_00011
    with pytest.raises(HardwareError, match="data rate"):
        config_word(Chip.ADS1115, 0, 2.048, 1600)
    with pytest.raises(HardwareError, match="channel"):
        config_word(Chip.ADS1115, 4, 2.048, 860)


def test_registers_big_endian_and_ads1015_left_aligned():
    clock, bus, sim, adc = rig(Chip.ADS1015, fsr=2.048, rate=3300)
    assert bus.read_i2c_block_data(0x48, REG_CONFIG, 2) == [0x85, 0x83]  # power-on default, idle
    sim.set_input(1, 1.0)  # 1000 codes at 1 mV/LSB = 0x3E8, left-aligned -> 0x3E80
    adc.read_raw(1)
    msb, lsb = bus.read_i2c_block_data(0x48, REG_CONVERSION, 2)
    assert (msb << 8 | lsb) == 0x3E80
    assert adc.read_raw(1) == 1000
    clock, bus, sim, adc = rig(Chip.ADS1115, fsr=4.096, rate=8)
    sim.set_input(0, 1.0)  # 8000 codes at 125 uV = 0x1F40
    assert adc.read_raw(0) == 8000
    assert bus.read_i2c_block_data(0x48, REG_CONVERSION, 2) == [0x1F, 0x40]


def test_os_bit_and_result_follow_the_conversion_time():
    clock, bus, sim, adc = rig(Chip.ADS1115, fsr=4.096, rate=128, oscillator_error=0.0)
    sim.set_input(0, 1.0)
    adc.read_raw(0)
    sim.set_input(0, 2.0)
    adc.start(0)
    assert not adc.ready()  # OS bit reads 0 while converting
    clock.advance(1 / 128 * 0.95)
    assert not adc.ready()
    msb, lsb = bus.read_i2c_block_data(0x48, REG_CONVERSION, 2)
    assert abs((msb << 8 | lsb) - 8000) <= 2  # still the previous result
    clock.advance(1 / 128 * 0.1)
    assert adc.ready()
    assert abs(adc.collect() - 16000) <= 2


@pytest.mark.parametrize("wait", ["ready", "time"])
@pytest.mark.parametrize("chip", list(Chip))
def test_driver_waits_long_enough_on_a_slow_oscillator(chip, wait):
    """A part whose oscillator runs 10 % slow: every read must still be fresh."""
    for rate in sorted(set(chip.data_rates)):
        clock, _, sim, adc = rig(chip, fsr=4.096, rate=rate, wait=wait, oscillator_error=0.10)
        for i, volts in enumerate((0.5, 1.5, 0.7, 2.9)):
            sim.set_input(0, volts)
            t0 = clock.now()
            code = adc.read_raw(0)
            took = clock.now() - t0
            assert abs(code * adc.lsb_volts - volts) < 0.01, (rate, wait, i)
            assert took >= 1.1 / rate
            assert took <= conversion_time(rate) + 1.0 / rate / 10 + 1e-4


def test_a_driver_that_waits_only_the_nominal_period_reads_stale_data():
    """The emulation really enforces timing: too short a wait gets the previous result."""
    clock, bus, sim, adc = rig(Chip.ADS1115, fsr=4.096, rate=860, oscillator_error=0.08)
    sim.set_input(0, 1.0)
    adc.read_raw(0)
    sim.set_input(0, 2.0)
    adc.start(0)
    clock.sleep(1 / 860)
    msb, lsb = bus.read_i2c_block_data(0x48, REG_CONVERSION, 2)
    assert abs((msb << 8 | lsb) * adc.lsb_volts - 1.0) < 0.01


def test_four_chips_convert_in_parallel():
    clock = SimClock()
    bus = FakeI2CBus()
    adcs, sims = [], []
    for k, addr in enumerate((0x48, 0x49, 0x4A, 0x4B)):
        sim = EmulatedADS1x15(Chip.ADS1115, clock=clock, seed=k, oscillator_error=0.0)
        bus.attach(addr, sim)
        for ch in range(4):
            sim.set_input(ch, 0.2 * k + 0.05 * ch + 0.1)
        sims.append(sim)
        adcs.append(ADS1x15(bus, addr, AdcSettings(Chip.ADS1115, 4.096, 860, "time"), clock))
    t0 = clock.now()
    codes = read_parallel(adcs)
    took = clock.now() - t0
    # one worst-case conversion time per channel, not per chip and channel
    assert took == pytest.approx(4 * conversion_time(860), rel=1e-6)
    for k in range(4):
        for ch in range(4):
            assert abs(codes[k][ch] * adcs[k].lsb_volts - (0.2 * k + 0.05 * ch + 0.1)) < 0.002


def test_absent_chip_is_an_i2c_error_like_the_kernel_gives():
    clock = SimClock()
    adc = ADS1x15(FakeI2CBus(), 0x49, clock=clock)
    with pytest.raises(I2CError) as info:
        adc.read_raw(0)
    assert info.value.errno == errno.EREMOTEIO
    assert isinstance(info.value, OSError) and "0x49" in str(info.value)


def test_injected_faults_raise_eio_and_never_return_wrong_values():
    clock = SimClock()
    bus = FakeI2CBus(fault_rate=0.05, seed=7)
    adcs = []
    for k, addr in enumerate((0x48, 0x49)):
        sim = EmulatedADS1x15(Chip.ADS1115, clock=clock, seed=k)
        for ch in range(4):
            sim.set_input(ch, 0.3 + 0.4 * ch + 0.1 * k)
        bus.attach(addr, sim)
        adcs.append(ADS1x15(bus, addr, AdcSettings(Chip.ADS1115, 4.096, 860), clock))
    with pytest.raises(OSError) as info:
        for _ in range(200):
            bus.read_i2c_block_data(0x48, REG_CONFIG, 2)
    assert info.value.errno == errno.EIO
    missing = good = 0
    for _ in range(500):
        for k, row in enumerate(read_parallel(adcs)):
            for ch, code in enumerate(row):
                if code is None:
                    missing += 1
                else:
                    good += 1
                    assert abs(code * adcs[k].lsb_volts - (0.3 + 0.4 * ch + 0.1 * k)) < 0.002
    assert bus.faults > 0
    # a reading is lost when its start write or its result read fails (~2 x 5 %); failed polls are retried
    assert 0.05 < missing / (missing + good) < 0.15


def _codes(chip, rate, fsr, volts, n, seed=3):
    clock, _, sim, adc = rig(chip, fsr=fsr, rate=rate, seed=seed)
    sim.set_input(0, volts)
    return np.array([adc.read_raw(0) for _ in range(n)]), adc.lsb_volts


@pytest.mark.parametrize("fsr", [4.096, 2.048, 0.256])
def test_ads1115_noise_at_860sps_matches_the_datasheet_level(fsr):
    codes, lsb = _codes(Chip.ADS1115, 860, fsr, 0.1234, 3000)
    sigma_lsb = noise_sigma_volts(Chip.ADS1115, 860, fsr) / lsb
    expected = math.sqrt(sigma_lsb**2 + 1 / 12)  # analog noise plus quantisation
    assert codes.std() == pytest.approx(expected, rel=0.2)
    pp_uv = (np.percentile(codes, 99.95) - np.percentile(codes, 0.05)) * lsb * 1e6
    from hardware.ads1x15_sim import ADS1115_NOISE_UVPP, FSR_ORDER
    table = ADS1115_NOISE_UVPP[860][FSR_ORDER.index(fsr)]
    assert table * 0.4 <= pp_uv <= table * 1.6 + lsb * 1e6


def test_slow_rates_flicker_at_most_one_code_and_ads1015_is_quiet():
    codes, _ = _codes(Chip.ADS1115, 8, 4.096, 1.00003, 400)
    assert codes.max() - codes.min() <= 1
    # mid-code input on the 12-bit part at its fastest rate: one code only
    codes, lsb = _codes(Chip.ADS1015, 3300, 4.096, 1.0, 2000)  # 500.0 LSB: mid-code
    assert codes.max() == codes.min() == 500


def test_real_clock_conversion_takes_real_time():
    bus = FakeI2CBus()
    clock = RealClock()
    bus.attach(0x48, EmulatedADS1x15(Chip.ADS1115, clock=clock, oscillator_error=0.0))
    adc = ADS1x15(bus, 0x48, AdcSettings(Chip.ADS1115, 4.096, 250), clock)
    t0 = clock.now()
    for _ in range(5):
        adc.read_raw(0)
    assert clock.now() - t0 >= 5 / 250
