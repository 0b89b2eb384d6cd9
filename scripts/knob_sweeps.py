"""The semantic-knob part of `dxmacro evaluate` alone, for quick comparisons of runs.

    python scripts/knob_sweeps.py RUN DATA [VOICES]

Sweeps each knob over its range (9 steps) from the first VOICES (default 24) encoded test
voices of the run, renders every step at every note and prints, per knob, the median Spearman
correlation with its own tag score, the median |correlation| with the other scores and the
largest step-to-step log-mel change.
"""

import sys

import numpy as np

from host_training.dataset import open_dataset
from host_training.jobs.evaluate import knob_sweeps
from host_training.dataset.rendered_scores import Pool
from host_training.jobs.export import load_vae, read_info
from host_training.audio.sound import RenderSettings


def main() -> None:
    run, data = sys.argv[1], sys.argv[2]
    n = int(sys.argv[3]) if len(sys.argv) > 3 else 24
    ds = open_dataset(data)
    z = np.load(f"{run}/export/test_latents.npy")[:n]
    result = knob_sweeps(Pool(RenderSettings.from_manifest(ds.settings), 2), load_vae(run), read_info(run), z, 9)
    for d in result["dims"]:
        print(f"{d['index']} {d['name']:20s} own {d['spearman_own_median']:5.2f}  others "
              f"{d['abs_corr_others_median']:.2f}  largest step {d['max_step_change_db_median']:.2f} dB")
    print(f"median own {result['spearman_own_median']:.3f}, others {result['abs_corr_others_median']:.3f}")


if __name__ == "__main__":
    main()
