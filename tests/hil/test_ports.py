"""Hardware-in-the-loop over real JACK MIDI ports: this process on one side, the emulated
DX7 (its own process, its own ports) on the other."""

from __future__ import annotations

import time

import numpy as np
import pytest

from dx7 import PARAMS, Voice
from dx7.sysex import BulkDump, DumpRequest, ParameterChange, SingleVoice, parse_message
from hardware.errors import JackUnavailable, PortGone
from hardware.midi import ReopeningOutput, RtMidiInput, RtMidiOutput

pytestmark = [pytest.mark.hil, pytest.mark.timeout(60)]


def random_voices(n: int, seed: int) -> list[Voice]:
    rng = np.random.default_rng(seed)
    out = []
    for i in range(n):
        values = [int(rng.integers(p.low, p.high + 1)) for p in PARAMS[:145]]
        out.append(Voice.from_parameters(values, f"RND{seed:02d}-{i:03d}"))
    return out


def wait_for_log(emu, count: int, timeout: float = 3.0):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        log = emu.log()
        if len(log) >= count:
            return log
        time.sleep(0.02)
    raise AssertionError(f"the emulated DX7 logged {len(emu.log())} messages, expected {count}")


def ports(emu, tag: str):
    return (RtMidiOutput(emu.input_port, client_name=f"test-out-{tag}"),
            RtMidiInput(emu.output_port, client_name=f"test-in-{tag}"))


def test_voice_dump_read_back_by_dump_request(emulator_factory):
    emu = emulator_factory(channel=3)
    out, inp = ports(emu, "dump")
    for k, v in enumerate(random_voices(4, seed=1)):
        sent_at = time.monotonic()
        out.send(SingleVoice.of(v, channel=2).encode())
        out.send(DumpRequest(0, channel=2).encode())
        got = inp.receive(timeout=2.0)
        assert got is not None, "no reply to the dump request"
        arrived, data = got
        reply = parse_message(data)
        assert isinstance(reply, SingleVoice) and reply.channel == 2
        assert reply.voice() == v
        log = emu.log(since=2 * k)
        assert [a.verdict for a in log] == ["voice loaded", "voice dump sent"]
        # every byte's arrival is stamped, after we sent it and before its answer came back
        assert all(sent_at <= t <= arrived for a in log for t in a.byte_times())
        assert len(log[0].byte_times()) == 163
    assert emu.edit_buffer() == v


def test_bank_dump_of_4104_bytes_round_trips(emulator_factory):
    emu = emulator_factory(channel=1)
    out, inp = ports(emu, "bank")
    bank = random_voices(32, seed=2)
    out.send(BulkDump.of(bank, 0).encode())
    out.send(DumpRequest(9, 0).encode())
    got = inp.receive(timeout=3.0)
    assert got is not None, [(len(a.data), a.verdict) for a in emu.log()]
    assert len(got[1]) == 4104
    assert parse_message(got[1]).voices() == bank == emu.internal()


def test_parameter_changes_for_another_channel_are_ignored(emulator_factory):
    emu = emulator_factory(channel=1)
    out, _ = ports(emu, "param")
    out.send(ParameterChange(134, 20, channel=1).encode())  # MIDI channel 2
    out.send(ParameterChange(137, 80, channel=5).encode())
    wait_for_log(emu, 2)
    assert emu.edit_buffer() == Voice.init()
    out.send(ParameterChange(134, 20, channel=0).encode())
    out.send(ParameterChange(155, 0b110011, channel=0).encode())
    log = wait_for_log(emu, 4)
    assert [a.verdict for a in log] == ["ignored: other channel"] * 2 + ["parameter 134 = 20", "parameter 155 = 51"]
    assert emu.edit_buffer().values[134] == 20 and emu.state()["op_mask"] == 0b110011


def test_sys_info_off_refuses_sysex(emulator_factory):
    emu = emulator_factory(channel=1, sys_info=False)
    out, inp = ports(emu, "sysinfo")
    out.send(SingleVoice.of(random_voices(1, seed=3)[0], 0).encode())
    out.send(DumpRequest(0, 0).encode())
    out.send(bytes([0x90, 64, 100]))
    log = wait_for_log(emu, 3)
    assert [a.verdict for a in log] == ["ignored: SYS INFO UNAVAIL"] * 2 + ["note on"]
    assert inp.receive(timeout=0.5) is None
    assert emu.edit_buffer() == Voice.init()
    emu.set(sys_info=True)  # switched on at the panel: now it listens
    out.send(DumpRequest(0, 0).encode())
    assert inp.receive(timeout=2.0) is not None


def test_a_vanished_port_is_reopened_within_a_second_of_returning(emulator_factory):
    emu = emulator_factory(channel=1)
    out = ReopeningOutput(lambda: RtMidiOutput(emu.input_port, client_name="test-reopen"), emu.input_port,
                          poll_interval=0.2).start()
    try:
        out.send(bytes([0x90, 60, 100]))
        wait_for_log(emu, 1)
        emu.unplug(seconds=1.0)
        deadline = time.monotonic() + 1.0
        while out.connected and time.monotonic() < deadline:
            time.sleep(0.02)
        assert not out.connected, "the vanished port was not noticed within 1 s"
        with pytest.raises(PortGone, match=emu.input_port):
            out.send(bytes([0x80, 60, 0]))
        deadline = time.monotonic() + 5.0
        while (back := emu.state()["ports_back_at"]) is None or not out.connected:
            assert time.monotonic() < deadline, "the port came back but was never reopened"
            time.sleep(0.02)
        assert out.reopened_at - back < 1.0
        out.send(bytes([0x90, 62, 100]))
        log = wait_for_log(emu, 2)
        assert log[-1].data == bytes([0x90, 62, 100])
    finally:
        out.close()


def test_killing_jackd_mid_test_fails_fast_with_a_clear_error(emulator_factory, jack):
    emu = emulator_factory(channel=1)
    out, inp = ports(emu, "kill")
    out.send(DumpRequest(0, 0).encode())
    assert inp.receive(timeout=2.0) is not None
    jack.expected_death = True
    jack.kill()
    t0 = time.monotonic()
    with pytest.raises(PortGone, match="gone"):
        inp.receive(timeout=30.0)  # would wait 30 s if the death went unnoticed
    assert time.monotonic() - t0 < 1.0
    time.sleep(0.15)
    with pytest.raises(PortGone):
        out.send(DumpRequest(0, 0).encode())
    with pytest.raises(JackUnavailable, match="JACK server"):
        RtMidiOutput(emu.input_port, client_name="test-after-kill")
