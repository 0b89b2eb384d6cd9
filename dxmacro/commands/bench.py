"""``dxmacro bench``: benchmarks that print figures (targets are proven here, not in timed tests)."""

from __future__ import annotations

import argparse

from dxmacro.inputs import arg_float, arg_int


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("bench", help="benchmarks that print the figures docs/ quote")
    bs = p.add_subparsers(dest="bench_command", metavar="WHAT", parser_class=type(p))
    bs.required = True
    d = bs.add_parser("device", help="control-loop latency, jitter, scan rate and CPU against the emulated ADC")
    d.add_argument("--duration", type=arg_float(0.1, 86_400), default=40.0, help="seconds of real time (default 40)")
    d.add_argument("--profile", choices=("dexed", "dx7"), default="dexed",
                   help="output profile (dexed: USB at full speed; dx7: DIN byte budget)")
    d.add_argument("--data-rate", type=arg_int(8, 3300), default=860, help="ADS1115 data rate in SPS (default 860)")
    d.add_argument("--channels", type=arg_int(1, 4), default=4, help="knobs / ADC channels 1..4 (default 4)")
    d.add_argument("--seed", type=arg_int(0, 2**32 - 1), default=0)
    d.add_argument("--spin-us", type=arg_float(0, 2000), default=300.0,
                   help="microseconds at the end of each wait spent polling the clock instead of sleeping "
                        "(as the device does; 0 = plain sleeps)")
    d.add_argument("--bundle", help="decode with this model bundle (.dxm) instead of the built-in linear dev decoder")
    d.add_argument("--pubkey", help="the bundle signer's public key (verified on load)")
    d.add_argument("--kernels", choices=("xnnpack", "builtin"),
                   help="int8 kernels for the bundle (default: this runtime's own; see conversion/runtime.py)")
    d.set_defaults(func=run_device_bench)
    m = bs.add_parser("midi", help="a controller's knob CC -> first byte to the synth, over real JACK ports")
    m.add_argument("--moves", type=arg_int(10, 100_000), default=200, help="knob moves (default 200)")
    m.add_argument("--profile", choices=("dexed", "dexed_live", "dx7"), default="dexed",
                   help="output profile (default dexed: no byte budget, the loop's own latency)")
    m.add_argument("--period", type=arg_int(16, 4096), default=1024, help="JACK period in frames (default 1024)")
    m.add_argument("--seed", type=arg_int(0, 2**32 - 1), default=0)
    m.set_defaults(func=run_midi_bench)


def run_device_bench(args: argparse.Namespace) -> int:
    from device.bench.realtime import run_bench
    from dxmacro.errors import DxmacroError
    from hardware.ads1x15 import Chip

    ADS1115_DATA_RATES = Chip.ADS1115.data_rates

    if args.data_rate not in ADS1115_DATA_RATES:
        raise DxmacroError(f"--data-rate must be one of {ADS1115_DATA_RATES}, got {args.data_rate}")
    if not 1 <= args.channels <= 4:
        raise DxmacroError(f"--channels must be 1..4, got {args.channels}")
    if not 2.0 <= args.duration <= 3600:
        raise DxmacroError(f"--duration must be 2..3600 seconds, got {args.duration}")
    decoder = None
    if args.bundle:
        from device.runtime import load_bundle_decoder

        decoder = load_bundle_decoder(args.bundle, args.pubkey)
        if args.kernels:
            decoder.use_kernels(args.kernels)
        decoder.self_test()
        print(f"decoder: {decoder.bundle.model_id} ({decoder.model.kernels} int8 kernels)")
    result = run_bench(spin_s=args.spin_us * 1e-6, duration_s=args.duration, profile=args.profile, data_rate=args.data_rate,
                       channels=args.channels, seed=args.seed, decoder=decoder)
    for line in result.lines():
        print(line)
    return 0


def run_midi_bench(args: argparse.Namespace) -> int:
    from device.bench.midi_latency import run_midi_latency
    from dxmacro.errors import DxmacroError
    from hardware.errors import HardwareError

    try:
        result = run_midi_latency(moves=args.moves, profile=args.profile, seed=args.seed, period=args.period)
    except HardwareError as exc:
        raise DxmacroError(str(exc)) from None
    for line in result.lines():
        print(line)
    return 0
