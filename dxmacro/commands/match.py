"""``dxmacro match``: a recording (any pitch), or several of one sound, -> the DX7 voice that
sounds closest."""

from __future__ import annotations

import argparse
import math
import sys
import time
from pathlib import Path

DEFAULT_SECONDS = 10.0  # host_training.jobs.match.DEFAULT_SECONDS (not imported here: torch loads late)
# below this the start (Python, torch, scipy, the whole corpus's retrieval: 3-4 s on 2 busy cores)
# and the candidates always judged leave --seconds unkept (docs/results.md, "How long a match takes")
MIN_SECONDS = 5.0
# the process's exit after the match: Python unloading torch takes 0.4-0.7 s (measured on 1 core),
# which the user waits for too
EXIT_S = 0.6


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("match", help="sound matching: a WAV recording -> a DX7 voice (.syx)")
    p.add_argument("audio", nargs="+", help="WAV file: one note of the sound to match (silence or a steady noise "
                   "floor before the note is skipped and the floor taken out); several files, the same sound at "
                   "several pitches, are matched by one voice that sounds closest to all of them")
    p.add_argument("--run", default=None, help="run folder (default: the shipped default model)")
    p.add_argument("--data", default=None, help="data set for retrieval (default: the run's, when present)")
    p.add_argument("--out", required=True, help="output .syx (single-voice dump)")
    p.add_argument("--name", default="MATCH", help="voice name (default MATCH)")
    p.add_argument("--gain", type=_gain, default=None, metavar="auto|DB",
                   help="how much louder the recording is played before matching: auto (default) reads it "
                   "against the training voices (a recording's level is the interface's, not the voice's); "
                   "0 matches it as recorded, as a render of the data set's own level should be")
    p.add_argument("--note", type=_notes, default=None, metavar="auto|N[,N...]",
                   help="MIDI note each recording plays, in the order of the files: auto (default) hears it "
                   "against the training voices; give it when you know it (an octave is a matter of the voice's "
                   "transpose)")
    p.add_argument("--hold", type=float, default=None, metavar="SECONDS",
                   help="how long the key was held, from the note-on (default: read from the recording)")
    p.add_argument("--seconds", type=float, default=DEFAULT_SECONDS, metavar="N",
                   help=f"time for the whole match, model loading included ({MIN_SECONDS:g} or more; default "
                   f"{DEFAULT_SECONDS:g}); more time, more voices tried")
    p.add_argument("--candidates", type=int, default=1, metavar="N",
                   help="also write the N best distinct voices (1-32) as a 32-voice bank beside --out "
                   "(OUT-candidates.syx), best first, each named by its rank and distance, to audition")
    p.add_argument("--search", choices=("greedy+cma", "greedy", "cma"), default="greedy+cma",
                   help="parameter search after retrieval: greedy+cma (the line search from each of the best "
                   "candidates, then CMA-ES with the time left; default, measured best at equal time), "
                   "greedy (the line search alone) or cma (CMA-ES alone)")
    p.set_defaults(func=run)


def _gain(text: str) -> float | None:
    if text == "auto":
        return None
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is neither auto nor a gain in dB") from None
    if not -60.0 <= value <= 60.0:
        raise argparse.ArgumentTypeError(f"{value:g} dB is outside -60..60")
    return value


def _notes(text: str) -> list[int] | None:
    if text == "auto":
        return None
    notes = text.split(",")
    for n in notes:
        if not n.strip().isdigit() or int(n) > 127:
            raise argparse.ArgumentTypeError(f"{n.strip()!r} is neither auto nor a MIDI note 0-127")
    return [int(n) for n in notes]


def command_started() -> float:
    """When the user's wait began, on ``time.monotonic``'s clock: the process's start where it
    is the `dxmacro` command (Linux: /proc), so that --seconds counts Python's start and the
    imports too (0.3-0.7 s measured, 17 % of a 3 s match); now where `match` runs inside a longer
    process (tests, scripts) or the start cannot be read."""
    import os

    prog = Path(sys.argv[0])
    if not (prog.name == "dxmacro" or (prog.parent.name == "dxmacro" and prog.name in ("cli.py", "__main__.py"))):
        return time.monotonic()  # not `dxmacro` itself (`python -m pytest` is a __main__.py too)
    try:
        with open("/proc/self/stat") as f:
            ticks = int(f.read().rsplit(")", 1)[1].split()[19])  # field 22, starttime, in clock ticks after boot
        ago = time.clock_gettime(time.CLOCK_BOOTTIME) - ticks / os.sysconf("SC_CLK_TCK")
    except (OSError, ValueError, IndexError, AttributeError):
        return time.monotonic()
    return time.monotonic() - ago if 0.0 <= ago < 60.0 else time.monotonic()


