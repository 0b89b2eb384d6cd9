"""`dxmacro match` on recordings that do not begin at note-on, as real ones do not.

    python scripts/match_recordings.py onset DATA
    python scripts/match_recordings.py match RUN DATA [VOICES] [METHODS]
    python scripts/match_recordings.py gain RUN DATA [VOICES]
    python scripts/match_recordings.py pitch RUN DATA [VOICES] [retrieved|usual]
    python scripts/match_recordings.py dc RUN DATA [VOICES]
    python scripts/match_recordings.py notes RUN DATA [VOICES] [FOREIGN]

`onset`: host_training.jobs.match.find_onset on 600 training renders (note slot 2), which begin at
note-on: alone, after 0.3 s of digital silence (also with a DC offset of -40 dBFS under it
all), and after 0.3 s of white noise that goes on under the note (-90, -80, -70 dBFS): how
often the onset lands within one 5 ms frame of the note, and how often a steady noise floor
is heard.

`match`: test voices (default 48) rendered at note slot 2 with silence or noise before them
are matched (polish off, retrieval over DATA's training split) and the matched voice is scored
against the clean render (median log-mel MAE, dB). METHODS (comma-separated, default
old,a0,a1,a2,a4): `old` cuts the recording at sample 0 as `match` did before; `aX` starts at
the onset and takes out X times the noise floor's mean mel power (a0: onset alone).
`gain`: the same test voices recorded 20 dB quieter to 10 dB louder than the data set's
renders, matched as recorded (`--gain 0`) and with the gain read (`--gain auto`,
Matcher.retrieve), scored against the clean render as it is (log-mel MAE) and with the
matched voice brought to the clean render's level (timbre alone); and how far the gain read
lands from the one that undoes the offset.

`pitch`: test voices (default 24) played at MIDI notes 54, 60, 63, 66 and 69 at velocity
100, and 60 at velocity 60 (the data set's notes are 48, 60 and 72 at 100 and 60 at 60), matched at gain 0 as `match` did before (`old`: every candidate judged
at the nearest of the data set's notes), at the note given (`--note N`) and at the note heard
(the default), and scored against the clean render at the note played; and how often the note
heard has the pitch class played (`heard`), and sounding_note alone. The candidates are played
at the velocity of the retrieved note slot (Matcher.velocity), or with `usual` at the data
set's usual velocity.
`dc`: test voices (default 32) at note slot 2 over a DC offset (-50 to -30 dBFS) that runs
through the whole recording, from the note on or after 0.3 s of silence (and -80 dBFS noise),
matched as `dxmacro match` does (gain and note read), scored against the clean render.
`notes`: test voices (default 32) and foreign sounds (host_training.audio.foreign_sounds, default 20,
brought to the test voices' median level) recorded at MIDI notes 54, 66 and 78 (velocity 100,
off the data set's grid), matched from the one at 66 and from all three (`dxmacro match A B C`,
Matcher.match_recordings; gain and note read, polish off), and scored against the sound itself
at the three notes recorded, at 61 (between them) and at 85 (above them), which neither match
heard.
Results in docs/model.md, "Recordings" and "Several notes".
"""

import sys
from collections import Counter

import numpy as np
import torch

from host_training.audio.onset import ONSET_FRAME_S, find_onset
import host_training.jobs.match as hm
from host_training.dataset import open_dataset
from host_training.audio.sound import (RenderSettings, VoiceRenderer, feature_distance, features_level_db, features_of,
                                 gain_to_level, mel_power, to_db)

SLOT = 2
LEAD_S = 0.3
DC_OFFSET = 0.01  # -40 dBFS


def audible(audio: np.ndarray) -> bool:
    return 10 * np.log10(np.mean(audio ** 2) + 1e-24) >= -60


def onset_table(data: str) -> None:
    ds = open_dataset(data)
    s = RenderSettings.from_manifest(ds.settings)
    r = VoiceRenderer(s)
    rng = np.random.default_rng(0)
    idx = rng.choice(ds.indices("train"), 600, replace=False)
    hop = int(round(s.rate * ONSET_FRAME_S))
    lead = int(LEAD_S * s.rate)
    print("| opening | voices | onset within one 5 ms frame of the note | later by more | earlier by more "
          "| largest error (s) | noise floor heard |")
    print("|---|---|---|---|---|---|---|")
    for noise in ("alone", "silence", "silence + DC", -90.0, -80.0, -70.0):
        err, heard = [], []
        for i in idx:
            c = r.audio(ds.voice(int(i)), SLOT).astype(np.float64)
            if not audible(c):
                continue
            a = c if noise == "alone" else np.concatenate([np.zeros(lead), c])
            if noise == "silence + DC":
                a = a + DC_OFFSET
            if not isinstance(noise, str):
                a = a + rng.normal(0, 10 ** (noise / 20), a.size)
            o = find_onset(a, s.rate)
            err.append(o.start - (0 if noise == "alone" else lead))
            heard.append(o.noise_db is not None)
        e = np.array(err) / hop
        name = noise if isinstance(noise, str) else f"{noise:.0f} dBFS noise"
        print(f"| {name} | {len(e)} | {np.mean(np.abs(e) <= 1):.1%} | {np.mean(e > 1):.1%} | {np.mean(e < -1):.1%} "
              f"| {np.abs(e).max() * hop / s.rate:.3f} | {np.mean(heard):.1%} |")


