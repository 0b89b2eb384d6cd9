"""How far can a knob meet issue 33's gates at all? The best single-parameter sweep, per voice and score.

    python scripts/knob_reach.py DATA [--voices 8] [--share 0.3] [--threads 1] [--json OUT]

For each of ``--voices`` test-split voices of DATA and each parameter that relative knobs may
move (dx7.relative.held), two sweeps: the voice's value moved up, and down, by ``--share`` of the
parameter's range in 11 steps (clipped; a sweep that cannot move is skipped). Each sweep is
rendered and scored as `dxmacro knobs report` scores a knob's (host_training.jobs.knob_report:
the data set's descriptors at its notes, ranked against its voices; selectivity = own score's
range over the largest other score's range; largest step = step-to-step log-mel MAE, middle note).

For each score it prints, over the voices: the share where at least one sweep passes all three of
the report's gates that one sweep can show (Spearman >= 0.9 with the score, selectivity >= 1.5,
largest step <= 3 dB), and the median of the best selectivity among sweeps with Spearman >= 0.9
and a largest step <= 3 dB. Why: a knob moves many parameters at once, so this is not its
ceiling; but where no single parameter of a voice moves a score selectively, the score is tied
to others by how it is defined (tags.scores), and a model cannot be trained past that.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np

from dx7.params import HIGHS, LEARNABLE_COUNT, PARAMS
from dx7.relative import held
from host_training.audio.sound import RenderSettings
from host_training.dataset import open_dataset
from host_training.dataset.rendered_scores import ScoreRenderer
from host_training.jobs.knob_report import Heard, knob_figures, test_voices

STEPS = 11
GATES = {"spearman": 0.9, "selectivity": 1.5, "largest_step_db": 3.0}


def sweeps_of(voice: np.ndarray, share: float) -> list[tuple[str, np.ndarray]]:
    """(label, (STEPS, 145) sweep) for every movable parameter, up and down."""
    out = []
    free = ~held(voice)
    for i in np.flatnonzero(free[:LEARNABLE_COUNT]):
        high = int(HIGHS[i])
        delta = max(1, round(share * high))
        for sign in (1, -1):
            values = np.clip(voice[i] + np.round(np.linspace(0, sign * delta, STEPS)), 0, high).astype(np.int64)
            if values[-1] == values[0]:
                continue
            sweep = np.repeat(voice[None], STEPS, 0)
            sweep[:, i] = values
            out.append((f"{PARAMS[i].name}{'+' if sign > 0 else '-'}", sweep))
    return out


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("data")
    ap.add_argument("--voices", type=int, default=8)
    ap.add_argument("--share", type=float, default=0.3)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--json", default=None)
    a = ap.parse_args()
    ds = open_dataset(a.data)
    settings = RenderSettings.from_manifest(ds.settings)
    n_scores = len(ds.tag_names)
    scorer = ScoreRenderer(settings, np.asarray(ds.descriptors), n_scores, a.threads)
    heard = Heard(settings, a.threads)
    travel = np.linspace(0.0, 1.0, STEPS)
    rows = []
    for v, idx in enumerate(test_voices(a.data, a.voices)):
        voice = np.asarray(ds.params[int(idx)], dtype=np.int64)[:145]
        sweeps = sweeps_of(voice, a.share)
        heard.of([p for _, s in sweeps for p in s])  # rendered once, in parallel
        for own in range(n_scores - 1):  # the six semantic scores (the last, loudness, has no knob)
            for label, sweep in sweeps:
                f = knob_figures(heard, scorer, [sweep], own, travel)
                for sign in (1, -1):  # the sweep read in whichever direction raises the score
                    rho = sign * f["spearman"]
                    rows.append({"voice": v, "score": own, "sweep": label, "spearman": rho,
                                 "selectivity": f["selectivity"], "largest_step_db": f["largest_step_db"]})
        print(f"voice {v + 1}/{a.voices}: {len(sweeps)} sweeps", flush=True)
    if a.json:
        Path(a.json).write_text(json.dumps(rows))
    names = ["/".join(ds.tag_names[s][::-1]) for s in range(n_scores - 1)]
    print(f"\n{a.voices} test voices, single-parameter sweeps of {a.share:.0%} of a range, {STEPS} steps")
    print("| score | voices with a sweep passing all three | median best selectivity (Spearman >= 0.9, step <= 3 dB) "
          "| its sweep, most often |")
    print("|---|---|---|---|")
    for own, name in enumerate(names):
        passing, best, which = 0, [], []
        for v in range(a.voices):
            mine = [r for r in rows if r["voice"] == v and r["score"] == own
                    and r["spearman"] >= GATES["spearman"] and r["largest_step_db"] <= GATES["largest_step_db"]]
            passing += any(r["selectivity"] >= GATES["selectivity"] for r in mine)
            top = max(mine, key=lambda r: r["selectivity"], default=None)
            best.append(0.0 if top is None else top["selectivity"])
            if top is not None:
                which.append(top["sweep"].rstrip("+-"))
        common = max(set(which), key=which.count) if which else "-"
        print(f"| {name} | {passing}/{a.voices} | {np.median(best):.2f} | {common} |")


if __name__ == "__main__":
    main()
