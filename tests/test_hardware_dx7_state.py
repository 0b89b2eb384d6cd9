"""The emulated DX7's receive rules, byte for byte, without any port."""

from __future__ import annotations

import pytest

from dx7 import Voice
from dx7.sysex import BulkDump, DumpRequest, ParameterChange, SingleVoice, parse_message
from hardware.dx7_emulator import DX7State


def voice(name: str, algorithm: int = 4) -> Voice:
    return Voice.init().replace({"algorithm": algorithm}, name=name)


def test_single_voice_for_its_channel_only():
    s = DX7State(channel=5)
    assert s.receive(SingleVoice.of(voice("OTHER"), channel=0).encode(), 1.0) == []
    assert s.edit_buffer == Voice.init()
    s.receive(SingleVoice.of(voice("MINE"), channel=4).encode(), 2.0)
    assert s.edit_buffer.name.strip() == "MINE"
    assert [v for _, _, v in s.log] == ["ignored: other channel", "voice loaded"]
    assert [t for t, _, _ in s.log] == [1.0, 2.0]


def test_parameter_changes_and_operator_mask():
    s = DX7State(channel=1)
    s.receive(ParameterChange(134, 17, 0).encode(), 0.0)  # algorithm 18
    s.receive(ParameterChange(134, 3, 1).encode(), 0.0)  # other channel
    s.receive(ParameterChange(155, 0b101010, 0).encode(), 0.0)
    assert s.edit_buffer.values[134] == 17 and s.op_mask == 0b101010


def test_sys_info_off_refuses_all_sysex_but_plays_notes():
    s = DX7State(channel=1, sys_info=False)
    s.receive(SingleVoice.of(voice("NOPE"), 0).encode(), 0.0)
    assert s.receive(DumpRequest(0, 0).encode(), 0.0) == []
    s.receive(bytes([0x90, 60, 99]), 0.0)
    assert s.edit_buffer == Voice.init() and s.notes == {60}
    assert s.log[0][2] == "ignored: SYS INFO UNAVAIL"


def test_dump_requests_answer_with_what_it_holds():
    s = DX7State(channel=16)
    s.receive(SingleVoice.of(voice("HELD", 30), 15).encode(), 0.0)
    (reply,) = s.receive(DumpRequest(0, 15).encode(), 0.0)
    msg = parse_message(reply)
    assert isinstance(msg, SingleVoice) and msg.channel == 15 and msg.voice() == s.edit_buffer
    bank = [voice(f"V{i:02d}", i % 32) for i in range(32)]
    s.receive(BulkDump.of(bank, 15).encode(), 0.0)
    (reply,) = s.receive(DumpRequest(9, 15).encode(), 0.0)
    assert parse_message(reply).voices() == bank
    s.receive(bytes([0xCF, 7]), 0.0)  # program change 8 on channel 16
    assert s.edit_buffer == bank[7]


def test_memory_protect_and_corrupt_sysex():
    s = DX7State(channel=1, memory_protect=True)
    s.receive(BulkDump.of([voice("X")], 0).encode(), 0.0)
    assert s.internal[0] == Voice.init()
    bad = bytearray(SingleVoice.of(voice("BAD"), 0).encode())
    bad[-2] ^= 1
    s.receive(bytes(bad), 0.0)
    assert s.edit_buffer == Voice.init()
    assert s.log[-1][2].startswith("rejected:") and "checksum" in s.log[-1][2]


def test_channel_must_be_1_to_16():
    with pytest.raises(Exception, match="1..16"):
        DX7State(channel=0)
