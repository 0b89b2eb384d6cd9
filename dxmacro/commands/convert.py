"""``dxmacro convert``: a training run's decoder -> signed ``model.dxm`` + parity report."""

from __future__ import annotations

import argparse
import json
import os
from pathlib import Path

from dxmacro.errors import DxmacroError
from dxmacro.inputs import arg_int


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("convert", help="convert a trained decoder to a signed int8 TFLite bundle (model.dxm)")
    p.add_argument("--run", required=True, help="training run folder (host_training's output)")
    p.add_argument("--out", required=True, help="bundle to write, e.g. model.dxm")
    p.add_argument("--key", help="Ed25519 private key (default: $DXMACRO_SIGNING_KEY); see `dxmacro keys generate`")
    p.add_argument("--report", help="parity report folder (default: beside --out, NAME.parity/)")
    p.add_argument("--audio-voices", type=arg_int(0, 100_000), default=128,
                   help="voices rendered for the log-mel parity (0: none); fewer than ~100 gives a noisy median")
    p.add_argument("--kind", help="another VAE model of the run than its main one, e.g. vae_mlp (the MLP head, for "
                                  "comparison); needs the run's data set")
    p.add_argument("--quantization", choices=("int8", "int16x8"), default=None,
                   help="int8 throughout, or int8 weights with int16 activations (TFLite's 16x8 mode: slower, "
                        "keeps near-tied choices such as the algorithm where int8 flips them); default: what the "
                        "run names (the shipped model: int16x8), else int8")
    g = p.add_argument_group("knob gates", "measure every knob as the device plays it (relative mode, rendered "
                                           "sweeps of validation voices) and ship only those that pass, best first")
    g.add_argument("--knob-gates", action="store_true", help="measure the knobs and ship only those that pass")
    g.add_argument("--gates", help="TOML file with a [knob_gates] table overriding the default gates")
    g.add_argument("--gate-voices", type=arg_int(3, 4096), default=64, help="validation voices (default 64)")
    g.add_argument("--gate-more", type=arg_int(0, 4096), default=64,
                   help="further validation voices for a knob that passes every gate at the median but not "
                        "steadily; it is judged on all its voices (default 64; 0: judge on --gate-voices alone)")
    g.add_argument("--gate-mode", choices=("relative", "tuned"), default="relative",
                   help="judge the knobs as relative mode plays any voice (default), or as it plays the voices of a "
                        "tuned bank (dxmacro bank build --tune-knobs)")
    g.add_argument("--gate-data", help="the run's data set (default: where the run says it was trained)")
    g.add_argument("--min-knobs", type=arg_int(0, 64), default=1,
                   help="refuse to write a bundle with fewer knobs than this (default 1)")
    p.set_defaults(func=run)


def load_run(run_dir: str, kind: str | None = None):
    """(module, info) from host_training.jobs.export.load_decoder, imported only here (torch)."""
    if not Path(run_dir).is_dir():
        raise DxmacroError(f"run folder {run_dir} does not exist")
    try:
        from host_training.jobs.export import load_decoder
    except ImportError as exc:
        raise DxmacroError(f"cannot load runs: host_training.jobs.export is unavailable ({exc})") from None
    try:
        return load_decoder(run_dir, kind)
    except (FileNotFoundError, KeyError) as exc:
        raise DxmacroError(f"run folder {run_dir} is incomplete: {exc}") from None


def report_folder(out: str, report_dir: str | None) -> Path:
    return Path(report_dir) if report_dir else Path(out).with_suffix(".parity")


def check_outputs(out: str, report_dir: str | None) -> None:
    """Refuse, before the slow conversion, outputs that cannot be written: a bundle path that is
    a folder, a report folder that is a file."""
    from dxmacro.outputs import check_output_file, check_output_folder

    check_output_file(out, "bundle")
    check_output_folder(str(report_folder(out, report_dir)), "parity report folder")


def write_outputs(data: bytes, report: dict, out: str, report_dir: str | None) -> Path:
    from conversion import parity
    from dx7.files import atomic_write

    folder = report_folder(out, report_dir)
    try:
        folder.mkdir(parents=True, exist_ok=True)
        atomic_write(folder / "parity.json", json.dumps(report, indent=1).encode())
        atomic_write(folder / "parity.md", parity.to_markdown(report).encode())
        atomic_write(out, data)
    except OSError as exc:
        raise DxmacroError(f"cannot write the conversion's outputs: {exc.strerror or exc} "
                           f"({exc.filename or folder})") from None
    return folder


