"""Do knobs tuned at the data set's notes still work at notes the tuning never heard?

    python scripts/knob_tune_notes.py --bundle model.dxm --public-key k.pub --data DIR --run RUN
        [--voices 16] [--shift 5] [--threads 1] [--json OUT]

A bank's knobs are tuned (host_training.jobs.knob_tune) by rendering each voice at the data set's
notes, and the knob report judges them at the same notes. A performer plays others. Here each knob
is tuned to ``--voices`` test-split voices as a bank build tunes it, then its relative sweep and its
tuned sweep are both judged twice: at the data set's notes, and at every note moved up by
``--shift`` semitones (same velocities, same hold). Scores at the moved notes are still ranked
against the data set's voices at its own notes, so their levels shift with the pitch; the figures
compare changes along a sweep, which is what a knob is judged by.
"""

from __future__ import annotations

import argparse
import json
from dataclasses import replace
from pathlib import Path

import numpy as np

from conversion import keys, runtime
from host_training.audio.sound import RenderSettings
from host_training.dataset import open_dataset
from host_training.dataset.rendered_scores import ScoreRenderer
from host_training.jobs.export import encode_all, load_vae
from host_training.jobs.knob_gates import KnobGates
from host_training.jobs.knob_report import Heard, knob_figures, knob_travels, masked, sweep_values, test_voices
from host_training.jobs.knob_tune import tune_sweeps

STEPS = 11
SHOWN = ("spearman", "wrong_sign", "selectivity", "largest_step_db")


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--bundle", required=True)
    ap.add_argument("--public-key", required=True)
    ap.add_argument("--data", required=True)
    ap.add_argument("--run", required=True)
    ap.add_argument("--voices", type=int, default=16)
    ap.add_argument("--shift", type=int, default=5)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--json", default=None)
    a = ap.parse_args()
    decoder = runtime.load_decoder(a.bundle, keys.load_public_key(a.public_key))
    ds = open_dataset(a.data)
    idx = test_voices(a.data, a.voices)
    latents = encode_all(load_vae(a.run), ds.features, idx)
    bases = [np.asarray(ds.params[int(i)], dtype=np.int64)[:145] for i in idx]
    own_notes = RenderSettings.from_manifest(ds.settings)
    moved_notes = replace(own_notes, notes=tuple((n + a.shift, v) for n, v in own_notes.notes))
    n_scores = len(ds.tag_names)
    judges = {}
    for label, settings in (("data set's notes", own_notes), (f"notes +{a.shift}", moved_notes)):
        judges[label] = (Heard(settings, a.threads), ScoreRenderer(settings, np.asarray(ds.descriptors), n_scores,
                                                                   a.threads))
    tuner = judges["data set's notes"]
    rows = []
    for k in knob_travels(decoder.knobs):
        if not 0 <= k["dim"] < n_scores:
            continue
        travel = np.linspace(k["low"], k["high"], STEPS).astype(np.float32)
        plain = [sweep_values(decoder.decode, b, z, k["dim"], travel, "relative") for b, z in zip(bases, latents)]
        tuned = [masked(b, s, t.mask) for b, s, t in
                 zip(bases, plain, tune_sweeps(*tuner, bases, plain, k["dim"], travel, KnobGates()))]
        row = {"knob": k["name"]}
        for label, (heard, scorer) in judges.items():
            for mode, sweeps in (("relative", plain), ("tuned", tuned)):
                f = knob_figures(heard, scorer, sweeps, k["dim"], travel)
                row[f"{label}, {mode}"] = {key: f[key] for key in SHOWN}
        rows.append(row)
        print(f"{k['name']} done", flush=True)
    if a.json:
        Path(a.json).write_text(json.dumps(rows, indent=1))
    columns = [c for c in rows[0] if c != "knob"]
    print(f"\n{a.voices} test voices; Spearman / wrong sign / selectivity / largest step dB")
    print("| knob | " + " | ".join(columns) + " |")
    print("|---|" + "---|" * len(columns))
    for r in rows:
        cells = [f"{r[c]['spearman']:.2f} / {r[c]['wrong_sign']:.0%} / {r[c]['selectivity']:.2f} / "
                 f"{r[c]['largest_step_db']:.2f}" for c in columns]
        print(f"| {r['knob']} | " + " | ".join(cells) + " |")


if __name__ == "__main__":
    main()
