"""The training data set: DX7 voices rendered at several notes, with log-mel features,
sound descriptors, tags and leakage-safe splits. See docs/dataset.md.

The on-disk format lives in :mod:`host_training.dataset.store`; building in
:mod:`host_training.dataset.build` (imported lazily: it needs the renderer)."""

from host_training.dataset.store import SPLITS, Dataset, DxmacroError, open_dataset, save_dataset

__all__ = ["SPLITS", "Dataset", "DxmacroError", "open_dataset", "save_dataset", "build_dataset"]


def __getattr__(name: str):
    if name == "build_dataset":
        from host_training.dataset.build import build_dataset

        return build_dataset
    raise AttributeError(name)
