"""A data set folder as training reads it: the splits, target vectors, tags and tag scores,
with features from memory maps (batches copied)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import torch

from dx7 import layout
from dxmacro.errors import DxmacroError
from host_training.model.blocks import Shape


class Data:
    """The arrays training needs, from a data set folder (memory maps; batches copied)."""

    def __init__(self, data_dir: str | Path, cfg: dict[str, Any]) -> None:
        from host_training.dataset import open_dataset

        self.ds = open_dataset(data_dir)
        t = cfg.get("train", {})
        self.train = self.ds.indices("train")[: t.get("max_train") or None]
        self.val = self.ds.indices("validation")[: t.get("max_val") or None]
        if len(self.train) < 2:
            raise DxmacroError(f"{data_dir}: the training split holds {len(self.train)} voices; at least 2 are needed")
        self.targets = layout.encode(np.asarray(self.ds.params))
        n_sem = int(cfg.get("model", {}).get("semantic_dims", 6))
        tags = np.asarray(self.ds.tags, dtype=np.float32)[:, :n_sem]
        self.tags = tags
        # tag scores as ranks in [-1, 1]: what the knob surrogate learns (host_training.model.knob_loss)
        from host_training.model.knob_loss import score_targets

        self.scores = score_targets(np.asarray(self.ds.descriptors), np.asarray(self.ds.tags).shape[1])
        _, k, m, f = self.ds.features.shape
        sample = np.asarray(self.ds.features[np.sort(self.train[:256])], dtype=np.float32)
        self.shape = Shape(k, m, f, float(sample.mean()), float(sample.std() + 1e-6))

    def batch(self, idx: np.ndarray) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
        """(features, target vectors, tags, tag scores) of the voices ``idx``."""
        order = np.sort(idx)  # memmaps read faster in order
        x = torch.from_numpy(np.asarray(self.ds.features[order], dtype=np.float32))
        return (x, torch.from_numpy(self.targets[order]), torch.from_numpy(self.tags[order]),
                torch.from_numpy(self.scores[order]))
