"""``dxmacro knobs report``: every knob of a bundle as a performer hears it, relative and absolute.

    dxmacro knobs report --bundle model.dxm --data DIR [--run RUN] [--voices 64] [--travel-scale 1] [--fp32] [--tuned] [--knob NAME ...]
        --out REPORT
"""

from __future__ import annotations

import argparse

from dxmacro.inputs import arg_float, arg_int


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("knobs", help="how the knobs of a model bundle sound (rendered sweeps)")
    verbs = p.add_subparsers(dest="verb", required=True)
    r = verbs.add_parser("report", help="sweep every knob from test-split voices through the int8 decoder, "
                                        "render with Dexed's engine, and measure what is heard")
    r.add_argument("--bundle", required=True, help="model bundle (model.dxm from dxmacro convert)")
    r.add_argument("--public-key", help="verify the bundle's signature with this key (.pub or private key)")
    r.add_argument("--data", required=True, help="the data set the run was trained on (its test split)")
    r.add_argument("--run", default=None, help="the run the bundle was converted from: its encoder gives the "
                                              "test voices' latents (default: the shipped default model)")
    r.add_argument("--voices", type=arg_int(1), default=64, help="test-split voices (default 64)")
    r.add_argument("--steps", type=arg_int(2, 1000), default=11, help="positions over each knob's travel (default 11)")
    r.add_argument("--travel-scale", type=arg_float(0.05, 1.0), default=1.0,
                   help="sweep this share of each knob's travel, centred (default 1: the whole travel); what a "
                        "shorter knob would measure")
    r.add_argument("--fp32", action="store_true", help="the run's fp32 decoder in relative mode beside int8")
    r.add_argument("--tuned", action="store_true",
                   help="also each decoder in tuned mode: relative knobs passing on only the parameters chosen for "
                        "each voice by rendering, as a tuned bank plays them (dxmacro bank build --tune-knobs)")
    r.add_argument("--knob", action="append", metavar="NAME",
                   help="report only this knob of the bundle (repeat for several; default: every knob)")
    r.add_argument("--threads", type=arg_int(1, 256), default=2, help="render threads (default 2)")
    r.add_argument("--out", help="write knobs.json and knobs.md to this folder")
    r.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    import sys

    import numpy as np

    from conversion import keys, runtime
    from dxmacro.errors import DxmacroError
    from host_training.jobs import knob_report
    from host_training.jobs.export import encode_all, load_vae, read_info
    from host_training.jobs.runs import resolve_run
    from host_training.dataset import open_dataset

    if not 1 <= args.voices <= 4096:
        raise DxmacroError(f"--voices must be 1..4096, got {args.voices}")
    if not 3 <= args.steps <= 101:
        raise DxmacroError(f"--steps must be 3..101, got {args.steps}")
    if not 1 <= args.threads <= 64:
        raise DxmacroError(f"--threads must be 1..64, got {args.threads}")
    key = keys.load_public_key(args.public_key) if args.public_key else None
    decoder = runtime.load_decoder(args.bundle, key)
    run_dir = resolve_run(args.run)
    model_id = read_info(run_dir).get("model_id")
    if decoder.bundle.model_id != model_id:
        raise DxmacroError(f"{args.bundle} holds model {decoder.bundle.model_id!r}, but {run_dir} is "
                           f"{model_id!r}: give --run the run the bundle was converted from")
    ds = open_dataset(args.data)
    idx = knob_report.test_voices(args.data, args.voices)
    vae = load_vae(run_dir)
    latents = encode_all(vae, ds.features, idx)  # encode_all sorts within a batch: idx is sorted already
    dtype = decoder.bundle.manifest.get("quantization", {}).get("input", {}).get("dtype", "int8")
    decoders = {"int16x8" if dtype == "int16" else "int8": decoder.decode}
    if args.fp32:
        import torch

        from dx7 import layout

        def fp32(z: np.ndarray) -> np.ndarray:
            with torch.no_grad():
                return layout.decode(vae.to_vector(torch.from_numpy(np.asarray(z, np.float32)[None])).numpy())[0]

        decoders["fp32"] = fp32
    knobs = knob_report.knob_travels(decoder.knobs, args.travel_scale)
    if args.knob:
        unknown = sorted(set(args.knob) - {k["name"] for k in knobs})
        if unknown:
            raise DxmacroError(f"{args.bundle} has no knob {', '.join(unknown)} "
                               f"(its knobs: {', '.join(k['name'] for k in knobs)})")
        knobs = [k for k in knobs if k["name"] in args.knob]
    tune = None
    if args.tuned:
        from host_training.jobs.knob_tune import tune_sweeps as tune
    report = knob_report.knob_report(decoders, knobs, args.data, latents, idx, steps=args.steps,
                                     threads=args.threads, progress=lambda m: print(f"  {m}", file=sys.stderr),
                                     tune=tune)
    report["bundle"], report["model_id"], report["travel_scale"] = str(args.bundle), model_id, args.travel_scale
    print(knob_report.markdown(report), end="")
    if args.out:
        knob_report.write_report(args.out, report)
        print(f"report: {args.out}/knobs.json, {args.out}/knobs.md")
    return 0
