"""Packed (128-byte, bulk dump) <-> unpacked (155-value, VCED) voice conversion.

Unpacking extracts each field from its bits exactly as they are stored; it does not
judge ranges (see :mod:`dx7.sanitize`). For a clean voice, ``pack(unpack(b)) == b``.
"""

from __future__ import annotations

from collections.abc import Sequence

from dx7.errors import DX7Error
from dx7.params import NAME_OFFSET, PARAM_COUNT, VOICE_FIELD_OFFSET

PACKED_SIZE = 128
_OP_PACKED = 17
_OP_UNPACKED = 21
_VOICE_PACKED = 6 * _OP_PACKED  # 102

# Bits of each packed byte that carry data; the rest are unused and must be zero
# in a clean voice.
USED_BITS: tuple[int, ...] = tuple(
    [0x7F] * 11 + [0x0F, 0x7F, 0x1F, 0x7F, 0x3F, 0x7F]  # one operator
) * 6 + tuple([0x7F] * 8 + [0x1F, 0x0F] + [0x7F] * 4 + [0x7F, 0x7F] + [0x7F] * 10)

assert len(USED_BITS) == PACKED_SIZE


def unpack(packed: bytes | Sequence[int]) -> list[int]:
    """128 packed bytes -> 155 raw field values (possibly out of range)."""
    if len(packed) != PACKED_SIZE:
        raise DX7Error(f"a packed voice is {PACKED_SIZE} bytes, got {len(packed)}")
    p = bytes(packed)
    out = [0] * PARAM_COUNT
    for op in range(6):
        s, d = op * _OP_PACKED, op * _OP_UNPACKED
        out[d : d + 11] = p[s : s + 11]  # rates, levels, breakpoint, depths
        out[d + 11] = p[s + 11] & 0x03  # left curve
        out[d + 12] = (p[s + 11] >> 2) & 0x03  # right curve
        out[d + 13] = p[s + 12] & 0x07  # rate scaling
        out[d + 20] = (p[s + 12] >> 3) & 0x0F  # detune
        out[d + 14] = p[s + 13] & 0x03  # amp mod sensitivity
        out[d + 15] = (p[s + 13] >> 2) & 0x07  # key velocity sensitivity
        out[d + 16] = p[s + 14]  # output level
        out[d + 17] = p[s + 15] & 0x01  # oscillator mode
        out[d + 18] = (p[s + 15] >> 1) & 0x1F  # coarse frequency
        out[d + 19] = p[s + 16]  # fine frequency
    v, s = VOICE_FIELD_OFFSET, _VOICE_PACKED
    out[v : v + 8] = p[s : s + 8]  # pitch EG rates and levels
    out[v + 8] = p[s + 8] & 0x1F  # algorithm
    out[v + 9] = p[s + 9] & 0x07  # feedback
    out[v + 10] = (p[s + 9] >> 3) & 0x01  # oscillator key sync
    out[v + 11 : v + 15] = p[s + 10 : s + 14]  # LFO speed, delay, PMD, AMD
    out[v + 15] = p[s + 14] & 0x01  # LFO key sync
    out[v + 16] = (p[s + 14] >> 1) & 0x07  # LFO wave
    out[v + 17] = (p[s + 14] >> 4) & 0x07  # pitch mod sensitivity
    out[v + 18] = p[s + 15]  # transpose
    out[NAME_OFFSET:] = p[s + 16 : s + 26]
    return out


def pack(values: Sequence[int]) -> bytes:
    """155 field values -> 128 packed bytes. Values must already fit their bits."""
    if len(values) != PARAM_COUNT:
        raise DX7Error(f"an unpacked voice has {PARAM_COUNT} values, got {len(values)}")
    u = [int(x) for x in values]
    if any(x < 0 or x > 0xFF for x in u):
        raise DX7Error("unpacked voice values must be bytes (0..255)")
    out = bytearray(PACKED_SIZE)
    for op in range(6):
        s, d = op * _OP_UNPACKED, op * _OP_PACKED
        out[d : d + 11] = bytes(u[s : s + 11])
        out[d + 11] = (u[s + 11] & 0x03) | (u[s + 12] & 0x03) << 2
        out[d + 12] = (u[s + 13] & 0x07) | (u[s + 20] & 0x0F) << 3
        out[d + 13] = (u[s + 14] & 0x03) | (u[s + 15] & 0x07) << 2
        out[d + 14] = u[s + 16]
        out[d + 15] = (u[s + 17] & 0x01) | (u[s + 18] & 0x1F) << 1
        out[d + 16] = u[s + 19]
    s, d = VOICE_FIELD_OFFSET, _VOICE_PACKED
    out[d : d + 8] = bytes(u[s : s + 8])
    out[d + 8] = u[s + 8] & 0x1F
    out[d + 9] = (u[s + 9] & 0x07) | (u[s + 10] & 0x01) << 3
    out[d + 10 : d + 14] = bytes(u[s + 11 : s + 15])
    out[d + 14] = (u[s + 15] & 0x01) | (u[s + 16] & 0x07) << 1 | (u[s + 17] & 0x07) << 4
    out[d + 15] = u[s + 18]
    out[d + 16 : d + 26] = bytes(u[NAME_OFFSET:])
    return bytes(out)


def unused_bits(packed: bytes) -> list[int]:
    """Offsets of packed bytes that have bits set outside their fields."""
    return [i for i, b in enumerate(packed) if b & ~USED_BITS[i] & 0xFF]
