"""DX7 system-exclusive messages as small immutable values, with encoders and a parser.

Message layouts (Yamaha DX7 MIDI implementation; ``n`` is the channel 0..15):

* 32-voice bulk dump   ``F0 43 0n 09 20 00 <4096 packed> cs F7``   (4104 bytes)
* single-voice dump    ``F0 43 0n 00 01 1B <155 unpacked> cs F7``   (163 bytes)
* parameter change     ``F0 43 1n gg pp dd F7``: group 0 (voice); parameter
  number = ``(gg & 3) << 7 | pp``, so 128..155 are sent with ``gg = 01``; 155 is the
  operator on/off mask (bit 5 = OP1 ... bit 0 = OP6)
* dump request         ``F0 43 2n ff F7``: ``ff`` 0 = single voice, 9 = 32 voices

``cs`` is the 7-bit checksum: the two's complement of the payload's sum, low 7 bits.
"""

from __future__ import annotations

from dataclasses import dataclass

from dx7.errors import DX7Error
from dx7.packing import PACKED_SIZE, unused_bits
from dx7.params import PARAM_COUNT, PARAMS
from dx7.voice import Voice

SYSEX_START, SYSEX_END = 0xF0, 0xF7
YAMAHA = 0x43
BANK_VOICES = 32
BANK_PAYLOAD = BANK_VOICES * PACKED_SIZE  # 4096
BULK_HEADER = (0x09, 0x20, 0x00)  # format 9, byte count 0x2000 = 4096 as two 7-bit bytes
SINGLE_HEADER = (0x00, 0x01, 0x1B)  # format 0, byte count 155
BULK_SIZE = 6 + BANK_PAYLOAD + 2  # 4104
SINGLE_SIZE = 6 + PARAM_COUNT + 2  # 163
OP_SWITCH_PARAM = 155  # operator on/off, not part of the stored voice
ALL_OPERATORS_ON = 0x3F
DUMP_SINGLE, DUMP_BANK = 0, 9


def checksum(payload: bytes) -> int:
    return (-sum(payload)) & 0x7F


def _channel(channel: int) -> int:
    if not 0 <= channel <= 15:
        raise DX7Error(f"MIDI channel must be 0..15 (sent as 1..16), got {channel}")
    return channel


# -- message values -----------------------------------------------------------------
@dataclass(frozen=True)
class BulkDump:
    """32 packed voices. ``packed`` keeps the bytes as received, for exact round trips."""

    packed: tuple[bytes, ...]
    channel: int = 0

    def voices(self, *, strict: bool = False, source: str | None = None) -> list[Voice]:
        out = []
        for slot, p in enumerate(self.packed):
            where = f"{source} voice {slot + 1}" if source else f"voice {slot + 1}"
            bits = unused_bits(p)
            if strict and bits:
                raise DX7Error(f"unused bits set in packed bytes {bits[:4]} (strict mode)", source=where)
            out.append(Voice.from_packed(p, strict=strict, source=where))
        return out

    def encode(self) -> bytes:
        payload = b"".join(self.packed)
        head = bytes([SYSEX_START, YAMAHA, _channel(self.channel), *BULK_HEADER])
        return head + payload + bytes([checksum(payload), SYSEX_END])

    @classmethod
    def of(cls, voices: list[Voice], channel: int = 0) -> BulkDump:
        """A bank of up to 32 voices; missing slots are filled with INIT VOICE, as a
        DX7 cartridge always holds 32."""
        if len(voices) > BANK_VOICES:
            raise DX7Error(f"a bank holds {BANK_VOICES} voices, got {len(voices)}")
        filled = list(voices) + [Voice.init()] * (BANK_VOICES - len(voices))
        return cls(tuple(v.to_packed() for v in filled), channel)


@dataclass(frozen=True)
class SingleVoice:
    values: bytes  # 155 unpacked bytes as received
    channel: int = 0

    def voice(self, *, strict: bool = False, source: str | None = None) -> Voice:
        return Voice.from_unpacked(self.values, strict=strict, source=source)

    def encode(self) -> bytes:
        head = bytes([SYSEX_START, YAMAHA, _channel(self.channel), *SINGLE_HEADER])
        return head + self.values + bytes([checksum(self.values), SYSEX_END])

    @classmethod
    def of(cls, voice: Voice, channel: int = 0) -> SingleVoice:
        return cls(voice.to_unpacked(), channel)


