"""Blocks the VAE and the direct baselines share: the data's shape, the fixed feature
normalisation and the plain MLP."""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn


@dataclass
class Shape:
    """What the data look like: notes, mel bands, frames, and the feature normalisation."""

    notes: int
    mels: int
    frames: int
    mean: float = 0.0
    std: float = 1.0


class Normalize(nn.Module):
    """Fixed affine normalisation of dB features (training-split mean and std)."""

    def __init__(self, mean: float, std: float) -> None:
        super().__init__()
        self.register_buffer("mean", torch.tensor(float(mean)))
        self.register_buffer("std", torch.tensor(float(std)))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return (x - self.mean) / self.std


def mlp(n_in: int, hidden: int, n_out: int, layers: int = 2) -> nn.Sequential:
    mods: list[nn.Module] = []
    width = n_in
    for _ in range(layers):
        mods += [nn.Linear(width, hidden), nn.LeakyReLU(0.1)]
        width = hidden
    mods.append(nn.Linear(width, n_out))
    return nn.Sequential(*mods)
