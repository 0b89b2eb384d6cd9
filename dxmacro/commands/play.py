"""``dxmacro play``: play the model on a laptop, a MIDI controller's knobs in, a synth (Dexed, a DX7) out."""

from __future__ import annotations

import argparse
import hashlib
import os
from pathlib import Path


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("play", help="the device loop on a laptop: a MIDI controller's knobs -> the model -> a synth")
    p.add_argument("--controller", required=True, help="the controller's MIDI port (name, prefix or part of it)")
    p.add_argument("--synth", required=True, help="the synth's MIDI port (Dexed, a USB MIDI interface)")
    p.add_argument("--bundle", default=None, help="model bundle (default: the shipped model, converted once and "
                   "kept in ~/.cache/dxmacro); verified with --public-key or the --config's [model] public_key")
    p.add_argument("--public-key", default=None, help="the public key --bundle must be signed with (the key the "
                   "device trusts)")
    p.add_argument("--allow-unsigned", action="store_true", help="play --bundle without verifying its signature "
                   "(development only; the device refuses it unless its config says allow_unsigned = true)")
    p.add_argument("--bank", default=None, help="voice bank (.dxb) made for the model: what next / previous and "
                   "Program Change step through (default: the model's anchors)")
    p.add_argument("--config", default=None, help="device config for knob bindings ([[knob]] cc ...), smoothing "
                   "and profile (default: knob i on CC 20+i, any channel)")
    p.add_argument("--api", choices=("jack", "alsa"), default="alsa", help="MIDI system (default alsa)")
    p.add_argument("--profile", choices=("dexed", "dexed_live", "dx7"), default="dexed",
                   help="what the synth is sent (docs/device.md: dexed_live changes sounding notes in Dexed)")
    p.add_argument("--channel", type=int, default=1, help="the synth's receive channel 1..16")
    p.add_argument("--duration", type=float, default=None, help="stop after this many seconds (default: Ctrl-C)")
    p.add_argument("--no-view", action="store_true", help="no live terminal view")
    p.add_argument("--linear", action="store_true", help="the DEVELOPMENT linear decoder instead of a model "
                   "(no conversion; for trying the set-up)")
    p.set_defaults(func=run)


def shipped_bundle() -> tuple[Path, Path]:
    """The shipped model as an int8 bundle and the public half of the key it was signed with,
    converted on first use (about 25 s) and cached by the model files' hash, so a second ``play``
    starts at once."""
    from importlib import resources

    from dxmacro.commands.demo import demo_bundle

    root = Path(str(resources.files("host_training").joinpath("default_model")))
    h = hashlib.sha256()
    for f in sorted(p for p in root.rglob("*") if p.is_file()):
        h.update(str(f.relative_to(root)).encode())
        h.update(f.read_bytes())
    cache = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "dxmacro" / f"play-{h.hexdigest()[:16]}"
    bundle, public = cache / "model.dxm", cache / "demo-signing-key.pub"
    if not (bundle.is_file() and public.is_file()):
        cache.mkdir(parents=True, exist_ok=True)
        print(f"converting the shipped model once (kept in {cache}) ...")
        bundle, public = demo_bundle(cache, None)
    return bundle, public


def bundle_key(args: argparse.Namespace) -> Path | None:
    """The key ``--bundle`` is verified with, as the device would: --public-key, else the
    config's [model] public_key; None (unverified) only with --allow-unsigned."""
    from device.play import configured_public_key
    from dxmacro.errors import DxmacroError

    if args.public_key:
        return Path(args.public_key)
    key = configured_public_key(Path(args.config)) if args.config else None
    if key is not None or args.allow_unsigned:
        return key
    raise DxmacroError(f"--bundle {args.bundle} would play unverified: give --public-key FILE (the key the device "
                       "trusts), a --config whose [model] names public_key, or, for development only, --allow-unsigned")


def run(args: argparse.Namespace) -> int:
    from device.play import PlayPorts, bank_voices, play_config, run_play
    from device.runtime import load_bundle_decoder
    from dxmacro.errors import DxmacroError

    if args.duration is not None and not args.duration > 0:
        raise DxmacroError(f"--duration must be positive, got {args.duration}")
    if not 1 <= args.channel <= 16:
        raise DxmacroError(f"--channel must be 1..16, got {args.channel}")
    ports = PlayPorts(args.controller, args.synth, args.api, args.profile, args.channel)
    if args.linear:
        from device.twins.linear_decoder import LinearDecoder

        decoder = LinearDecoder()
    else:
        bundle, key = (Path(args.bundle), bundle_key(args)) if args.bundle else shipped_bundle()
        decoder = load_bundle_decoder(bundle, key)
    cfg = play_config(ports, len(decoder.knobs), Path(args.config) if args.config else None)
    voices = bank_voices(Path(args.bank), decoder) if args.bank else None
    loop = run_play(cfg, decoder, voices=voices, duration_s=args.duration, view=not args.no_view)
    s = loop.stats
    held = loop.thru.passed if loop.thru is not None else 0
    print(f"stopped: {s.messages} messages ({s.bytes} bytes) sent, {held} passed through, voice "
          f"{loop.voice.name.strip()!r}; all notes off sent")
    return 0
