"""Knobs tuned to a voice by ear: which of the decoder's changes a knob passes on to this voice.

Why: along a knob's travel the decoder changes 50-80 of a voice's parameters at once. Each change
adds to the knob's own score and to the others', so a knob that brightens also makes the voice
louder and longer (selectivity 0.4-1.5 on the shipped model, largest steps 3-8 dB;
docs/results.md). Which few of those changes carry the knob's own score, and which only add to the
others, depends on the voice (its algorithm, its levels), so one model cannot choose them for every
voice (scripts/knob_sensitivity.py). Here they are chosen per voice, by rendering, when a bank is
built on the host: the device then applies, for each knob, the decoder's change masked to the chosen
parameters (dx7.relative.tuned_voice). The learned decoder still proposes what moves and how far;
the tuning only drops what a player would hear as another knob's work.

How, per voice and knob (about 250 renders):
1. every parameter the decoder's sweep moves is rendered alone at the sweep's two ends, and the
   change of every score between them is read (scores as the knob report reads them);
2. a greedy pass renders what it adds: at each step the few parameters the single changes predict
   best are tried, the masked sweep rendered at its ends and middle, and the most selective kept
   (own score's rise over the largest other score's change); its choice is rendered as a whole
   sweep and judged by the knob report's own figures;
3. where that fails a gate, the prefixes of a greedy pass over the single changes alone are judged
   the same way (at most eight sweeps in all), walking from the one predicted most selective towards
   longer ones where the rise is too weak and shorter ones where other scores move or a step is too
   large. The first sweep whose selectivity clears the gate by ``MARGIN`` (and passes every other
   gate one sweep can show) is kept; otherwise the closest of those that pass, otherwise the
   closest of all. Why the margin: a search that stops at the first sweep over the gate leaves the
   voices it could tune piled just above it, and their median on other voices lands on the gate's
   edge (selectivity 1.51 on 64 validation voices for two knobs, each then shipped or dropped by
   chance).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np

from dx7.params import LEARNABLE_COUNT
from dxmacro.errors import DxmacroError
from host_training.jobs.knob_gates import KnobGates
from host_training.jobs.knob_report import Heard, knob_figures, masked

CAP = 3.0  # selectivity beyond this buys nothing a player hears
# Another score's change below this many ranks counts as this much: a rendered score moves by a few
# hundredths when nothing changes (rounding, the ranks' steps), so a tiny own rise over a smaller
# nothing is not selective; it is a knob that does nothing (seen: own +0.02 "3.0 selective")
NOISE = 0.05
GUIDE_WIDTH = 6  # parameters tried per step of the rendered greedy pass
GUIDE_STEPS = 8
MARGIN = 1.33  # the tuning aims for this times the selectivity gate (2.0 against 1.5)


@dataclass(frozen=True)
class Tuned:
    """One knob's choice for one voice: the parameters it may move, and how its sweep measured."""

    mask: np.ndarray  # (145,) bool
    figures: dict[str, Any]  # knob_report.knob_figures of the masked sweep alone
    passed: bool


def _selectivity(change: np.ndarray, own: int) -> float:
    others = np.delete(np.abs(change), own)
    return float(change[own] / max(others.max(initial=0.0), NOISE))


def _closeness(f: dict[str, Any], gates: KnobGates) -> float:
    """How near a sweep's figures come to passing, for choosing among sweeps that all fail."""
    step = min(1.0, gates.largest_step_max_db / max(f["largest_step_db"], 1e-3))
    return f["spearman"] * min(f["selectivity"], CAP) * step


def single_changes(heard: Heard, scorer, base: np.ndarray, sweep: np.ndarray,
                   moved: np.ndarray) -> np.ndarray:
    """(len(moved), n_scores): each moved parameter's change of every score, alone, from the
    sweep's first step to its last (NaN read as no change)."""
    ends = []
    for p in moved:
        lo, hi = base.copy(), base.copy()
        lo[p], hi[p] = sweep[0, p], sweep[-1, p]
        ends += [lo, hi]
    scores = np.nan_to_num(scorer.rank(np.stack([d for d, _ in heard.of(ends)])))
    return scores[1::2] - scores[0::2]


