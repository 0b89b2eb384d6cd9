"""``dxmacro render``: one voice, one note, to a WAV file."""

from __future__ import annotations

import argparse

from dxmacro.inputs import arg_float, arg_int


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("render", help="render one voice at one note to a WAV file (Dexed's engine)")
    p.add_argument("--voices", required=True, help=".syx or .json voice file")
    p.add_argument("--index", type=int, default=0, help="0-based voice index in the file (default 0)")
    p.add_argument("--note", type=int, default=60, help="MIDI note (default 60)")
    p.add_argument("--velocity", type=int, default=100, help="MIDI velocity 1..127 (default 100)")
    p.add_argument("--hold", type=arg_float(), default=0.75, help="seconds the key is held (default 0.75)")
    p.add_argument("--duration", type=arg_float(), default=1.0, help="seconds rendered (default 1.0)")
    p.add_argument("--rate", type=arg_int(8000, 192_000), default=44100, help="sample rate in Hz (default 44100)")
    p.add_argument("--backend", default="dexed", help="renderer backend (default dexed)")
    p.add_argument("--out", required=True, help="output WAV (32-bit float)")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from dxmacro.commands.voices import load_voices
    from dxmacro.errors import DxmacroError
    from host_training.audio.features import rms_db
    from host_training.audio.render import Note, make_renderer, write_wav

    voices = load_voices([args.voices])
    if not 0 <= args.index < len(voices):
        raise DxmacroError(f"--index {args.index} is out of range: {args.voices} holds {len(voices)} voices (0..{len(voices) - 1})")
    note = Note(args.note, args.velocity, args.hold, args.duration)
    renderer = make_renderer(args.backend, args.rate)
    voice = voices[args.index].voice
    audio = renderer.render(voice, note)
    write_wav(args.out, audio, args.rate)
    print(f"wrote {args.out}: {voice.name.strip()!r} note {note.note} vel {note.velocity}, {len(audio)} samples "
          f"at {args.rate} Hz, level {rms_db(audio):.1f} dBFS RMS")
    return 0
