"""int8 parity of a run's decoder under conversion settings, side by side in one run.

    python scripts/int8_parity.py RUN [--parts N] [--audio VOICES]

Converts the run's decoder with the decode head's int8 levels on the DX7 grid
(conversion/output_grid.py) and with the plain [0, 1] head, and prints per int8 kernel set the
share of DX7 values within one step of fp32 and exact, the categorical agreement and, with
``--audio``, the rendered log-mel gate and its figure over the sounding bins (the same figures
as `dxmacro convert`'s parity report), and how far the int8 output of the scaled slots lies from
the fp32 output before either is rounded to a DX7 step (RMS, in DX7 steps, where the fp32 value
is inside the parameter's range; on the grid this includes the rounding itself, 0.29 steps RMS
for a uniform error), and the median time of the device's whole decode. ``--parts``: how many
parts each coupling's update is split into (conversion/equalize.py, GROUPS).
"""

import argparse
import tempfile
import time
from pathlib import Path

import numpy as np

from conversion import bundle, equalize, export, keys, pipeline
from conversion.runtime import TFLiteDecoder
from dx7 import layout
from host_training.jobs.export import load_decoder


def output_distance(decoder: TFLiteDecoder, module, latents: np.ndarray) -> float:
    """RMS of int8 minus fp32 output over the scaled slots, in DX7 steps, where fp32 is in range."""
    ref = export.reference(module, latents)[:, layout.scaled_slots()]
    got = decoder.model(latents)[:, layout.scaled_slots()]
    inside = (ref > 0) & (ref < 1)
    return float(np.sqrt(np.mean(((got - ref) * layout.scaled_highs())[inside] ** 2)))


def decode_time_us(decoder: TFLiteDecoder, latent: np.ndarray, repeats: int = 2000) -> float:
    """Median time of the device's whole decode (quantize, invoke, dequantize, the output affine
    where there is one, dx7.layout.decode), microseconds."""
    for _ in range(50):
        decoder.decode(latent)
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        decoder.decode(latent)
        times.append(time.perf_counter() - start)
    return float(np.median(times) * 1e6)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("run")
    ap.add_argument("--parts", type=int, default=equalize.GROUPS)
    ap.add_argument("--audio", type=int, default=0, help="voices rendered for the log-mel gate (0: none)")
    args = ap.parse_args()
    module, info = load_decoder(args.run)
    with tempfile.TemporaryDirectory() as tmp:
        private = keys.load_private_key(keys.generate(Path(tmp) / "key")[0])
        for grid in (False, True):
            data, report, _ = pipeline.convert(module, info, private, audio_voices=args.audio, groups=args.parts,
                                               grid=grid)
            latents, _ = pipeline.evaluation_latents(info, seed=1)  # the report's latents
            dec = TFLiteDecoder(bundle.decode(data, None))
            for name, part in report["kernels"].items():
                dec.use_kernels(name)
                v = part["values"]
                audio = ""
                if "audio" in part:
                    a = part["audio"]
                    audio = (f", log-mel {a['median_db']:.3f} dB (gate), {a['sounding_median_db']:.3f} dB over "
                             f"{a['sounding_share_median']:.0%} sounding")
                print(f"{args.run} grid={report['output_grid']} parts={args.parts} {name}: "
                      f"{v['within_one_step']:.4f} within one step, {v['exact']:.4f} exact, "
                      f"{v['categorical_agreement']:.4f} categorical{audio}, int8 output "
                      f"{output_distance(dec, module, latents):.3f} steps RMS from fp32, "
                      f"invoke {part['invoke_us']:.0f} us, decode {decode_time_us(dec, latents[0]):.0f} us "
                      f"-> {'passed' if part['passed'] else 'FAILED'}", flush=True)


if __name__ == "__main__":
    main()
