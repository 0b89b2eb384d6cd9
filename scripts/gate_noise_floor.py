"""How exact must an int8 decoder be to pass the audio gate for a given run?

    python scripts/gate_noise_floor.py RUN SIGMA [SIGMA ...]

Takes the parity report's latents (test voices and knob sweeps, as `dxmacro convert` draws
them), adds Gaussian noise of SIGMA DX7 steps (RMS) to the fp32 decoder's scaled slots before
they are rounded, and prints per SIGMA the share of DX7 values left exact and issue 5's audio
gate (median over 128 voices of the median log-mel difference, conversion/parity.py) with its
figure over the sounding bins. The real int8 decoders are 0.33 steps RMS from fp32 before the
rounding (scripts/int8_parity.py), with 82-85 % of the values exact; this says which SIGMA a
decoder would need instead.
"""

import argparse

import numpy as np

from conversion import export, parity, pipeline
from dx7 import layout
from host_training.export import load_decoder


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("run")
    ap.add_argument("sigma", type=float, nargs="+", help="noise RMS in DX7 steps")
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args()
    module, info = load_decoder(args.run)
    latents, _ = pipeline.evaluation_latents(info, seed=1)
    ref = export.reference(module, latents)
    values = layout.decode(ref)
    scaled, highs = layout.scaled_slots(), layout.scaled_highs()
    rng = np.random.default_rng(args.seed)
    for sigma in args.sigma:
        noisy = ref.copy()
        noisy[:, scaled] = np.clip(ref[:, scaled] + rng.standard_normal(ref[:, scaled].shape) * sigma / highs, 0, 1)
        got = layout.decode(noisy)
        a = parity.audio_difference(values, got, count=128, seed=0)
        print(f"{args.run} sigma {sigma:.3f} steps: {np.mean(got == values):.1%} of the values exact, gate "
              f"{a['median_db']:.3f} dB (limit {parity.LOG_MEL_MEDIAN_MAX_DB}), {a['sounding_median_db']:.3f} dB over "
              f"the sounding bins ({a['sounding_share_median']:.0%} of them)", flush=True)


if __name__ == "__main__":
    main()
