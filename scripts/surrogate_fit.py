"""How well the knob surrogate (host_training/knob_loss.py) can read tag scores from parameters.

    python scripts/surrogate_fit.py DATA [STEPS]

Fits a DescriptorSurrogate on the training split's (parameter vector, tag scores) pairs and
prints the validation R^2 of each tag score every 1000 steps.
"""

import sys

import numpy as np
import torch

from dx7 import layout
from host_training.dataset import open_dataset
from host_training.knob_loss import DescriptorSurrogate, score_targets, surrogate_loss


def main() -> None:
    ds = open_dataset(sys.argv[1])
    steps = int(sys.argv[2]) if len(sys.argv) > 2 else 3000
    scores = score_targets(np.asarray(ds.descriptors), np.asarray(ds.tags).shape[1])
    vectors = layout.encode(np.asarray(ds.params))
    tr, va = ds.indices("train"), ds.indices("validation")
    x, y = torch.tensor(vectors[tr]), torch.tensor(scores[tr])
    xv, yv = torch.tensor(vectors[va]), torch.tensor(scores[va])
    torch.manual_seed(0)
    sur = DescriptorSurrogate(y.shape[1])
    opt = torch.optim.AdamW(sur.parameters(), lr=1e-3, weight_decay=1e-2)
    for step in range(1, steps + 1):
        i = torch.randint(0, len(x), (256,))
        loss = surrogate_loss(sur, x[i], y[i])
        opt.zero_grad()
        loss.backward()
        opt.step()
        if step % 1000 == 0:
            with torch.no_grad():
                p, ok = sur(xv), torch.isfinite(yv)
                r2 = [float(1 - ((p[:, j] - yv[:, j])[ok[:, j]] ** 2).mean() / yv[:, j][ok[:, j]].var())
                      for j in range(yv.shape[1])]
            print(step, " ".join(f"{n[1]} {r:.2f}" for n, r in zip(ds.tag_names, r2)))


if __name__ == "__main__":
    main()
