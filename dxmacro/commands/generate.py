"""``dxmacro generate``: new voices from the model's prior as DX7 cartridges."""

from __future__ import annotations

import argparse

from dxmacro.inputs import arg_float, arg_int


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("generate", help="new DX7 voices from the trained prior (32-voice bank .syx)")
    p.add_argument("--run", default=None, help="run folder (default: the shipped default model)")
    p.add_argument("-n", type=arg_int(1, 100_000), default=32, help="number of voices (default 32; banks of 32)")
    p.add_argument("--seed", type=arg_int(0, 2**32 - 1), default=0)
    p.add_argument("--temperature", type=arg_float(), default=1.0, help="prior standard deviation (default 1.0)")
    p.add_argument("--out", required=True, help="output .syx (32-voice bulk dumps)")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from dx7.files import atomic_write, encode_banks
    from dxmacro.errors import DxmacroError
    from host_training.jobs.generate import generate
    from host_training.jobs.runs import resolve_run

    if not 0 < args.temperature <= 3:
        raise DxmacroError(f"--temperature must be in (0, 3], got {args.temperature}")
    voices = generate(resolve_run(args.run), args.n, args.seed, args.temperature)
    atomic_write(args.out, encode_banks(voices))
    print(f"wrote {args.out}: {len(voices)} new voices in {(len(voices) + 31) // 32} bank(s)")
    return 0