@dataclass(frozen=True)
class ParameterChange:
    """Set one voice parameter (0..154) or the operator on/off mask (155)."""

    parameter: int
    value: int
    channel: int = 0

    def __post_init__(self) -> None:
        if not 0 <= self.parameter <= OP_SWITCH_PARAM:
            raise DX7Error(f"voice parameter number must be 0..155, got {self.parameter}")
        high = 0x3F if self.parameter == OP_SWITCH_PARAM else PARAMS[self.parameter].high
        if not 0 <= self.value <= high:
            name = "op on/off" if self.parameter == OP_SWITCH_PARAM else PARAMS[self.parameter].name
            raise DX7Error(f"{name} must be 0..{high}, got {self.value}")
        _channel(self.channel)

    def encode(self) -> bytes:
        p = self.parameter
        return bytes([SYSEX_START, YAMAHA, 0x10 | self.channel, p >> 7, p & 0x7F, self.value, SYSEX_END])


@dataclass(frozen=True)
class DumpRequest:
    format: int  # DUMP_SINGLE or DUMP_BANK
    channel: int = 0

    def encode(self) -> bytes:
        if self.format not in (DUMP_SINGLE, DUMP_BANK):
            raise DX7Error(f"dump request format must be 0 or 9, got {self.format}")
        return bytes([SYSEX_START, YAMAHA, 0x20 | _channel(self.channel), self.format, SYSEX_END])


@dataclass(frozen=True)
class OtherSysex:
    """A well-formed sysex message that is not one of the DX7 voice messages above
    (another manufacturer, a DX7 function-parameter change...). Kept, not decoded."""

    data: bytes

    def encode(self) -> bytes:
        return self.data


Message = BulkDump | SingleVoice | ParameterChange | DumpRequest | OtherSysex


# -- parsing --------------------------------------------------------------------------
def split_messages(data: bytes, source: str | None = None) -> list[bytes]:
    """Split a byte stream into complete ``F0 .. F7`` messages, refusing anything else."""
    if not data:
        raise DX7Error("empty: no sysex data", source=source)
    out: list[bytes] = []
    pos = 0
    while pos < len(data):
        if data[pos] != SYSEX_START:
            raise DX7Error(f"byte 0x{data[pos]:02X} at offset {pos} where a sysex message (F0) should start",
                           source=source)
        end = pos + 1
        while end < len(data) and data[end] < 0x80:
            end += 1
        if end == len(data):
            raise DX7Error(f"truncated: the sysex message at offset {pos} has no end (F7)", source=source)
        if data[end] != SYSEX_END:
            raise DX7Error(f"data byte 0x{data[end]:02X} >= 0x80 at offset {end} inside the sysex message "
                           f"at offset {pos}", source=source)
        out.append(bytes(data[pos : end + 1]))
        pos = end + 1
    return out


def parse_message(msg: bytes, source: str | None = None) -> Message:
    """Decode one complete sysex message; DX7 voice messages are checked in full."""
    if len(msg) < 2 or msg[0] != SYSEX_START or msg[-1] != SYSEX_END:
        raise DX7Error("not a sysex message (must start with F0 and end with F7)", source=source)
    if any(b >= 0x80 for b in msg[1:-1]):
        raise DX7Error("sysex data bytes must be below 0x80", source=source)
    if len(msg) < 4 or msg[1] != YAMAHA:
        return OtherSysex(msg)
    status, channel = msg[2] >> 4, msg[2] & 0x0F
    if status == 0 and len(msg) >= 6 and tuple(msg[3:6]) in (BULK_HEADER, SINGLE_HEADER):
        bulk = tuple(msg[3:6]) == BULK_HEADER
        size, kind = (BULK_SIZE, "32-voice bulk dump") if bulk else (SINGLE_SIZE, "single-voice dump")
        if len(msg) != size:
            raise DX7Error(f"{kind} is {len(msg)} bytes, expected {size} (truncated or padded)", source=source)
        payload, cs = msg[6:-2], msg[-2]
        if checksum(payload) != cs:
            raise DX7Error(f"{kind} checksum mismatch: stored 0x{cs:02X}, computed 0x{checksum(payload):02X}",
                           source=source)
        if bulk:
            return BulkDump(tuple(payload[i : i + PACKED_SIZE] for i in range(0, BANK_PAYLOAD, PACKED_SIZE)), channel)
        return SingleVoice(bytes(payload), channel)
    if status == 0 and len(msg) >= 4 and msg[3] in (0x00, 0x09):
        raise DX7Error(f"DX7 voice dump with a malformed header {msg[3:6].hex(' ')}", source=source)
    if status == 1 and len(msg) == 7 and msg[3] >> 2 == 0:
        param = (msg[3] & 0x03) << 7 | msg[4]
        try:
            return ParameterChange(param, msg[5], channel)
        except DX7Error as exc:
            raise DX7Error(f"parameter change: {exc}", source=source) from None
    if status == 2 and len(msg) == 5 and msg[3] in (DUMP_SINGLE, DUMP_BANK):
        return DumpRequest(msg[3], channel)
    return OtherSysex(msg)


def parse_stream(data: bytes, source: str | None = None) -> list[Message]:
    return [parse_message(m, source) for m in split_messages(data, source)]
