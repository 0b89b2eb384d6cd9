"""A tuned knob's mask as stored: which of the 145 learnable DX7 values that knob may move on one
voice (host_training.jobs.knob_tune), 145 bits packed into 19 bytes in np.packbits order. Voice
banks (format 2) store the bytes; a bundle's anchors.json stores them as hex."""

from __future__ import annotations

import numpy as np

from dx7 import LEARNABLE_COUNT

MASK_BYTES = (LEARNABLE_COUNT + 7) // 8  # 145 learnable parameters -> 19 bytes


def pack(mask: np.ndarray) -> bytes:
    """(145,) bool -> 19 bytes."""
    return np.packbits(np.asarray(mask, bool)).tobytes()


def unpack(raw: bytes) -> np.ndarray | None:
    """19 bytes -> (145,) bool; None when they do not hold a mask (wrong length, bits set past the
    last parameter)."""
    if len(raw) != MASK_BYTES:
        return None
    bits = np.unpackbits(np.frombuffer(raw, np.uint8))
    if bits[LEARNABLE_COUNT:].any():
        return None
    return bits[:LEARNABLE_COUNT].astype(bool)


def from_json(entry: object, dims: set[int]) -> dict[int, np.ndarray] | None:
    """An anchor's ``knob_masks`` ({"dim": hex}) -> {dim: (145,) bool}; None when it is malformed or
    names a dim that is not one of ``dims`` (the bundle's knobs)."""
    if not isinstance(entry, dict):
        return None
    out = {}
    for key, text in entry.items():
        if not (isinstance(key, str) and key.isdecimal() and int(key) in dims and isinstance(text, str)):
            return None
        try:
            mask = unpack(bytes.fromhex(text))
        except ValueError:
            return None
        if mask is None:
            return None
        out[int(key)] = mask
    return out


def to_json(masks: dict[int, np.ndarray]) -> dict[str, str]:
    return {str(int(d)): pack(m).hex() for d, m in sorted(masks.items())}
