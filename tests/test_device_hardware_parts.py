"""The device assembled from hardware/ as on the Pi (``runtime.hardware_parts``), with only what
this machine lacks swapped: the I2C bus is a FakeI2CBus with register-level ADS1115s, GPIO is
FakeGPIO. The MIDI port is real: the DIN path through pyserial's loop:// UART here, rtmidi over
JACK in tests/hil."""

from __future__ import annotations

import pytest

from dx7.sysex import SingleVoice, parse_stream, split_messages
from device.control.config import parse_config
from device.control.knobs import AdcKnobs, emulated_board
from device.twins.linear_decoder import LinearDecoder
from device.control.ports import KnobReader, MidiOut, PortGone
from device.twins.sim import EmulatedDX7
from device.runtime import adc_layout, build_loop, hardware_parts, run_device
from dxmacro.errors import DxmacroError
from hardware import errors as hw_errors
from hardware.clock import SimClock
from hardware.gpio import FakeGPIO


def test_one_port_gone_type():
    assert PortGone is hw_errors.PortGone


def two_chip_config(tmp_path, **midi):
    doc = {"adc": {"addresses": [0x48, 0x4A], "channels": 6, "data_rate": 475},
           "knob": [{"channel": 0, "knob": 0}, {"channel": 5, "knob": 1}],
           "midi": {"api": "din", "port": "loop://", "profile": "dexed", **midi},
           "buttons": {"next": 5, "panic": 6}, "leds": {"link": 17, "activity": 27}}
    return parse_config(doc, tmp_path / "dev.toml")


def test_two_chips_knob_channels_from_the_config_and_failed_reads(tmp_path):
    cfg = two_chip_config(tmp_path)
    clock = SimClock()
    pos = {0: 0.25, 5: 0.8}
    board = emulated_board(adc_layout(cfg), clock, lambda ch, t: pos.get(ch, 0.5), seed=3)
    knobs = AdcKnobs(board.bus, adc_layout(cfg), clock)
    assert isinstance(knobs, KnobReader)
    t0 = clock.now()
    got = knobs.read()
    assert len(got) == 6 and abs(got[0] - 0.25) < 1e-3 and abs(got[5] - 0.8) < 1e-3
    # chips convert in parallel: 6 knobs (4 + 2) take 4 conversion times, not 6
    assert 4 / 475 < clock.now() - t0 < 4 * 1.15 / 475 + 0.002
    assert board.chips[0].conversions == board.chips[1].conversions == 4
    board.bus.read_fault_rate = board.bus.write_fault_rate = 1.0  # the bus fails completely
    assert knobs.read() == [None] * 6
    board.bus.read_fault_rate = board.bus.write_fault_rate = 0.0
    board.bus.detach(0x4A)  # the second board unplugged: its knobs read None, the others go on
    got = knobs.read()
    assert got[4] is None and got[5] is None and abs(got[0] - 0.25) < 1e-3


def test_hardware_parts_play_through_the_din_uart_with_gpio_buttons_and_leds(tmp_path):
    cfg = two_chip_config(tmp_path)
    clock = SimClock()
    board = emulated_board(adc_layout(cfg), clock, lambda ch, t: 0.5, seed=1)
    gpio = FakeGPIO(clock)
    gpio.setmode(gpio.BCM)
    parts = hardware_parts(cfg, clock, bus=board.bus, gpio=gpio)
    try:
        assert isinstance(parts.port, MidiOut) and parts.port.state == "connected"
        dec = LinearDecoder()
        loop = build_loop(cfg, decoder=dec, knobs=parts.knobs, port=parts.port, clock=clock,
                          buttons=parts.buttons, display=parts.leds)
        loop.run(until=0.5)
        gpio.press(5)  # "next": a debounced edge on BCM 5
        gpio.release(5)
        loop.run(until=1.0)
        uart = parts.port.out._port.serial
        uart.timeout = 0.2
        wire = uart.read(100000)
        synth = EmulatedDX7(clock)  # what a DX7 on the DIN cable ends up holding
        for message in split_messages(wire):
            synth.apply(message)
        assert synth.errors == [] and synth.voice == dec.anchors[1].voice == loop.voice
        assert parse_stream(wire)[0] == SingleVoice.of(dec.anchors[0].voice, 0)  # the start-up voice, whole
        assert gpio.level(17) == 1  # link LED on while the port is connected
        assert len([h for h in gpio.history if h[1] == 27]) > 2  # activity LED blinks with screen updates
    finally:
        parts.close()
    with pytest.raises(PortGone):
        parts.port.send(bytes([0x90, 60, 1]))


def test_missing_din_uart_is_a_port_the_loop_keeps_retrying(tmp_path):
    cfg = two_chip_config(tmp_path, port=str(tmp_path / "no-such-uart"))
    clock = SimClock()
    board = emulated_board(adc_layout(cfg), clock, lambda ch, t: 0.5)
    parts = hardware_parts(cfg, clock, bus=board.bus, gpio=FakeGPIO(clock))
    try:
        loop = build_loop(cfg, decoder=LinearDecoder(), knobs=parts.knobs, port=parts.port, clock=clock)
        loop.run(until=1.0)
        assert not loop.link_up and loop.stats.ticks > 100 and "no-such-uart" in parts.port.last_error
    finally:
        parts.close()


def test_real_run_without_an_i2c_bus_is_one_clear_error(tmp_path):
    cfg = parse_config({"adc": {"i2c_bus": 97}, "midi": {"api": "din", "port": "loop://"}}, tmp_path / "d.toml")
    with pytest.raises(DxmacroError, match="/dev/i2c-97.*--simulate"):
        run_device(cfg, simulate=False, duration_s=1)
