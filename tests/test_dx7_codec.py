"""The sysex codec on constructed data: exact layouts, round trips, and every kind of bad file."""

from pathlib import Path

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from dx7 import DX7Error, ParameterChange, Voice, param, parse_message
from dx7.files import encode_banks, encode_singles, parse_voice_bytes, read_voice_file, voices_from_json, voices_to_json
from dx7.packing import pack, unpack
from dx7.params import PARAMS
from dx7.sysex import BulkDump, DumpRequest, SingleVoice, checksum, split_messages

valid_values = st.tuples(*[st.integers(p.low, p.high) if p.learnable else st.integers(32, 126) for p in PARAMS])


@given(valid_values)
@settings(max_examples=300, deadline=None)
def test_pack_unpack_exact_for_valid_voices(values):
    voice = Voice(values)
    packed = voice.to_packed()
    assert len(packed) == 128 and all(b < 0x80 for b in packed)
    assert tuple(unpack(packed)) == values
    assert pack(unpack(packed)) == packed
    assert Voice.from_packed(packed) == voice and not Voice.from_packed(packed).fixes


def test_bulk_dump_layout_and_checksum():
    voices = [Voice.init().replace({"algorithm": i}) for i in range(32)]
    data = BulkDump.of(voices, channel=2).encode()
    assert len(data) == 4104 and data[:6] == bytes([0xF0, 0x43, 0x02, 0x09, 0x20, 0x00]) and data[-1] == 0xF7
    assert (sum(data[6:4102]) + data[4102]) & 0x7F == 0
    parsed = parse_message(data)
    assert isinstance(parsed, BulkDump) and parsed.channel == 2
    assert [v["algorithm"] for v in parsed.voices()] == list(range(32))


def test_single_voice_dump_layout():
    v = Voice.init().replace({"op2_output_level": 77}, name="HELLO")
    data = SingleVoice.of(v, channel=15).encode()
    assert len(data) == 163 and data[:6] == bytes([0xF0, 0x43, 0x0F, 0x00, 0x01, 0x1B])
    assert data[6 + param("op2_output_level").index] == 77
    assert parse_message(data).voice() == v


def test_parameter_change_bytes():
    assert ParameterChange(param("algorithm").index, 5, channel=0).encode() == bytes.fromhex("F0431001060 5F7".replace(" ", ""))
    assert ParameterChange(0, 99, channel=3).encode() == bytes.fromhex("F0431300 0063F7".replace(" ", ""))
    assert ParameterChange(155, 0x3F).encode() == bytes.fromhex("F04310011B3FF7")
    for p in (0, 127, 128, 144, 155):
        msg = ParameterChange(p, 1, channel=9)
        assert parse_message(msg.encode()) == msg
    with pytest.raises(DX7Error):
        ParameterChange(param("algorithm").index, 32)
    with pytest.raises(DX7Error):
        ParameterChange(156, 0)


def test_dump_requests():
    assert DumpRequest(0, 0).encode() == bytes.fromhex("F0432000F7")
    assert DumpRequest(9, 4).encode() == bytes.fromhex("F0432409F7")
    assert parse_message(bytes.fromhex("F0432409F7")) == DumpRequest(9, 4)


def test_files_with_several_messages(tmp_path: Path):
    voices = [Voice.init().replace({"feedback": i % 8}, name=f"V{i}") for i in range(40)]
    stream = encode_banks(voices) + bytes.fromhex("F07E7F0601F7") + encode_singles(voices[:3])
    path = tmp_path / "mixed.syx"
    path.write_bytes(stream)
    vf = read_voice_file(path)
    names = [lv.voice.name.strip() for lv in vf.voices]
    assert len(vf.voices) == 64 + 3 and vf.skipped_messages == 1
    assert names[:40] == [f"V{i}" for i in range(40)] and names[40] == "INIT VOICE" and names[-3:] == ["V0", "V1", "V2"]


def test_headerless_bank(tmp_path: Path):
    voices = [Voice.init().replace({"transpose": i}) for i in range(32)]
    path = tmp_path / "raw.bin"
    path.write_bytes(b"".join(v.to_packed() for v in voices))
    assert [lv.voice for lv in read_voice_file(path).voices] == voices


def test_json_round_trip():
    voices = [Voice.init().replace({"lfo_wave": 5, "op4_kbd_left_curve": 2}, name="J S O N")]
    assert voices_from_json(voices_to_json(voices), "x.json") == voices


def test_dirty_fields_are_clamped_as_dexed_does_and_reported():
    packed = bytearray(Voice.init().to_packed())
    packed[14] = 127  # OP6 output level 127
    packed[102] = 120  # pitch EG rate 1: rescaled, not clipped
    packed[116] = 0b0001110  # LFO wave 7
    v = Voice.from_packed(bytes(packed))
    assert v["op6_output_level"] == 99
    assert v["pitch_eg_rate1"] == int(120 / 255 * 99)
    assert v["lfo_wave"] == 5
    assert {f.name for f in v.fixes} == {"op6_output_level", "pitch_eg_rate1", "lfo_wave"}
    with pytest.raises(DX7Error, match="strict"):
        Voice.from_packed(bytes(packed), strict=True)


def _bank_bytes() -> bytes:
    return encode_banks([Voice.init()] * 32)


@pytest.mark.parametrize(
    "name, data, problem",
    [
        ("empty", b"", "empty"),
        ("truncated", _bank_bytes()[:2000], "no end"),
        ("short bulk", _bank_bytes()[:4000] + b"\xf7", "4001 bytes, expected 4104"),
        ("wrong header", bytes([0xF0, 0x43, 0x00, 0x09, 0x21, 0x00]) + _bank_bytes()[6:], "malformed header"),
        ("bad checksum", _bank_bytes()[:4102] + bytes([(_bank_bytes()[4102] + 1) & 0x7F, 0xF7]), "checksum"),
        ("high data byte", _bank_bytes()[:100] + b"\x90" + _bank_bytes()[101:], "0x90"),
        ("random bytes", bytes(np.random.default_rng(1).integers(0, 256, 777, dtype=np.uint8)), "not sysex"),
        ("no voices", bytes.fromhex("F07E7F0601F7"), "no DX7 voice"),
    ],
)
def test_bad_files_name_the_file_and_problem(tmp_path: Path, name, data, problem):
    path = tmp_path / f"{name.replace(' ', '_')}.syx"
    path.write_bytes(data)
    with pytest.raises(DX7Error) as err:
        read_voice_file(path)
    assert str(path) in str(err.value) and problem in str(err.value)


def test_missing_file_and_directory(tmp_path: Path):
    with pytest.raises(DX7Error, match="cannot read"):
        read_voice_file(tmp_path / "nope.syx")
    with pytest.raises(DX7Error, match="directory"):
        read_voice_file(tmp_path)


def test_split_messages_refuses_stray_bytes():
    with pytest.raises(DX7Error, match="offset 5"):
        split_messages(bytes.fromhex("F0432000F7") + b"\x12")
    assert checksum(bytes([1, 2, 3])) == (-6) & 0x7F
    with pytest.raises(DX7Error):
        parse_voice_bytes(bytes(4095), "odd.bin")
