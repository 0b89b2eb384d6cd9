"""Spectral convergence taken apart into how well the partials line up and how loud a voice is.

    python scripts/spectral_parts.py DATA RUN:KIND [RUN:KIND ...]

Spectral convergence ||R - C|| / ||R|| (linear magnitude spectrograms) equals
sqrt(1 - 2 g c + g^2) with c the cosine between C and R and g = ||C|| / ||R||: a voice whose
partials miss scores best by being quiet. For each model, as decoded and with its register read
from the input (host_training.register), this prints the medians over the test voices (first
176) and the 60 out-of-domain ones of spectral convergence, c, g and the spectral convergence
the same voice would reach at its best gain (sqrt(1 - c^2)), each a mean over the voice's
sounding notes (docs/results.md, "The same objective retrained").
"""

import sys

import numpy as np
import torch

from dx7 import Voice, layout
from host_training.dataset import open_dataset
from host_training.evaluate import predict_vectors, references
from host_training.register import read_registers
from host_training.rendered_scores import Pool
from host_training.sound import SILENCE_DB, RenderSettings, aligned_spectra, level_db
from host_training.synth_voices import generate as synth_generate
from host_training.train import load_model


def parts(pool: Pool, refs: list, params: np.ndarray) -> np.ndarray:
    """(N, 3): per voice, the mean over its sounding notes of (cosine, gain, spectral convergence)."""

    def one(r, i):
        v = Voice.from_parameters(params[i], "PARTS")
        out = []
        for k in range(len(r.s.notes)):
            ref = refs[i][k]
            if level_db(ref) < SILENCE_DB:
                continue
            _, _, C, R = aligned_spectra(r.audio(v, k), ref, r.s.rate)
            nc, nr = np.linalg.norm(C), np.linalg.norm(R)
            cos = float((C * R).sum() / max(nc * nr, 1e-30))
            out.append((cos, nc / nr, np.linalg.norm(R - C) / nr))
        return np.mean(out, axis=0) if out else np.full(3, np.nan)

    return np.array(pool.map(one, list(range(len(params)))))


def main() -> None:
    torch.set_num_threads(2)
    ds = open_dataset(sys.argv[1])
    pool = Pool(RenderSettings.from_manifest(ds.settings), 2)
    test = ds.indices("test")[:176]
    x, _, refs = references(pool, ds, test, synth_generate(60, 12345))
    n = len(test)
    for spec in sys.argv[2:]:
        run, kind = spec.split(":")
        _, model, _ = load_model(f"{run}/models/{kind}/model.pt")
        pred = layout.decode(predict_vectors(model, kind, x))
        for name, pp in ((kind, pred), (kind + "+register", read_registers(pool, pred, x))):
            s = parts(pool, refs, pp)
            for lab, sl in (("all", slice(0, n)), ("ood", slice(n, None))):
                c, g, sc = s[sl].T
                best = np.nanmedian(np.sqrt(1 - c**2))
                print(f"{name:18s} {lab}: spectral convergence {np.nanmedian(sc):.3f} | cosine {np.nanmedian(c):.3f} | "
                      f"gain {np.nanmedian(g):.2f} | at the best gain {best:.3f}", flush=True)


if __name__ == "__main__":
    main()