def greedy_path(change: np.ndarray, own: int) -> list[tuple[float, list[int]]]:
    """(predicted selectivity, rows of ``change`` kept) for every prefix of a greedy pass that adds,
    one at a time, the parameter whose change makes the sum most selective (capped at CAP; the own
    rise breaks ties), shortest first; it stops where the own score would no longer rise."""
    chosen: list[int] = []
    total = np.zeros(change.shape[1])
    left = list(range(len(change)))
    path: list[tuple[float, list[int]]] = []
    while left:
        s, i = max((min(_selectivity(total + change[i], own), CAP) + 1e-3 * (total + change[i])[own], i) for i in left)
        if (total + change[i])[own] <= 0:
            break
        total = total + change[i]
        chosen.append(i)
        left.remove(i)
        path.append((s, list(chosen)))
    return path


def guided(heard: Heard, scorer, base: np.ndarray, sweep: np.ndarray, moved: np.ndarray, change: np.ndarray,
           own: int) -> list[int]:
    """Rows of ``change`` chosen by a greedy pass that renders what it adds: at each step the
    ``GUIDE_WIDTH`` parameters that the single changes predict best are added in turn, the masked
    sweep rendered at its two ends and its middle, and the one most selective there kept (own
    score's rise end to end over the largest range of another score); it stops when no addition is
    more selective than what it has. Why: single changes do not add up (two modulators opened
    together brighten more than each alone), so the path from single changes alone often promises
    a selectivity its sweep does not have; the middle catches another score that rises and falls
    back, which the two ends alone miss."""
    chosen: list[int] = []
    have, best = np.zeros(change.shape[1]), 0.0
    points = [0, len(sweep) // 2, len(sweep) - 1]
    for _ in range(GUIDE_STEPS):
        left = [i for i in range(len(change)) if i not in chosen]
        left.sort(key=lambda i: -_selectivity(have + change[i], own))
        tries = left[:GUIDE_WIDTH]
        if not tries:
            break
        probes = []
        for i in tries:
            mask = np.zeros(sweep.shape[1], bool)
            mask[moved[chosen + [i]]] = True
            probes += list(masked(base, sweep[points], mask))
        scores = np.nan_to_num(scorer.rank(np.stack([d for d, _ in heard.of(probes)])))
        scores = scores.reshape(len(tries), len(points), -1)
        rise = scores[:, -1] - scores[:, 0]
        ranges = scores.max(1) - scores.min(1)
        sel = [float(rise[j, own] / max(np.delete(ranges[j], own).max(initial=0.0), NOISE)) for j in range(len(tries))]
        j = int(np.argmax(sel))
        if sel[j] <= best:
            break
        chosen.append(tries[j])
        have, best = rise[j], sel[j]
    return chosen


def tune_knob(heard: Heard, scorer, base: np.ndarray, sweep: np.ndarray, own: int, travel: np.ndarray,
              gates: KnobGates, verify: int = 8, margin: float = MARGIN) -> Tuned:
    """The parameters of ``sweep`` (the decoder's relative sweep of knob ``own`` from voice ``base``)
    the knob should move on this voice.

    The rendered greedy pass's choice is judged first, as a whole rendered sweep. Where it fails,
    prefixes of the greedy path over single changes are judged, starting from the one predicted
    most selective: a prefix whose own rise is too weak or unsteady (Spearman, sign) sends the
    search to longer ones, one that moves other scores or steps too far to shorter ones; at most
    ``verify`` sweeps in all. The first that passes with selectivity ``margin`` times the gate is
    kept, else the closest that passes, else the closest; a knob that no parameter makes rise keeps
    the decoder's whole change (and its figures)."""
    base = np.asarray(base, dtype=np.int64)
    moved = np.flatnonzero((sweep != base[None, :]).any(0))
    change = single_changes(heard, scorer, base, sweep, moved) if len(moved) else np.zeros((0, 0))
    path = greedy_path(change, own) if len(moved) else []

    def judge(rows: list[int]) -> Tuned:
        mask = np.zeros(sweep.shape[1], bool)
        mask[moved[rows]] = True
        f = knob_figures(heard, scorer, [masked(base, sweep, mask)], own, travel)
        return Tuned(mask, f, not gates.failures(f))

    def ahead(t: Tuned) -> bool:
        return t.passed and t.figures["selectivity"] >= margin * gates.selectivity_min

    if not path:
        return judge(list(range(len(moved))))
    tried: list[Tuned] = []
    rows = guided(heard, scorer, base, sweep, moved, change, own)
    if rows:
        tried.append(judge(rows))
        if ahead(tried[-1]):
            return tried[-1]
    heard_prefixes: set[int] = set()
    i = max(range(len(path)), key=lambda j: path[j][0])
    lo, hi = -1, len(path)
    while len(tried) < verify:
        heard_prefixes.add(i)
        t = judge(path[i][1])
        tried.append(t)
        if ahead(t):
            return t
        f = t.figures
        weak = f["spearman"] < gates.spearman_min or f["wrong_sign"] >= gates.wrong_sign_max
        spills = f["selectivity"] < margin * gates.selectivity_min or f["largest_step_db"] > gates.largest_step_max_db
        if weak and not spills:
            lo = i
        else:
            hi = i
        i = (lo + hi) // 2
        if not lo < i < hi or i in heard_prefixes:  # that side is used up: the most promising prefix not yet heard
            rest = [j for j in range(len(path)) if j not in heard_prefixes]
            if not rest:
                break
            i = max(rest, key=lambda j: path[j][0])
    return max([t for t in tried if t.passed] or tried, key=lambda t: _closeness(t.figures, gates))


def tune_sweeps(heard: Heard, scorer, bases: list[np.ndarray], sweeps: list[np.ndarray], own: int,
                travel: np.ndarray, gates: KnobGates | None = None) -> list[Tuned]:
    """:func:`tune_knob` for each voice's relative sweep of one knob (knob_report's tuned mode and a
    tuned bank)."""
    gates = gates or KnobGates()
    return [tune_knob(heard, scorer, b, s, own, travel, gates) for b, s in zip(bases, sweeps)]


def tune_bank(decoder, voices: list[np.ndarray], latents: np.ndarray, data_dir, *, steps: int = 11,
              threads: int = 1, gates: KnobGates | None = None,
              progress: Callable[[str], None] = lambda _: None) -> tuple[list[int], np.ndarray, np.ndarray]:
    """Every knob of ``decoder`` (a bundle's TFLiteDecoder: what the device runs) tuned to every
    voice (145 DX7 values each, at its latent): (the knobs' latent dims, masks (N, K, 145) bool,
    passed (N, K) bool). Scores are read against the data set ``data_dir`` (its descriptors, its
    notes), as the knob report reads them. Knobs without a score of their own are not tuned."""
    from host_training.dataset import open_dataset
    from host_training.jobs.knob_report import judges, knob_travels, sweep_values

    ds = open_dataset(data_dir)
    n_scores = len(ds.tag_names)
    heard, scorer = judges(ds, threads)
    knobs = [k for k in knob_travels(decoder.knobs) if 0 <= int(k["dim"]) < n_scores]
    if not knobs:
        raise DxmacroError("the bundle has no knob on a semantic dimension: nothing to tune")
    bases = [np.asarray(v, dtype=np.int64)[:LEARNABLE_COUNT] for v in voices]
    masks = np.zeros((len(bases), len(knobs), LEARNABLE_COUNT), bool)
    passed = np.zeros((len(bases), len(knobs)), bool)
    for j, k in enumerate(knobs):
        progress(f"tuning {k['name']} to {len(bases)} voices")
        travel = np.linspace(float(k["low"]), float(k["high"]), steps).astype(np.float32)
        sweeps = [sweep_values(decoder.decode, b, z, int(k["dim"]), travel, "relative") for b, z in zip(bases, latents)]
        for i, t in enumerate(tune_sweeps(heard, scorer, bases, sweeps, int(k["dim"]), travel, gates)):
            masks[i, j], passed[i, j] = t.mask, t.passed
    return [int(k["dim"]) for k in knobs], masks, passed


__all__ = ["Tuned", "greedy_path", "single_changes", "tune_bank", "tune_knob", "tune_sweeps"]
