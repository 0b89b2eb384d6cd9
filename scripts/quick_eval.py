"""One model of a run on the figures issue 4 gates, without the rest of `dxmacro evaluate`.

    python scripts/quick_eval.py RUN DATA [KIND] [--no-knobs] [--register]

Prints the median log-mel MAE and spectral convergence of KIND (default: the run's first
model) on the test split (first 176 voices, as the tiny config's evaluation), on the 60
out-of-domain voices and on the 40 foreign sounds (host_training.audio.foreign_sounds; with
--register, again with the register read from the input:
host_training.jobs.register), then for a VAE model the knobs' median own-score Spearman and median
|correlation| with the other scores (24 test voices, 9 steps). The numbers are the ones
`dxmacro evaluate` writes for the same run: this is what the seed and setting comparisons of
docs/results.md were made with, in a minute instead of several.
"""

import json
import sys

import numpy as np
import torch

from dx7 import layout
from host_training.dataset import open_dataset
from host_training.jobs.evaluate import knob_sweeps, predict_vectors, references, score_voices
from host_training.audio.foreign_sounds import sounds as foreign_sounds
from host_training.jobs.export import read_info
from host_training.model.vae import VAE_KINDS
from host_training.jobs.register import read_registers
from host_training.dataset.rendered_scores import Pool
from host_training.audio.sound import RenderSettings
from host_training.audio.synth_voices import generate as synth_generate
from host_training.model.checkpoint import load_model


def main() -> None:
    args = [a for a in sys.argv[1:] if not a.startswith("--")]
    run, data = args[0], args[1]
    kind = args[2] if len(args) > 2 else json.load(open(f"{run}/run.json"))["models"][0]
    torch.set_num_threads(2)
    ds = open_dataset(data)
    pool = Pool(RenderSettings.from_manifest(ds.settings), 2)
    test = ds.indices("test")[:176]
    ood = synth_generate(60, 12345)
    foreign = foreign_sounds(40, 12345)
    x, true, refs = references(pool, ds, test, ood, foreign)
    _, model, _ = load_model(f"{run}/models/{kind}/model.pt")
    pred = layout.decode(predict_vectors(model, kind, x))
    n, n_ood = len(test), len(test) + len(ood)
    preds = {kind: pred}
    if "--register" in sys.argv:
        preds[f"{kind}+register"] = read_registers(pool, pred, x)
    for name, p in preds.items():
        rows = score_voices(pool, p, true, refs)
        lm = np.array([r["logmel_mae_db"] for r in rows])
        sc = np.array([r["spectral_convergence"] for r in rows])
        print(f"{run} {name}: log-mel MAE all {np.median(lm[:n]):.2f} ood {np.median(lm[n:n_ood]):.2f} "
              f"foreign {np.median(lm[n_ood:]):.2f} dB | spectral convergence all {np.nanmedian(sc[:n]):.3f} "
              f"ood {np.nanmedian(sc[n:n_ood]):.3f} foreign {np.nanmedian(sc[n_ood:]):.3f}")
    if kind in VAE_KINDS and "--no-knobs" not in sys.argv:
        with torch.no_grad():
            z0 = model.encode(torch.from_numpy(x[:24])).numpy()
        k = knob_sweeps(pool, model, read_info(run), z0, 9)
        print("knobs own " + " ".join(f"{d['spearman_own_median']:+.2f}" for d in k["dims"])
              + f" median {k['spearman_own_median']:.2f} | others {k['abs_corr_others_median']:.2f} | sweeps that "
              "transpose " + " ".join(f"{d['sweeps_transposing']:.0%}" for d in k["dims"]))


if __name__ == "__main__":
    main()
