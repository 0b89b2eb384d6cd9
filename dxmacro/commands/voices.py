"""``dxmacro voices``: inspect and convert voice files."""

from __future__ import annotations

import argparse
import json
import sys

from dx7 import Voice
from dx7.errors import DX7Error
from dx7.files import (
    MAX_FILE_BYTES,
    LoadedVoice,
    atomic_write,
    encode_banks,
    encode_singles,
    read_voice_file,
    voices_from_json,
    voices_to_json,
)
from dx7.reading import read_regular_file
from dxmacro.inputs import arg_int

FORMATS = ("bank", "singles", "json")


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("voices", help="inspect and convert DX7 voice files")
    vs = p.add_subparsers(dest="voices_command", metavar="ACTION", parser_class=type(p))
    vs.required = True

    ins = vs.add_parser("inspect", help="list the voices in .syx / .json files, with what was clamped")
    ins.add_argument("files", nargs="+", metavar="FILE")
    ins.add_argument("--json", action="store_true", help="machine-readable output")
    ins.add_argument("--strict", action="store_true", help="refuse out-of-range fields instead of clamping")
    ins.set_defaults(func=run_inspect)

    conv = vs.add_parser("convert", help="convert between banks, single-voice dumps and JSON")
    conv.add_argument("files", nargs="+", metavar="FILE", help=".syx (any DX7 voice messages) or .json inputs")
    conv.add_argument("--out", required=True, help="output file")
    conv.add_argument("--to", choices=FORMATS, help="output format (default: from the extension; .json -> json, "
                      "otherwise bank)")
    conv.add_argument("--channel", type=arg_int(1, 16), default=1,
                      help="MIDI channel 1..16 written into the sysex (default 1)")
    conv.add_argument("--dedupe", action="store_true", help="drop voices whose parameters repeat (names ignored)")
    conv.add_argument("--strict", action="store_true", help="refuse out-of-range fields instead of clamping")
    conv.set_defaults(func=run_convert)

    syn = vs.add_parser("synth", help="write plausible synthetic voices (the embedded default data set)")
    syn.add_argument("-n", type=arg_int(1, 100_000), default=32, help="number of voices (default 32)")
    syn.add_argument("--seed", type=arg_int(0, 2**32 - 1), default=0)
    syn.add_argument("--out", required=True, help=".syx (32-voice banks) or .json")
    syn.set_defaults(func=run_synth)


def load_voices(paths: list[str], *, strict: bool = False) -> list[LoadedVoice]:
    """Voices from .syx/.json files in order. Raises DX7Error naming the bad file."""
    out: list[LoadedVoice] = []
    for path in paths:
        if path.lower().endswith(".json"):
            data = read_regular_file(path, max_bytes=MAX_FILE_BYTES, what="voices JSON file")
            try:
                text = data.decode("utf-8")
            except UnicodeDecodeError:
                raise DX7Error("not UTF-8 text; not a voices JSON file", source=path) from None
            out += [LoadedVoice(v, path, i) for i, v in enumerate(voices_from_json(text, path))]
        else:
            out += read_voice_file(path, strict=strict).voices
    return out


def dedupe(voices: list[Voice]) -> list[Voice]:
    """First occurrence of each parameter set; names do not count."""
    seen: set[bytes] = set()
    kept = []
    for v in voices:
        key = v.content_key()
        if key not in seen:
            seen.add(key)
            kept.append(v)
    return kept


def run_inspect(args: argparse.Namespace) -> int:
    report = []
    for path in args.files:
        loaded = load_voices([path], strict=args.strict)
        report.append({
            "file": path,
            "voices": len(loaded),
            "clamped_voices": sum(1 for lv in loaded if lv.voice.fixes),
            "unused_bits_voices": sum(1 for lv in loaded if lv.unused_bits),
            "distinct": len({lv.voice.content_key() for lv in loaded}),
            "list": [{"slot": lv.slot + 1, "name": lv.voice.name, "algorithm": lv.voice["algorithm"] + 1,
                      "clamped": [str(f) for f in lv.voice.fixes],
                      "unused_bits": list(lv.unused_bits)} for lv in loaded],
        })
    if args.json:
        json.dump(report if len(report) > 1 else report[0], sys.stdout, indent=1)
        print()
        return 0
    for r in report:
        print(f"{r['file']}: {r['voices']} voices, {r['distinct']} distinct, {r['clamped_voices']} clamped, "
              f"{r['unused_bits_voices']} with unused bits set")
        for v in r["list"]:
            note = f"  clamped: {', '.join(v['clamped'])}" if v["clamped"] else ""
            print(f"  {v['slot']:3d}  {v['name']!s:10}  alg {v['algorithm']:2d}{note}")
    return 0


def run_convert(args: argparse.Namespace) -> int:
    voices = [lv.voice for lv in load_voices(args.files, strict=args.strict)]
    total = len(voices)
    if args.dedupe:
        voices = dedupe(voices)
    fmt = args.to or ("json" if args.out.lower().endswith(".json") else "bank")
    channel = args.channel - 1
    if fmt == "json":
        data = voices_to_json(voices).encode()
    elif fmt == "singles":
        data = encode_singles(voices, channel)
    else:
        data = encode_banks(voices, channel)
    atomic_write(args.out, data)
    dropped = f", {total - len(voices)} duplicates dropped" if args.dedupe else ""
    print(f"wrote {len(voices)} voices to {args.out} as {fmt}{dropped}")
    return 0


def run_synth(args: argparse.Namespace) -> int:
    from host_training.audio.synth_voices import generate

    voices = generate(args.n, seed=args.seed)
    data = voices_to_json(voices).encode() if args.out.lower().endswith(".json") else encode_banks(voices)
    atomic_write(args.out, data)
    print(f"wrote {len(voices)} synthetic voices (seed {args.seed}) to {args.out}")
    return 0
