"""How well a recording's note-off is read from its sound (host_training.audio.release), on
voices rendered by Dexed's engine at known holds (docs/results.md, "Reading the note-off").

    python scripts/hold_bench.py DATA [--voices N] [--json OUT]

Test-split voices of the data set DATA (seed 0), each at one of the notes 48, 60, 72 in turn,
velocity 100, held 0.3, 1.0, 1.5, 3.0 s, the file ending 0.5 s after the note-off ("kept"),
2.0 s after ("long") or at it ("cut"), played at 0 dB and 40 dB quieter. Per case: the hold
read (a hold not heard counts as the file's length, the key held to the end), its error, and
the judging error, the log-mel MAE (dB, over the file) between the voice itself rendered at the
hold read and at the true one: a note-off read wrong where the two sound alike (the note died
while held, or a release as slow as the decay) does not move a match. A case is right when the
hold is within TOL_S or the judging error is under TOL_DB.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np

from host_training.audio.release import read_note_off
from host_training.audio.render import DexedRenderer, Note
from host_training.dataset import open_dataset
from host_training.jobs.timing import fast_logmel

HOLDS = (0.3, 1.0, 1.5, 3.0)
ENDS = {"kept": 0.5, "long": 2.0, "cut": 0.0}
NOTES = (48, 60, 72)
GAINS_DB = (0.0, -40.0)
TOL_S = 0.025  # about one STFT hop (23 ms)
TOL_DB = 0.25


def cases(ds, voices: int, seed: int = 0):
    """(voice, note) of ``voices`` test-split voices that sound at their note, notes in turn."""
    rng = np.random.default_rng(seed)
    for j, i in enumerate(rng.choice(ds.indices("test"), voices, replace=False)):
        yield j, ds.voice(int(i)), NOTES[j % len(NOTES)]


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("data")
    ap.add_argument("--voices", type=int, default=48)
    ap.add_argument("--json", default=None)
    a = ap.parse_args()
    ds = open_dataset(a.data)
    rate = int(ds.settings["rate"])
    r = DexedRenderer(rate)
    rows = []
    for j, v, note in cases(ds, a.voices):
        for hold in HOLDS:
            for end, tail in ENDS.items():
                length = hold + tail
                audio = r.render(v, Note(note, 100, hold, length)).astype(np.float64)
                if 10 * np.log10(np.mean(audio ** 2) + 1e-24) < -60:
                    continue  # silent at this note: nothing to read
                true = fast_logmel(audio, rate)
                for gain in GAINS_DB:
                    off = read_note_off(audio * 10 ** (gain / 20), rate)
                    read = length if off.hold is None else off.hold
                    same = read if abs(read - hold) < 1e-3 else None
                    judged = 0.0 if same is not None else float(np.mean(np.abs(
                        fast_logmel(r.render(v, Note(note, 100, read, length)), rate) - true)))
                    rows.append({"voice": j, "name": v.name, "note": note, "hold": hold, "end": end,
                                 "gain": gain, "read": read, "heard": off.ended, "bend": off.bend_db_s,
                                 "error_s": read - hold, "judged_db": judged,
                                 "right": bool(abs(read - hold) <= TOL_S or judged <= TOL_DB)})
    if a.json:
        Path(a.json).write_text(json.dumps(rows))
    report(rows)


def report(rows: list[dict]) -> None:
    print(f"right: |hold read - hold| <= {TOL_S} s or judging error <= {TOL_DB} dB; "
          f"{len({r['voice'] for r in rows})} voices, {len(rows)} cases")
    print("| hold (s) | file ends | cases | right | error (abs.) median / 90th pct (s) | judging error median / 90th pct (dB) | release not heard |")
    print("|---|---|---|---|---|---|---|")
    for end in ENDS:
        for hold in HOLDS:
            sel = [r for r in rows if r["hold"] == hold and r["end"] == end]
            if not sel:
                continue
            e = np.abs([r["error_s"] for r in sel])
            d = np.array([r["judged_db"] for r in sel])
            print(f"| {hold:g} | {end} | {len(sel)} | {np.mean([r['right'] for r in sel]):.0%} "
                  f"| {np.median(e):.3f} / {np.percentile(e, 90):.3f} | {np.median(d):.2f} / {np.percentile(d, 90):.2f} "
                  f"| {np.mean([r['heard'] != 'release' for r in sel]):.0%} |")
    e = np.abs([r["error_s"] for r in rows])
    d = np.array([r["judged_db"] for r in rows])
    print(f"| all | all | {len(rows)} | {np.mean([r['right'] for r in rows]):.0%} | {np.median(e):.3f} / "
          f"{np.percentile(e, 90):.3f} | {np.median(d):.2f} / {np.percentile(d, 90):.2f} "
          f"| {np.mean([r['heard'] != 'release' for r in rows]):.0%} |")
    heard = np.abs([r["error_s"] for r in rows if r["heard"] == "release" and r["end"] != "cut"])
    print("releases heard in files that keep them: error (abs.) within 10 / 25 / 50 ms: "
          + " / ".join(f"{np.mean(heard <= t):.0%}" for t in (0.01, 0.025, 0.05)) + f" of {len(heard)}")
    kept = [r for r in rows if r["end"] != "cut"]
    print(f"files that keep the release: release not heard in {np.mean([r['heard'] != 'release' for r in kept]):.0%}"
          f" (of which 'died' {np.mean([r['heard'] == 'died' for r in kept]):.0%}); cut files read as released: "
          f"{np.mean([r['heard'] == 'release' for r in rows if r['end'] == 'cut']):.0%}")
    for gain in GAINS_DB:
        sel = [r for r in rows if r["gain"] == gain]
        print(f"at {gain:+.0f} dB: {np.mean([r['right'] for r in sel]):.0%} right of {len(sel)}")


if __name__ == "__main__":
    main()
