"""``dxmacro device run``: the knob controller itself (on the Pi, or simulated here)."""

from __future__ import annotations

import argparse

from dxmacro.inputs import arg_float


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("device", help="run the knob controller (knobs -> latent -> decoder -> MIDI)")
    ds = p.add_subparsers(dest="device_command", metavar="ACTION", parser_class=type(p))
    ds.required = True
    r = ds.add_parser("run", help="run the control loop from a TOML config")
    r.add_argument("--config", required=True, help="TOML config (see device/config.example.toml)")
    r.add_argument("--simulate", action="store_true",
                   help="simulated knobs and buttons ([simulate] script) and an emulated DX7, in real time")
    r.add_argument("--duration", type=arg_float(0, 10**7), default=None, help="stop after this many seconds (default: run "
                   "until SIGTERM/Ctrl-C)")
    r.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from device.control.config import load_config
    from device.runtime import run_device
    from dxmacro.errors import DxmacroError

    if args.duration is not None and not args.duration > 0:
        raise DxmacroError(f"--duration must be positive, got {args.duration}")
    cfg = load_config(args.config)
    return run_device(cfg, simulate=args.simulate, duration_s=args.duration)
