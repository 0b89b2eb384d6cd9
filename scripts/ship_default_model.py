"""Make a trained run the default model shipped in host_training/default_model/.

    python scripts/ship_default_model.py RUN [--files-from FILE] [--command "..."] [--quantization int16x8]

Copies only what the product needs and nothing of the data: the main flow model's weights
(model.pt) and training curve, RUN/export/ with the encoded latents cut to seeded samples
(512 training latents for int8 calibration, 256 test-split latents for the conversion's
parity report), the training voices' 64-bit keys (exact-copy refusal in `generate`), the
config, and run.json with models = [the main model]. The data set manifest is copied so that
the model names exactly what it was trained on. The old folder is replaced only once the new
one is complete.
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parent.parent
DEST = REPO / "host_training" / "default_model"


def _sample(arr: np.ndarray, n: int) -> np.ndarray:
    idx = np.random.default_rng(0).choice(len(arr), size=min(n, len(arr)), replace=False)
    return arr[np.sort(idx)]


def ship(run: Path, files_from: str | None, command: str | None, quantization: str | None = None) -> Path:
    info = json.loads((run / "export" / "info.json").read_text())
    if quantization:
        info["quantization"] = quantization  # what `dxmacro convert` and `make demo` convert it with
    kind = info["kind"]
    rinfo = json.loads((run / "run.json").read_text())
    tmp = DEST.with_name(DEST.name + ".new")
    shutil.rmtree(tmp, ignore_errors=True)
    (tmp / "models" / kind).mkdir(parents=True)
    (tmp / "export").mkdir()
    for name in ("model.pt", "log.jsonl"):
        shutil.copyfile(run / "models" / kind / name, tmp / "models" / kind / name)
    (tmp / "export" / "info.json").write_text(json.dumps(info, indent=1) + "\n")
    shutil.copyfile(run / "export" / "train_keys.npy", tmp / "export" / "train_keys.npy")
    np.save(tmp / "export" / "latents.npy", _sample(np.load(run / "export" / "latents.npy"), 512))
    np.save(tmp / "export" / "test_latents.npy", _sample(np.load(run / "export" / "test_latents.npy"), 256))
    shutil.copyfile(run / "config.toml", tmp / "config.toml")
    shutil.copyfile(Path(rinfo["dataset_dir"]) / "manifest.json", tmp / "dataset_manifest.json")
    if files_from:
        shutil.copyfile(files_from, tmp / "dataset_files.txt")
    rinfo["models"] = [kind]
    rinfo["shipped_from"] = f"{run} (only the {kind} model and its export are shipped)"
    if command:
        rinfo["command"] = command
    (tmp / "run.json").write_text(json.dumps(rinfo, indent=1) + "\n")
    old = DEST.with_name(DEST.name + ".old")
    shutil.rmtree(old, ignore_errors=True)
    if DEST.exists():
        DEST.rename(old)
    tmp.rename(DEST)
    shutil.rmtree(old, ignore_errors=True)
    return DEST


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("run", type=Path)
    p.add_argument("--files-from", help="a text file naming the cartridges the data set was built from")
    p.add_argument("--command", help="the exact training command, recorded in run.json")
    p.add_argument("--quantization", choices=("int8", "int16x8"),
                   help="the quantization the model converts with by default (written to export/info.json)")
    args = p.parse_args(argv)
    if not (args.run / "export" / "info.json").is_file():
        print(f"ship_default_model: {args.run}: training has not finished (no export/info.json)", file=sys.stderr)
        return 1
    print(ship(args.run, args.files_from, args.command, args.quantization))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
