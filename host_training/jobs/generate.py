"""New voices from the prior: z ~ N(0, t^2 I) -> regression flow -> DX7 values.

Every decoded vector is a valid voice by construction (dx7.layout.decode clips and takes
argmaxes). A voice is re-drawn when it is silent at the data set's middle note, repeats an
earlier voice of the bank, or is exactly a training voice, so a bank holds only new,
audible, distinct voices (the measures without re-drawing are in evaluate.py).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from dx7 import Voice, layout
from dxmacro.errors import DxmacroError
from host_training.model.vae import LATENT
from host_training.audio.sound import SILENCE_DB, RenderSettings, VoiceRenderer, level_db


@torch.no_grad()
def sample_vectors(model, n: int, rng: np.random.Generator, temperature: float = 1.0) -> np.ndarray:
    z = rng.normal(0.0, temperature, size=(n, LATENT)).astype(np.float32)
    return model.to_vector(torch.from_numpy(z)).numpy()


def generate(run_dir: str | Path, n: int, seed: int = 0, temperature: float = 1.0, check_audio: bool = True,
             max_tries: int = 20) -> list[Voice]:
    from host_training.jobs.export import is_training_copy, load_vae, read_run

    if not 1 <= n <= 4096:
        raise DxmacroError(f"-n must be 1..4096, got {n}")
    model = load_vae(run_dir)
    keys_path = Path(run_dir) / "export" / "train_keys.npy"
    keys = np.load(keys_path) if keys_path.exists() else np.zeros(0, np.uint64)
    settings = RenderSettings.from_manifest(read_run(run_dir)["dataset_settings"])
    renderer = VoiceRenderer(settings) if check_audio else None
    mid = len(settings.notes) // 2
    rng = np.random.default_rng(seed)
    out: list[Voice] = []
    seen: set[bytes] = set()
    for _ in range(max_tries):
        need = n - len(out)
        if need == 0:
            break
        params = layout.decode(sample_vectors(model, need * 2, rng, temperature))
        copies = is_training_copy(params, keys)
        for p, copy in zip(params, copies):
            if len(out) == n:
                break
            v = Voice.from_parameters(p, f"GEN {len(out) + 1:03d}")
            if copy or v.content_key() in seen:
                continue
            if renderer is not None and level_db(renderer.audio(v, mid)) < SILENCE_DB:
                continue
            seen.add(v.content_key())
            out.append(v)
    if len(out) < n:
        raise DxmacroError(f"only {len(out)} of {n} generated voices were audible and new after {max_tries} rounds")
    return out
