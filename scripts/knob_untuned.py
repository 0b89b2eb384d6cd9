"""What a voice the host never tuned can get from the knobs: every rule the device could apply
without rendering, against the tuning that renders.

    python scripts/knob_untuned.py BUNDLE DATA [--run RUN] [--voices 64] [--split validation]
        [--masks MASKS.npz] [--threads 2] [--json OUT]

N voices of a split (seeded, as the knob gates draw them), each knob of the bundle swept over its
travel in 11 steps, rendered and scored as `dxmacro knobs report` scores a knob. Rules:

- ``relative``: the decoder's whole change at the voice's own latent (the report's relative mode);
- ``received``: what the device plays today for a voice it received over MIDI: the latent of the
  nearest voice it carries (device.control.program.nearest_carried: layout vectors, Euclidean; here
  the other N-1 voices play the carried ones), the decoder's whole change there;
- ``topK``: only the K parameters the decoder's sweep moves most (in units of their range);
- ``neighbour mask``: the voice's own latent, passing only the parameters the nearest other
  voice's tuning chose (tuned masks do not need the data set on the device, so a bundle could
  carry a library of them);
- ``neighbour edit``: the received voice's latent and that voice's tuned mask: its tuned edit,
  applied to this voice;
- ``tuned``: the voice's own tuning (host_training.jobs.knob_tune, about 10 s per voice and knob on
  2 cores). ``--masks`` keeps the tuned masks in a file and reuses them when it exists.

Prints per rule and knob the report's figures and the gates each misses (KnobGates).
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np

from conversion import keys, runtime
from device.control.program import nearest_carried
from dx7.params import HIGHS, LEARNABLE_COUNT
from dx7.relative import held
from host_training.dataset import open_dataset
from host_training.jobs import knob_report as kr
from host_training.jobs.export import encode_all, load_vae
from host_training.jobs.knob_gates import KnobGates
from host_training.jobs.knob_tune import tune_sweeps
from host_training.jobs.runs import resolve_run

TOP = (3, 6, 10)
_HIGH = np.maximum(np.asarray(HIGHS[:LEARNABLE_COUNT], np.float64), 1.0)


def top_mask(base: np.ndarray, sweep: np.ndarray, k: int) -> np.ndarray:
    """The k parameters (not held by relative knobs) the sweep moves furthest from the voice."""
    moved = np.abs(sweep - base[None]).max(0) / _HIGH
    moved[held(base)] = 0.0
    mask = np.zeros(LEARNABLE_COUNT, bool)
    top = np.argsort(-moved)[:k]
    mask[top[moved[top] > 0]] = True
    return mask


def nearest_other(voices: np.ndarray) -> np.ndarray:
    """For each voice, the nearest of the others by the device's rule for a received voice."""
    out = []
    for i in range(len(voices)):
        j = int(nearest_carried(voices[i:i + 1], np.delete(voices, i, axis=0))[0])
        out.append(j + (j >= i))  # an index into ``voices``
    return np.asarray(out)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("bundle")
    ap.add_argument("data")
    ap.add_argument("--run", default=None, help="the run the bundle was converted from (default: the shipped model)")
    ap.add_argument("--public-key", default=None)
    ap.add_argument("--voices", type=int, default=64)
    ap.add_argument("--split", default="validation")
    ap.add_argument("--masks", default=None, help="tuned masks: written after each knob, reused when present")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--json", default=None)
    a = ap.parse_args()
    decoder = runtime.load_decoder(a.bundle, keys.load_public_key(a.public_key) if a.public_key else None)
    ds = open_dataset(a.data)
    idx = kr.test_voices(a.data, a.voices, split=a.split)
    latents = encode_all(load_vae(resolve_run(a.run)), ds.features, idx)
    bases = [np.asarray(ds.params[int(i)], np.int64)[:LEARNABLE_COUNT] for i in idx]
    near = nearest_other(np.stack(bases))
    heard, scorer = kr.judges(ds, a.threads)
    gates = KnobGates()
    store = Path(a.masks) if a.masks else None
    masks = dict(np.load(store)) if store and store.exists() else {}
    if masks and not np.array_equal(masks.get("idx"), idx):
        raise SystemExit(f"{store} holds the masks of other voices")
    out: dict[str, dict] = {}
    for k in kr.knob_travels(decoder.knobs):
        own, name = int(k["dim"]), k["name"]
        travel = np.linspace(k["low"], k["high"], 11).astype(np.float32)

        def sweeps(at: list[int]) -> list[np.ndarray]:
            return [kr.sweep_values(decoder.decode, b, latents[j], own, travel, "relative") for b, j in zip(bases, at)]

        own_sweeps, received = sweeps(list(range(len(bases)))), sweeps(list(near))
        if name not in masks:
            masks[name] = np.stack([t.mask for t in tune_sweeps(heard, scorer, bases, own_sweeps, own, travel, gates)])
            if store:
                np.savez(store, idx=idx, **{n: m for n, m in masks.items() if n != "idx"})
        tuned = masks[name]
        rules = {"relative": own_sweeps, "received": received}
        rules |= {f"top{n}": [kr.masked(b, s, top_mask(b, s, n)) for b, s in zip(bases, own_sweeps)] for n in TOP}
        rules["neighbour mask"] = [kr.masked(b, s, tuned[j]) for b, s, j in zip(bases, own_sweeps, near)]
        rules["neighbour edit"] = [kr.masked(b, s, tuned[j]) for b, s, j in zip(bases, received, near)]
        rules["tuned"] = [kr.masked(b, s, m) for b, s, m in zip(bases, own_sweeps, tuned)]
        out[name] = {}
        for rule, sw in rules.items():
            f = kr.knob_figures(heard, scorer, sw, own, travel)
            row = {x: f[x] for x in ("spearman", "wrong_sign", "selectivity", "largest_step_db", "pitch_changing")}
            row["misses"] = gates.failures(f)
            out[name][rule] = row
            print(f"{name:18s} {rule:15s} {row['spearman']:.2f} / {row['wrong_sign']:.0%} / {row['selectivity']:.2f} / "
                  f"{row['largest_step_db']:.2f} / {row['pitch_changing']:.0%}   misses: {', '.join(row['misses']) or 'none'}",
                  flush=True)
    if a.json:
        Path(a.json).write_text(json.dumps(out, indent=1))


if __name__ == "__main__":
    main()
