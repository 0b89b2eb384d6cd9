"""``dxmacro demo``: the main job on embedded defaults (grows as the project does)."""

from __future__ import annotations

import argparse
from pathlib import Path


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("demo", help="run the main job on embedded defaults")
    p.add_argument("--out", default="demo-output", help="folder for what the demo writes")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--device", action="store_true",
                   help="the device demo: simulated knobs play a scripted performance to an emulated DX7")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    if args.device:
        from device.demo import run_demo

        run_demo(Path(args.out), seed=args.seed)
        return 0
    from dx7.files import atomic_write, encode_banks
    from host_training.features import rms_db
    from host_training.render import DexedRenderer, Note, write_wav
    from host_training.synth_voices import generate

    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    voices = generate(32, seed=args.seed)
    bank = out / "synthetic_bank.syx"
    atomic_write(bank, encode_banks(voices))
    print(f"generated 32 synthetic voices (seed {args.seed}) -> {bank}")
    renderer = DexedRenderer(44100)
    for i, voice in enumerate(voices[:4]):
        audio = renderer.render(voice, Note(60, 100, 0.75, 1.0))
        wav = out / f"voice{i:02d}_n60.wav"
        write_wav(str(wav), audio, renderer.sample_rate)
        print(f"  {voice.name.strip():10}  alg {voice['algorithm'] + 1:2d}  {rms_db(audio):6.1f} dBFS  -> {wav}")
    return 0
