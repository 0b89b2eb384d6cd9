"""Does a new default model match at least as well as the old one? `evaluate`'s match, per stratum.

    python scripts/match_models.py OLD_RUN OLD_DATA NEW_RUN NEW_DATA [--voices 48] [--ood 24] [--foreign 16]

Both runs match the same inputs, each with its own data set for retrieval (as `dxmacro match`
does by default): test-split voices of NEW_DATA from cartridges neither run trained on (their
dataset_files.txt, where present, else the whole test split), the evaluation's out-of-domain
voices and foreign sounds. Methods: one note (the middle one, `match_1note`) and every note
(`match`), the evaluation's own Matcher. Prints the median log-mel MAE per stratum and method,
old beside new, and the difference; the "novel" stratum is the test voices farther than the
data set's near-copy threshold from every training voice of NEW_DATA.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np


def unseen_test(ds, runs: list[Path]) -> np.ndarray:
    """NEW_DATA's test voices whose cartridge no run's dataset_files.txt names."""
    seen: set[str] = set()
    for run in runs:
        listing = run / "dataset_files.txt"
        if listing.exists():
            names = {Path(line.strip()).name for line in listing.read_text().splitlines() if line.strip()}
            if len(names) < 900:  # a whole-corpus listing names every cartridge: nothing would be left
                seen |= names
    test = ds.indices("test")
    if not seen:
        return test
    sources = json.loads((Path(ds.directory) / "sources.json").read_text())
    keep = [i for i in test if Path(sources[int(i)]["file"]).name not in seen]
    return np.asarray(keep, dtype=test.dtype)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("old_run", type=Path)
    p.add_argument("old_data", type=Path)
    p.add_argument("new_run", type=Path)
    p.add_argument("new_data", type=Path)
    p.add_argument("--voices", type=int, default=48)
    p.add_argument("--ood", type=int, default=24)
    p.add_argument("--foreign", type=int, default=16)
    a = p.parse_args()

    from host_training.audio.foreign_sounds import sounds as foreign_sounds
    from host_training.audio.sound import RenderSettings
    from host_training.audio.synth_voices import generate as synth_generate
    from host_training.dataset import open_dataset
    from host_training.dataset.rendered_scores import Pool
    from host_training.jobs.evaluate import references, score_voices, summarize
    from host_training.jobs.export import load_vae
    from host_training.jobs.match import Matcher, Rows
    from host_training.model.baselines import Retrieval

    new_ds = open_dataset(a.new_data)
    settings = RenderSettings.from_manifest(new_ds.settings)
    pool = Pool(settings, 2)
    test = unseen_test(new_ds, [a.old_run, a.new_run])
    rng = np.random.default_rng(0)
    test = np.sort(rng.choice(test, size=min(a.voices, len(test)), replace=False))
    near = float(new_ds.settings.get("group_db") or 2.0)
    novel = np.nan_to_num(np.asarray(new_ds.nearest_train_db)[test], nan=np.inf) > near
    x, true, refs = references(pool, new_ds, test, synth_generate(a.ood, 12345), foreign_sounds(a.foreign, 12345))
    sizes = (len(test), a.ood, a.foreign)
    part = np.concatenate([np.full(n, i) for i, n in enumerate(sizes)])
    strata = {"test": part == 0, "novel": np.concatenate([novel, np.zeros(a.ood + a.foreign, bool)]),
              "ood": part == 1, "foreign": part == 2}
    mid = len(settings.notes) // 2
    slots = list(range(len(settings.notes)))
    results = {}
    for label, run, data in (("old", a.old_run, a.old_data), ("new", a.new_run, a.new_data)):
        ds = open_dataset(data)
        if ds.settings != new_ds.settings:
            raise SystemExit(f"{data}: rendered with other settings than {a.new_data}")
        train = ds.indices("train")
        matcher = Matcher(load_vae(run), settings, Retrieval.of_dataset(ds, train),
                          np.asarray(ds.params[train]), Rows(ds.features, train), 12, polish_renders=64)
        one = np.stack([matcher.match(f, note_slot=None).voice.parameters for f in x[:, mid]])
        every = np.stack(pool.map(lambda r, i: matcher.on(r, i).match_notes(list(x[i]), slots).voice.parameters,
                                  list(range(len(x)))))
        for method, pred in (("match_1note", one), ("match", every)):
            rows = score_voices(pool, pred, true, refs)
            results[(label, method)] = {s: summarize(rows, m) for s, m in strata.items()}
        print(f"{label}: {run} matched {len(x)} inputs", flush=True)
    print(f"\n{len(test)} unseen test voices ({int(novel.sum())} novel), {a.ood} out-of-domain, {a.foreign} foreign")
    print("| method | stratum | old log-mel MAE dB | new | new - old |\n|---|---|---|---|---|")
    for method in ("match_1note", "match"):
        for s in strata:
            o, n = results[("old", method)][s], results[("new", method)][s]
            if not o.get("n"):
                continue
            mo, mn = o["logmel_mae_db"]["median"], n["logmel_mae_db"]["median"]
            print(f"| {method} | {s} (n={o['n']}) | {mo:.2f} | {mn:.2f} | {mn - mo:+.2f} |")


if __name__ == "__main__":
    main()
