"""From a decoder (torch module + info) to a signed ``model.dxm`` and its parity report. Host side.

``info`` is what ``host_training.jobs.export.load_decoder(run_dir)`` returns beside the module:
``model_id``, ``model_version``, ``latent_size``, ``dataset_manifest_hash``, ``knobs`` (a list of
``{"dim", "name", "range": [lo, hi]}``), ``anchors`` (``{"name", "voice": dx7.Voice | 155 unpacked
bytes, "latent"}``, optionally ``"knob_masks"``: {dim: (145,) bool}, the anchor's tuned knobs) and
optionally ``test_latents`` (encoded test-split voices) for the report, and ``shipped_knobs``: the
knobs a measured knob choice keeps (host_training.jobs.knob_gates, manifest form). Every knob in
``knobs`` still shapes the calibration and the parity sweeps, so the model converted is the one
that was measured; the manifest exposes only the shipped ones.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Any

import numpy as np

from conversion import bundle, equalize, export, knob_masks, output_grid, parity
from dx7 import Voice, layout
from dx7.params import PARAMS
from dxmacro import __version__
from dxmacro.errors import DxmacroError

GOLDEN_COUNT = 16


def bundle_json(obj: Any) -> bytes:
    return json.dumps(obj, sort_keys=True, separators=(",", ":")).encode()


def _anchor_voice(a: dict[str, Any]) -> Voice:
    v = a.get("voice")
    if isinstance(v, Voice):
        return v
    if isinstance(v, (bytes, bytearray)) and len(v) == 155:
        return Voice.from_unpacked(bytes(v))
    raise DxmacroError(f"anchor {a.get('name')!r}: voice must be a dx7.Voice or 155 unpacked bytes")


def check_info(info: dict[str, Any]) -> None:
    need = ("model_id", "model_version", "latent_size", "dataset_manifest_hash", "knobs", "anchors")
    missing = [k for k in need if k not in info]
    if missing:
        raise DxmacroError(f"decoder info lacks {', '.join(missing)}")
    n = int(info["latent_size"])
    for k in info["knobs"]:
        if not (0 <= int(k["dim"]) < n) or len(k["range"]) != 2 or not k["range"][0] < k["range"][1]:
            raise DxmacroError(f"knob {k.get('name')!r}: dim or range invalid")
    if not info["anchors"]:
        raise DxmacroError("decoder info has no anchors")
    dims = {int(k["dim"]) for k in info["knobs"]}
    shipped = {int(k["dim"]) for k in info.get("shipped_knobs", info["knobs"])}
    if not shipped <= dims:
        raise DxmacroError(f"shipped knobs on dims {sorted(shipped - dims)} are not among the model's knobs")
    for a in info["anchors"]:
        if not set(a.get("knob_masks") or {}) <= shipped:
            raise DxmacroError(f"anchor {a.get('name')!r}: tuned knobs {sorted(a['knob_masks'])} are not all shipped")


def evaluation_latents(info: dict[str, Any], sweep_steps: int = 11, seed: int = 1) -> tuple[np.ndarray, dict[str, int]]:
    """Latents the parity report judges on: the test split's encoded voices (or the anchors when
    the run gave none) and sweeps of every knob across its range from some of them."""
    n = int(info["latent_size"])
    base = np.asarray(info.get("test_latents") if info.get("test_latents") is not None
                      else [a["latent"] for a in info["anchors"]], np.float32).reshape(-1, n)
    rng = np.random.default_rng(seed)
    start = base[rng.choice(len(base), min(16, len(base)), replace=False)]
    sweeps = []
    for k in info["knobs"]:
        for v in np.linspace(k["range"][0], k["range"][1], sweep_steps, dtype=np.float32):
            s = start.copy()
            s[:, int(k["dim"])] = v
            sweeps.append(s)
    parts = {"test_split" if info.get("test_latents") is not None else "anchors": len(base),
             "knob_sweeps": sum(len(s) for s in sweeps)}
    return np.concatenate([base] + sweeps).astype(np.float32), parts


_AFFINE_RULES = {"input": "input = latent * scale + shift, per dimension, in float, then int8",
                 "output": "vector = clip(output * scale + shift, 0, 1), per slot, after the dequantization"}


def _affine_entry(affine, side: str = "input") -> dict[str, Any]:
    """The manifest's record of a device-side affine (the input's: u = latent * scale + shift; the
    output's: conversion/output_grid.py), when the model has one."""
    if affine is None:
        return {}
    return {"affine": {"rule": _AFFINE_RULES[side],
                       "scale": [float(v) for v in affine[0]], "shift": [float(v) for v in affine[1]]}}


