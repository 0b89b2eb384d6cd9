"""Where a recorded note's key was let go (its release start), read from the sound alone.

Why from the sound: `dxmacro match` judges every candidate rendered at the recording's own
timing, and reading the note-off by rendering the nearest voices at many holds (the way it
was read first) fails exactly when no near voice is at hand: a novel voice held 1.5 s was read
as let go at 0.14 s, and every candidate was then judged at the wrong timing.

What the sound shows: a DX7 operator's envelope moves in straight lines in dB (a decay is
exponential), and at the note-off every operator turns to its release rate at once. So the
note's level (dB, short frames) bends there: flat -> falling for a sustained voice, falling ->
falling faster for a decaying (piano-like) one, whatever the level. The note-off is read as
the bend where the level starts to fall fastest against how it fell before (a hinge fit, two
straight lines that meet, over a window either side), searched after the loudest frame: the
bends of the attack and the decays before it mostly go the other way (a fast fall, then a
slower one). Where no such bend is heard the note-off is not in the sound: the file was cut
at it or before it ("held"), or the note died while held ("died"), or the voice sustains
through its release (an organ with release rate 0); ``NoteOff.hold`` is then None and the
caller decides (``match`` tries several holds and keeps the best distance).
Measured on rendered voices at known holds: scripts/hold_bench.py, docs/results.md.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

FRAME_S = 0.023  # level frame: about two periods of the lowest notes played
HOP_S = 0.0029  # level hop: the note-off's resolution
RANGE_DB = 60.0  # frames this far under the loudest frame (or near the noise floor) are not read
OVER_NOISE_DB = 10.0
WINDOW_S = 0.15  # the straight lines either side of a bend are fitted over this much
MIN_BEND_DB_S = 15.0  # a bend this much steeper (dB/s) after than before is a release heard
MIN_DROP_DB = 6.0  # ... and the level falls at least this much within DROP_S after it
DROP_S = 0.3
EARLIEST_SHARE = 0.5  # the earliest bend this strong against the strongest is the note-off (a release
# often steepens again where the engine cuts a dying operator to silence)
STEEP_DB = 20.0
HALF_DB = 3.0
MIN_BEFORE_S = 0.035  # the slope before a bend is read over this much after the loudest frame at least
SMOOTH_S = 0.03  # the level is smoothed over this much before its rises are read (beating, chorus)
RISE_DB = 4.0  # after a release starts the level never rises this much again (an envelope's dip does)


@dataclass(frozen=True)
class NoteOff:
    """A recording's note-off as read from its level."""

    hold: float | None  # seconds from the note-on to the release start; None: not heard in the sound
    bend_db_s: float  # how much faster (dB/s) the level falls after ``hold`` than before (the best bend)
    ended: str  # "release" (heard), "held" (sounding to the end: cut at or before the note-off), "died"
    sounding_s: float  # seconds from the note-on to the last frame over the floor
    falling_db_s: float = 0.0  # how fast (dB/s) the level fell before ``hold``: a note already decaying
    # there may have only reached a faster stage of its decay (``match`` then searches both readings)


def level_curve(audio: np.ndarray, rate: int) -> tuple[np.ndarray, np.ndarray]:
    """(times s, level dB) of ``audio`` in FRAME_S frames every HOP_S, each frame's time its centre."""
    frame = max(8, int(round(FRAME_S * rate)))
    hop = max(1, int(round(HOP_S * rate)))
    x = np.asarray(audio, dtype=np.float64)
    if len(x) < frame:
        x = np.pad(x, (0, frame - len(x)))
    sq = np.concatenate([[0.0], np.cumsum(x * x)])
    starts = np.arange(0, len(x) - frame + 1, hop)
    power = (sq[starts + frame] - sq[starts]) / frame
    return (starts + frame / 2) / rate, 10 * np.log10(np.maximum(power, 1e-20))


