"""``dxmacro hil``: the hardware-in-the-loop checks (device/bench/hil.py) against a synth at a bench.

    dxmacro hil --port "USB MIDI Interface" --reply-port "USB MIDI Interface" --report hil.json
    dxmacro hil --emulate --report hil.json      # the emulated DX7 on a private JACK server

Exit status 0 when no check failed (skipped checks say why), 1 otherwise.
"""

from __future__ import annotations

import argparse

from dxmacro.inputs import arg_float, arg_int


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("hil", help="hardware-in-the-loop checks of the controller against a synth")
    p.add_argument("--port", help="the synth's MIDI input port (name, prefix or substring)")
    p.add_argument("--reply-port", help="the synth's MIDI output, for dump-request read-back")
    p.add_argument("--loopback", help="an input port that sees what the synth receives (for latency)")
    p.add_argument("--api", choices=("alsa", "jack"), default="alsa", help="MIDI API (default alsa)")
    p.add_argument("--channel", type=arg_int(1, 16), default=1, help="the synth's receive channel 1..16 (default 1)")
    p.add_argument("--emulate", action="store_true",
                   help="check against the emulated DX7 on a private JACK server (needs jackd)")
    p.add_argument("--duration", type=arg_float(1, 86_400), default=60.0, help="length of the scripted performance, s")
    p.add_argument("--only", action="append", help="run only this check (repeatable): voice_dump, "
                   "performance, latency, recovery, audio")
    p.add_argument("--report", help="write the results as JSON here")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from device.bench import hil
    from dxmacro.errors import DxmacroError

    if bool(args.port) == bool(args.emulate):
        raise DxmacroError("give either --port NAME (your synth) or --emulate (the emulated DX7)")
    if not 1 <= args.channel <= 16:
        raise DxmacroError(f"--channel must be 1..16, got {args.channel}")
    if not 5.0 <= args.duration <= 3600:
        raise DxmacroError(f"--duration must be 5..3600 seconds, got {args.duration}")
    unknown = set(args.only or ()) - set(hil.CHECKS)
    if unknown:
        raise DxmacroError(f"unknown check {sorted(unknown)[0]!r} (known: {', '.join(hil.CHECKS)})")
    if args.emulate:
        from hardware.dx7_emulator import DX7Emulator
        from hardware.jack import JackServer

        with JackServer() as _jack:
            emu = DX7Emulator("dxmacro-hil-dx7", args.channel).start()
            try:
                target = hil.Target.of_emulator(emu)
                return _run(args, target)
            finally:
                emu.stop()
    target = hil.Target(args.port, args.channel, args.api, reply_port=args.reply_port, loopback=args.loopback)
    return _run(args, target)


def _run(args: argparse.Namespace, target) -> int:
    from pathlib import Path

    from device.bench import hil

    from dxmacro.errors import DxmacroError

    try:  # the audio check's sound: Dexed's engine, where the host extra is installed
        from host_training.audio.render import DexedRenderer

        renderer = DexedRenderer(44100)
    except (ImportError, DxmacroError):
        renderer = None
    print(f"HIL checks against {target.port} ({target.api}, channel {target.channel})")
    results = hil.run_all(target, duration_s=args.duration, only=args.only, renderer=renderer)
    if args.report:
        hil.write_report(Path(args.report), target, results)
        print(f"report: {args.report}")
    failed = [r.name for r in results if r.status == hil.FAIL]
    print("FAILED: " + ", ".join(failed) if failed else "all checks passed or were skipped with a reason")
    return 1 if failed else 0
