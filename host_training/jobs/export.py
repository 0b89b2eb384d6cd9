"""What a trained run hands to the conversion stage and to the user commands.

``finalize`` (end of training) writes RUN/export/: info.json (latent size, semantic
dimensions with their useful range and their descriptor, anchors, data set manifest
sha256), latents.npy (encoded training voices: the calibration set for int8
quantisation), test_latents.npy (encoded test-split voices: what the conversion's parity
report judges on) and train_keys.npy (hashes of the training voices, to refuse exact copies
when generating). ``load_decoder`` gives the z -> parameter-vector module the Pi runs.
"""

from __future__ import annotations

import hashlib
import warnings
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from dx7.errors import DX7Error
from dx7.reading import loads_json, read_regular_file
from dxmacro.errors import DxmacroError
from host_training.jobs.runs import write_json
from host_training.jobs.training_data import Data
from host_training.model.checkpoint import load_model
from host_training.model.vae import LATENT, VAE_KINDS, FlowVAE

MAIN_ORDER = ("flow", "vae_mlp", "flow_nocontrastive")
MAX_RUN_JSON_BYTES = 16 * 1024 * 1024  # run.json and info.json (anchors included) are a few hundred KiB


# The fields every command reads, and their JSON types: a run.json that is `{}`, a list or a
# hand edit is refused here with its name, not as a KeyError deep in a command.
RUN_FIELDS = {"dataset_dir": str, "dataset_manifest_sha256": str, "config": dict, "models": list,
              "dataset_settings": dict}
INFO_FIELDS = {"latent_size": int, "semantic_dims": list, "dataset_manifest_sha256": str, "model_id": str,
               "anchors": list}


def _read_json(path: Path, fields: dict[str, type], missing: str) -> dict[str, Any]:
    try:
        doc = loads_json(read_regular_file(path, max_bytes=MAX_RUN_JSON_BYTES, what=path.name), str(path),
                         what=path.name)
    except DX7Error as exc:
        if not path.exists():
            raise DxmacroError(missing) from None
        raise DxmacroError(str(exc)) from None
    if not isinstance(doc, dict):
        raise DxmacroError(f"{path}: corrupt (a JSON {type(doc).__name__}, not an object)")
    for key, kind in fields.items():
        if not isinstance(doc.get(key), kind):
            raise DxmacroError(f"{path}: corrupt ({key!r} missing or not a {kind.__name__})")
    return doc


def read_run(run_dir: str | Path) -> dict[str, Any]:
    run = _read_json(Path(run_dir) / "run.json", RUN_FIELDS, f"{run_dir}: not a training run (no run.json)")
    if not isinstance(run["config"].get("train", {}), dict):
        raise DxmacroError(f"{Path(run_dir) / 'run.json'}: corrupt ('config.train' is not a table)")
    return run


def main_kind(run_dir: str | Path) -> str:
    """The run's model that drives the knobs: the regression flow when trained."""
    models = read_run(run_dir)["models"]
    for k in MAIN_ORDER:
        if k in models and (Path(run_dir) / "models" / k / "model.pt").exists():
            return k
    raise DxmacroError(f"{run_dir}: no trained VAE model (models: {models})")


def load_vae(run_dir: str | Path, kind: str | None = None) -> FlowVAE:
    kind = kind or main_kind(run_dir)
    _, model, _ = load_model(Path(run_dir) / "models" / kind / "model.pt")
    if not isinstance(model, FlowVAE):
        raise DxmacroError(f"{run_dir}: model {kind} is not a VAE")
    return model


def _keys(params: np.ndarray) -> np.ndarray:
    return np.array([int.from_bytes(hashlib.blake2b(bytes(np.asarray(p, dtype=np.uint8)), digest_size=8).digest(),
                                    "little") for p in params], dtype=np.uint64)


def train_keys(params: np.ndarray) -> np.ndarray:
    """64-bit keys of parameter rows (blake2b), sorted: exact-copy checks without the voices."""
    return np.sort(_keys(params))


def is_training_copy(params: np.ndarray, keys: np.ndarray) -> np.ndarray:
    """Per row of ``params``: is it exactly a training voice (its key among ``keys``)?"""
    rows = _keys(params)
    if not len(keys) or not len(rows):
        return np.zeros(len(rows), bool)
    pos = np.clip(np.searchsorted(keys, rows), 0, len(keys) - 1)
    return keys[pos] == rows


