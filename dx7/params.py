"""The 155 parameters of a DX7 voice, in the order of the unpacked (VCED) sysex layout.

Six blocks of 21 operator parameters (OP6 first, as the DX7 sends them), then 19
voice-level parameters, then the 10 characters of the name. Every later stage
(training targets, the int8 decoder's outputs, parameter-change messages) refers
to parameters by their index in this table, so it is the one place they are defined.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import Enum


class Kind(str, Enum):
    """How a learner should treat a parameter."""

    CONTINUOUS = "continuous"  # 0..99 dials: rates, levels, depths
    INTEGER = "integer"  # small ordered integers: sensitivities, coarse, detune
    CATEGORICAL = "categorical"  # unordered choices: algorithm, curves, waves, switches
    NAME = "name"  # one ASCII character of the voice name


@dataclass(frozen=True)
class Param:
    index: int
    name: str
    low: int
    high: int
    kind: Kind
    choices: tuple[str, ...] = ()

    @property
    def learnable(self) -> bool:
        return self.kind is not Kind.NAME

    @property
    def size(self) -> int:
        return self.high - self.low + 1


CURVES = ("-LIN", "-EXP", "+EXP", "+LIN")
LFO_WAVES = ("triangle", "saw down", "saw up", "square", "sine", "sample&hold")
OSC_MODES = ("ratio", "fixed")
SWITCH = ("off", "on")
ALGORITHMS = tuple(str(n) for n in range(1, 33))  # shown 1..32, stored 0..31

_C, _I, _K = Kind.CONTINUOUS, Kind.INTEGER, Kind.CATEGORICAL

# (name, high, kind, choices) for the 21 operator fields, in VCED order.
_OPERATOR_FIELDS: tuple[tuple[str, int, Kind, tuple[str, ...]], ...] = (
    ("eg_rate1", 99, _C, ()),
    ("eg_rate2", 99, _C, ()),
    ("eg_rate3", 99, _C, ()),
    ("eg_rate4", 99, _C, ()),
    ("eg_level1", 99, _C, ()),
    ("eg_level2", 99, _C, ()),
    ("eg_level3", 99, _C, ()),
    ("eg_level4", 99, _C, ()),
    ("kbd_breakpoint", 99, _C, ()),
    ("kbd_left_depth", 99, _C, ()),
    ("kbd_right_depth", 99, _C, ()),
    ("kbd_left_curve", 3, _K, CURVES),
    ("kbd_right_curve", 3, _K, CURVES),
    ("kbd_rate_scaling", 7, _I, ()),
    ("amp_mod_sens", 3, _I, ()),
    ("key_vel_sens", 7, _I, ()),
    ("output_level", 99, _C, ()),
    ("osc_mode", 1, _K, OSC_MODES),
    ("freq_coarse", 31, _I, ()),
    ("freq_fine", 99, _C, ()),
    ("detune", 14, _I, ()),
)

_VOICE_FIELDS: tuple[tuple[str, int, Kind, tuple[str, ...]], ...] = (
    ("pitch_eg_rate1", 99, _C, ()),
    ("pitch_eg_rate2", 99, _C, ()),
    ("pitch_eg_rate3", 99, _C, ()),
    ("pitch_eg_rate4", 99, _C, ()),
    ("pitch_eg_level1", 99, _C, ()),
    ("pitch_eg_level2", 99, _C, ()),
    ("pitch_eg_level3", 99, _C, ()),
    ("pitch_eg_level4", 99, _C, ()),
    ("algorithm", 31, _K, ALGORITHMS),
    ("feedback", 7, _I, ()),
    ("osc_key_sync", 1, _K, SWITCH),
    ("lfo_speed", 99, _C, ()),
    ("lfo_delay", 99, _C, ()),
    ("lfo_pm_depth", 99, _C, ()),
    ("lfo_am_depth", 99, _C, ()),
    ("lfo_key_sync", 1, _K, SWITCH),
    ("lfo_wave", 5, _K, LFO_WAVES),
    ("pitch_mod_sens", 7, _I, ()),
    ("transpose", 48, _I, ()),
)

OPERATOR_FIELD_COUNT = len(_OPERATOR_FIELDS)  # 21
VOICE_FIELD_OFFSET = 6 * OPERATOR_FIELD_COUNT  # 126
NAME_OFFSET = VOICE_FIELD_OFFSET + len(_VOICE_FIELDS)  # 145
NAME_LENGTH = 10
PARAM_COUNT = NAME_OFFSET + NAME_LENGTH  # 155
LEARNABLE_COUNT = NAME_OFFSET  # 145: everything but the name


def _build() -> tuple[Param, ...]:
    params: list[Param] = []
    for op in range(6, 0, -1):  # OP6 is sent first
        for field, high, kind, choices in _OPERATOR_FIELDS:
            params.append(Param(len(params), f"op{op}_{field}", 0, high, kind, choices))
    for field, high, kind, choices in _VOICE_FIELDS:
        params.append(Param(len(params), field, 0, high, kind, choices))
    for i in range(NAME_LENGTH):
        params.append(Param(len(params), f"name{i + 1}", 0, 127, Kind.NAME))
    return tuple(params)


PARAMS: tuple[Param, ...] = _build()
BY_NAME: dict[str, Param] = {p.name: p for p in PARAMS}
HIGHS: tuple[int, ...] = tuple(p.high for p in PARAMS)

assert len(PARAMS) == PARAM_COUNT == 155


def param(name: str) -> Param:
    """Look a parameter up by name (e.g. ``op1_output_level``, ``algorithm``)."""
    try:
        return BY_NAME[name]
    except KeyError:
        from dx7.errors import DX7Error

        raise DX7Error(f"unknown DX7 parameter {name!r}") from None


def operator_param(op: int, field: str) -> Param:
    """The parameter ``field`` of operator ``op`` (1..6)."""
    return param(f"op{op}_{field}")
