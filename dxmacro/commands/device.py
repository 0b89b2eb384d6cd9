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
    lr = ds.add_parser("learn", help="MIDI learn: the next control turned on [midi] input binds to a knob")
    lr.add_argument("--config", required=True, help="the device config; the binding is written into it")
    lr.add_argument("--knob", type=int, required=True, help="which [[knob]] table, 1.. (one more appends a knob)")
    lr.add_argument("--timeout", type=float, default=60.0, help="seconds to wait for a control (default 60)")
    lr.set_defaults(func=learn)


def run(args: argparse.Namespace) -> int:
    from device.control.config import load_config
    from device.runtime import run_device
    from dxmacro.errors import DxmacroError

    if args.duration is not None and not args.duration > 0:
        raise DxmacroError(f"--duration must be positive, got {args.duration}")
    cfg = load_config(args.config)
    return run_device(cfg, simulate=args.simulate, duration_s=args.duration)


def learn(args: argparse.Namespace) -> int:
    """Wait for one turn of a control on the config's [midi] input, write the binding, say what it was."""
    import time

    from device.control.config import load_config
    from device.control.learn import Learner, write_binding
    from device.runtime import open_midi_input
    from dxmacro.errors import DxmacroError

    cfg = load_config(args.config)
    if not cfg.midi_input:
        raise DxmacroError(f"{args.config}: [midi] input names no MIDI input port to learn from")
    if args.knob < 1:
        raise DxmacroError(f"--knob counts from 1, got {args.knob}")
    midi_in = open_midi_input(cfg)
    learner = Learner()
    print(f"knob {args.knob}: turn a control on {cfg.midi_input!r} (an encoder: a little both ways)", flush=True)
    try:
        end = time.monotonic() + args.timeout
        while (binding := learner.done(time.monotonic())) is None:
            if time.monotonic() > end:
                state = "" if midi_in.state == "connected" else f" (input {midi_in.last_error})"
                raise DxmacroError(f"no control was turned within {args.timeout:g} s{state}")
            for data in midi_in.poll():
                learner.feed(data, time.monotonic())
            time.sleep(0.005)
    finally:
        midi_in.close()
    write_binding(cfg.path, args.knob - 1, binding)
    print(f"knob {args.knob}: {binding.describe()} -> {cfg.path}")
    return 0
