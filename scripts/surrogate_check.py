"""Does the knob surrogate read the head's knob sweeps the way the synth plays them?

    python scripts/surrogate_check.py RUN DATA [VOICES] [KIND]

Loads the surrogate a run trained beside its VAE (RUN/models/KIND/checkpoint.pt, KIND default
flow), sweeps each knob over its range (9 steps) from the first VOICES (default 24) encoded
test voices, and prints per knob the median Spearman correlation of the own score with the
knob position twice: as the surrogate reads the decoded voices, and as their Dexed renders
score (the figure `dxmacro evaluate` reports). A knob where the first is high and the second
is not is one the head has learnt to fool the surrogate with (docs/model.md).
"""

import json
import sys
import warnings

import numpy as np
import torch
from dx7 import layout
from host_training.dataset import open_dataset
from host_training.evaluate import sweep_spearman
from host_training.export import load_vae, read_info
from host_training.knob_loss import DescriptorSurrogate, synth_view
from host_training.rendered_scores import ScoreRenderer
from host_training.sound import RenderSettings


def median_spearman(pos: np.ndarray, scores: np.ndarray) -> float:
    """Median over sweeps (rows) of evaluate's per-sweep Spearman."""
    return float(np.median([sweep_spearman(pos, row) for row in scores]))


def main() -> None:
    run, data = sys.argv[1], sys.argv[2]
    n = int(sys.argv[3]) if len(sys.argv) > 3 else 24
    kind = sys.argv[4] if len(sys.argv) > 4 else "flow"
    ds = open_dataset(data)
    ck = torch.load(f"{run}/models/{kind}/checkpoint.pt", map_location="cpu", weights_only=False)
    if ck.get("surrogate") is None:
        sys.exit(f"{run}: the {kind} model trained without a knob surrogate")
    n_scores = np.asarray(ds.tags).shape[1]  # every tag pair, as the trainer built it
    members = json.load(open(f"{run}/run.json"))["config"].get("loss", {}).get("surrogate", "mlp")
    surrogate = DescriptorSurrogate(n_scores, kind=members)
    surrogate.load_state_dict(ck["surrogate"])
    surrogate.eval()
    scorer = ScoreRenderer(RenderSettings.from_manifest(ds.settings), ds.descriptors, n_scores, threads=2)
    vae, info = load_vae(run, kind), read_info(run)
    z0 = np.load(f"{run}/export/test_latents.npy")[:n] if kind == "flow" else None
    if z0 is None:
        test = ds.indices("test")[:n]
        with torch.no_grad():
            z0 = vae.encode(torch.from_numpy(np.asarray(ds.features[test], np.float32))).numpy()
    steps = 9
    print("knob                 surrogate  rendered")
    for sd in info["semantic_dims"]:
        d = sd["index"]
        pos = np.linspace(sd["low"], sd["high"], steps)
        zz = np.repeat(z0[:, None], steps, 1)
        zz[:, :, d] = pos
        with torch.no_grad():
            vec = vae.to_vector(torch.from_numpy(zz.reshape(-1, zz.shape[-1]).astype(np.float32)))
            read = surrogate(synth_view(vec)).numpy()[:, d].reshape(len(z0), steps)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", RuntimeWarning)
            real = scorer.scores(layout.decode(vec.numpy()))[:, d].reshape(len(z0), steps)
        print(f"{sd['name']:20s} {median_spearman(pos, read):+9.2f} {median_spearman(pos, real):+9.2f}")


if __name__ == "__main__":
    main()
