"""How much issue 5's audio gate depends on which latents it is judged on.

    python scripts/gate_mix.py RUN [--tests 256 1024] [--seed 0] [--draws K]

Converts the run's decoder once (as `dxmacro convert` does, XNNPACK kernels) and takes the audio
gate (median over 128 voices of the median log-mel difference between the int8 and the fp32
decoder, conversion/parity.py) on the parity report's latents with N of the run's encoded test
voices for each N in --tests (the knob sweeps stay the same 16 voices x knobs x 11 steps), on the
test voices alone and on the sweeps alone. The report's mix depends on how many test latents
the run carries: a run's export keeps up to 1024, the shipped default model 256
(scripts/ship_default_model.py). ``--draws K``: the gate for K draws of its 128 voices from the
same latents (the report draws with seed 0), to show how much of a difference is the draw's.
"""

import argparse
import tempfile
from pathlib import Path

import numpy as np

from conversion import bundle, export, keys, parity, pipeline
from conversion.runtime import TFLiteDecoder
from dx7 import layout
from host_training.export import load_decoder


def gates(decoder: TFLiteDecoder, module, latents: np.ndarray, draws: int) -> list[dict]:
    ref = layout.decode(export.reference(module, latents))
    got = layout.decode(decoder.model(latents))
    return [parity.audio_difference(ref, got, count=128, seed=seed) for seed in range(draws)]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("run")
    ap.add_argument("--tests", type=int, nargs="+", default=[256, 1024])
    ap.add_argument("--seed", type=int, default=0, help="which test voices are kept")
    ap.add_argument("--draws", type=int, default=1, help="draws of the 128 rendered voices per mix")
    args = ap.parse_args()
    module, info = load_decoder(args.run)
    with tempfile.TemporaryDirectory() as tmp:
        private = keys.load_private_key(keys.generate(Path(tmp) / "key")[0])
        data, _, _ = pipeline.convert(module, info, private, audio_voices=0)
    decoder = TFLiteDecoder(bundle.decode(data, None))
    decoder.use_kernels("xnnpack")
    tests = np.asarray(info["test_latents"], np.float32)
    rng = np.random.default_rng(args.seed)
    mixes = {}
    for n in args.tests:
        keep = np.sort(rng.choice(len(tests), min(n, len(tests)), replace=False))
        latents, parts = pipeline.evaluation_latents(dict(info, test_latents=tests[keep]), seed=1)
        mixes[f"{parts['test_split']} test voices + {parts['knob_sweeps']} sweep latents"] = latents
        if n == max(args.tests):
            mixes[f"{parts['test_split']} test voices alone"] = latents[: parts["test_split"]]
            mixes[f"{parts['knob_sweeps']} sweep latents alone"] = latents[parts["test_split"]:]
    for name, latents in mixes.items():
        found = gates(decoder, module, latents, args.draws)
        a = found[0]
        draws = " ".join(f"{g['median_db']:.2f}" for g in found)
        others = f"; draws 0-{args.draws - 1}: {draws}" if args.draws > 1 else ""
        print(f"{args.run}: {name}: gate {a['median_db']:.3f} dB (limit {parity.LOG_MEL_MEDIAN_MAX_DB}), "
              f"{a['sounding_median_db']:.3f} dB over the sounding bins ({a['sounding_share_median']:.0%}){others}",
              flush=True)


if __name__ == "__main__":
    main()
