"""``dxmacro demo``: the main job on embedded defaults (grows as the project does)."""

from __future__ import annotations

import argparse
from pathlib import Path

from dxmacro.inputs import arg_int


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("demo", help="run the main job on embedded defaults")
    p.add_argument("--out", default="demo-output", help="folder for what the demo writes")
    p.add_argument("--seed", type=arg_int(0, 2**32 - 1), default=0)
    p.add_argument("--device", action="store_true",
                   help="the device demo: simulated knobs play a scripted performance to an emulated DX7")
    p.add_argument("--run", default=None,
                   help="with --device: training run whose decoder is converted to the int8 bundle the device "
                        "plays (default: the shipped default model)")
    p.add_argument("--cartridge", default=None,
                   help="with --device: a DX7 cartridge (.syx) played through relative knobs and Program Change "
                        "(default: the model's anchor voices)")
    p.add_argument("--linear", action="store_true",
                   help="with --device: use the development decoder instead of a converted model")
    p.set_defaults(func=run)


def demo_bundle(out: Path, run_dir: str | None) -> tuple[Path, Path]:
    """Convert a run's decoder (default: the shipped model) to a signed int8 bundle, signed
    with a key made for this demo only."""
    from importlib import resources

    from conversion import keys, pipeline
    from dx7.files import atomic_write
    from host_training.jobs.export import load_decoder

    run_path = run_dir or str(resources.files("host_training").joinpath("default_model"))
    module, info = load_decoder(run_path)
    private, public = keys.generate(out / "demo-signing-key", overwrite=True)
    data, report, _ = pipeline.convert(module, info, keys.load_private_key(private), audio_voices=0)
    path = out / "model.dxm"
    atomic_write(path, data)
    print(f"converted {info['model_id']} to {path}: {report['quantization']} model {report['size_bytes']} bytes, "
          f"{report['values']['within_one_step']:.1%} of values within one DX7 step of fp32")
    return path, public


def run(args: argparse.Namespace) -> int:
    if args.device:
        from device.bench.demo import run_demo
        from host_training.audio.render import DexedRenderer

        out = Path(args.out)
        out.mkdir(parents=True, exist_ok=True)
        bundle, key = (None, None) if args.linear else demo_bundle(out, args.run)
        run_demo(out, seed=args.seed, bundle=bundle, public_key=key, renderer=DexedRenderer(44100),
                 cartridge=args.cartridge)
        return 0
    from dx7.files import atomic_write, encode_banks
    from host_training.audio.features import rms_db
    from host_training.audio.render import DexedRenderer, Note, write_wav
    from host_training.audio.synth_voices import generate

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
