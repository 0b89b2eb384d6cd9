"""Model files: the weights of one trained model plus what rebuilds its module (kind, data
shape, model config). What ships in a run folder and what every command loads."""

from __future__ import annotations

import os
import pickle
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


# What a damaged or foreign file makes torch.load raise (a truncated zip, an empty file, a pickle
# that names a class): each becomes one line that names the file.
LOAD_ERRORS = (RuntimeError, KeyError, TypeError, ValueError, EOFError, AttributeError, IndexError,
               pickle.UnpicklingError)


def load_checkpoint(path: str | Path, map_location: Any = "cpu", what: str = "model file") -> dict[str, Any]:
    """A torch file holding tensors and plain data only (``weights_only=True``): a tampered run
    folder cannot run code here. Anything else is refused with our message, never with PyTorch's
    advice to turn the safety off."""
    try:
        blob = torch.load(path, map_location=map_location, weights_only=True)
    except FileNotFoundError:
        raise
    except pickle.UnpicklingError:
        raise DxmacroError(f"{path}: refused: this {what} holds more than tensors and plain data "
                           f"(tampered with, or not written by dxmacro)") from None
    except LOAD_ERRORS as exc:
        reason = (str(exc).splitlines() or [type(exc).__name__])[0]
        raise DxmacroError(f"{path}: not a usable {what} ({reason})") from None
    if not isinstance(blob, dict):
        raise DxmacroError(f"{path}: not a usable {what} (holds a {type(blob).__name__}, not a table)")
    return blob


def load_model(path: str | Path, map_location: str = "cpu") -> tuple[str, nn.Module, Shape]:
    try:
        blob = load_checkpoint(path, map_location)
        shape = Shape(**blob["shape"])
        model = build(blob["kind"], shape, blob["config"])
        model.load_state_dict(blob["state_dict"])
    except FileNotFoundError:
        raise DxmacroError(f"{path}: no such model file (train first: dxmacro train)") from None
    except LOAD_ERRORS as exc:
        reason = (str(exc).splitlines() or [type(exc).__name__])[0]
        raise DxmacroError(f"{path}: not a usable dxmacro model ({reason})") from None
    model.eval()
    return blob["kind"], model, shape
