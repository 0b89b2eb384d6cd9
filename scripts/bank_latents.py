"""A voice bank's latents: the run's encoder vs the inverse regression flow, on voices the model never saw.

    python scripts/bank_latents.py [--run RUN] [--voices 64] [--int8]

Takes ``--voices`` voices (in corpus order, 2 per cartridge) from cartridges of
../shared/dx7/corpus that are not in the run's dataset_files.txt, gives each its latent both
ways (host_training/jobs/bank.py, as `dxmacro bank build --latent encoder|inverse` does) and
reports, per method:

- the log-mel distance (mean |dB| over the data set's notes, rendered the data set's way)
  between the voice and the voice decoded from its latent, fp32 (the torch head) and, with
  ``--int8``, through the int8 bundle `dxmacro convert` makes of the run (no parity renders);
- how far the latents lie from the prior: median and max norm (a 225-dim N(0, I) sample has
  norm ~15), the share of |z| > 4 per dimension, and the share of the knob dimensions inside
  the knob's range (export/info.json low..high) -- where a knob starts when the voice is picked.
"""

from __future__ import annotations

import argparse
import tempfile
from pathlib import Path

import numpy as np
import torch

from dx7 import Voice, layout
from host_training.jobs.bank import LatentFinder, read_cartridges
from host_training.jobs.runs import resolve_run

REPO = Path(__file__).resolve().parents[1]


def unseen_voices(run: Path, corpus: Path, n: int, per_cart: int = 2) -> list[Voice]:
    seen = {Path(line.strip()).name for line in (run / "dataset_files.txt").read_text().splitlines() if line.strip()}
    out: list[Voice] = []
    for cart in sorted(corpus.glob("*.syx")):
        if cart.name in seen:
            continue
        try:
            voices = read_cartridges([cart])
        except Exception:  # noqa: BLE001 - a corpus file that is not a clean cartridge is skipped
            continue
        out += [v.voice for v in voices[:per_cart]]
        if len(out) >= n:
            return out[:n]
    return out


def distance(finder: LatentFinder, a: Voice, b: Voice) -> float:
    return float(np.mean(np.abs(finder.features(a) - finder.features(b))))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--run", help="run folder (default: the shipped default model)")
    ap.add_argument("--corpus", default=str(REPO.parent / "shared" / "dx7" / "corpus"))
    ap.add_argument("--voices", type=int, default=64)
    ap.add_argument("--int8", action="store_true", help="also decode through the run's int8 bundle (converts it)")
    args = ap.parse_args()
    run = resolve_run(args.run)
    finder = LatentFinder(run)
    voices = unseen_voices(run, Path(args.corpus), args.voices)
    knobs = finder.info["semantic_dims"]
    int8 = None
    if args.int8:
        from conversion import bundle, keys, pipeline
        from conversion.runtime import TFLiteDecoder
        from host_training.jobs.export import load_decoder

        module, info = load_decoder(run)
        with tempfile.TemporaryDirectory() as tmp:
            private = keys.load_private_key(keys.generate(Path(tmp) / "key")[0])
            data, _, _ = pipeline.convert(module, info, private, audio_voices=0)
        int8 = TFLiteDecoder(bundle.decode(data, private.public_key()))
    print(f"{len(voices)} voices from cartridges outside {run.name}'s data set; model {finder.model_id}")
    print("| latent | log-mel fp32 (dB) | log-mel int8 (dB) | norm median / max | share |z|>4 | knob dims in range |")
    print("|---|---|---|---|---|---|")
    for method in ("encoder", "inverse"):
        z = finder.latents(voices, method)
        with torch.no_grad():
            vec = finder.model.to_vector(torch.from_numpy(z)).numpy()
        fp32 = [distance(finder, v, Voice.from_parameters(layout.decode(x), "R")) for v, x in zip(voices, vec)]
        i8 = "-"
        if int8 is not None:
            d = [distance(finder, v, Voice.from_parameters(int8.decode(zz), "R")) for v, zz in zip(voices, z)]
            i8 = f"{np.median(d):.2f} (mean {np.mean(d):.2f})"
        norm = np.linalg.norm(z, axis=1)
        inside = np.mean([[k["low"] <= zz[k["index"]] <= k["high"] for k in knobs] for zz in z])
        print(f"| {method} | {np.median(fp32):.2f} (mean {np.mean(fp32):.2f}) | {i8} | {np.median(norm):.1f} / "
              f"{norm.max():.1f} | {np.mean(np.abs(z) > 4) * 100:.1f} % | {inside * 100:.0f} % |")


if __name__ == "__main__":
    main()
