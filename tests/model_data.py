"""A small real data set for the model tests: synthetic voices rendered by Dexed's engine
at a few notes, saved in the data set format (host_training.dataset.store.save_dataset,
"how tests make small data sets by hand"). Descriptors here are two simple ones
(spectral centroid and level) so the tags mean something; the data set builder's own
descriptors take their place in real data sets."""

from __future__ import annotations

from pathlib import Path

import numpy as np

NOTES = [[48, 100], [60, 100], [72, 100]]
RATE = 16000
HOLD, DURATION = 0.5, 0.75


def centroid_and_level(audio: np.ndarray, rate: int) -> list[float]:
    from host_training.features import power_spectrogram, rms_db

    p = power_spectrogram(audio).sum(0)
    f = np.linspace(0, rate / 2, len(p))
    return [float((p * f).sum() / max(p.sum(), 1e-20)), rms_db(audio)]


def make_dataset(directory: Path, n: int = 48, seed: int = 0) -> Path:
    from host_training.dataset.store import save_dataset
    from host_training.features import log_mel
    from host_training.render import DexedRenderer, Note
    from host_training.synth_voices import generate

    voices = generate(n, seed)
    r = DexedRenderer(RATE)
    feats, descs = [], []
    for v in voices:
        fv, dv = [], []
        for note, vel in NOTES:
            a = r.render(v, Note(note, vel, HOLD, DURATION))
            fv.append(log_mel(a, RATE))
            dv.append(centroid_and_level(a, RATE))
        feats.append(fv)
        descs.append(dv)
    features = np.array(feats, dtype=np.float16)
    descriptors = np.array(descs, dtype=np.float32)
    mean_d = descriptors.mean(1)
    tags = np.zeros((n, 2), np.int8)
    for t in range(2):
        lo, hi = np.percentile(mean_d[:, t], [30, 70])
        tags[mean_d[:, t] <= lo, t] = -1
        tags[mean_d[:, t] >= hi, t] = 1
    split = np.zeros(n, np.uint8)
    split[-12:-6] = 1
    split[-6:] = 2
    nearest = np.full(n, np.nan, np.float32)
    nearest[split == 2] = np.linspace(1.0, 6.0, int((split == 2).sum()))
    save_dataset(directory, settings={"notes": NOTES, "rate": RATE, "hold": HOLD, "duration": DURATION},
                 names=[v.name for v in voices], sources=[f"synthetic:{seed}:{i}" for i in range(n)],
                 arrays={"params": np.stack([v.parameters for v in voices]).astype(np.uint8), "features": features,
                         "descriptors": descriptors, "tags": tags, "categories": np.zeros((n, 1), bool),
                         "split": split, "group": np.arange(n, dtype=np.int32), "nearest_train_db": nearest},
                 descriptor_names=["centroid", "level"], tag_names=[["dark", "bright"], ["soft", "loud"]],
                 category_names=["other"])
    return directory
