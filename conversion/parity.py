"""How far the int8 model is from the fp32 decoder, in the units a performer hears: DX7 steps per
parameter, categorical choices, and log-mel dB of the rendered audio. Host side.

Gates (issue 5): >= 97 % of DX7 values within one step, >= 99 % categorical agreement, median
log-mel difference <= 0.5 dB. ``passed`` in the report says whether all three held.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from dx7 import layout
from dx7.params import PARAMS

WITHIN_ONE_STEP_MIN = 0.97
CATEGORICAL_MIN = 0.99
LOG_MEL_MEDIAN_MAX_DB = 0.5


def value_agreement(reference: np.ndarray, candidate: np.ndarray) -> dict[str, Any]:
    """reference/candidate: (n, 145) DX7 values. Per parameter and overall agreement."""
    ref = reference.astype(np.int16)
    cand = candidate.astype(np.int16)
    cat = np.array([g.param for g in layout.categorical_groups()])
    scaled = np.setdiff1d(np.arange(ref.shape[1]), cat)
    diff = np.abs(ref - cand)
    per_param = []
    for i in range(ref.shape[1]):
        is_cat = i in cat
        per_param.append({
            "name": PARAMS[i].name,
            "categorical": bool(is_cat),
            "agree" if is_cat else "within_one_step": float(np.mean(diff[:, i] == 0 if is_cat else diff[:, i] <= 1)),
            "exact": float(np.mean(diff[:, i] == 0)),
            "max_steps": int(diff[:, i].max()),
        })
    return {
        "samples": int(len(ref)),
        # every value, categorical ones counting as within a step only when equal
        "within_one_step": float(np.mean(np.where(np.isin(np.arange(ref.shape[1]), cat), diff == 0, diff <= 1))),
        "scaled_within_one_step": float(np.mean(diff[:, scaled] <= 1)),
        "exact": float(np.mean(diff == 0)),
        "categorical_agreement": float(np.mean(diff[:, cat] == 0)),
        "per_parameter": per_param,
    }


def audio_difference(reference: np.ndarray, candidate: np.ndarray, names: list[str] | None = None,
                     count: int = 16, sample_rate: int = 22050, note: int = 60, seed: int = 0) -> dict[str, Any]:
    """Render ``count`` voices from both parameter sets with Dexed's engine and compare log-mels
    (host_training.audio.features.log_mel_difference: |dB| per bin and frame, floored 80 dB under the
    fp32 render's peak). Voices are drawn where int8 and fp32 differ, when any do."""
    from dx7 import Voice
    from host_training.audio.features import sounding_difference
    from host_training.audio.render import DexedRenderer, Note

    rng = np.random.default_rng(seed)
    differ = np.flatnonzero(np.any(reference != candidate, axis=1))
    pool = differ if len(differ) >= count else np.arange(len(reference))
    pick = np.sort(rng.choice(pool, min(count, len(pool)), replace=False))
    renderer = DexedRenderer(sample_rate)
    n = Note(note, 100, 0.75, 1.0)
    medians, sounding, shares, silent = [], [], [], 0
    for i in pick:
        a = renderer.render(Voice.from_parameters(reference[i]), n)
        b = renderer.render(Voice.from_parameters(candidate[i]), n)
        if not np.any(a) and not np.any(b):
            silent += 1
            medians.append(0.0)
            continue
        diff, on = sounding_difference(b, a, sample_rate)
        medians.append(float(np.median(diff)))
        shares.append(float(on.mean()))
        if on.any():
            sounding.append(float(np.median(diff[on])))
    return {"voices": int(len(pick)), "drawn_from_differing": bool(len(differ) >= count), "silent_pairs": silent,
            "median_db": float(np.median(medians)) if medians else 0.0,
            "p90_db": float(np.percentile(medians, 90)) if medians else 0.0,
            # not a gate: the same median over the bins where either render sounds, and how much
            # of the spectrogram sounds (median voice); the gate's median is 0 for a voice whose
            # renders leave more than half of it under the floor, however they differ
            "sounding_median_db": float(np.median(sounding)) if sounding else 0.0,
            "sounding_share_median": float(np.median(shares)) if shares else 0.0,
            "note": note, "sample_rate": sample_rate}


def gates(report: dict[str, Any]) -> dict[str, bool]:
    v = report["values"]
    out = {"within_one_step": v["within_one_step"] >= WITHIN_ONE_STEP_MIN,
           "categorical": v["categorical_agreement"] >= CATEGORICAL_MIN}
    if "audio" in report:
        out["log_mel"] = report["audio"]["median_db"] <= LOG_MEL_MEDIAN_MAX_DB
    return out


def to_markdown(report: dict[str, Any]) -> str:
    v = report["values"]
    lines = [f"# Parity: {report.get('quantization', 'int8')} vs fp32 ({report.get('model_id', '?')})", "",
             f"- samples: {v['samples']} latents ({report.get('sources', {})})",
             f"- DX7 values within one step: {v['within_one_step']:.4f} (gate {WITHIN_ONE_STEP_MIN}); "
             f"scaled only {v['scaled_within_one_step']:.4f}; exact {v['exact']:.4f}",
             f"- categorical agreement: {v['categorical_agreement']:.4f} (gate {CATEGORICAL_MIN})"]
    if "audio" in report:
        a = report["audio"]
        lines.append(f"- rendered audio, median log-mel difference: {a['median_db']:.3f} dB over {a['voices']} voices "
                     f"(p90 {a['p90_db']:.3f} dB; gate {LOG_MEL_MEDIAN_MAX_DB} dB)")
        if "sounding_median_db" in a:
            lines.append(f"- the same over the bins where either render sounds (not a gate): "
                         f"{a['sounding_median_db']:.3f} dB; they are {a['sounding_share_median']:.0%} of the "
                         "bins x frames (median voice)")
    if "output_grid" in report:
        grid = report["output_grid"] == "dx7"
        lines.append(f"- {report.get('quantization', 'int8')} output levels: " + ("on the DX7 steps (one level per step)" if grid
                                                 else f"plain [0, 1] head, 1/{65535 if report.get('quantization') == 'int16x8' else 255} steps"))
    if "tflite_fp32_max_abs" in report:
        lines.append(f"- TFLite fp32 vs torch fp32, max |difference| of the output vector: "
                     f"{report['tflite_fp32_max_abs']:.2e}")
    for name, part in report.get("kernels", {}).items():
        audio = f", log-mel median {part['audio']['median_db']:.3f} dB" if "audio" in part else ""
        lines.append(f"- {name} kernels{' (figures above)' if name == report.get('main_kernels') else ''}: "
                     f"{part['values']['within_one_step']:.4f} within one step, categorical "
                     f"{part['values']['categorical_agreement']:.4f}{audio}, invoke {part['invoke_us']:.1f} us "
                     f"-> {'passed' if part['passed'] else 'FAILED'}")
    lines += [f"- {report.get('quantization', 'int8')} model size: {report['size_bytes']} bytes (fp32: {report.get('fp32_size_bytes', '?')})",
              f"- invoke time (median, 1 thread, this machine): {report['invoke_us']:.1f} us",
              f"- gates: {report['gates']} -> {'PASSED' if report['passed'] else 'FAILED'}", "",
              "| parameter | kind | agreement | exact | max steps |", "|---|---|---|---|---|"]
    for p in v["per_parameter"]:
        agree = p.get("agree", p.get("within_one_step"))
        lines.append(f"| {p['name']} | {'categorical' if p['categorical'] else 'scaled'} | {agree:.4f} | "
                     f"{p['exact']:.4f} | {p['max_steps']} |")
    return "\n".join(lines) + "\n"