@torch.no_grad()
def encode_all(model: FlowVAE, features: np.ndarray, idx: np.ndarray, batch: int = 64) -> np.ndarray:
    out = []
    for b in range(0, len(idx), batch):
        sel = np.sort(idx[b : b + batch])
        out.append(model.encode(torch.from_numpy(np.asarray(features[sel], dtype=np.float32))).numpy())
    return np.concatenate(out) if out else np.zeros((0, LATENT), np.float32)


def tag_descriptors(tags: np.ndarray, descriptors: np.ndarray) -> list[int]:
    """For each tag pair, the descriptor (mean over notes) that separates its -1 and +1
    voices best (largest |Spearman| over the tagged voices): the knob's "own" descriptor.
    Found from the data rather than from names so that any tag set works."""
    from scipy.stats import spearmanr

    with warnings.catch_warnings():  # a voice silent at every note is NaN here ("mean of empty slice")
        warnings.simplefilter("ignore", RuntimeWarning)
        d = np.nanmean(np.asarray(descriptors, dtype=np.float64), axis=1)  # silent notes are NaN
    best = []
    for t in range(tags.shape[1]):
        scores = []
        for j in range(d.shape[1]):
            m = (tags[:, t] != 0) & np.isfinite(d[:, j])
            if m.sum() < 3 or np.ptp(d[m, j]) == 0:
                scores.append(0.0)
                continue
            r = spearmanr(tags[m, t], d[m, j]).statistic
            scores.append(0.0 if not np.isfinite(r) else abs(r))
        best.append(int(np.argmax(scores)))
    return best


def export_model(run: Path, data, kind: str) -> tuple[dict[str, Any], dict[str, np.ndarray]]:
    """(info, arrays) for one VAE model of a run: the semantic knobs with their useful range, 8
    anchors from the test split, the encoded training sample (int8 calibration), the encoded
    test split (parity report) and the training voices' keys. Deterministic (seeded)."""
    model = load_vae(run, kind)
    ds = data.ds
    rng = np.random.default_rng(0)
    train = np.asarray(data.train)
    sample = np.sort(rng.choice(train, size=min(len(train), 2048), replace=False))
    lat = encode_all(model, ds.features, sample)
    n_sem = min(int(model.cfg.semantic_dims), ds.tags.shape[1])
    tags = np.asarray(ds.tags)[train]
    own = tag_descriptors(tags[:, :n_sem], np.asarray(ds.descriptors)[train]) if n_sem else []
    sem = []
    for i in range(n_sem):
        lo, hi = ds.tag_names[i]
        sem.append({"index": i, "name": f"{hi}/{lo}", "low": float(np.percentile(lat[:, i], 1)),
                    "high": float(np.percentile(lat[:, i], 99)), "tag": [lo, hi],
                    "descriptor": ds.descriptor_names[own[i]] if own else None})
    test = ds.indices("test")
    anchor_idx = np.sort(rng.choice(test if len(test) else train, size=min(8, len(test) or len(train)), replace=False))
    anchor_lat = encode_all(model, ds.features, anchor_idx)
    anchors = [{"name": ds.names[i].strip() or f"voice {i}", "voice_unpacked_hex": ds.voice(int(i)).to_unpacked().hex(),
                "latent": [round(float(v), 6) for v in anchor_lat[j]]} for j, i in enumerate(anchor_idx)]
    run_info = read_run(run)
    info = {"latent_size": LATENT, "semantic_dims": sem, "dataset_manifest_sha256": run_info["dataset_manifest_sha256"],
            "model_id": f"{kind}-{run_info['dataset_manifest_sha256'][:12]}-seed{run_info['config']['train'].get('seed', 0)}",
            "anchors": anchors, "head": "flow" if model.cfg.head == "flow" else "mlp", "kind": kind}
    held_out = np.sort(rng.choice(test, size=min(len(test), 1024), replace=False)) if len(test) else test
    arrays = {"latents": lat.astype(np.float32),
              "test_latents": encode_all(model, ds.features, held_out).astype(np.float32),
              "train_keys": train_keys(np.asarray(ds.params)[train])}
    return info, arrays


def finalize(run: Path, data) -> dict[str, Any]:
    """Write RUN/export/ from the trained main model and the training data."""
    info, arrays = export_model(run, data, main_kind(run))
    out = run / "export"
    out.mkdir(parents=True, exist_ok=True)
    for name, arr in arrays.items():
        np.save(out / f"{name}.npy", arr)
    write_json(out / "info.json", info)
    return info


def read_info(run_dir: str | Path) -> dict[str, Any]:
    return _read_json(Path(run_dir) / "export" / "info.json", INFO_FIELDS,
                      f"{run_dir}: training has not finished (no export/info.json)")


