"""``dxmacro dataset``: build a training set from cartridges, report on it, benchmark the builder."""

from __future__ import annotations

import argparse

from dxmacro.inputs import arg_float, arg_int


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("dataset", help="build, verify and report on a training data set")
    ds = p.add_subparsers(dest="dataset_command", metavar="ACTION", parser_class=type(p))
    ds.required = True

    b = ds.add_parser("build", help="render voices at several notes into a data set folder (resumable)")
    _voice_args(b)
    b.add_argument("--out", required=True, help="data set folder (created; an interrupted build there resumes)")
    b.add_argument("--workers", type=arg_int(1, 256), default=2, help="worker processes (default 2)")
    b.add_argument("--near-duplicate-db", type=arg_float(), default=None,
                   help="also drop voices whose pooled log-mel is within this RMS dB of a kept one (off by default)")
    b.add_argument("--group-db", type=arg_float(), default=None,
                   help="near-copy grouping threshold for splits, RMS dB (default: the built-in 2.0)")
    b.add_argument("--keep-work", action="store_true",
                   help="keep the rendered chunks (DIR/.build) so a rebuild with other tag/split settings is quick")
    b.add_argument("--quiet", action="store_true", help="no progress bar")
    b.set_defaults(func=run_build)

    r = ds.add_parser("report", help="print a data set's counts and write its card (markdown + PNG plots)")
    r.add_argument("dir", help="data set folder")
    r.add_argument("--card", help="folder for README.md and PNGs (default DIR/card)")
    r.set_defaults(func=run_report)

    v = ds.add_parser("verify", help="check every array of a data set against its manifest's sha256")
    v.add_argument("dir", help="data set folder")
    v.set_defaults(func=run_verify)

    n = ds.add_parser("bench", help="builder throughput vs raw render + features in one process")
    _voice_args(n)
    n.add_argument("-n", type=arg_int(1), default=300, help="voices to use (default 300)")
    n.add_argument("--workers", default="1,2", help="worker counts to time (default 1,2)")
    n.set_defaults(func=run_bench)


def _voice_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--voices", nargs="*", default=[], metavar="PATH", help=".syx files or folders (recursive)")
    p.add_argument("--synthetic", type=arg_int(0, 10_000_000), default=0, metavar="N", help="add N synthetic voices")
    p.add_argument("--seed", type=arg_int(0, 2**32 - 1), default=0, help="synthetic voice seed (default 0)")
    p.add_argument("--notes", default="48:100,60:60,60:100,72:100", help="NOTE:VELOCITY list")
    p.add_argument("--rate", type=arg_int(8000, 192_000), default=22050, help="sample rate, Hz (default 22050)")
    p.add_argument("--hold", type=arg_float(0.001, 60), default=1.5, help="seconds the key is held (default 1.5)")
    p.add_argument("--duration", type=arg_float(0.01, 60), default=2.0, help="seconds rendered per note (default 2.0)")


def _settings(args: argparse.Namespace):
    from dxmacro.errors import DxmacroError
    from host_training.dataset.build import BuildSettings, parse_notes

    if not args.voices and not args.synthetic:
        raise DxmacroError("give --voices PATH... and/or --synthetic N")
    if args.synthetic < 0:
        raise DxmacroError(f"--synthetic must be >= 0, got {args.synthetic}")
    extra = {}
    if getattr(args, "near_duplicate_db", None) is not None:
        extra["near_duplicate_db"] = args.near_duplicate_db
    if getattr(args, "group_db", None) is not None:
        extra["group_db"] = args.group_db
    return BuildSettings(notes=parse_notes(args.notes), rate=args.rate, hold=args.hold, duration=args.duration,
                         synthetic=args.synthetic, synthetic_seed=args.seed, **extra)


def run_build(args: argparse.Namespace) -> int:
    import sys
    import time

    from dxmacro.errors import DxmacroError
    from host_training.dataset.build import build_dataset

    if args.workers < 1:
        raise DxmacroError(f"--workers must be >= 1, got {args.workers}")
    from dxmacro.outputs import check_output_folder

    check_output_folder(args.out, "data set folder")
    settings = _settings(args)
    t = time.time()
    result = build_dataset(args.voices, args.out, settings, workers=args.workers, progress=not args.quiet,
                           log=lambda m: print(m, file=sys.stderr), keep_work=args.keep_work)
    c = result.manifest["counts"]
    print(f"built {args.out}: {c['kept']} voices kept of {c['voices_read']} read "
          f"({c['duplicates']} duplicates, {c['silent']} silent, {c['near_duplicates']} near duplicates dropped; "
          f"{c['files_bad']} bad files); train/validation/test {c['train']}/{c['validation']}/{c['test']}; "
          f"{time.time() - t:.0f} s")
    return 0


def run_report(args: argparse.Namespace) -> int:
    from pathlib import Path

    from dx7.files import atomic_write
    from host_training.dataset.report import card_text, write_plots
    from host_training.dataset.store import open_dataset

    ds = open_dataset(args.dir)
    text = card_text(ds)
    card = Path(args.card) if args.card else Path(args.dir) / "card"
    card.mkdir(parents=True, exist_ok=True)
    pngs = write_plots(ds, card)
    text += "\n## Plots\n\n" + "\n".join(f"![{p.stem}]({p.name})" for p in pngs) + "\n"
    atomic_write(card / "README.md", text.encode())
    print(text)
    print(f"wrote {card / 'README.md'} and {', '.join(p.name for p in pngs)}")
    return 0


def run_verify(args: argparse.Namespace) -> int:
    from host_training.dataset.store import open_dataset

    ds = open_dataset(args.dir, verify=True)
    print(f"{args.dir}: {len(ds)} voices, {len(ds.manifest['arrays'])} arrays, all checksums match")
    return 0


def run_bench(args: argparse.Namespace) -> int:
    import dataclasses
    import os

    from dxmacro.errors import DxmacroError
    from host_training.dataset.bench import bench
    from host_training.dataset.ingest import ingest

    settings = _settings(args)
    ing = ingest(args.voices, (), settings.synthetic, settings.synthetic_seed)
    voices = ing.voices[: args.n]
    if not voices:
        raise DxmacroError("no voices to benchmark")
    workers = [int(w) for w in args.workers.split(",")]
    print(f"benchmark: {len(voices)} voices x {len(settings.notes)} notes, {settings.duration} s at "
          f"{settings.rate} Hz; {os.cpu_count()} CPUs (shared: figures are noisy)")
    bench(voices, dataclasses.replace(settings, synthetic=0), workers)
    return 0