def setup(run: str, data: str, n_voices: int) -> tuple[hm.Matcher, object, np.ndarray]:
    """The run's matcher (polish off, one thread), its data set, and the same test voices every time."""
    torch.set_num_threads(1)
    ds = open_dataset(data)
    return (hm.matcher_for_run(run, data, polish_renders=0), ds,
            np.random.default_rng(1).choice(ds.indices("test"), n_voices, replace=False))


def audible_renders(m: hm.Matcher, ds, test: np.ndarray):
    """(voice index, its render at SLOT) for the test voices that sound."""
    for i in test:
        clean = m.renderer.audio(ds.voice(int(i)), SLOT).astype(np.float64)
        if audible(clean):
            yield int(i), clean


def recorded(clean: np.ndarray, rate: int, lead_s: float, noise_db: float | None, seed: int,
             dc: float = 0.0) -> np.ndarray:
    """A render as recorded: ``lead_s`` of silence before it, 0.5 s after, white noise under it
    all (``noise_db`` dBFS), on a DC offset ``dc``."""
    a = np.concatenate([np.zeros(int(lead_s * rate)), clean, np.zeros(int(0.5 * rate))]) + dc
    if noise_db is not None:
        a = a + np.random.default_rng(seed).normal(0, 10 ** (noise_db / 20), a.size)
    return a


def match_table(run: str, data: str, n_voices: int, methods: list[str]) -> None:
    m, ds, test = setup(run, data, n_voices)
    s = m.s
    n = int(round(s.duration * s.rate))

    def cut_at_zero(a: np.ndarray) -> np.ndarray:
        return features_of(np.pad(a[:n], (0, max(0, n - len(a)))).astype(np.float32), s.rate)[0].astype(np.float32)

    def from_onset(a: np.ndarray, subtract: float) -> np.ndarray:
        hm.NOISE_SUBTRACT = subtract
        return hm.prepare(a, s.rate, s).features

    conds = [(0.0, None), (0.3, None), (0.6, None), (0.3, -90.0), (0.3, -80.0), (0.3, -70.0), (0.0, -80.0)]
    res = {c: {k: [] for k in methods} for c in conds}
    used = 0
    for i, clean in audible_renders(m, ds, test):
        used += 1
        target = cut_at_zero(clean)
        for delay, noise in conds:
            a = recorded(clean, s.rate, delay, noise, i)
            for how in methods:
                feat = cut_at_zero(a) if how == "old" else from_onset(a, float(how[1:]))
                voice = m.match(feat, name="T").voice
                res[(delay, noise)][how].append(feature_distance(m.renderer, voice, target, SLOT))
    print(f"{used} test voices at note slot {SLOT}; median log-mel MAE (dB) of the matched voice from the clean render")
    print("| silence before | noise floor | " + " | ".join(methods) + " |")
    print("|---|---|" + "---|" * len(methods))
    for (delay, noise), r in res.items():
        floor = "none" if noise is None else f"{noise:.0f} dBFS"
        print(f"| {delay:.1f} s | {floor} | " + " | ".join(f"{np.median(r[k]):.2f}" for k in methods) + " |")