def _slopes(t: np.ndarray, y: np.ndarray, w: int, first: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Least-squares slopes of y over the w frames before each frame (from ``first`` on: not the
    attack's rise) and the w frames after."""
    n = len(y)
    ct = np.concatenate([[0.0], np.cumsum(t)])
    cy = np.concatenate([[0.0], np.cumsum(y)])
    ctt = np.concatenate([[0.0], np.cumsum(t * t)])
    cty = np.concatenate([[0.0], np.cumsum(t * y)])

    def slope(a: np.ndarray, b: np.ndarray) -> np.ndarray:
        m = (b - a).astype(np.float64)
        st, sy, stt, sty = ct[b] - ct[a], cy[b] - cy[a], ctt[b] - ctt[a], cty[b] - cty[a]
        den = m * stt - st * st
        return np.where(den > 0, (m * sty - st * sy) / np.where(den > 0, den, 1.0), 0.0)

    k = np.arange(n)
    before = slope(np.maximum(k - w, first), k + 1)
    after = slope(k, np.minimum(k + w + 1, n))
    return before, after


def _hinge(t: np.ndarray, y: np.ndarray, k: int, w: int) -> float:
    """The bend's time, refined: the knot of the best two-line continuous fit within a window of k."""
    lo, hi = max(0, k - 2 * w), min(len(t), k + 2 * w + 1)
    tt, yy = t[lo:hi], y[lo:hi]
    best, knot = np.inf, float(t[k])
    for c in tt[2:-2]:
        a = np.stack([np.ones_like(tt), np.minimum(tt - c, 0.0), np.maximum(tt - c, 0.0)], axis=1)
        coef, res, *_ = np.linalg.lstsq(a, yy, rcond=None)
        sse = float(res[0]) if len(res) else float(np.sum((a @ coef - yy) ** 2))
        if sse < best and coef[2] < coef[1]:
            best, knot = sse, float(c)
    return knot


def _steep(t: np.ndarray, y: np.ndarray, knot: float) -> float:
    """Where the level plunges (STEEP_DB within a frame) within a window of the fitted ``knot``:
    the time where it reads HALF_DB under the level before the plunge. A two-line fit puts the
    knot of a plunge early (the lines compromise over the window), and a frame averages power,
    so the frame centred on an instant note-off reads half the power before it (-3 dB)."""
    f = max(1, int(round(FRAME_S / HOP_S)))
    near = np.nonzero((t >= knot - WINDOW_S) & (t <= knot + WINDOW_S))[0]
    near = near[near + f < len(y)]
    plunge = near[y[near] - y[near + f] >= STEEP_DB]
    if not len(plunge):
        return knot
    k = int(plunge[0])
    level = float(y[max(0, k - f // 2)])  # before the frames reach the drop
    after = np.nonzero(y[k:] < level - HALF_DB)[0]
    if not len(after):
        return knot
    k1 = k + int(after[0])
    if k1 == 0:
        return float(t[0])
    y0, y1 = float(y[k1 - 1]), float(y[k1])
    frac = (y0 - (level - HALF_DB)) / (y0 - y1) if y0 != y1 else 1.0
    return float(t[k1 - 1] + frac * (t[k1] - t[k1 - 1]))


def _rises(y: np.ndarray) -> np.ndarray:
    """For each frame, the most the level rises again after it (over its lowest point since)."""
    out = np.zeros(len(y))
    top, rise = -np.inf, 0.0
    for k in range(len(y) - 1, -1, -1):
        top = max(top, y[k])
        rise = max(rise, top - y[k])
        out[k] = rise
    return out


def read_note_off(audio: np.ndarray, rate: int, noise_db: float | None = None) -> NoteOff:
    """The release start of the note in ``audio`` (which begins at its note-on), read from its
    level alone (see the module's docstring); ``noise_db``: a noise floor heard before the note."""
    t, level = level_curve(audio, rate)
    peak_k = int(np.argmax(level))
    floor = level[peak_k] - RANGE_DB
    if noise_db is not None:
        floor = max(floor, noise_db + OVER_NOISE_DB)
    over = np.nonzero(level > floor)[0]
    last = int(over[-1]) if len(over) else peak_k
    sounding = float(t[last])
    length = len(audio) / rate
    # a frame's level is read down to the floor: a drop into it is as steep as the floor lets it be
    w = max(3, int(round(WINDOW_S / HOP_S)))
    y = np.maximum(level, floor)[: min(len(level), last + w + 1)]  # and a window of the floor after it
    tt = t[: len(y)]
    before, after = _slopes(tt, y, w, first=peak_k)
    bend = before - after
    n_s = max(1, int(round(SMOOTH_S / HOP_S)))
    padded = np.pad(y, (n_s // 2, n_s - 1 - n_s // 2), mode="edge")
    rises = _rises(np.convolve(padded, np.ones(n_s) / n_s, mode="valid"))
    start = peak_k + int(round(MIN_BEFORE_S / HOP_S))
    ks = np.arange(start, len(y) - 2)
    if len(ks):
        reach = int(round(DROP_S / HOP_S))
        drop = np.array([y[k] - y[min(k + reach, len(y) - 1)] for k in ks])  # how far it falls after
        ok = (drop >= MIN_DROP_DB) & (after[ks] < 0) & (rises[ks] < RISE_DB)
        score = np.where(ok, bend[ks], -np.inf)
        top = float(np.max(score))
        if top >= MIN_BEND_DB_S:
            j = int(np.argmax(score >= max(MIN_BEND_DB_S, EARLIEST_SHARE * top)))
            j += int(np.argmax(score[j:j + w]))  # that bend's own peak
            k = int(ks[j])
            hold = _steep(tt, y, _hinge(tt, y, k, w // 2))
            return NoteOff(min(max(hold, 0.0), length), float(score[j]), "release", sounding, float(-before[k]))
        best = float(np.max(bend[ks]))
    else:
        best = 0.0
    ended = "died" if sounding < length - 2 * WINDOW_S else "held"
    return NoteOff(None, best, ended, sounding)