def load_decoder(run_dir: str | Path, kind: str | None = None) -> tuple[nn.Module, dict[str, Any]]:
    """(module z (B, 225) -> layout vector (B, 225), info for conversion.pipeline). For the flow
    head the module is a MapModule over the RealNVP stack: Linear, LeakyReLU, tanh, exp,
    add/mul, slicing, concat and constant index_select only.

    ``kind`` picks another VAE model of the run than the exported main one (the MLP head, for
    comparison); its knobs, anchors and latents are then encoded here from the run's data set,
    which must still be where training found it."""
    info = read_info(run_dir)
    if kind is None or kind == info.get("kind"):
        head = load_vae(run_dir, info.get("kind")).head.eval()
        return head, conversion_info(info, run_dir)
    run_info = read_run(run_dir)
    if kind not in run_info["models"] or kind not in VAE_KINDS:
        raise DxmacroError(f"{run_dir}: no VAE model {kind!r} in this run (models: {', '.join(run_info['models'])})")
    try:
        data = Data(run_info["dataset_dir"], run_info["config"])
    except (OSError, DxmacroError) as exc:
        raise DxmacroError(f"{run_dir}: model {kind!r} needs the run's data set to encode its latents: {exc}") from None
    info, arrays = export_model(Path(run_dir), data, kind)
    head = load_vae(run_dir, kind).head.eval()
    return head, conversion_info(info, run_dir, arrays)


def conversion_info(info: dict[str, Any], run_dir: str | Path,
                    arrays: dict[str, np.ndarray] | None = None) -> dict[str, Any]:
    """The run's export/info.json in the form conversion.pipeline takes: knobs with their latent
    dimension and useful range, anchors as voices (with their tuned knobs where the model was
    shipped with a knob choice, and that choice as ``shipped_knobs``), encoded training latents
    (int8 calibration) and encoded test-split latents (the parity report's test set)."""
    from conversion import knob_masks
    from dx7 import Voice

    knobs = [{"dim": int(d["index"]), "name": d["name"], "range": [float(d["low"]), float(d["high"])],
              "descriptor": d.get("descriptor")} for d in info["semantic_dims"]]
    shipped = info.get("shipped_knobs")  # a measured knob choice (scripts/ship_default_model.py --knobs-from)
    dims = {int(k["dim"]) for k in shipped or []}
    anchors = []
    for a in info["anchors"]:
        anchor = {"name": a["name"], "voice": Voice.from_unpacked(bytes.fromhex(a["voice_unpacked_hex"])),
                  "latent": a["latent"]}
        if a.get("knob_masks"):
            anchor["knob_masks"] = knob_masks.from_json(a["knob_masks"], dims)
            if anchor["knob_masks"] is None:
                raise DxmacroError(f"{run_dir}: anchor {a['name']!r} has malformed tuned knobs")
        anchors.append(anchor)
    out = {"model_id": info["model_id"], "model_version": str(info.get("model_version", "1.0.0")),
           "latent_size": int(info["latent_size"]), "dataset_manifest_hash": info["dataset_manifest_sha256"],
           "knobs": knobs, "anchors": anchors, "head": info.get("head")}
    if shipped:
        out["shipped_knobs"] = shipped
    if info.get("quantization"):  # the quantization the run ships with (scripts/ship_default_model.py)
        out["quantization"] = str(info["quantization"])
    if arrays is not None:  # encoded in memory (load_decoder with another kind)
        out["calibration_latents"] = _sample(arrays["latents"], 1024)
        out["test_latents"] = arrays["test_latents"]
        return out
    try:
        out["calibration_latents"] = representative_latents(run_dir, 1024)
    except DxmacroError:
        pass
    test = Path(run_dir) / "export" / "test_latents.npy"
    if test.exists():
        out["test_latents"] = np.load(test).astype(np.float32)
    return out


def representative_latents(run_dir: str | Path, n: int = 512) -> np.ndarray:
    """(n, 225) float32 encoded training latents: the int8 calibration set."""
    path = Path(run_dir) / "export" / "latents.npy"
    try:
        lat = np.load(path)
    except FileNotFoundError:
        raise DxmacroError(f"{run_dir}: no export/latents.npy (training has not finished)") from None
    return _sample(lat, n)


def _sample(lat: np.ndarray, n: int) -> np.ndarray:
    rng = np.random.default_rng(0)
    idx = rng.choice(len(lat), size=min(n, len(lat)), replace=False)
    return lat[np.sort(idx)].astype(np.float32)


__all__ = ["load_decoder", "representative_latents", "finalize", "read_info", "read_run", "load_vae", "main_kind",
           "VAE_KINDS"]
