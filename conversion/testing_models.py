"""TEST FIXTURES ONLY: stand-in decoders built from the same blocks as host_training's VAE.

Conversion is tested on these rather than on a trained run so that the tests need no data set:
a plain MLP head, and the regression flow made of ``host_training.model.flows`` blocks (MLP
conditioners, tanh-bounded log-scales, exp, fixed permutations, per-slot affines) run z ->
parameters.
``fit`` gives them a few hundred deterministic steps on real or synthetic voices so their outputs
live where a trained decoder's do (slots near [0, 1], decisive one-hot groups); random weights
alone would put outputs in ranges no trained decoder has. Nothing on the device imports this.
"""

from __future__ import annotations

import numpy as np
import torch
from torch import nn

from dx7 import layout


def _mlp(sizes: list[int], act: type[nn.Module]) -> nn.Sequential:
    layers: list[nn.Module] = []
    for i, (a, b) in enumerate(zip(sizes[:-1], sizes[1:])):
        layers.append(nn.Linear(a, b))
        if i < len(sizes) - 2:
            layers.append(act())
    return nn.Sequential(*layers)


class MLPDecoder(nn.Module):
    """The baseline head: latent -> layout vector through a plain MLP."""

    def __init__(self, latent: int = layout.VECTOR_SIZE, hidden: int = 256, depth: int = 2,
                 act: type[nn.Module] = nn.ReLU) -> None:
        super().__init__()
        self.net = _mlp([latent] + [hidden] * depth + [layout.VECTOR_SIZE], act)

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        return self.net(z)


def flow_decoder(dim: int = layout.VECTOR_SIZE, hidden: int = 128, blocks: int = 4, seed: int = 0) -> nn.Module:
    """The regression flow in its z -> parameters direction, built from host_training's own
    blocks (what a trained run's ``load_decoder`` hands over): an input elementwise affine, then
    (permutation, affine coupling) x blocks and an output elementwise affine started at
    0.25 x + 0.5 so the outputs begin inside [0, 1]."""
    from host_training.model.flows import Compose, ElementwiseAffine, MapModule, realnvp

    stack = realnvp(dim, blocks, hidden, seed=seed)
    out = stack.transforms[-1]
    with torch.no_grad():
        out.log_scale.fill_(float(np.log(0.25)))
        out.shift.fill_(0.5)
    return MapModule(Compose(ElementwiseAffine(dim), *stack.transforms))


def make_decoder(kind: str, seed: int = 0) -> nn.Module:
    torch.manual_seed(seed)
    if kind == "mlp":
        return MLPDecoder()
    if kind == "flow":
        return flow_decoder(seed=seed)
    raise ValueError(f"unknown fixture decoder kind {kind!r}")


def fit(decoder: nn.Module, latents: np.ndarray, params: np.ndarray, steps: int = 300, seed: int = 0,
        lr: float = 3e-3, categorical_loss: str = "mse") -> nn.Module:
    """Regress ``decoder(latents)`` onto ``layout.encode(params)``, deterministically on the CPU:
    MSE on scaled slots; on one-hot groups MSE too (a regression flow) or cross entropy on logits
    (``categorical_loss="ce"``, a classifier head). Returns the decoder in eval mode."""
    torch.manual_seed(seed)
    z = torch.as_tensor(latents, dtype=torch.float32)
    target = torch.as_tensor(layout.encode(params), dtype=torch.float32)
    scaled = torch.as_tensor(layout.scaled_slots())
    groups = [(s.start, s.width) for s in layout.categorical_groups()]
    opt = torch.optim.Adam(decoder.parameters(), lr=lr)
    gen = torch.Generator().manual_seed(seed)
    decoder.train()
    for _ in range(steps):
        idx = torch.randint(0, len(z), (min(256, len(z)),), generator=gen)
        out = decoder(z[idx])
        if categorical_loss == "mse":
            loss = nn.functional.mse_loss(out, target[idx]) * 10
        else:
            loss = nn.functional.mse_loss(out[:, scaled], target[idx][:, scaled]) * 10
        for start, width in groups if categorical_loss == "ce" else ():
            loss = loss + nn.functional.cross_entropy(
                out[:, start : start + width] * 4, target[idx, start : start + width].argmax(-1)) / len(groups)
        opt.zero_grad()
        loss.backward()
        opt.step()
    return decoder.eval()


def fixture_latents(params: np.ndarray, informative: int = 32, seed: int = 0) -> np.ndarray:
    """VAE-like latents for voices: whitened principal components of their layout vectors in the
    first ``informative`` dimensions (what a trained encoder keeps), N(0, 1) noise in the rest
    (collapsed dimensions a trained decoder ignores). So the fixture decoder learns a smooth map,
    as a trained one does, instead of memorising random codes."""
    x = layout.encode(params).astype(np.float64)
    x -= x.mean(axis=0)
    _, s, vt = np.linalg.svd(x, full_matrices=False)
    coords = x @ vt[:informative].T / (s[:informative] / np.sqrt(len(x)))
    rng = np.random.default_rng(seed)
    z = rng.standard_normal((len(x), layout.VECTOR_SIZE))
    z[:, :informative] = coords
    return z.astype(np.float32)


def fixture_run(kind: str, voices: int = 1200, steps: int = 300, seed: int = 0, knobs: int = 8,
                anchors: int = 32, test: int = 200) -> tuple[nn.Module, dict]:
    """A fitted fixture decoder and the ``info`` a run folder would give (see conversion.pipeline):
    synthetic voices (host_training.audio.synth_voices), VAE-like latents, knobs on the informative
    dimensions, anchors from the training part and test-split latents held out of the fit."""
    from host_training.audio.synth_voices import generate

    vs = generate(voices, seed=seed + 1)
    params = np.stack([v.parameters for v in vs])
    z = fixture_latents(params, seed=seed)
    n_train = voices - test
    decoder = fit(make_decoder(kind, seed), z[:n_train], params[:n_train], steps=steps, seed=seed)
    info = {
        "model_id": f"fixture-{kind}", "model_version": "0", "kind": kind,
        "latent_size": layout.VECTOR_SIZE, "dataset_manifest_hash": "fixture:synth_voices:seed=%d" % (seed + 1),
        "knobs": [{"dim": d, "name": f"knob{d}", "range": [-2.5, 2.5]} for d in range(knobs)],
        "anchors": [{"name": vs[i].name, "voice": vs[i], "latent": z[i]} for i in range(anchors)],
        "test_latents": z[n_train:],
        "calibration_latents": z[:n_train][:512],
    }
    return decoder, info
