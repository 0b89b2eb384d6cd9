"""Which parameter groups make a run's int8 decoder sound different from fp32?

    python scripts/int8_audio_attribution.py RUN

Builds the int8 decoder exactly as `dxmacro convert` does, decodes the parity report's latents
(test voices and knob sweeps) with it and with the fp32 module, and prints the audio gate's
figure (median over 128 voices of the median log-mel difference, xnnpack kernels) for the int8
values as they are, then once per group of parameters with only that group's int8 values kept
(fp32 everywhere else). A gate that fails while every group alone passes is failed by
many small differences together, not by one kind of output (docs/results.md). Also printed:
the same median over the bins where either render sounds and their share (the gate's median
is 0 for a voice that leaves most of its spectrogram under the floor), and the gate for the
fp32 output merely rounded to the int8 output's levels (what any int8 graph would cost; nothing
once the levels sit on the DX7 grid, conversion/output_grid.py).
"""

import sys

import numpy as np

from conversion import export, parity, pipeline
from conversion.runtime import TFLiteModel
from dx7 import layout
from dx7.params import PARAMS
from host_training.export import load_decoder

_VOICE_GROUPS = {"transpose": "pitch", "algorithm": "algorithm, feedback", "feedback": "algorithm, feedback",
                 "osc_key_sync": "algorithm, feedback", "pitch_mod_sens": "lfo"}
_OP_GROUPS = {"eg_rate": "op EG rates", "eg_level": "op EG levels", "kbd": "keyboard scaling",
              "freq": "frequencies", "detune": "frequencies", "osc": "frequencies", "output": "output levels"}


def group_of(name: str) -> str:
    if name in _VOICE_GROUPS:
        return _VOICE_GROUPS[name]
    if name.startswith("pitch_eg"):
        return "pitch"
    if name.startswith("lfo"):
        return "lfo"
    if name.startswith("op"):
        field = name.split("_", 1)[1]
        return next((g for prefix, g in _OP_GROUPS.items() if field.startswith(prefix)), "op other")
    return "other"


def main() -> None:
    run = sys.argv[1]
    module, info = load_decoder(run)
    graph = pipeline.device_graph(module, info)
    int8 = TFLiteModel(graph.to_tflite(int8=True), kernels="xnnpack", input_affine=graph.affine,
                       output_affine=graph.output_affine)
    latents, _ = pipeline.evaluation_latents(info, seed=1)  # as pipeline.convert draws them
    exact = export.reference(module, latents)
    ref, got = layout.decode(exact), layout.decode(int8(latents))
    whole = parity.audio_difference(ref, got, count=128, seed=0)
    print(f"{run}: audio gate {whole['median_db']:.3f} dB (p90 {whole['p90_db']:.2f}) with every int8 value, "
          f"{np.mean(ref == got):.1%} of the values exact; over the bins that sound {whole['sounding_median_db']:.3f} "
          f"dB, {whole['sounding_share_median']:.0%} of the bins x frames")
    # the floor of this int8 output: the fp32 output rounded to its levels (in the head's units:
    # on the DX7 grid, conversion/output_grid.py, that is the DX7 rounding itself and costs nothing)
    scale, zero = int8.output_quant
    head = exact if graph.output_affine is None else (exact - graph.output_affine[1]) / graph.output_affine[0]
    floor = layout.decode(int8.dequantize(np.clip(np.round(head / scale) + zero, -128, 127)))
    part = parity.audio_difference(ref, floor, count=128, seed=0)
    print(f"  fp32 output rounded to the int8 output levels (scale {scale:.5f}): {np.mean(ref == floor):.1%} of the "
          f"values exact, gate {part['median_db']:.3f} dB (p90 {part['p90_db']:.2f}), over the bins that sound "
          f"{part['sounding_median_db']:.3f} dB")
    # the gate's own 128 voices (audio_difference draws them where the vectors differ)
    differ = np.flatnonzero(np.any(ref != got, axis=1))
    pick = np.sort(np.random.default_rng(0).choice(differ, min(128, len(differ)), replace=False))
    groups = np.array([group_of(p.name) for p in PARAMS[: ref.shape[1]]])
    for g in sorted(set(groups)):
        only = ref[pick].copy()
        only[:, groups == g] = got[pick][:, groups == g]
        changed = np.mean(np.any(only != ref[pick], axis=1))
        part = parity.audio_difference(ref[pick], only, count=len(pick), seed=0)
        print(f"  only {g:20s} int8: {changed:4.0%} of the voices differ, gate {part['median_db']:.3f} dB "
              f"(p90 {part['p90_db']:.2f})", flush=True)


if __name__ == "__main__":
    main()
