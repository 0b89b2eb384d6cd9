"""Where a trained model is: a run folder, or the default model shipped in the package."""

from __future__ import annotations

from importlib import resources
from pathlib import Path

from dxmacro.errors import DxmacroError


def default_model_dir() -> Path:
    return Path(str(resources.files("host_training") / "default_model"))


def resolve_run(run: str | None) -> Path:
    path = Path(run) if run else default_model_dir()
    if not (path / "run.json").is_file():
        where = f"run folder {path}" if run else f"default model {path}"
        raise DxmacroError(f"{where} holds no trained model (no run.json); pass --run RUN from dxmacro train")
    return path