def manifest_for(info: dict[str, Any], model, calibration: export.Calibration) -> dict[str, Any]:
    slots = [{"param": s.param, "name": PARAMS[s.param].name, "start": s.start, "width": s.width,
              "kind": "categorical" if s.categorical else "scaled", "high": PARAMS[s.param].high}
             for s in layout.SLOTS]
    (isc, izp), (osc, ozp) = model.input_quant, model.output_quant
    from conversion.runtime import SELF_TEST_CODE_TOLERANCE, SELF_TEST_VALUE_TOLERANCE, codes_per_int8_step

    return {
        "model_id": str(info["model_id"]), "version": str(info["model_version"]),
        "kind": str(info.get("kind", "unknown")),
        "dxmacro_version": __version__,
        "created": datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ"),
        "dataset_manifest_sha256": str(info["dataset_manifest_hash"]),
        "latent_size": int(info["latent_size"]),
        "knobs": info.get("shipped_knobs") or [{"index": i, "dim": int(k["dim"]), "name": str(k["name"]),
                                                "low": float(k["range"][0]), "high": float(k["range"][1])}
                                               for i, k in enumerate(info["knobs"])],
        "layout": {
            "vector_size": layout.VECTOR_SIZE, "parameters": len(layout.SLOTS), "slots": slots,
            "decode": "output = (code - zero_point) * scale, then quantization.output.affine where present: "
                      "a vector in [0, 1]; scaled slot -> "
                      "clip(rint(x * high), 0, high); categorical group -> argmax (dx7.layout.decode)",
        },
        "quantization": {"input": {"dtype": model.input_dtype.name, "scale": float(isc), "zero_point": int(izp),
                                   **_affine_entry(model.input_affine)},
                         "output": {"dtype": model.output_dtype.name, "scale": float(osc), "zero_point": int(ozp),
                                    **_affine_entry(model.output_affine, "output")},
                         "calibration": calibration.parts},
        "self_test": {"code_tolerance": SELF_TEST_CODE_TOLERANCE * codes_per_int8_step(model.output_dtype),
                      "value_tolerance": SELF_TEST_VALUE_TOLERANCE},
    }


@dataclass
class DeviceGraph:
    """What becomes the .tflite: the module to convert, the device-side input affine (None: the
    graph takes the latent itself), the graph's calibration inputs, the calibration set, and the
    head's output grid (None: the plain [0, 1] head)."""

    module: Any
    affine: tuple[np.ndarray, np.ndarray] | None
    graph_input: np.ndarray
    calibration: export.Calibration
    grid: output_grid.OutputGrid | None = None

    @property
    def output_affine(self) -> tuple[np.ndarray, np.ndarray] | None:
        return None if self.grid is None else self.grid.device_affine()

    def to_tflite(self, int8: bool, quantization: str = "int8") -> bytes:
        """The quantized model (``quantization``, export.QUANTIZATIONS) or, without ``int8``, fp32."""
        return export.to_tflite(self.module, self.graph_input if int8 else None, len(self.graph_input[0]), self.grid,
                                quantization)


def device_graph(module, info: dict[str, Any], *, prior: int = 512, seed: int = 0,
                 groups: int = equalize.GROUPS, grid: bool = True) -> DeviceGraph:
    """The run's decoder as it is converted: calibration set from the info's anchors and encoded
    training latents, a coupling flow equalized (conversion/equalize.py, each update in
    ``groups`` parts) with its input affine taken out of the graph (equalize.split_input), and
    with ``grid`` the head's int8 levels on the DX7 steps (conversion/output_grid.py)."""
    n = int(info["latent_size"])
    anchors_latent = np.asarray([a["latent"] for a in info["anchors"]], np.float32).reshape(-1, n)
    knobs = info["knobs"]
    encoded = anchors_latent if info.get("calibration_latents") is None else \
        np.concatenate([anchors_latent, np.asarray(info["calibration_latents"], np.float32).reshape(-1, n)])
    cal = export.calibration_set(n, anchors=encoded, knob_dims=[k["dim"] for k in knobs],
                                 knob_ranges=[tuple(k["range"]) for k in knobs], prior=prior, seed=seed)
    equalized = equalize.equalize_flow(module, cal.latents, groups)
    split = equalize.split_input(equalized, n)
    if split is None:
        graph, affine, graph_input = equalized, None, cal.latents
    else:
        graph, scale, shift = split
        affine, graph_input = (scale, shift), cal.latents * scale + shift
    placed = output_grid.fit(export.torch_forward(graph, graph_input)) if grid else None
    return DeviceGraph(graph, affine, graph_input, cal, placed)


def on_grid(model) -> bool:
    """Whether a converted int8 model's head kept the levels the grid needs: every tensor on the
    scaled slots' path (the Linear with the clip fused, the 1/6 that follows, the output) spans
    exactly the clip's range in 256 levels, so level k is step ``k - offset`` of its slot. The
    top of that range is fitted on the calibration set, so this fails where the calibration left
    it unreached (output_grid.fit picks offsets that reach it)."""
    n = len(layout.scaled_slots())
    path = [d["quantization"] for d in model.interpreter.get_tensor_details() if list(d["shape"]) == [1, n]]
    ranges = (6.0, 1.0)  # relu6(6 x) before the 1/6, then [0, 1]

    def spans_a_range(scale: float, zero: int) -> bool:
        return zero == -128 and any(abs(scale * output_grid.LEVELS / r - 1) < 1e-5 for r in ranges)

    return bool(path) and spans_a_range(*model.output_quant) and all(spans_a_range(*q) for q in path)


