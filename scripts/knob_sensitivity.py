"""How selective one parameter's move is, per kind of parameter: what a knob can get from a single edit.

    python scripts/knob_sensitivity.py DATA [--voices N] [--move 0.15] [--threads 1] [--json OUT]

For N validation-split voices (seeded), every parameter a relative knob may move (dx7.relative.held:
not categorical, not the pitch a player hears) is moved up and down by ``--move`` of its range,
and both are rendered at the data set's notes and scored as the knob report scores (ranks of the
six knob scores against the data set). A move's change of score k is (up - down); its
selectivity for k is that change over the largest change of any other of the six, as the
report's selectivity (docs/results.md, "Knobs as heard"). Moves are pooled by kind: operator
parameters by field and by whether the operator is a carrier or a modulator under the voice's
algorithm, global parameters each on their own. Printed per score: the kind whose moves are the
most selective at the median (among kinds that move the score by 0.05 rank at the median), and the
share of its moves at selectivity >= 1.5 (the knob gate). scripts/knob_reach.py asks the other
question: the best of all single-parameter sweeps, per voice.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np

from dx7.algorithms import CARRIERS
from dx7.params import HIGHS, PARAMS, param
from dx7.relative import held
from host_training.audio.sound import RenderSettings
from host_training.dataset import open_dataset
from host_training.dataset.rendered_scores import ScoreRenderer
from host_training.jobs.knob_report import test_voices

KNOBS = 6  # the knob scores (the seventh, loudness, is no knob)
GATE = 1.5
MIN_CHANGE = 0.05
_ALGORITHM = param("algorithm").index


def kind(j: int, algorithm: int) -> str:
    name = PARAMS[j].name
    if name.startswith("op"):
        return ("carrier " if int(name[2]) in CARRIERS[algorithm] else "modulator ") + name[4:]
    return name


def moves(voice: np.ndarray, share: float) -> tuple[np.ndarray, list[np.ndarray]]:
    """The parameters a relative knob may move, and for each the voice with it moved up and down."""
    free = np.flatnonzero(~held(voice))
    out = []
    for j in free:
        step = max(1, int(round(share * HIGHS[j])))
        up, down = voice.copy(), voice.copy()
        up[j], down[j] = min(HIGHS[j], voice[j] + step), max(0, voice[j] - step)
        out += [up, down]
    return free, out


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("data")
    ap.add_argument("--voices", type=int, default=24)
    ap.add_argument("--move", type=float, default=0.15)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--json", default=None)
    a = ap.parse_args()
    ds = open_dataset(a.data)
    scorer = ScoreRenderer(RenderSettings.from_manifest(ds.settings), np.asarray(ds.descriptors), KNOBS, a.threads)
    names = ["/".join(ds.tag_names[k][::-1]) for k in range(KNOBS)]
    by_kind: dict[str, list[np.ndarray]] = {}
    for n, i in enumerate(test_voices(a.data, a.voices, seed=1, split="validation")):
        voice = np.asarray(ds.params[int(i)], dtype=np.int64)[:145]
        free, probes = moves(voice, a.move)
        scores = np.nan_to_num(scorer.scores(np.stack(probes)))
        for m, j in enumerate(free):
            by_kind.setdefault(kind(int(j), int(voice[_ALGORITHM])), []).append(scores[2 * m] - scores[2 * m + 1])
        print(f"voice {n + 1}/{a.voices}: {len(free)} parameters moved", flush=True)
    rows = []
    for k, score in enumerate(names):
        best = None
        for name, changes in by_kind.items():
            c = np.abs(np.stack(changes))
            own = c[:, k]
            sel = own / np.maximum(np.delete(c, k, axis=1).max(axis=1), 1e-3)
            if np.median(own) < MIN_CHANGE:
                continue
            row = {"score": score, "kind": name, "moves": len(c), "own_change": float(np.median(own)),
                   "selectivity": float(np.median(sel)), "passing": float(np.mean(sel >= GATE))}
            best = row if best is None or row["selectivity"] > best["selectivity"] else best
        rows.append(best or {"score": score, "kind": None})
    print(f"\n| score | kind of parameter most selective at the median (moves) | median own change (ranks) "
          f"| median selectivity | moves at selectivity >= {GATE} |")
    print("|---|---|---|---|---|")
    for r in rows:
        if r["kind"] is None:
            print(f"| {r['score']} | none moves it by {MIN_CHANGE} at the median | | | |")
        else:
            print(f"| {r['score']} | {r['kind']} ({r['moves']}) | {r['own_change']:.2f} | {r['selectivity']:.2f} "
                  f"| {r['passing']:.0%} |")
    if a.json:
        Path(a.json).write_text(json.dumps(rows, indent=1))


if __name__ == "__main__":
    main()
