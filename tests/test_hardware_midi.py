"""MIDI port layer without a server: the memory sink, the DIN UART (pyserial's loop://),
and the reopen logic driven by hand."""

from __future__ import annotations

import mido
import pytest

from hardware.clock import SimClock
from hardware.errors import HardwareError, PortGone
from hardware.midi import MemorySink, ReopeningOutput, SerialDinOutput, match_port, to_bytes


def test_memory_sink_records_time_and_bytes():
    clock = SimClock(10.0)
    sink = MemorySink(clock=clock)
    sink.send(mido.Message("control_change", channel=2, control=7, value=100))
    clock.sleep(0.25)
    sink.send(b"\xf0\x43\x10\x00\x05\x10\xf7")
    assert sink.records == [(10.0, bytes([0xB2, 7, 100])), (10.25, bytes.fromhex("f0431000051" "0f7"))]
    with pytest.raises(HardwareError, match="status byte"):
        sink.send(b"\x40\x00")
    sink.connected = False
    with pytest.raises(PortGone):
        sink.send([0x90, 60, 1])


def test_match_port_prefers_exact_then_prefix_then_substring():
    names = ["Dexed:midi_in 2", "Dexed:midi_in", "USB MIDI Interface:USB MIDI Interface MIDI 1 20:0"]
    assert match_port(names, "Dexed:midi_in") == 1
    assert match_port(names, "Dexed") == 0
    assert match_port(names, "USB MIDI Interface MIDI 1") == 2
    assert match_port(names, "DX7") is None


def test_din_output_writes_the_bytes_at_31250_baud():
    din = SerialDinOutput("loop://", baudrate=31250)
    assert din.serial.baudrate == 31250 and din.serial.bytesize == 8 and din.serial.stopbits == 1
    din.send(mido.Message("note_on", channel=0, note=60, velocity=64))
    din.send(bytes([0xF0, 0x43, 0x10, 0x01, 0x1B, 0x3F, 0xF7]))
    din.serial.timeout = 0.5
    assert din.serial.read(10) == bytes([0x90, 60, 64, 0xF0, 0x43, 0x10, 0x01, 0x1B, 0x3F, 0xF7])
    din.close()
    assert not din.alive()


def test_din_output_on_a_missing_uart_is_port_gone():
    with pytest.raises(PortGone, match="/dev/nonexistent-uart"):
        SerialDinOutput("/dev/nonexistent-uart")


def test_reopening_output_goes_and_comes_back():
    clock = SimClock()
    plugged = {"yes": True}
    sinks: list[MemorySink] = []

    def opener() -> MemorySink:
        if not plugged["yes"]:
            raise PortGone("no such port")
        sinks.append(MemorySink(clock=clock))
        return sinks[-1]

    out = ReopeningOutput(opener, "synth", clock=clock)
    assert out.connected and out.opens == 1 and out.reopened_at is None
    out.send([0x90, 60, 100])
    # unplug: the port object notices (alive() false), sends fail with a clear error
    plugged["yes"] = False
    sinks[0].connected = False
    clock.sleep(1.0)
    assert not out.check()
    assert out.gone_since == 1.0
    with pytest.raises(PortGone, match="synth"):
        out.send([0x80, 60, 0])
    clock.sleep(1.0)
    assert not out.check()  # still absent: stays gone
    plugged["yes"] = True
    clock.sleep(0.2)
    assert out.check()
    assert out.reopened_at == pytest.approx(2.2) and out.opens == 2
    out.send([0x90, 62, 100])
    assert sinks[-1].messages() == [bytes([0x90, 62, 100])] and sinks[0].closed
    out.close()


def test_reopening_output_drops_a_port_whose_send_fails():
    sink = MemorySink()
    out = ReopeningOutput(lambda: sink, "x")
    sink.connected = False
    with pytest.raises(PortGone):
        out.send(to_bytes([0xB0, 1, 2]))
    assert not out.connected
