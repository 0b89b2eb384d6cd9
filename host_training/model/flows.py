"""Small composable invertible transforms (RealNVP style), each with forward, inverse and
log-determinant.

Why our own and not zuko/nflows: the regression flow's z -> parameters direction must
convert to a full-integer TFLite model, so it may use only nn.Linear, elementwise
activations, exp, add/mul, slicing/concat along the feature axis and constant
permutations. zuko's couplings build their transforms from generic ``Transform`` objects
and masks at call time (hard to trace to that op set) and nflows is unmaintained; the
three transforms below are ~100 lines and export as plain ops. Every transform has
``map(x)`` (the forward direction without the log-determinant: what conversion traces).
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

import torch
from torch import nn


class Transform(nn.Module):
    """y = f(x). ``forward`` returns (y, log|det df/dx|) per row; ``inverse`` returns
    (x, log|det df^-1/dy|) per row."""

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:  # pragma: no cover - abstract
        raise NotImplementedError

    def inverse(self, y: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:  # pragma: no cover - abstract
        raise NotImplementedError

    def map(self, x: torch.Tensor) -> torch.Tensor:
        return self.forward(x)[0]


class Permutation(Transform):
    """A fixed permutation of the features (index_select with a constant index)."""

    def __init__(self, dim: int, seed: int, perm: torch.Tensor | None = None) -> None:
        super().__init__()
        if perm is None:
            perm = torch.randperm(dim, generator=torch.Generator().manual_seed(seed))
        self.register_buffer("perm", torch.as_tensor(perm, dtype=torch.long))
        self.register_buffer("inv", torch.argsort(self.perm))

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        return x.index_select(1, self.perm), x.new_zeros(x.shape[0])

    def inverse(self, y: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        return y.index_select(1, self.inv), y.new_zeros(y.shape[0])

    def map(self, x: torch.Tensor) -> torch.Tensor:
        return x.index_select(1, self.perm)


class ElementwiseAffine(Transform):
    """y = x * exp(log_scale) + shift with learned per-feature parameters (ActNorm-like)."""

    def __init__(self, dim: int) -> None:
        super().__init__()
        self.log_scale = nn.Parameter(torch.zeros(dim))
        self.shift = nn.Parameter(torch.zeros(dim))

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        y = x * torch.exp(self.log_scale) + self.shift
        return y, self.log_scale.sum().expand(x.shape[0])

    def inverse(self, y: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        x = (y - self.shift) * torch.exp(-self.log_scale)
        return x, (-self.log_scale.sum()).expand(y.shape[0])

    def map(self, x: torch.Tensor) -> torch.Tensor:
        return x * torch.exp(self.log_scale) + self.shift


class AffineCoupling(Transform):
    """RealNVP affine coupling: the first ``split`` features pass unchanged and condition an
    MLP that gives a scale and shift for the rest. The log-scale is bounded with
    ``clamp * tanh(s / clamp)`` so an int8 export never sees huge exponents."""

    def __init__(self, dim: int, hidden: int, layers: int = 2, clamp: float = 3.0, quant_noise: float = 0.0) -> None:
        super().__init__()
        self.split = dim // 2
        self.rest = dim - self.split
        self.clamp = clamp
        self.quant_noise = quant_noise  # int8 steps of noise in map() while training (see _noise)
        self.peaks: dict[str, torch.Tensor] = {}  # the noise's running ranges (not in state_dict)
        mods: list[nn.Module] = []
        width = self.split
        for _ in range(layers):
            mods += [nn.Linear(width, hidden), nn.LeakyReLU(0.1)]
            width = hidden
        last = nn.Linear(width, 2 * self.rest)
        nn.init.zeros_(last.weight)  # start as the identity
        nn.init.zeros_(last.bias)
        mods.append(last)
        self.net = nn.Sequential(*mods)

    def _params(self, x1: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        h = self.net(x1)
        s = self.clamp * torch.tanh(h[:, : self.rest] * (1.0 / self.clamp))
        return s, h[:, self.rest :]

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        x1, x2 = x[:, : self.split], x[:, self.split :]
        s, t = self._params(x1)
        return torch.cat([x1, x2 * torch.exp(s) + t], dim=1), s.sum(dim=1)

    def inverse(self, y: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        y1, y2 = y[:, : self.split], y[:, self.split :]
        s, t = self._params(y1)
        return torch.cat([y1, (y2 - t) * torch.exp(-s)], dim=1), -s.sum(dim=1)

    def map(self, x: torch.Tensor) -> torch.Tensor:
        if self.training and self.quant_noise > 0:
            return self._noisy_map(x)
        x1, x2 = x[:, : self.split], x[:, self.split :]
        s, t = self._params(x1)
        return torch.cat([x1, x2 * torch.exp(s) + t], dim=1)

    # ---- int8 noise (training only) ----
    # Why: the Pi runs this direction as an int8 TFLite model, where every tensor rounds to 256
    # levels of its range (conversion/equalize.py gives the state one range per dimension, a
    # conditioner's activations one per tensor). A head trained to make its knobs move the sound
    # passed those roundings on strongly enough to move the rendered audio by 1.4 dB (issue 5's
    # gate: 0.5 dB). With ``quant_noise`` = q, training adds uniform noise of q such steps where
    # the int8 model rounds, so the head learns a function that the rounding does not move (the
    # quantization-noise training of Fan et al., 2020). Ranges are running maxima, not saved.

    def _noise(self, x: torch.Tensor, name: str, per_dim: bool) -> torch.Tensor:
        peak = x.detach().abs().amax(dim=0) if per_dim else x.detach().abs().amax()
        if name in self.peaks:
            peak = torch.maximum(self.peaks[name] * 0.999, peak)
        self.peaks[name] = peak
        step = 2.0 * peak / 255.0
        return x + (torch.rand_like(x) - 0.5) * step * self.quant_noise

    def _noisy_map(self, x: torch.Tensor) -> torch.Tensor:
        x1, x2 = x[:, : self.split], x[:, self.split :]
        h = self._noise(x1, "in", True)
        for i, layer in enumerate(self.net):
            h = layer(h)
            if i < len(self.net) - 1:
                h = self._noise(h, f"h{i}", False)
        s = self.clamp * torch.tanh(self._noise(h[:, : self.rest], "s", False) * (1.0 / self.clamp))
        t = self._noise(h[:, self.rest :], "t", True)
        y2 = self._noise(x2 * torch.exp(s) + t, "out", True)
        return torch.cat([x1, y2], dim=1)


def noise_peaks(module: nn.Module) -> dict[str, torch.Tensor]:
    """The running peaks of every coupling's int8 noise (``AffineCoupling._noise``), by module
    and attribute name: what a training checkpoint keeps so that a resumed run adds the same
    noise as an uninterrupted one (model.pt leaves them out)."""
    return {f"{name}/{site}": peak.clone() for name, m in module.named_modules()
            if isinstance(m, AffineCoupling) for site, peak in m.peaks.items()}


def has_noise(module: nn.Module) -> bool:
    """Whether any coupling of ``module`` adds int8 noise while training."""
    return any(isinstance(m, AffineCoupling) and m.quant_noise > 0 for m in module.modules())


@contextlib.contextmanager
def noise_off(module: nn.Module) -> Iterator[None]:
    """Every coupling of ``module`` without its int8 noise (and without updating its running
    ranges) inside the block. Why: the knob sweep loss asks what a knob move does to the
    sound; with the noise on, the two ends of a sweep differ by noise as well, and the
    surrogate read that as part of the knob's move (the own-score rise it saw stayed near a
    tenth of its target, docs/results.md)."""
    couplings = [m for m in module.modules() if isinstance(m, AffineCoupling)]
    saved = [m.quant_noise for m in couplings]
    try:
        for m in couplings:
            m.quant_noise = 0.0
        yield
    finally:
        for m, q in zip(couplings, saved):
            m.quant_noise = q


def load_noise_peaks(module: nn.Module, peaks: dict[str, torch.Tensor]) -> None:
    modules = dict(module.named_modules())
    for key, peak in peaks.items():
        name, site = key.rsplit("/", 1)
        modules[name].peaks[site] = peak


class Compose(Transform):
    """Transforms applied in order; log-determinants add."""

    def __init__(self, *transforms: Transform) -> None:
        super().__init__()
        self.transforms = nn.ModuleList(transforms)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        total = x.new_zeros(x.shape[0])
        for t in self.transforms:
            x, ld = t(x)
            total = total + ld
        return x, total

    def inverse(self, y: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        total = y.new_zeros(y.shape[0])
        for t in reversed(self.transforms):
            y, ld = t.inverse(y)
            total = total + ld
        return y, total

    def map(self, x: torch.Tensor) -> torch.Tensor:
        for t in self.transforms:
            x = t.map(x)
        return x


def realnvp(dim: int, blocks: int, hidden: int, layers: int = 2, seed: int = 0, final_affine: bool = True,
            alternate: bool = False, lead: int = 0, quant_noise: float = 0.0) -> Compose:
    """A RealNVP stack: (permutation, coupling) x blocks, then an elementwise affine.

    Random permutations (the default) can leave an input dimension in the transformed half of
    every coupling: it then never conditions anything and reaches the output through one
    affine slot. A knob on such a dimension moved one logit and nothing else (the
    regression flow of an early CPU run, docs/results.md). ``alternate`` makes each
    permutation move the previous transformed half into the conditioning half (shuffled
    within), so every dimension (but one a block, for an odd size) conditions every other coupling; ``lead`` keeps
    the first ``lead`` inputs (the semantic dimensions) in the conditioning half of the first
    coupling, so that a knob reaches every output from the start."""
    parts: list[Transform] = []
    g = torch.Generator().manual_seed(seed * 1000 + 7)
    split = dim // 2
    for b in range(blocks):
        perm = None
        if alternate and b == 0:
            perm = torch.cat([torch.arange(lead), lead + torch.randperm(dim - lead, generator=g)])
        elif alternate:  # the transformed half first; of an odd dim, one of it stays transformed
            perm = torch.cat([torch.arange(split, dim)[torch.randperm(dim - split, generator=g)],
                              torch.arange(split)[torch.randperm(split, generator=g)]])
        parts += [Permutation(dim, seed * 1000 + b, perm), AffineCoupling(dim, hidden, layers, quant_noise=quant_noise)]
    if final_affine:
        parts.append(ElementwiseAffine(dim))
    return Compose(*parts)


class MapModule(nn.Module):
    """A transform's forward direction as a plain module (z -> y, no log-det): what the
    conversion stage traces."""

    def __init__(self, transform: Transform) -> None:
        super().__init__()
        self.transform = transform

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        return self.transform.map(z)