def run(args: argparse.Namespace) -> int:
    key_path = args.key or os.environ.get("DXMACRO_SIGNING_KEY")
    if not key_path:
        raise DxmacroError("no signing key: pass --key KEY or set DXMACRO_SIGNING_KEY (create one with "
                           "`dxmacro keys generate`)")
    from conversion import keys

    private = keys.load_private_key(key_path)  # fail on a bad key or output path before the slow part
    check_outputs(args.out, args.report)
    gates = None
    if args.knob_gates:
        from host_training.jobs.knob_gates import KnobGates

        gates = KnobGates.from_toml(args.gates)  # a bad gates file fails before the slow part
    elif args.gates:
        raise DxmacroError("--gates needs --knob-gates")
    module, info = load_run(args.run, args.kind)
    from conversion import pipeline

    data, report, _ = pipeline.convert(module, info, private, audio_voices=args.audio_voices,
                                      quantization=args.quantization)
    if gates is not None:
        data = gate_knobs(data, report, private, gates, args)
    folder = write_outputs(data, report, args.out, args.report)
    print(f"wrote {args.out} ({len(data)} bytes; {report['quantization']} model {report['size_bytes']} bytes)")
    for name, part in report["kernels"].items():  # one line per int8 kernel set a device may run
        v = part["values"]
        audio = f", log-mel median {part['audio']['median_db']:.2f} dB" if "audio" in part else ""
        print(f"parity, {name} kernels: {v['within_one_step']:.2%} within one DX7 step, "
              f"{v['categorical_agreement']:.2%} categorical{audio}, {part['invoke_us']:.0f} us/invoke -> "
              f"{'passed' if part['passed'] else 'FAILED'}")
    print(f"parity {'PASSED' if report['passed'] else 'FAILED'}; report in {folder}")
    return 0


def gate_knobs(data: bytes, report: dict, private, gates, args: argparse.Namespace) -> bytes:
    """The bundle with only the knobs that pass ``gates`` (host_training.jobs.knob_gates), signed
    again; the verdicts go into the parity report and to the terminal."""
    import sys
    from dataclasses import asdict

    from conversion import bundle
    from conversion.runtime import TFLiteDecoder
    from host_training.jobs import knob_gates, knob_report
    from host_training.jobs.export import read_run

    data_dir = args.gate_data or read_run(args.run)["dataset_dir"]
    decoder = TFLiteDecoder(bundle.decode(data, private.public_key()))
    print(f"measuring {len(decoder.knobs)} knobs in {args.gate_mode} mode on {args.gate_voices} validation voices "
          f"of {data_dir} ...",
          file=sys.stderr)
    tune = None
    if args.gate_mode == "tuned":
        from host_training.jobs.knob_tune import tune_sweeps as tune

    def say(m: str) -> None:
        print(f"  {m}", file=sys.stderr)

    figures, tags, measured = knob_gates.measure(decoder, args.run, data_dir, args.gate_voices, tune=tune,
                                                 progress=say)
    knobs = knob_report.knob_travels(decoder.knobs)
    # a knob on a gate's edge (every gate holds at the median, not in enough redraws) is measured
    # again on further voices and judged on all of them: more voices, not a lower bar, decide it
    undecided = {k["dim"]: i for i, (k, f) in enumerate(zip(knobs, figures)) if gates.undecided(f)}
    if undecided and args.gate_more:
        names = ", ".join(knobs[i]["name"] for i in undecided.values())
        print(f"{names}: passing at the median but not steadily; measuring on {args.gate_more} more validation "
              f"voices ...", file=sys.stderr)
        more, _, _ = knob_gates.measure(decoder, args.run, data_dir, args.gate_more, tune=tune, progress=say,
                                        only=set(undecided), exclude=measured)
        if not more:
            print(f"  the data set has no validation voices left: judged on {len(measured)}", file=sys.stderr)
        for i, f in zip(undecided.values(), more):
            figures[i] = knob_gates.pooled(figures[i], f)
    shipped, verdicts = knob_gates.choose(knobs, figures, gates, tags)
    for v in verdicts:
        print(f"knob {v['name']}: Spearman {v['spearman']:.2f}, wrong sign {v['wrong_sign']:.0%}, selectivity "
              f"{v['selectivity']:.2f}, largest step {v['largest_step_db']:.1f} dB, pitch-changing "
              f"{v['pitch_changing']:.0%}, steady in {v['steadiness']:.0%} of redraws of {v['voices']} voices -> " + ("ships" if not v["failures"] else "dropped: " + "; ".join(v["failures"])))
    report["knob_gates"] = {"gates": asdict(gates), "voices": args.gate_voices, "more_voices": args.gate_more,
                            "mode": args.gate_mode,
                            "verdicts": verdicts,
                            "shipped": [k["name"] for k in shipped]}
    if len(shipped) < args.min_knobs:
        raise DxmacroError(f"{len(shipped)} of {len(knobs)} knobs pass the knob gates, fewer than --min-knobs "
                           f"{args.min_knobs}; nothing written")
    return bundle.with_manifest(data, private, knobs=[{"index": i, **k} for i, k in enumerate(shipped)])
