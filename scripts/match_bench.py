"""Benchmark of `dxmacro match` on recordings of any timing and note (docs/results.md, "Sound matching").

    python scripts/match_bench.py RUN DATA [--voices N] [--seconds S] [--search greedy+cma|greedy|cma]
                                  [--timings H:L,...] [--strata novel,shelf] [--hold read|given] [--json OUT]

Each voice is rendered by Dexed's engine at velocity 100 at one of the notes 48, 60, 67, 72 (in
turn, so every timing hears every note equally) at every timing: held 0.3, 1.0, 1.5, 3.0 s with
0.5 s of release after the note-off ("kept") or with the file ending at the note-off ("cut").
Each render is matched as `dxmacro match REC --note N --gain 0 --seconds S` does (the note and
the level are given, the note-off is read) and the matched voice is scored by log-mel MAE (dB)
against the render at the recording's own note and timing. Beside it, on the same inputs:
- one-note retrieval: the training voice whose 64-band log-mel of the recording's one note (cut
  or padded to the data set's 2.0 s, moved onto the data set's notes as `match` moves it) is
  nearest (L2, its nearest note slot), rendered at the recording's note and timing;
- shared-part retrieval: the training voice nearest over the frames both hold the key for
  (host_training.jobs.timing.nearest_voices, at the true note-off), scored the same way.
Strata (N voices each, seed 0), both from the data set's test split, which the model never saw:
- novel: test voices; retrieval over the training split (the split keeps every voice's near-copy
  group out of training, so none has a near-copy there);
- shelf: test voices with a near-copy elsewhere in the test split (pooled log-mel at note 60
  within 2.0 dB RMS: the data set's own near-copy threshold), as a user's shelf has more than
  half the time; every retrieval (match's, one-note, shared-part) is over the training split and
  the rest of the test split, the voice's exact copies left out, so the near-copy is there to
  be found and the voice itself is not.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np
import torch

import host_training.jobs.match as hm
from dx7 import Voice
from host_training.audio.features import HOP, N_FFT
from host_training.audio.render import DexedRenderer, Note
from host_training.audio.sound import RenderSettings, features_of
from host_training.dataset import open_dataset
from host_training.jobs import timing
from host_training.model.baselines import Retrieval

NOTES = (48, 60, 67, 72)
TIMINGS = [(h, h + 0.5) for h in (0.3, 1.0, 1.5, 3.0)] + [(h, h) for h in (0.3, 1.0, 1.5, 3.0)]
OWN = (1.5, 2.0)  # the data set's own timing
NEAR_COPY_DB = 2.0


def mae(a: np.ndarray, b: np.ndarray) -> float:
    t = min(a.shape[1], b.shape[1])
    return float(np.mean(np.abs(a[:, :t] - b[:, :t])))


def shelf_voices(ds, pool: np.ndarray, n: int, seed: int = 0) -> list[int]:
    """Up to ``n`` test voices (row indices) with a near-copy among the other test voices of
    their near-copy group: a distinct voice whose pooled log-mel at note 60 (velocity 100) is
    within NEAR_COPY_DB RMS. ``pool``: (N, K, d) pooled features of the test rows, in order."""
    test = ds.indices("test")
    slot = RenderSettings.from_manifest(ds.settings).notes.index((60, 100))
    group = np.asarray(ds.group)[test]
    keys = [ds.params[i].tobytes() for i in test]
    out = []
    for j in np.random.default_rng(seed).permutation(len(test)):
        mates = [k for k in np.flatnonzero(group == group[j]) if keys[k] != keys[j]]
        if mates and float(np.sqrt(((pool[mates, slot] - pool[j, slot]) ** 2).mean(1)).min()) <= NEAR_COPY_DB:
            out.append(int(test[j]))
            if len(out) == n:
                break
    return out


def without_copies(matcher: hm.Matcher, rows: np.ndarray, params: np.ndarray, voice: Voice) -> tuple:
    """``matcher`` and ``rows`` with the voice's exact copies taken out of its retrieval."""
    keep = np.flatnonzero(np.any(params != voice.parameters, axis=1))
    r = matcher.retrieval
    retrieval = Retrieval(None, params[keep], r.pool, pooled=r.db.numpy()[keep])
    m = hm.Matcher(matcher.model, matcher.s, retrieval, params[keep], hm.Rows(matcher.train_features.array,
                                                                          rows[keep]), matcher.candidates)
    return m, keep


