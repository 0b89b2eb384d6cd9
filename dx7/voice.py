"""An immutable DX7 voice: 155 in-range values, addressed by name or index."""

from __future__ import annotations

import hashlib
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field

import numpy as np

from dx7 import packing
from dx7.errors import DX7Error
from dx7.params import BY_NAME, LEARNABLE_COUNT, NAME_LENGTH, NAME_OFFSET, PARAM_COUNT, PARAMS
from dx7.sanitize import Fix, sanitize


@dataclass(frozen=True)
class Voice:
    """One DX7 voice in unpacked (VCED) order. Always in range: build it through
    :meth:`from_packed` / :meth:`from_unpacked`, which apply the dirty-input policy,
    or directly from values that are known to be valid (checked)."""

    values: tuple[int, ...]
    fixes: tuple[Fix, ...] = field(default=(), compare=False)

    def __post_init__(self) -> None:
        if len(self.values) != PARAM_COUNT:
            raise DX7Error(f"a voice has {PARAM_COUNT} values, got {len(self.values)}")
        for p, v in zip(PARAMS, self.values):
            if not p.low <= v <= p.high:
                raise DX7Error(f"{p.name}={v} outside {p.low}..{p.high}")

    # -- construction -------------------------------------------------------------
    @classmethod
    def from_packed(cls, packed: bytes, *, strict: bool = False, source: str | None = None) -> Voice:
        values, fixes = sanitize(packing.unpack(packed), packed_source=True, strict=strict, source=source)
        return cls(tuple(values), tuple(fixes))

    @classmethod
    def from_unpacked(
        cls, raw: Sequence[int], *, strict: bool = False, source: str | None = None
    ) -> Voice:
        if len(raw) != PARAM_COUNT:
            raise DX7Error(f"an unpacked voice has {PARAM_COUNT} values, got {len(raw)}", source=source)
        values, fixes = sanitize(raw, packed_source=False, strict=strict, source=source)
        return cls(tuple(values), tuple(fixes))

    @classmethod
    def from_parameters(cls, params: Sequence[int] | np.ndarray, name: str = "") -> Voice:
        """From the 145 learnable values (as the models produce them) and a name."""
        if len(params) != LEARNABLE_COUNT:
            raise DX7Error(f"expected {LEARNABLE_COUNT} parameters, got {len(params)}")
        return cls(tuple(int(v) for v in params) + encode_name(name))

    @classmethod
    def init(cls) -> Voice:
        """The DX7's INIT VOICE: one sine carrier (OP1) at full level, algorithm 1."""
        v = [0] * PARAM_COUNT
        for op in range(1, 7):
            base = (6 - op) * 21
            v[base : base + 8] = [99, 99, 99, 99, 99, 99, 99, 0]
            v[base + 16] = 99 if op == 1 else 0  # output level
            v[base + 18] = 1  # coarse 1
            v[base + 20] = 7  # detune centred
            v[base + 8] = 39  # breakpoint C3
        v[126:134] = [99, 99, 99, 99, 50, 50, 50, 50]
        v[136] = 1  # osc key sync
        v[137] = 35  # LFO speed
        v[141] = 1
        v[144] = 24  # transpose C3
        return cls(tuple(v[:NAME_OFFSET]) + encode_name("INIT VOICE"))

    # -- views ----------------------------------------------------------------------
    @property
    def name(self) -> str:
        return bytes(self.values[NAME_OFFSET:]).decode("ascii", errors="replace")

    @property
    def parameters(self) -> np.ndarray:
        """The 145 learnable values (everything but the name) as uint8."""
        return np.asarray(self.values[:LEARNABLE_COUNT], dtype=np.uint8)

    @property
    def clamped(self) -> bool:
        return bool(self.fixes)

    def __getitem__(self, key: str | int) -> int:
        if isinstance(key, str):
            if key not in BY_NAME:
                raise DX7Error(f"unknown DX7 parameter {key!r}")
            key = BY_NAME[key].index
        return self.values[key]

    def items(self) -> Iterator[tuple[str, int]]:
        return ((p.name, v) for p, v in zip(PARAMS, self.values))

    def replace(self, changes: Mapping[str | int, int] | None = None, *, name: str | None = None) -> Voice:
        values = list(self.values)
        for key, v in (changes or {}).items():
            idx = BY_NAME[key].index if isinstance(key, str) else int(key)
            values[idx] = int(v)
        if name is not None:
            values[NAME_OFFSET:] = encode_name(name)
        return Voice(tuple(values))

    # -- encodings ------------------------------------------------------------------
    def to_packed(self) -> bytes:
        return packing.pack(self.values)

    def to_unpacked(self) -> bytes:
        return bytes(self.values)

    def content_key(self) -> bytes:
        """Identity for de-duplication: the parameters, name ignored."""
        return bytes(self.values[:LEARNABLE_COUNT])

    def content_hash(self) -> str:
        return hashlib.sha256(self.content_key()).hexdigest()

    def to_dict(self) -> dict[str, object]:
        return {"name": self.name, "parameters": {p.name: v for p, v in zip(PARAMS, self.values) if p.learnable}}

    @classmethod
    def from_dict(cls, data: Mapping[str, object], *, strict: bool = True) -> Voice:
        """Inverse of :meth:`to_dict`; every learnable parameter must be present."""
        try:
            params = data["parameters"]
            name = str(data.get("name", ""))
            if not isinstance(params, Mapping):
                raise TypeError
            missing = [p.name for p in PARAMS if p.learnable and p.name not in params]
            unknown = sorted(set(params) - {p.name for p in PARAMS if p.learnable})
            if missing or unknown:
                raise DX7Error(f"voice JSON: missing {missing[:3]} unknown {unknown[:3]}")
            raw = [int(params[p.name]) for p in PARAMS if p.learnable]  # type: ignore[index]
        except (KeyError, TypeError, ValueError) as exc:
            if isinstance(exc, DX7Error):
                raise
            raise DX7Error(f"voice JSON is malformed ({exc.__class__.__name__}: {exc})") from None
        if any(r < 0 or r > 255 for r in raw):
            raise DX7Error("voice JSON: parameter values must be 0..255")
        return cls.from_unpacked(raw + list(encode_name(name)), strict=strict)


def encode_name(name: str) -> tuple[int, ...]:
    """A DX7 name: 10 printable ASCII characters, space padded, others as '?'."""
    chars = [c if 32 <= ord(c) < 127 else "?" for c in name[:NAME_LENGTH]]
    return tuple(ord(c) for c in "".join(chars).ljust(NAME_LENGTH))
