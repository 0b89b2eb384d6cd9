"""A small real data set for the model tests, made by the data set builder
(host_training.dataset.build_dataset): synthetic voices rendered by Dexed's engine at three
notes, short renders, with the builder's own descriptors, tags and splits."""

from __future__ import annotations

from pathlib import Path

NOTES = ((48, 100), (60, 100), (72, 100))


def make_dataset(directory: Path, n: int = 48, seed: int = 0) -> Path:
    from host_training.dataset import build_dataset
    from host_training.dataset.build import BuildSettings

    settings = BuildSettings(notes=NOTES, rate=16000, hold=0.5, duration=0.75, synthetic=n, synthetic_seed=seed,
                             split_fractions=(0.7, 0.15, 0.15))
    build_dataset([], directory, settings, workers=1)
    return directory
