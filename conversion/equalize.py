"""Per-dimension equalization of a coupling flow's state before int8 quantization. Host side.

Why: TFLite's int8 SLICE / CONCATENATION / GATHER keep one scale for the whole tensor, so each
coupling layer's 225-wide state is quantized with a single step set by its widest dimension. In a
trained regression flow the dimensions' ranges differ by 10-100x, so narrow dimensions get a few
int8 levels and the parameters that come out of them lose several DX7 steps (72 % of values within
one step on the shipped model before this rewrite, docs/conversion.md).

``equalize_flow`` rewrites the flow into an equal function whose state is kept as
``x = d * u + c`` per dimension, with ``u`` in [-1, 1] on the calibration set: the idea of
cross-layer equalization for MLPs (Nagel et al., 2019) applied to couplings. Every scale and
centre folds into weights the graph already has, so the op set stays the one
``conversion.export`` converts:

* the latent is mapped to ``u`` first. That affine is *not* part of the int8 graph: the int8
  input has one scale for all 225 dimensions, so a narrow dimension lost most of its levels
  before the graph could widen it (the worst layer of the quantization debugger on a model
  trained on the whole corpus: 1.2 int8 steps of RMS error, 95 % of values within one step).
  ``split_input`` hands it to the device, which applies it in float before quantizing
  (``conversion.runtime.TFLiteModel``'s ``input_affine``, the manifest's
  ``quantization.input.affine``): every dimension then fills the int8 range;
* a coupling's conditioner reads ``x1 = d1 * u1 + c1``: ``d1`` folds into its first Linear's
  columns and ``W c1`` into its bias;
* its update ``y2 = x2 * exp(s) + t``, mapped to the new ``(e2, c2')``, is
  ``u2 * exp(s + log(d2 / e2)) + (t - c2') / e2``: one constant ADD after the bounded log-scale;
  ``1 / e2`` and ``-c2' / e2`` fold into the rows of the last Linear that give ``t``. Those rows
  become Linears of their own, in parts (``_ScaledCoupling``), so the shift that is added straight
  onto the state gets int8 scales of its own. The updated half must have ``c2 = 0`` (a centre
  there would multiply with ``exp(s)``), so a dimension is centred only when it is not updated
  again before the flow ends or an elementwise affine re-maps it;
* the pass-through half keeps its scale and centre, permutations permute them;
* an elementwise affine folds them into its own; the last one, giving the original units, is one
  diagonal Linear (see ``_diagonal``).

In fp32 the rewritten flow equals the original to rounding (tests check 1e-5).
"""

from __future__ import annotations

import copy

import numpy as np
import torch
from torch import nn

from host_training.model.flows import AffineCoupling, Compose, ElementwiseAffine, MapModule, Permutation

# parts of each coupling's update (see _ScaledCoupling). On the shipped model, DX7 values within one
# step of fp32: 1 part 98.8 %, 2 parts 99.2 %, 4 parts 99.4 %, 8 parts 99.4 %; invoke 44 -> 64 us at 4
GROUPS = 4
_FLOOR = 1e-3  # smallest scale, relative to the median dimension's: a constant dimension stays finite