def convert(module, info: dict[str, Any], private_key, *, audio_voices: int = 128, prior: int = 512,
            seed: int = 0, groups: int = equalize.GROUPS, grid: bool = True,
            quantization: str | None = None) -> tuple[bytes, dict[str, Any], bytes]:
    """Returns (bundle bytes, parity report, fp32 tflite bytes). The reference of the parity
    report stays ``module`` as trained, so the report judges the rewrite in ``device_graph`` too.
    ``quantization``: export.QUANTIZATIONS, by default the one the run names (info "quantization",
    else int8); the DX7-step output grid is an int8 device only."""
    from conversion.runtime import TFLiteModel, available_kernels, default_kernels

    check_info(info)
    n = int(info["latent_size"])
    anchors_latent = np.asarray([a["latent"] for a in info["anchors"]], np.float32).reshape(-1, n)
    quantization = quantization or str(info.get("quantization") or "int8")  # export.converter checks it
    grid = grid and quantization == "int8"
    dg = device_graph(module, info, prior=prior, seed=seed, groups=groups, grid=grid)
    int8_bytes = dg.to_tflite(int8=True, quantization=quantization)
    if dg.grid is not None and not on_grid(TFLiteModel(int8_bytes)):
        dg = device_graph(module, info, prior=prior, seed=seed, groups=groups, grid=False)  # the plain head
        int8_bytes = dg.to_tflite(int8=True, quantization=quantization)
    fp32_bytes = dg.to_tflite(int8=False)
    fp32 = TFLiteModel(fp32_bytes, input_affine=dg.affine, output_affine=dg.output_affine)
    # one model per int8 kernel set a device may run (conversion/runtime.py: KERNELS)
    int8 = {k: TFLiteModel(int8_bytes, kernels=k, input_affine=dg.affine, output_affine=dg.output_affine)
            for k in available_kernels()}

    evl, sources = evaluation_latents(info, seed=seed + 1)
    ref = export.reference(module, evl)
    ref_values = layout.decode(ref)
    per_kernels: dict[str, Any] = {}
    for name, model in int8.items():
        values = layout.decode(model(evl))
        part: dict[str, Any] = {"values": parity.value_agreement(ref_values, values), "invoke_us": model.invoke_time_us()}
        if audio_voices:
            part["audio"] = parity.audio_difference(ref_values, values, count=audio_voices, seed=seed)
        part["gates"] = parity.gates(part)
        part["passed"] = all(part["gates"].values())
        per_kernels[name] = part
    main = per_kernels[default_kernels()]
    report: dict[str, Any] = {
        "model_id": info["model_id"], "sources": sources,
        "tflite_fp32_max_abs": float(np.max(np.abs(fp32(evl) - ref))),
        **{k: main[k] for k in ("values", "audio", "invoke_us") if k in main},
        "main_kernels": default_kernels(), "kernels": per_kernels,
        # "dx7": the head's int8 levels on the DX7 steps (conversion/output_grid.py); "plain": the
        # [0, 1] head, asked for, or where the calibration left the grid unreachable
        "output_grid": "dx7" if dg.grid is not None else "plain", "quantization": quantization,
        "size_bytes": len(int8_bytes), "fp32_size_bytes": len(fp32_bytes),
        "gates": {f"{name}:{gate}": ok for name, part in per_kernels.items() for gate, ok in part["gates"].items()},
    }
    report["passed"] = all(report["gates"].values())

    rng = np.random.default_rng(seed + 2)
    k = GOLDEN_COUNT // 3
    golden_lat = np.concatenate([anchors_latent[:k], evl[len(evl) - k :],
                                 rng.standard_normal((GOLDEN_COUNT - 2 * min(k, len(anchors_latent)), n))
                                 .astype(np.float32)])[:GOLDEN_COUNT]
    golden: dict[str, Any] = {"latents": golden_lat.tolist(), "fp32_vectors": export.reference(module, golden_lat).tolist(),
                              "kernels": {}}
    for name, model in int8.items():
        codes = model.raw(golden_lat)
        golden["kernels"][name] = {"int8_codes": codes.astype(int).tolist(),
                                   "int8_values": layout.decode(model.dequantize(codes)).astype(int).tolist()}
    anchors = [{"name": str(a["name"]), "voice": _anchor_voice(a).to_unpacked().hex(),
                "latent": np.asarray(a["latent"], np.float32).reshape(n).tolist(),
                **({"knob_masks": knob_masks.to_json(a["knob_masks"])} if a.get("knob_masks") else {})}
               for a in info["anchors"]]
    manifest = manifest_for(info, int8[default_kernels()], dg.calibration)
    manifest["parity"] = {name: {"within_one_step": part["values"]["within_one_step"],
                                 "categorical_agreement": part["values"]["categorical_agreement"],
                                 "log_mel_median_db": part.get("audio", {}).get("median_db"),
                                 "passed": part["passed"]} for name, part in per_kernels.items()}
    members = {"model.tflite": int8_bytes, "anchors.json": bundle_json(anchors), "golden.json": bundle_json(golden)}
    data = bundle.encode(manifest, members, private_key)
    report["bundle_bytes"] = len(data)
    return data, report, fp32_bytes