def run(args: argparse.Namespace) -> int:
    started = command_started()
    from dx7.files import atomic_write, encode_banks, encode_singles
    from dxmacro.errors import DxmacroError
    from host_training.jobs.match import matcher_for_run, prepare
    from host_training.audio.render import read_wav
    from host_training.jobs.runs import resolve_run

    if args.hold is not None and not 0.0 < args.hold <= 60.0:
        raise DxmacroError(f"--hold must be in (0, 60] seconds (got {args.hold:g})")
    if not MIN_SECONDS <= args.seconds <= 3600.0:
        raise DxmacroError(f"--seconds must be {MIN_SECONDS:g} to 3600 (got {args.seconds:g}): Python, the model "
                           "and the data set take about 3-4 s to start before the first voice is judged")
    if not 1 <= args.candidates <= 32:
        raise DxmacroError(f"--candidates must be 1 to 32 (got {args.candidates})")
    from dxmacro.outputs import check_output_file

    check_output_file(args.out, "voice file")
    if args.note is not None and len(args.note) != len(args.audio):
        raise DxmacroError(f"--note gives {len(args.note)} note(s) for {len(args.audio)} recording(s): one per file")
    run_dir = resolve_run(args.run)
    matcher = matcher_for_run(run_dir, args.data)
    recs = []
    for path in args.audio:
        audio, rate = read_wav(path)
        try:
            rec = prepare(audio, rate, matcher.s)
        except DxmacroError as exc:
            raise DxmacroError(f"{path}: {exc}") from None
        if rec.skipped_s >= 0.01:
            print(f"{path}: the note starts {rec.skipped_s:.2f} s in; matched from there")
        if abs(rec.dc_offset) >= 1e-4:  # -80 dBFS
            print(f"{path}: DC offset {rec.dc_offset:+.4f} ({20 * math.log10(abs(rec.dc_offset)):.0f} dBFS) "
                  "before the note, taken out")
        if rec.noise_db is not None:
            print(f"{path}: noise floor {rec.noise_db:.0f} dBFS before the note, taken out")
        recs.append(rec)
    result = matcher.match_recordings(recs, args.gain, args.note, name=args.name[:10], hold=args.hold,
                                      seconds=args.seconds - EXIT_S, search=args.search, started=started,
                                      progress=sys.stderr.isatty(), keep=args.candidates)
    for path, gain, note in zip(args.audio, result.gains_db, result.notes):
        if args.gain is None and gain is None:
            print(f"{path}: matched at its recorded level: no data set to read the level against (--data DIR)")
        elif args.gain is None:
            print(f"{path}: matched {gain:+.1f} dB from its recorded level, the level read against "
                  "the training voices (--gain 0: as recorded)")
        if args.note is None:
            print(f"{path}: heard at MIDI note {note}, up to the octave, and matched there (--note N if you know it)")
    if result.octave is not None:
        print(f"octave {result.octave}")
    how = {"release": "the release heard", "held": "no release heard before the end",
           "died": "the note died while held, judged held to the end",
           "listened": "the hold at which a candidate renders much closer than at the one the level shows",
           "decaying": "the bend heard judged a faster stage of the decay, the key held to the end"}
    for path, hold, length, held_as in zip(args.audio, result.holds, result.lengths,
                                           result.held or ("",) * len(result.holds)):
        told = ("given" if args.hold is not None
                else f"read from the recording, {how.get(held_as, held_as)}; --hold SECONDS if you know it")
        held = "to the end" if hold >= length else f"{hold:.3f} s"
        print(f"{path}: key held {held} of {length:.2f} s ({told})")
    atomic_write(args.out, encode_singles([result.voice]))
    at = (f"note {result.note} velocity {result.velocities[0]}" if len(result.notes) == 1
          else "notes " + ", ".join(str(n) for n in result.notes) + " (mean)")
    took = time.monotonic() - started
    print(f"wrote {args.out}: {result.source} voice, log-mel distance {result.distance_db:.2f} dB to the recording "
          f"at {at} and its timing ({result.evals} voices judged in {took:.1f} s)")
    if took > 1.1 * args.seconds:
        print(f"the match took {took:.1f} s, more than --seconds {args.seconds:g}: the machine is busy, or the "
              "recording long", file=sys.stderr)
    if args.candidates > 1:
        bank = Path(args.out).with_name(Path(args.out).stem + "-candidates.syx")
        voices = [replace_name(v, f"{k + 1} {d:.1f}dB") for k, (v, d, _) in enumerate(result.ranked)]
        atomic_write(bank, encode_banks(voices))
        print(f"wrote {bank}: the {len(voices)} best distinct voices, best first, named by rank and distance (dB)")
    return 0


def replace_name(voice, name: str):
    from dx7 import Voice

    return Voice.from_parameters(voice.parameters, name[:10])
