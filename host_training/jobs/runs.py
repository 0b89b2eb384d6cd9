"""Where a trained model is (a run folder, or the default model shipped in the package), and
how a run's JSON files are written."""

from __future__ import annotations

import hashlib
import json
from importlib import resources
from pathlib import Path
from typing import Any

from dx7.files import atomic_write
from dxmacro.errors import DxmacroError


def default_model_dir() -> Path:
    return Path(str(resources.files("host_training") / "default_model"))


def resolve_run(run: str | None) -> Path:
    path = Path(run) if run else default_model_dir()
    if not (path / "run.json").is_file():
        where = f"run folder {path}" if run else f"default model {path}"
        raise DxmacroError(f"{where} holds no trained model (no run.json); pass --run RUN from dxmacro train")
    return path


def manifest_sha256(data_dir: str | Path) -> str:
    """The data set a run was trained on, by its manifest's bytes."""
    return hashlib.sha256((Path(data_dir) / "manifest.json").read_bytes()).hexdigest()


def write_json(path: Path, obj: Any) -> None:
    """A run's JSON files (run.json, export/info.json, report.json), written atomically."""
    atomic_write(path, (json.dumps(obj, indent=1) + "\n").encode())
