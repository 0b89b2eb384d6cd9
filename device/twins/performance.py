"""Scripted performances: knob moves, button presses and notes over time, in TOML.

    duration_s = 30
    start = [0.5, 0.5, 0.5, 0.5]          # knob positions at t = 0
    [[move]]                                # turn knob 0 to 0.9, taking 2 s, from t = 1 s
    t = 1.0
    knob = 0
    to = 0.9
    over = 2.0
    [[press]]
    t = 8.0
    button = "next"                         # next, previous, random, store, panic
    [[program]]                             # a Program Change from the performer's MIDI input
    t = 10.0
    number = 3                              # 0-based voice number (Bank Select MSB is sent above 127)
    [[note]]                                # for the demo's audio render only
    t = 2.0
    note = 60
    velocity = 100
    hold = 0.8

Used by ``dxmacro device run --simulate`` (knobs and buttons) and the demo.
"""

from __future__ import annotations

import tomllib
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from device.control.ports import BUTTON_EVENTS
from device.twins.sim import KnobScript
from dxmacro.errors import DxmacroError


@dataclass(frozen=True)
class Move:
    t: float
    knob: int
    to: float
    over: float


@dataclass(frozen=True)
class NoteEvent:
    t: float
    note: int
    velocity: int
    hold: float


@dataclass(frozen=True)
class Performance:
    duration_s: float
    start: tuple[float, ...]
    moves: tuple[Move, ...]
    presses: tuple[tuple[float, str], ...]
    notes: tuple[NoteEvent, ...]
    programs: tuple[tuple[float, int], ...] = ()

    def knob_script(self) -> KnobScript:
        script = KnobScript(len(self.start), self.start)
        for m in sorted(self.moves, key=lambda m: (m.knob, m.t)):
            script.move(m.knob, m.t, m.to, m.over)
        return script


def _num(where: str, table: dict, key: str, lo: float, hi: float, default: Any = None) -> float:
    v = table.get(key, default)
    if v is None:
        raise DxmacroError(f"{where}: missing {key}")
    if isinstance(v, bool) or not isinstance(v, (int, float)) or not lo <= v <= hi:
        raise DxmacroError(f"{where}: {key} must be a number in {lo}..{hi}, got {v!r}")
    return float(v)


def parse_performance(doc: dict[str, Any], where: str = "performance", knobs: int = 4) -> Performance:
    known = {"duration_s", "start", "move", "press", "note", "program"}
    if set(doc) - known:
        raise DxmacroError(f"{where}: unknown key {sorted(set(doc) - known)[0]!r} (known: {', '.join(sorted(known))})")
    duration = _num(where, doc, "duration_s", 0.1, 86400.0)
    start = doc.get("start", [0.5] * knobs)
    if not isinstance(start, list) or len(start) != knobs or not all(
            isinstance(x, (int, float)) and not isinstance(x, bool) and 0 <= x <= 1 for x in start):
        raise DxmacroError(f"{where}: start must be {knobs} knob positions in 0..1")
    moves, presses, notes = [], [], []
    last: dict[int, float] = {}
    for i, m in enumerate(doc.get("move", [])):
        w = f"{where}: [[move]] {i + 1}"
        mv = Move(_num(w, m, "t", 0, duration), int(_num(w, m, "knob", 0, knobs - 1)), _num(w, m, "to", 0, 1),
                  _num(w, m, "over", 0, 3600, 0.0))
        if mv.t < last.get(mv.knob, -1.0):
            raise DxmacroError(f"{w}: knob {mv.knob} moves must not overlap (starts at {mv.t} before the "
                               f"previous move ends at {last[mv.knob]})")
        last[mv.knob] = mv.t + mv.over
        moves.append(mv)
    for i, p in enumerate(doc.get("press", [])):
        w = f"{where}: [[press]] {i + 1}"
        if p.get("button") not in BUTTON_EVENTS:
            raise DxmacroError(f"{w}: button must be one of {', '.join(BUTTON_EVENTS)}, got {p.get('button')!r}")
        presses.append((_num(w, p, "t", 0, duration), p["button"]))
    for i, n in enumerate(doc.get("note", [])):
        w = f"{where}: [[note]] {i + 1}"
        notes.append(NoteEvent(_num(w, n, "t", 0, duration), int(_num(w, n, "note", 0, 127)),
                               int(_num(w, n, "velocity", 1, 127, 100)), _num(w, n, "hold", 0.01, 10, 0.8)))
    programs = []
    for i, pc in enumerate(doc.get("program", [])):
        w = f"{where}: [[program]] {i + 1}"
        programs.append((_num(w, pc, "t", 0, duration), int(_num(w, pc, "number", 0, 128 * 128 - 1))))
    return Performance(duration, tuple(float(x) for x in start), tuple(moves), tuple(sorted(presses)),
                       tuple(sorted(notes, key=lambda n: n.t)), tuple(sorted(programs)))


def load_performance(path: str | Path, knobs: int = 4) -> Performance:
    p = Path(path)
    try:
        doc = tomllib.loads(p.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise DxmacroError(f"{p}: performance script not found") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise DxmacroError(f"{p}: cannot read performance script ({exc})") from None
    except tomllib.TOMLDecodeError as exc:
        raise DxmacroError(f"{p}: not valid TOML ({exc})") from None
    return parse_performance(doc, str(p), knobs)


def wander(knobs: int, duration_s: float) -> Performance:
    """A slow default performance for --simulate without a script: each knob sweeps in turn."""
    moves = []
    t = 1.0
    k = 0
    while t < duration_s - 3:
        moves.append(Move(t, k % knobs, 0.15 if (k // knobs) % 2 == 0 else 0.85, 2.5))
        t += 3.0
        k += 1
    return Performance(duration_s, (0.5,) * knobs, tuple(moves), (), ())