def one_note_db(ds, rows: np.ndarray, chunk: int = 2048) -> np.ndarray:
    """(N, K, 64, F) 64-band log-mel of the voices ``rows`` at every note slot (float16, read
    from the memory map a chunk at a time: the whole corpus is 2.3 GB as float32)."""
    out = []
    for start in range(0, len(rows), chunk):
        x = np.asarray(ds.features[rows[start:start + chunk]], dtype=np.float32)
        n, k, m, f = x.shape
        out.append(x.reshape(n, k, m // 2, 2, f).mean(3).astype(np.float16))
    return np.concatenate(out)


def one_note_nearest(db: np.ndarray, heard: np.ndarray) -> int:
    m, f = heard.shape
    q = heard.reshape(m // 2, 2, f).mean(1)
    d = np.concatenate([((db[i:i + 1024].astype(np.float32) - q) ** 2).sum((2, 3)).min(1)
                        for i in range(0, len(db), 1024)])
    return int(np.argmin(d))


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("run")
    ap.add_argument("data")
    ap.add_argument("--voices", type=int, default=16)
    ap.add_argument("--seconds", type=float, default=4.0)
    ap.add_argument("--search", default=hm.SEARCH)
    ap.add_argument("--timings", default=None, help="H:L,... (default: all eight)")
    ap.add_argument("--strata", default="novel,shelf")
    ap.add_argument("--json", default=None)
    ap.add_argument("--hold", choices=("read", "given"), default="read",
                    help="the note-off read from the recording (as `match` does) or given (--hold: the search alone)")
    a = ap.parse_args()
    torch.set_num_threads(1)
    timings = TIMINGS if a.timings is None else [tuple(map(float, t.split(":"))) for t in a.timings.split(",")]
    ds = open_dataset(a.data)
    train, test = ds.indices("train"), ds.indices("test")
    m_train = hm.matcher_for_run(a.run, a.data)
    s = m_train.s
    r = DexedRenderer(s.rate)
    strata = {}
    if "novel" in a.strata:
        strata["novel"] = [int(i) for i in np.random.default_rng(0).choice(test, a.voices, replace=False)]
    both = np.concatenate([train, test])
    if "shelf" in a.strata:
        m_both = hm.Matcher(m_train.model, s, Retrieval.of_dataset(ds, both), np.asarray(ds.params[both]),
                            hm.Rows(ds.features, both), m_train.candidates)
        strata["shelf"] = shelf_voices(ds, m_both.retrieval.db.numpy()[len(train):], a.voices)
    db64 = one_note_db(ds, both if "shelf" in a.strata else train)
    rows = []
    for stratum, voices in strata.items():
        for j, i in enumerate(voices):
            v = ds.voice(i)
            note = NOTES[j % len(NOTES)]
            if stratum == "shelf":
                m, keep = without_copies(m_both, both, np.asarray(ds.params[both]), v)
                db = db64[keep]
            else:
                m, db = m_train, db64[: len(train)]
            for hold, length in timings:
                audio = r.render(v, Note(note, 100, hold, length)).astype(np.float64)
                target = features_of(audio.astype(np.float32), s.rate)[0]
                if 10 * np.log10(np.mean(audio ** 2) + 1e-24) < -60:
                    continue  # silent at this note: nothing to match
                rec = hm.prepare(audio, s.rate, s)

                def score(params: np.ndarray) -> float:
                    w = Voice.from_parameters(np.asarray(params, dtype=np.uint8), "B")
                    return mae(features_of(r.render(w, Note(note, 100, hold, length)), s.rate)[0], target)

                heard = rec.shifted(m.grid_shift(note)).at(0.0)
                base = score(m.train_params[one_note_nearest(db, heard)])
                cols = timing.shared_columns(min(hold, length), s, m.retrieval.pool)
                shared = score(m.train_params[int(timing.nearest_voices(m.retrieval, [heard], cols, 1)[0])])
                t0 = time.monotonic()
                res = m.match_recordings([rec], 0.0, [note], seconds=a.seconds, search=a.search, started=t0,
                                         hold=hold if a.hold == "given" else None)
                took = time.monotonic() - t0
                row = {"stratum": stratum, "voice": int(i), "note": note, "hold": hold, "length": length,
                       "match": score(res.voice.parameters), "printed": res.distance_db, "one_note": base,
                       "shared": shared, "seconds": took, "evals": res.evals, "hold_read": res.holds[0],
                       "held": res.held[0] if res.held else "", "source": res.source,
                       "params": res.voice.parameters.tolist()}
                rows.append(row)
                print(json.dumps(row), flush=True)
    if a.json:
        Path(a.json).write_text(json.dumps(rows))
    report(rows)


def report(rows: list[dict]) -> None:
    print("\n| stratum | timing (hold / length, s) | inputs | match | one-note retrieval | shared-part retrieval "
          "| s per match |")
    print("|---|---|---|---|---|---|---|")
    for stratum in dict.fromkeys(r["stratum"] for r in rows):
        for key in dict.fromkeys((r["hold"], r["length"]) for r in rows):
            sel = [r for r in rows if r["stratum"] == stratum and (r["hold"], r["length"]) == key]
            own = " (data set's)" if key == OWN else ""
            kind = "cut" if key[0] >= key[1] else "kept"
            print(f"| {stratum} | {key[0]:g} / {key[1]:g} {kind}{own} | {len(sel)} "
                  f"| {np.median([r['match'] for r in sel]):.2f} | {np.median([r['one_note'] for r in sel]):.2f} "
                  f"| {np.median([r['shared'] for r in sel]):.2f} | {np.median([r['seconds'] for r in sel]):.1f} |")


if __name__ == "__main__":
    main()