def gain_table(run: str, data: str, n_voices: int) -> None:
    m, ds, test = setup(run, data, n_voices)
    s = m.s
    offsets = (-20.0, -10.0, 0.0, 10.0)
    res = {(o, how): [] for o in offsets for how in ("0", "auto")}
    err = {o: [] for o in offsets}
    used = 0
    for i in test:
        clean = m.renderer.audio(ds.voice(int(i)), SLOT).astype(np.float64)
        if 10 * np.log10(np.mean(clean ** 2) + 1e-24) < -40:  # stays over prepare's silence line at -20 dB
            continue
        used += 1
        target = features_of(clean.astype(np.float32), s.rate)[0]
        for o in offsets:
            rec = hm.prepare(clean * 10 ** (o / 20), s.rate, s)
            for how in ("0", "auto"):
                r = m.match_recording(rec, 0.0 if how == "0" else None, name="T")
                if how == "auto":
                    err[o].append(r.gain_db + o)
                mel = mel_power(m.renderer.audio(r.voice, SLOT), s.rate)[0]
                as_is = to_db(mel)
                timbre = to_db(mel * 10 ** ((features_level_db(target) - features_level_db(as_is)) / 10))
                res[(o, how)].append((np.mean(np.abs(as_is - target)), np.mean(np.abs(timbre - target))))
    print(f"{used} test voices at note slot {SLOT}; median log-mel MAE (dB) of the matched voice from the clean "
          "render, as it is / brought to the clean render's level; gain read: median error, share within 3 dB")
    print("| recorded at | --gain 0 | --gain auto | gain read: median error (dB) | within 3 dB |")
    print("|---|---|---|---|---|")
    for o in offsets:
        a, b, e = np.median(res[(o, "0")], axis=0), np.median(res[(o, "auto")], axis=0), np.array(err[o])
        print(f"| {o:+.0f} dB | {a[0]:.2f} / {a[1]:.2f} | {b[0]:.2f} / {b[1]:.2f} | {np.median(e):+.1f} "
              f"| {np.mean(np.abs(e) <= 3):.0%} |")


def pitch_table(run: str, data: str, n_voices: int, velocities: str) -> None:
    from host_training.audio.pitch import sounding_note
    from host_training.audio.render import DexedRenderer, Note

    if velocities == "usual":  # the other choice, measured in docs/model.md
        hm.Matcher.velocity = lambda self, slot: Counter(v for _, v in self.s.notes).most_common(1)[0][0]

    m, ds, test = setup(run, data, n_voices)
    s = m.s
    dr = DexedRenderer(s.rate)
    notes = ((54, 100), (60, 100), (60, 60), (63, 100), (66, 100), (69, 100))
    res = {(n, how): [] for n in notes for how in ("old", "given", "heard")}
    pc = {n: [] for n in notes}
    f0 = {n: [] for n in notes}
    for i in test:
        voice = ds.voice(int(i))
        for n, vel in notes:
            clean = dr.render(voice, Note(n, vel, s.hold, s.duration)).astype(np.float64)
            if 10 * np.log10(np.mean(clean ** 2) + 1e-24) < -40:
                continue
            target = features_of(clean.astype(np.float32), s.rate)[0]
            rec = hm.prepare(clean, s.rate, s)
            for how in ("old", "given", "heard"):
                if how == "old":
                    r = m.match(rec.features, name="T")
                else:
                    r = m.match_recording(rec, 0.0, n if how == "given" else None, name="T")
                if how == "heard":
                    pc[(n, vel)].append((r.note - n) % 12 == 0)
                f = features_of(dr.render(r.voice, Note(n, vel, s.hold, s.duration)), s.rate)[0]
                res[((n, vel), how)].append(np.mean(np.abs(f - target)))
            f0[(n, vel)].append((round(sounding_note(rec.note, s.rate)) - n) % 12 == 0)
    print(f"{len(f0[notes[0]])} test voices (velocity {velocities}); median log-mel MAE (dB) of the matched voice from the clean render at "
          "the note played; share of notes heard with the pitch class played")
    print("| note, velocity played | old | --note N | note heard | pitch class heard: match | sounding_note alone |")
    print("|---|---|---|---|---|---|")
    for n in notes:
        print(f"| {n[0]}, {n[1]} | " + " | ".join(f"{np.median(res[(n, h)]):.2f}" for h in ("old", "given", "heard"))
              + f" | {np.mean(pc[n]):.0%} | {np.mean(f0[n]):.0%} |")


def dc_table(run: str, data: str, n_voices: int) -> None:
    m, ds, test = setup(run, data, n_voices)
    s = m.s
    conds = [(0.0, 0.0, None), (0.003, 0.0, None), (0.01, 0.0, None), (0.003, 0.3, None), (0.01, 0.3, None),
             (0.03, 0.3, None), (0.01, 0.3, -80.0)]
    res = {c: [] for c in conds}
    used = 0
    for i, clean in audible_renders(m, ds, test):
        used += 1
        target = features_of(clean.astype(np.float32), s.rate)[0]
        for c, lead, noise in conds:
            a = recorded(clean, s.rate, lead, noise, i, c)
            r = m.match_recording(hm.prepare(a, s.rate, s), None, None, name="T")
            res[(c, lead, noise)].append(feature_distance(m.renderer, r.voice, target, SLOT))
    print(f"{used} test voices at note slot {SLOT}; gain and note read, polish off; median log-mel MAE (dB) of "
          "the matched voice from the clean render")
    print("| DC offset | before the note | matched |")
    print("|---|---|---|")
    for c, lead, noise in conds:
        what = "nothing" if lead == 0 else f"{lead} s of silence"
        what += "" if noise is None else f" + {noise:.0f} dBFS noise"
        level = f"{20 * np.log10(c):.0f} dBFS" if c else "none"
        print(f"| {c:.3f} ({level}) | {what} | {np.median(res[(c, lead, noise)]):.2f} |")


