"""``dxmacro train``: train every model of a config on a data set (resumes an interrupted run).

Several GPUs: ``torchrun --nproc_per_node=N -m dxmacro train ...`` (DistributedDataParallel)."""

from __future__ import annotations

import argparse

from dxmacro.inputs import arg_int


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("train", help="train the VAE with normalizing flows and its baselines on a data set")
    p.add_argument("--data", required=True, help="data set folder (dxmacro dataset build)")
    p.add_argument("--out", required=True, help="run folder (created; an existing one is resumed)")
    p.add_argument("--config", default="tiny", help="'tiny' (CPU, a subset), 'cpu' (CPU, the whole corpus), 'full' (GPU) or a TOML file (default tiny)")
    p.add_argument("--stop-after", type=arg_int(1), default=None, metavar="EPOCHS",
                   help="stop each model after this many epochs (resume later with the same command)")
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    import sys

    from dxmacro.outputs import check_output_folder
    from host_training.jobs.train import dist_info, train_run

    check_output_folder(args.out, "run folder")
    out = train_run(args.data, args.out, args.config, stop_after=args.stop_after, progress=not args.quiet,
                    command=" ".join(["dxmacro"] + sys.argv[1:]))
    if dist_info()[0] == 0:  # under torchrun, one line for the run, not one per process
        print(f"run in {out}")
    return 0
