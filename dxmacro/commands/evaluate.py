"""``dxmacro evaluate``: every model and baseline of a run on the test split, side by side."""

from __future__ import annotations

import argparse


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("evaluate", help="evaluate a training run (JSON + Markdown report + plots)")
    p.add_argument("--run", required=True, help="run folder (dxmacro train --out)")
    p.add_argument("--data", required=True, help="the data set the run was trained on")
    p.add_argument("--out", required=True, help="report folder")
    p.add_argument("--quiet", action="store_true")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from dxmacro.outputs import check_output_folder
    from host_training.jobs.evaluate import evaluate_run

    check_output_folder(args.out, "report folder")
    evaluate_run(args.run, args.data, args.out, progress=not args.quiet)
    print(f"wrote {args.out}/report.md, report.json and plots/")
    return 0
