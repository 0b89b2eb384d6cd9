"""Which parameters cost a model its audio error: put the truth into one group of its
predicted voices at a time and re-score them.

    python scripts/oracle_groups.py RUN DATA [KIND]

On the test split's first 176 voices and 60 out-of-domain ones (as scripts/quick_eval.py),
prints the median log-mel MAE and spectral convergence of KIND (default: the run's first
model) as predicted, then with each parameter group taken from the true voice ("oracle"),
then the true voice with only that group taken from the prediction ("only this group
predicted"). The first shows what getting a
group right would buy with everything else as it is; the second how much one wrong group
alone costs. docs/results.md, "Where the flow's error comes from", was measured with it.
"""

import json
import sys
from collections.abc import Callable

import numpy as np
import torch

from dx7 import layout
from dx7.params import LEARNABLE_COUNT, PARAMS
from host_training.dataset import open_dataset
from host_training.evaluate import predict_vectors, references, score_voices
from host_training.rendered_scores import Pool
from host_training.sound import RenderSettings
from host_training.synth_voices import generate as synth_generate
from host_training.train import load_model

_NAMES = [p.name for p in PARAMS[:LEARNABLE_COUNT]]


def _where(keep: Callable[[str], bool]) -> list[int]:
    return [i for i, name in enumerate(_NAMES) if keep(name)]


_FREQ = ("freq_coarse", "freq_fine", "osc_mode")
GROUPS = {
    "transpose": _where(lambda n: n == "transpose"),
    "frequencies (coarse, fine, mode)": _where(lambda n: n.endswith(_FREQ)),
    "pitch (transpose + frequencies)": _where(lambda n: n == "transpose" or n.endswith(_FREQ)),
    "detune": _where(lambda n: n.endswith("detune")),
    "output levels": _where(lambda n: n.endswith("output_level")),
    "operator EG rates": _where(lambda n: n.startswith("op") and "eg_rate" in n),
    "operator EG levels": _where(lambda n: n.startswith("op") and "eg_level" in n),
    "keyboard scaling": _where(lambda n: "kbd_" in n),
    "velocity, amp-mod sensitivity": _where(lambda n: n.endswith(("key_vel_sens", "amp_mod_sens"))),
    "algorithm, feedback": _where(lambda n: n in ("algorithm", "feedback")),
    "pitch EG": _where(lambda n: n.startswith("pitch_eg")),
    "LFO, pitch-mod sensitivity, key sync": _where(lambda n: n.startswith("lfo") or n in ("pitch_mod_sens",
                                                                                            "osc_key_sync")),
}


def main() -> None:
    run, data = sys.argv[1], sys.argv[2]
    kind = sys.argv[3] if len(sys.argv) > 3 else json.load(open(f"{run}/run.json"))["models"][0]
    torch.set_num_threads(2)
    ds = open_dataset(data)
    pool = Pool(RenderSettings.from_manifest(ds.settings), 2)
    test = ds.indices("test")[:176]
    x, true, refs = references(pool, ds, test, synth_generate(60, 12345))
    n = len(test)
    _, model, _ = load_model(f"{run}/models/{kind}/model.pt")
    pred = layout.decode(predict_vectors(model, kind, x))

    def score(voices: np.ndarray) -> str:
        rows = score_voices(pool, voices, true, refs)
        lm = np.array([r["logmel_mae_db"] for r in rows])
        sc = np.array([r["spectral_convergence"] for r in rows])
        return (f"log-mel {np.median(lm[:n]):5.2f} / {np.median(lm[n:]):5.2f} dB, spectral conv. "
                f"{np.nanmedian(sc[:n]):.3f} / {np.nanmedian(sc[n:]):.3f}")

    print(f"{run} {kind} (test / out-of-domain), as predicted: {score(pred)}", flush=True)
    for name, cols in GROUPS.items():
        oracle, alone = pred.copy(), true.copy()
        oracle[:, cols] = true[:, cols]
        alone[:, cols] = pred[:, cols]
        print(f"  {name:38s} ({len(cols):3d})  oracle: {score(oracle)}  |  only this group predicted: "
              f"{score(alone)}", flush=True)


if __name__ == "__main__":
    main()
