"""The dirty-input policy: bring out-of-range fields into range exactly as Dexed does.

Real cartridge collections carry fields the DX7 never produces (an output level of
127, an LFO wave of 7...). Dexed loads such voices anyway by its own rule, and so do
we, so that what we train on and send is what Dexed would play:

* unused high bits are masked off (bit 7 of most bytes, as Dexed does; the spare
  bits of packed bit-fields are dropped by unpacking itself). Dexed keeps bit 7 of the
  operators' EG, breakpoint and depth bytes and clips them instead, and so do we;
* the pitch-EG rates and levels of a *packed* voice above 99 are rescaled as
  Dexed's ``normparm`` does: ``int(v / 255 * 99)``;
* every other field is clipped to its range (detune 15 -> 14, LFO wave 6, 7 -> 5,
  transpose 60 -> 48, a level of 127 -> 99);
* name characters keep their low 7 bits.

Every change is recorded as a :class:`Fix` so it can be counted and reported per
voice; ``strict=True`` refuses such a voice instead.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from dx7.errors import DX7Error
from dx7.params import NAME_OFFSET, PARAMS, VOICE_FIELD_OFFSET

_PITCH_EG = range(VOICE_FIELD_OFFSET, VOICE_FIELD_OFFSET + 8)

# Bit masks Dexed applies to unpacked fields before clipping (fields wider than
# their range on the wire).
_MASKS: dict[str, int] = {
    **{f: 0xFF for f in ("eg_rate1", "eg_rate2", "eg_rate3", "eg_rate4", "eg_level1", "eg_level2",
                         "eg_level3", "eg_level4", "kbd_breakpoint", "kbd_left_depth", "kbd_right_depth")},
    "kbd_left_curve": 0x03,
    "kbd_right_curve": 0x03,
    "kbd_rate_scaling": 0x07,
    "amp_mod_sens": 0x03,
    "key_vel_sens": 0x07,
    "osc_mode": 0x01,
    "freq_coarse": 0x1F,
    "detune": 0x0F,
    "algorithm": 0x1F,
    "feedback": 0x07,
    "osc_key_sync": 0x01,
    "lfo_key_sync": 0x01,
    "lfo_wave": 0x07,
    "pitch_mod_sens": 0x07,
}


def _mask_for(index: int) -> int:
    name = PARAMS[index].name
    field = name.split("_", 1)[1] if name.startswith("op") else name
    return _MASKS.get(field, 0x7F)


_FIELD_MASKS: tuple[int, ...] = tuple(_mask_for(i) for i in range(len(PARAMS)))


@dataclass(frozen=True)
class Fix:
    """One field brought into range: which parameter, what was stored, what is used."""

    index: int
    raw: int
    value: int

    @property
    def name(self) -> str:
        return PARAMS[self.index].name

    def __str__(self) -> str:
        return f"{self.name} {self.raw}->{self.value}"


def sanitize(
    raw: Sequence[int], *, packed_source: bool = True, strict: bool = False, source: str | None = None
) -> tuple[list[int], list[Fix]]:
    """Return the in-range values Dexed would use for ``raw`` and the fixes made.

    ``packed_source`` selects Dexed's packed-bank rule for the pitch EG (rescale)
    rather than the single-voice rule (clip). With ``strict`` any fix raises.
    """
    values: list[int] = []
    fixes: list[Fix] = []
    for i, r in enumerate(raw):
        r = int(r)
        v = r & _FIELD_MASKS[i]
        if i >= NAME_OFFSET:
            pass
        elif packed_source and i in _PITCH_EG and v > 99:
            v = int(v / 255 * 99)
        else:
            v = min(v, PARAMS[i].high)
        if v != r:
            fixes.append(Fix(i, r, v))
        values.append(v)
    if strict and fixes:
        shown = ", ".join(str(f) for f in fixes[:4]) + (" ..." if len(fixes) > 4 else "")
        raise DX7Error(f"{len(fixes)} field(s) out of range (strict mode): {shown}", source=source)
    return values, fixes