def notes_table(run: str, data: str, n_voices: int, n_foreign: int) -> None:
    from host_training.audio.foreign_sounds import sounds
    from host_training.audio.render import DexedRenderer, Note

    m, ds, test = setup(run, data, n_voices)
    s = m.s
    dr = DexedRenderer(s.rate)
    level = float(np.median(features_level_db(np.asarray(ds.features[test], dtype=np.float32))))
    recorded_at, unheard = (54, 66, 78), (61, 85)

    def foreign_player(sound):
        gain = gain_to_level([sound.play(n, 100, s.hold, s.duration, s.rate) for n in recorded_at], s.rate, level)
        return lambda n: gain * sound.play(n, 100, s.hold, s.duration, s.rate).astype(np.float64)

    players = [("test", lambda n, v=ds.voice(int(i)): dr.render(v, Note(n, 100, s.hold, s.duration)).astype(np.float64))
               for i in test]
    players += [("foreign", foreign_player(f)) for f in sounds(n_foreign, 12345)]
    places = (("recorded", recorded_at), ("61", (61,)), ("85", (85,)))
    res = {(kind, how, at): [] for kind in ("test", "foreign") for how in ("one", "three") for at, _ in places}
    for kind, play in players:
        clean = {n: play(n) for n in recorded_at + unheard}
        if any(10 * np.log10(np.mean(a ** 2) + 1e-24) < -40 for a in clean.values()):
            continue
        recs = {n: hm.prepare(clean[n], s.rate, s) for n in recorded_at}
        matched = {"one": m.match_recording(recs[66], None, None, name="T").voice,
                   "three": m.match_recordings([recs[n] for n in recorded_at], None, None, name="T").voice}
        for how, voice in matched.items():
            for at, notes in places:
                err = [np.mean(np.abs(features_of(dr.render(voice, Note(n, 100, s.hold, s.duration)), s.rate)[0]
                                      - features_of(clean[n].astype(np.float32), s.rate)[0])) for n in notes]
                res[(kind, how, at)].append(float(np.mean(err)))
    print("median log-mel MAE (dB) of the matched voice from the sound itself, mean over the notes; "
          "gain and note read, polish off")
    print("| sounds | n | from 66 alone: at 54/66/78 | at 61 | at 85 | from 54, 66, 78: at 54/66/78 | at 61 | at 85 |")
    print("|---|---|---|---|---|---|---|---|")
    for kind in ("test", "foreign"):
        cells = [f"{np.median(res[(kind, how, at)]):.2f}" for how in ("one", "three") for at, _ in places]
        print(f"| {kind} | {len(res[(kind, 'one', 'recorded')])} | " + " | ".join(cells) + " |")


if __name__ == "__main__":
    if len(sys.argv) >= 3 and sys.argv[1] == "onset":
        onset_table(sys.argv[2])
    elif len(sys.argv) >= 4 and sys.argv[1] == "match":
        match_table(sys.argv[2], sys.argv[3], int(sys.argv[4]) if len(sys.argv) > 4 else 48,
                    (sys.argv[5] if len(sys.argv) > 5 else "old,a0,a1,a2,a4").split(","))
    elif len(sys.argv) >= 4 and sys.argv[1] == "pitch":
        pitch_table(sys.argv[2], sys.argv[3], int(sys.argv[4]) if len(sys.argv) > 4 else 24,
                    sys.argv[5] if len(sys.argv) > 5 else "retrieved")
    elif len(sys.argv) >= 4 and sys.argv[1] == "notes":
        notes_table(sys.argv[2], sys.argv[3], int(sys.argv[4]) if len(sys.argv) > 4 else 32,
                    int(sys.argv[5]) if len(sys.argv) > 5 else 20)
    elif len(sys.argv) >= 4 and sys.argv[1] == "dc":
        dc_table(sys.argv[2], sys.argv[3], int(sys.argv[4]) if len(sys.argv) > 4 else 32)
    elif len(sys.argv) >= 4 and sys.argv[1] == "gain":
        gain_table(sys.argv[2], sys.argv[3], int(sys.argv[4]) if len(sys.argv) > 4 else 48)
    else:
        sys.exit(__doc__)