def _scale_centre(values: torch.Tensor, centred: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Per column: (scale, centre) mapping the calibration values into [-1, 1]; symmetric about 0
    where ``centred`` is False."""
    hi, lo = values.amax(dim=0), values.amin(dim=0)
    c = torch.where(centred, (hi + lo) / 2, torch.zeros_like(hi))
    d = torch.where(centred, (hi - lo) / 2, torch.maximum(hi.abs(), lo.abs()))
    return torch.clamp(d, min=float(d.median()) * _FLOOR + 1e-12), c


class _Affine(nn.Module):
    def __init__(self, scale: torch.Tensor, shift: torch.Tensor) -> None:
        super().__init__()
        self.register_buffer("scale", scale.detach().clone())
        self.register_buffer("shift", shift.detach().clone())

    def forward(self, u: torch.Tensor) -> torch.Tensor:
        return u * self.scale + self.shift


def _diagonal(scale: torch.Tensor, shift: torch.Tensor) -> nn.Linear:
    """The last per-dimension affine as a Linear with a diagonal weight: TFLite runs it as one
    FULLY_CONNECTED whose output (with the decode head's clip fused) is quantized once, where a
    MUL then ADD would quantize the product over the widest slot's range first."""
    lin = nn.Linear(len(scale), len(scale))
    with torch.no_grad():
        lin.weight.copy_(torch.diag(scale))
        lin.bias.copy_(shift)
    return lin


def _rows(lin: nn.Linear, rows, gain: torch.Tensor, offset: torch.Tensor) -> nn.Linear:
    """A Linear computing ``gain * lin(x)[rows] + offset``."""
    w, b = lin.weight[rows], lin.bias[rows]
    out = nn.Linear(w.shape[1], w.shape[0])
    with torch.no_grad():
        out.weight.copy_(w * gain[:, None])
        out.bias.copy_(b * gain + offset)
    return out


class _Permute(nn.Module):
    def __init__(self, perm: torch.Tensor) -> None:
        super().__init__()
        self.register_buffer("perm", perm.clone())

    def forward(self, u: torch.Tensor) -> torch.Tensor:
        return u.index_select(1, self.perm)


class _ScaledCoupling(nn.Module):
    """An AffineCoupling reading and writing the equalized state (see the module docstring).

    The updated half is computed in ``groups`` parts ordered by how far its terms reach on the
    calibration state ``u``: where ``t / e2`` and ``u2 * exp(s)`` nearly cancel, a few dimensions
    reach several times further than the rest, and one int8 tensor for all of them would give the
    rest a step several times too coarse. Each part has its own log-scale and shift Linear (rows of
    the original), exp, product and sum; a constant gather puts the dimensions back in order."""

    def __init__(self, coupling: AffineCoupling, d: torch.Tensor, c: torch.Tensor,
                 e2: torch.Tensor, c2: torch.Tensor, u: torch.Tensor, groups: int) -> None:
        super().__init__()
        self.split, self.rest, self.clamp = coupling.split, coupling.rest, coupling.clamp
        net = copy.deepcopy(coupling.net)
        first, last = net[0], net[-1]
        if not isinstance(first, nn.Linear) or not isinstance(last, nn.Linear):
            raise TypeError("coupling conditioner must start and end with nn.Linear")
        if torch.any(c[self.split :] != 0):
            raise ValueError("the half a coupling updates must not be centred")
        d1, c1, d2 = d[: self.split], c[: self.split], d[self.split :]
        with torch.no_grad():
            first.bias.add_(first.weight @ c1)
            first.weight.mul_(d1[None, :])
        self.trunk = net[:-1]
        rest = torch.arange(self.rest)
        log_scale = _rows(last, rest, torch.ones(self.rest), torch.zeros(self.rest))
        shift = _rows(last, self.rest + rest, 1.0 / e2, -c2 / e2)
        log_ratio = torch.log(d2 / e2)
        with torch.no_grad():  # how far each updated dimension's terms reach on the calibration
            h = self.trunk(u[:, : self.split])
            s = self.clamp * torch.tanh(log_scale(h) * (1.0 / self.clamp)) + log_ratio
            reach = torch.maximum(shift(h).abs().amax(0), (u[:, self.split :] * torch.exp(s)).abs().amax(0))
        parts = torch.tensor_split(torch.argsort(reach), max(1, min(groups, self.rest)))
        ones = [torch.ones(len(g)) for g in parts]
        self.log_scales = nn.ModuleList(_rows(log_scale, g, o, torch.zeros(len(g))) for g, o in zip(parts, ones))
        self.shifts = nn.ModuleList(_rows(shift, g, o, torch.zeros(len(g))) for g, o in zip(parts, ones))
        for i, g in enumerate(parts):  # constants per part: which dimensions, their log(d2 / e2)
            self.register_buffer(f"index{i}", g.clone())
            self.register_buffer(f"log_ratio{i}", log_ratio[g].clone())
        order = torch.cat([torch.arange(self.split), self.split + torch.argsort(torch.cat(parts))])
        self.register_buffer("order", order)

    def forward(self, u: torch.Tensor) -> torch.Tensor:
        u1, u2 = u[:, : self.split], u[:, self.split :]
        h = self.trunk(u1)
        out = [u1]
        for i, (log_scale, shift) in enumerate(zip(self.log_scales, self.shifts)):
            s = self.clamp * torch.tanh(log_scale(h) * (1.0 / self.clamp)) + getattr(self, f"log_ratio{i}")
            out.append(u2.index_select(1, getattr(self, f"index{i}")) * torch.exp(s) + shift(h))
        return torch.cat(out, dim=1).index_select(1, self.order)


class EqualizedFlow(nn.Module):
    """The rewritten z -> vector map: a plain sequence of the steps above."""

    def __init__(self, steps: list[nn.Module]) -> None:
        super().__init__()
        self.steps = nn.ModuleList(steps)

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        for step in self.steps:
            z = step(z)
        return z


def split_input(module: nn.Module, latent_size: int) -> tuple[nn.Module, np.ndarray, np.ndarray] | None:
    """(the graph after the input affine, its per-dimension scale, its shift) for an equalized
    flow, so that the device computes ``u = z * scale + shift`` in float and the int8 graph
    starts from ``u``; None for any other module (its input stays the latent)."""
    if not isinstance(module, EqualizedFlow) or not isinstance(module.steps[0], _Affine):
        return None
    first = module.steps[0]
    scale, shift = first.scale.numpy().astype(np.float32), first.shift.numpy().astype(np.float32)
    if scale.shape != (latent_size,) or shift.shape != (latent_size,):
        return None
    return EqualizedFlow(list(module.steps[1:])).eval(), scale, shift


def flow_transforms(module: nn.Module) -> list[nn.Module] | None:
    """The transforms of a ``MapModule`` over a ``Compose`` of the three flow blocks, else None."""
    t = module.transform if isinstance(module, MapModule) else module
    if not isinstance(t, Compose):
        return None
    parts = list(t.transforms)
    if not parts or not all(isinstance(p, (Permutation, AffineCoupling, ElementwiseAffine)) for p in parts):
        return None
    return parts


def _centrable(parts: list[nn.Module], start: int, dim: int) -> torch.Tensor:
    """Per position of the state entering ``parts[start]``: may it carry a centre, i.e. is it not
    the updated half of a coupling before an elementwise affine re-maps it or the flow ends?"""
    pos = torch.arange(dim)  # pos[k]: which of the entering positions sits at position k now
    ok = torch.ones(dim, dtype=torch.bool)
    open_ = torch.ones(dim, dtype=torch.bool)  # still undecided
    for p in parts[start:]:
        if isinstance(p, Permutation):
            pos = pos[p.perm]
        elif isinstance(p, AffineCoupling):
            hit = pos[p.split :]
            ok[hit] &= ~open_[hit]
            open_[hit] = False
        else:
            open_[:] = False
    return ok


@torch.no_grad()
def equalize_flow(module: nn.Module, calibration: np.ndarray, groups: int = GROUPS) -> nn.Module:
    """An equal function of ``module`` with an equalized state, scales fitted on ``calibration``
    (n, latent), each coupling's update in ``groups`` parts. Modules that are not such a flow are
    returned unchanged."""
    parts = flow_transforms(module)
    if parts is None:
        return module
    x = torch.as_tensor(np.asarray(calibration, np.float32))  # the original flow's state
    n = x.shape[1]
    d, c = _scale_centre(x, _centrable(parts, 0, n))  # x = d * u + c for the rewritten state u
    steps: list[nn.Module] = [_Affine(1.0 / d, -c / d)]
    for i, p in enumerate(parts):
        y = p.map(x)
        if isinstance(p, Permutation):
            steps.append(_Permute(p.perm))
            d, c = d[p.perm], c[p.perm]
        elif isinstance(p, AffineCoupling):
            e2, c2 = _scale_centre(y[:, p.split :], _centrable(parts, i + 1, n)[p.split :])
            steps.append(_ScaledCoupling(p, d, c, e2, c2, (x - c) / d, groups))
            d, c = torch.cat([d[: p.split], e2]), torch.cat([c[: p.split], c2])
        else:
            a = torch.exp(p.log_scale)
            if i == len(parts) - 1:
                steps.append(_diagonal(a * d, a * c + p.shift))
                d, c = torch.ones_like(d), torch.zeros_like(c)
            else:
                e, c_new = _scale_centre(y, _centrable(parts, i + 1, n))
                steps.append(_Affine(a * d / e, (a * c + p.shift - c_new) / e))
                d, c = e, c_new
        x = y
    if torch.any(d != 1) or torch.any(c != 0):
        steps.append(_diagonal(d, c))
    out = EqualizedFlow(steps).eval()
    if not all(bool(torch.isfinite(b).all()) for b in out.buffers()):
        raise ValueError("equalization produced a non-finite scale")
    return out
