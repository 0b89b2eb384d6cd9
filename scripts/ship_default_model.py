"""Make a trained run the default model shipped in host_training/default_model/.

    python scripts/ship_default_model.py RUN [--files-from FILE] [--command "..."] [--quantization int16x8]
        [--knobs-from GATED.dxm --public-key KEY.pub --data DATA_DIR]

Copies only what the product needs and nothing of the data: the main flow model's weights
(model.pt) and training curve, RUN/export/ with the encoded latents cut to seeded samples
(512 training latents for int8 calibration, 256 test-split latents for the conversion's
parity report), the training voices' 64-bit keys (exact-copy refusal in `generate`), the
config, and run.json with models = [the main model]. The data set manifest is copied so that
the model names exactly what it was trained on. The old folder is replaced only once the new
one is complete.

With ``--knobs-from``, the model ships the knob choice of a bundle that ``dxmacro convert
--knob-gates --gate-mode tuned`` made from RUN: only the knobs that passed are exposed, named and
ranked as measured, and the anchors (the voices the demo and a fresh device play) carry their
tuned knobs (host_training.jobs.knob_tune), tuned here against DATA_DIR through the decoder the
shipped model converts to. Every conversion of the default model then exposes those knobs, and its anchors play
them tuned, without the data set or Dexed.
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


def shipped_knobs(info: dict, gated: Path, public_key: Path) -> list[dict]:
    """The knobs a bundle converted from the same model with --knob-gates kept (manifest form)."""
    from conversion import keys
    from conversion.bundle import read

    b = read(gated, keys.load_public_key(public_key))
    if b.manifest["model_id"] != info["model_id"]:
        raise SystemExit(f"ship_default_model: {gated} was converted from model {b.manifest['model_id']}, "
                         f"not {info['model_id']}")
    return b.manifest["knobs"]


def tune_anchors(folder: Path, data_dir: Path, threads: int = 2) -> None:
    """Tune the anchors of the model in ``folder`` to its shipped knobs, through the decoder that
    model converts to (the conversion is repeatable; calibrating on the 512 shipped latents gives
    another int16x8 model than the run's full export), and write their masks into its info.json."""
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

    from conversion import bundle, knob_masks, pipeline
    from conversion.runtime import TFLiteDecoder
    from dx7 import Voice
    from host_training.jobs.export import load_decoder
    from host_training.jobs.knob_tune import tune_bank

    module, cinfo = load_decoder(folder)
    data, _, _ = pipeline.convert(module, cinfo, Ed25519PrivateKey.generate(), audio_voices=0)
    decoder = TFLiteDecoder(bundle.decode(data, None))
    path = folder / "export" / "info.json"
    info = json.loads(path.read_text())
    voices = [np.asarray(Voice.from_unpacked(bytes.fromhex(a["voice_unpacked_hex"])).values, np.int64)
              for a in info["anchors"]]
    latents = np.asarray([a["latent"] for a in info["anchors"]], np.float32)
    dims, masks, passed = tune_bank(decoder, voices, latents, data_dir, threads=threads,
                                    progress=lambda m: print(m, flush=True))
    print(f"tuned {len(dims)} knobs to {len(voices)} anchors: {passed.mean():.0%} of them pass every gate")
    info["anchors"] = [dict(a, knob_masks=knob_masks.to_json(dict(zip(dims, masks[i]))))
                       for i, a in enumerate(info["anchors"])]
    path.write_text(json.dumps(info, indent=1) + "\n")


def ship(run: Path, files_from: str | None, command: str | None, quantization: str | None = None,
         knobs: tuple[Path, Path, Path] | None = None) -> Path:
    info = json.loads((run / "export" / "info.json").read_text())
    if quantization:
        info["quantization"] = quantization  # what `dxmacro convert` and `make demo` convert it with
    if knobs:
        info["shipped_knobs"] = shipped_knobs(info, knobs[0], knobs[1])
        info["anchors"] = [{k: v for k, v in a.items() if k != "knob_masks"} for a in info["anchors"]]
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
    if knobs:
        tune_anchors(tmp, knobs[2])
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
    p.add_argument("--knobs-from", type=Path, help="a bundle of RUN converted with --knob-gates: ship its knob choice")
    p.add_argument("--public-key", type=Path, help="with --knobs-from: the key that signed that bundle")
    p.add_argument("--data", type=Path, help="with --knobs-from: RUN's data set, whose scores the anchors are tuned by")
    args = p.parse_args(argv)
    if args.knobs_from and not (args.public_key and args.data):
        p.error("--knobs-from needs --public-key and --data")
    if not (args.run / "export" / "info.json").is_file():
        print(f"ship_default_model: {args.run}: training has not finished (no export/info.json)", file=sys.stderr)
        return 1
    knobs = (args.knobs_from, args.public_key, args.data) if args.knobs_from else None
    print(ship(args.run, args.files_from, args.command, args.quantization, knobs))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
