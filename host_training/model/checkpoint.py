"""Model files: the weights of one trained model plus what rebuilds its module (kind, data
shape, model config). What ships in a run folder and what every command loads."""

from __future__ import annotations

import os
from dataclasses import asdict
from pathlib import Path
from typing import Any

import torch
from torch import nn

from dxmacro.errors import DxmacroError
from host_training.model.blocks import Shape
from host_training.model.vae import build


def save_model(path: Path, kind: str, shape: Shape, mcfg: dict[str, Any], model: nn.Module) -> None:
    """Weights only (plus what rebuilds the module): what ships and what export loads."""
    tmp = path.with_suffix(".tmp")
    torch.save({"kind": kind, "shape": asdict(shape), "config": mcfg, "state_dict": model.state_dict()}, tmp)
    os.replace(tmp, path)


def load_model(path: str | Path, map_location: str = "cpu") -> tuple[str, nn.Module, Shape]:
    try:
        blob = torch.load(path, map_location=map_location, weights_only=True)
        shape = Shape(**blob["shape"])
        model = build(blob["kind"], shape, blob["config"])
        model.load_state_dict(blob["state_dict"])
    except FileNotFoundError:
        raise DxmacroError(f"{path}: no such model file (train first: dxmacro train)") from None
    except (RuntimeError, KeyError, TypeError, ValueError, EOFError) as exc:
        raise DxmacroError(f"{path}: not a usable dxmacro model ({str(exc).splitlines()[0]})") from None
    model.eval()
    return blob["kind"], model, shape
