"""Building a data set: ingest -> render + analyse (parallel, resumable) -> drop silent and
near-duplicate voices -> tags, categories -> splits -> store.

Resumable: voices are rendered in fixed chunks (the chunk of a voice depends only on its
position in the ingested list), each saved atomically under DIR/.build/ as it completes.
A rerun with the same inputs and settings skips finished chunks; a rerun with different
ones starts over. Everything after rendering is cheap and deterministic, so an interrupted
build and an uninterrupted one end with identical arrays. manifest.json is written last.

Parallel: worker *processes* (spawned, each with its own Dexed engine and one BLAS thread):
the log-mel and descriptor numpy work holds the GIL for much of each voice, so threads would
not scale.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import sys
from collections.abc import Iterator, Sequence
from concurrent.futures import ProcessPoolExecutor, as_completed
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from dx7 import Voice
from dxmacro.errors import DxmacroError
from host_training.dataset import descriptors, splits, store, tags
from host_training.dataset.analysis import AnalysisSettings, analyse
from host_training.dataset.ingest import Ingested, ingest
from host_training.audio.features import HOP, N_FFT

DEFAULT_NOTES = ((48, 100), (60, 60), (60, 100), (72, 100))
WORK = ".build"
PLAN = "plan.json"


@dataclass(frozen=True)
class BuildSettings:
    notes: tuple[tuple[int, int], ...] = DEFAULT_NOTES
    rate: int = 22050
    hold: float = 1.5
    duration: float = 2.0
    n_mels: int = 128
    floor_db: float = -80.0  # absolute log-mel floor, dB re mel power 1.0
    silence_db: float = -70.0  # a note below this RMS (dBFS, whole render) is silent
    tag_quantile: float = 0.25  # lower/upper share of voices that get a paired tag
    group_db: float = 2.0  # near-copy link: pooled log-mel RMS distance below this (dB)
    near_duplicate_db: float | None = None  # drop voices this close to an earlier kept one
    split_fractions: tuple[float, float, float] = splits.SPLIT_FRACTIONS
    synthetic: int = 0
    synthetic_seed: int = 0

    def __post_init__(self) -> None:
        if not self.notes:
            raise DxmacroError("at least one (note, velocity) is needed")
        for n, v in self.notes:
            if not (0 <= n <= 127 and 1 <= v <= 127):
                raise DxmacroError(f"note:velocity {n}:{v} out of range (note 0..127, velocity 1..127)")
        if not 8000 <= self.rate <= 96000:
            raise DxmacroError(f"--rate must be 8000..96000 Hz, got {self.rate}")
        if not 0 < self.hold <= self.duration <= 30:
            raise DxmacroError(f"need 0 < hold ({self.hold}) <= duration ({self.duration}) <= 30 s")
        if self.n_mels % 8:
            raise DxmacroError(f"n_mels must be a multiple of 8, got {self.n_mels}")
        if not 0 < self.tag_quantile < 0.5:
            raise DxmacroError(f"tag quantile must be in (0, 0.5), got {self.tag_quantile}")

    def analysis(self) -> AnalysisSettings:
        return AnalysisSettings(tuple(map(tuple, self.notes)), self.rate, self.hold, self.duration, self.n_mels,
                                self.floor_db, self.silence_db)

    def to_json(self) -> dict[str, Any]:
        d = asdict(self)
        d["notes"] = [list(nv) for nv in self.notes]
        d["split_fractions"] = list(self.split_fractions)
        d.update(n_fft=N_FFT, hop=HOP, frames=self.analysis().frames, window="hann (periodic)",
                 mel="slaney, 0 Hz..nyquist, area-normalised",
                 features_unit="dB re mel power 1.0 (absolute), floored at floor_db, float16")
        return d


def parse_notes(text: str) -> tuple[tuple[int, int], ...]:
    """'48:100,60:60' -> ((48, 100), (60, 60))."""
    out = []
    for item in text.split(","):
        try:
            n, v = item.strip().split(":")
            out.append((int(n), int(v)))
        except ValueError:
            raise DxmacroError(f"--notes: {item!r} is not NOTE:VELOCITY (e.g. 60:100)") from None
    return tuple(out)


# -- rendering in chunks ----------------------------------------------------------------
_WORKER: dict[str, Any] = {}
_BLAS_ENV = ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS")


def single_threaded_blas():
    """One BLAS thread for the duration. Why: OpenBLAS threads the small mel matmul over
    both cores for a 5 % gain while burning a whole second core (measured: 22.5 vs 21.4
    voices/s at twice the CPU), which starves the other worker; the workers are the
    parallelism."""
    from threadpoolctl import threadpool_limits

    return threadpool_limits(limits=1, user_api="blas")


def _worker_init(rate: int) -> None:
    from host_training.audio.render import DexedRenderer

    _WORKER["limits"] = single_threaded_blas()  # kept for the worker's life
    _WORKER["renderer"] = DexedRenderer(rate)


def analyse_chunk(index: int, unpacked: list[bytes], a: AnalysisSettings) -> tuple[int, dict[str, np.ndarray]]:
    """Render and analyse one chunk of voices (runs in a worker)."""
    if "renderer" not in _WORKER or _WORKER["renderer"].sample_rate != a.rate:
        _worker_init(a.rate)
    results = [analyse(_WORKER["renderer"], Voice(tuple(u)), a) for u in unpacked]
    return index, {
        "features": np.stack([r.features for r in results]),
        "descriptors": np.stack([r.descriptors for r in results]),
        "rms_db": np.stack([r.rms_db for r in results]),
        "embedding": np.stack([r.embedding for r in results]),
    }


def _chunk_path(work: Path, index: int) -> Path:
    return work / f"chunk-{index:06d}.npz"


def _save_chunk(work: Path, index: int, arrays: dict[str, np.ndarray]) -> None:
    import io

    buf = io.BytesIO()
    np.savez(buf, **arrays)
    store.atomic_write_bytes(_chunk_path(work, index), buf.getvalue())


def _load_chunk(work: Path, index: int) -> dict[str, np.ndarray]:
    with np.load(_chunk_path(work, index), allow_pickle=False) as z:
        return {k: z[k] for k in z.files}


def render_chunks(voices: list[Voice], work: Path, a: AnalysisSettings, chunk: int, workers: int,
                  progress: bool = True) -> int:
    """Render every chunk not yet on disk; returns how many chunks were already done."""
    n_chunks = (len(voices) + chunk - 1) // chunk
    todo = [i for i in range(n_chunks) if not _chunk_path(work, i).is_file()]
    done_voices = len(voices) - sum(min(chunk, len(voices) - i * chunk) for i in todo)
    bar = _progress(len(voices), done_voices, progress)

    def payload(i: int) -> list[bytes]:
        return [v.to_unpacked() for v in voices[i * chunk : (i + 1) * chunk]]

    try:
        if workers <= 1:
            with single_threaded_blas():
                for i in todo:
                    _, arrays = analyse_chunk(i, payload(i), a)
                    _save_chunk(work, i, arrays)
                    bar.update(len(arrays["rms_db"]))
        else:
            import multiprocessing as mp

            # one BLAS thread per worker: the workers are the parallelism (children read the env at start)
            saved = {k: os.environ.get(k) for k in _BLAS_ENV}
            os.environ.update({k: "1" for k in _BLAS_ENV})
            try:
                pool = ProcessPoolExecutor(workers, mp_context=mp.get_context("spawn"), initializer=_worker_init,
                                           initargs=(a.rate,))
                pool.submit(int).result()  # start the workers now, under the env above
            finally:
                for k, v in saved.items():
                    if v is None:
                        os.environ.pop(k, None)
                    else:
                        os.environ[k] = v
            with pool:
                pending = set()
                queue = iter(todo)
                # keep a bounded number of chunks in flight: memory stays flat on the corpus
                for i in queue:
                    pending.add(pool.submit(analyse_chunk, i, payload(i), a))
                    if len(pending) >= 2 * workers:
                        break
                while pending:
                    fut = next(as_completed(pending))
                    pending.remove(fut)
                    i, arrays = fut.result()
                    _save_chunk(work, i, arrays)
                    bar.update(len(arrays["rms_db"]))
                    nxt = next(queue, None)
                    if nxt is not None:
                        pending.add(pool.submit(analyse_chunk, nxt, payload(nxt), a))
    finally:
        bar.close()
    return n_chunks - len(todo)


def _progress(total: int, initial: int, enabled: bool):
    from tqdm import tqdm

    return tqdm(total=total, initial=initial, unit="voice", desc="render", disable=not enabled, file=sys.stderr,
                smoothing=0.05)


def _iter_chunks(work: Path, n: int, chunk: int) -> Iterator[tuple[int, dict[str, np.ndarray]]]:
    for i in range((n + chunk - 1) // chunk):
        yield i * chunk, _load_chunk(work, i)


# -- the whole build ---------------------------------------------------------------------
@dataclass
class BuildResult:
    manifest: store.Manifest
    resumed_chunks: int = 0
    bad_files: list[tuple[str, str]] = field(default_factory=list)


def _plan(ing: Ingested, settings: BuildSettings, chunk: int) -> dict[str, Any]:
    """What the rendered chunks depend on: the voices in order, the render settings, the
    chunk size. (Tags, groups and splits are recomputed from the chunks at every finish.)"""
    h = hashlib.sha256()
    for v in ing.voices:
        h.update(v.to_unpacked())
    plan = {"analysis": asdict(settings.analysis()), "chunk": chunk, "voices": len(ing.voices),
            "voices_sha256": h.hexdigest()}
    return json.loads(json.dumps(plan))  # as it reads back from disk (lists, not tuples)


def build_dataset(voices: Sequence[Voice | str | os.PathLike[str]], out_dir: str | os.PathLike[str],
                  settings: BuildSettings | None = None, workers: int = 1, *, chunk: int = 32,
                  progress: bool = False, log=None, keep_work: bool = False) -> BuildResult:
    """Build (or finish building) a data set in ``out_dir`` from voices and/or voice file paths.
    ``keep_work`` keeps the rendered chunks (DIR/.build) so a rebuild with other tag/split
    settings does not render again."""
    settings = settings or BuildSettings()
    say = log or (lambda msg: None)
    out = Path(out_dir)
    paths = [p for p in voices if not isinstance(p, Voice)]
    given = [v for v in voices if isinstance(v, Voice)]
    ing = ingest(paths, given, settings.synthetic, settings.synthetic_seed)
    say(f"ingest: {ing.counts['files_read']}/{ing.counts['files_found']} files read, {ing.counts['voices_read']} "
        f"voices, {ing.counts['clamped']} clamped, {ing.counts['duplicates']} duplicates")
    for path, err in ing.bad_files:
        say(f"bad file: {path}: {err}")
    if not ing.voices:
        raise DxmacroError("no voices to build a data set from")
    out.mkdir(parents=True, exist_ok=True)
    work = out / WORK
    plan = _plan(ing, settings, chunk)
    manifest_path = out / store.MANIFEST
    if manifest_path.is_file():
        try:
            old = json.loads(manifest_path.read_text())
        except ValueError:
            old = {}
        if old.get("plan") == plan and old.get("settings") == json.loads(json.dumps(settings.to_json())):
            say(f"{out}: already built with these inputs and settings")
            return BuildResult(old, 0, ing.bad_files)
        manifest_path.unlink()  # being replaced: the folder is incomplete until the new manifest
    if work.is_dir():
        try:
            old_plan = json.loads((work / PLAN).read_text())
        except (OSError, ValueError):
            old_plan = None
        if old_plan != plan:
            say(f"{work}: left by a build with other inputs or settings; starting over")
            shutil.rmtree(work)
    work.mkdir(exist_ok=True)
    store.write_json(work / PLAN, plan)

    a = settings.analysis()
    resumed = render_chunks(ing.voices, work, a, chunk, workers, progress)
    if resumed:
        say(f"resumed: {resumed} chunks were already rendered")
    manifest = _finish(ing, settings, a, work, out, chunk, plan, say)
    if not keep_work:
        shutil.rmtree(work, ignore_errors=True)
    return BuildResult(manifest, resumed, ing.bad_files)


def _finish(ing: Ingested, s: BuildSettings, a: AnalysisSettings, work: Path, out: Path, chunk: int,
            plan: dict[str, Any], say) -> store.Manifest:
    n = len(ing.voices)
    k = len(a.notes)
    rms = np.empty((n, k), dtype=np.float32)
    desc = np.empty((n, k, len(descriptors.NAMES)), dtype=np.float32)
    emb = None
    for start, c in _iter_chunks(work, n, chunk):
        m = len(c["rms_db"])
        rms[start : start + m] = c["rms_db"]
        desc[start : start + m] = c["descriptors"]
        if emb is None:
            emb = np.empty((n, c["embedding"].shape[1]), dtype=np.float32)
        emb[start : start + m] = c["embedding"]
    assert emb is not None

    silent = (rms < s.silence_db).all(axis=1)
    keep = ~silent
    near_dup = np.zeros(n, dtype=bool)
    if s.near_duplicate_db is not None:
        cand = np.flatnonzero(keep)
        g = splits.near_copy_groups(emb[cand], s.near_duplicate_db)
        _, first = np.unique(g, return_index=True)
        dup_rows = np.setdiff1d(np.arange(len(cand)), first)
        near_dup[cand[dup_rows]] = True
        keep &= ~near_dup
    rows = np.flatnonzero(keep)
    if len(rows) == 0:
        raise DxmacroError("every voice is silent: nothing to store")
    say(f"silent: {int(silent.sum())} dropped (below {s.silence_db} dBFS at every note), "
        f"near duplicates: {int(near_dup.sum())} dropped, kept {len(rows)}")

    params = np.stack([ing.voices[i].parameters for i in rows]).astype(np.uint8)
    names = [ing.voices[i].name for i in rows]
    sources = [ing.sources[i] for i in rows]
    desc_k = desc[rows]
    emb_k = emb[rows]
    tag_arr, thresholds = tags.paired_tags(desc_k, s.tag_quantile)
    cats = tags.categories(names)
    group = splits.near_copy_groups(emb_k, s.group_db)
    split = splits.assign_splits(params, group, s.split_fractions)
    nearest = splits.nearest_train(emb_k, split)

    writer = store.ArrayWriter(out, "features", "float16", (len(rows), k, a.n_mels, a.frames))
    try:
        pos = 0
        for start, c in _iter_chunks(work, n, chunk):
            sel = rows[(rows >= start) & (rows < start + len(c["rms_db"]))] - start
            writer.array[pos : pos + len(sel)] = c["features"][sel]
            pos += len(sel)
        features_entry = writer.close()
    except BaseException:
        writer.abort()
        raise

    counts = dict(ing.counts)
    counts.update(silent=int(silent.sum()), near_duplicates=int(near_dup.sum()), kept=len(rows),
                  silent_notes=int((rms[rows] < s.silence_db).sum()),
                  groups=int(len(np.unique(group))), largest_group=int(np.bincount(group).max()),
                  train=int((split == 0).sum()), validation=int((split == 1).sum()), test=int((split == 2).sum()),
                  named_category=int(cats.any(axis=1).sum()))
    assert counts["voices_read"] == counts["duplicates"] + counts["silent"] + counts["near_duplicates"] + \
        counts["kept"]
    extra = {
        "plan": plan,
        "bad_files": [{"file": f, "error": e} for f, e in ing.bad_files],
        "tag_rules": [{"lower": lo, "upper": hi, "score": how, "thresholds": t}
                      for (lo, hi, how), t in zip(tags.PAIRS, thresholds)],
        "category_keywords": tags.CATEGORIES,
        "embedding": "analysis.embed: K notes x 16 mel groups x 8 time bins, mean dB; distance = RMS difference",
    }
    arrays: dict[str, Any] = {"params": params, "features": features_entry, "descriptors": desc_k,
                              "tags": tag_arr, "categories": cats, "split": split, "group": group,
                              "nearest_train_db": nearest, "embedding": emb_k}
    return _save(out, s, names, sources, arrays, counts, extra)


def _save(out: Path, s: BuildSettings, names, sources, arrays, counts, extra) -> store.Manifest:
    return store.save_dataset(
        out, settings=s.to_json(), names=names, sources=sources, arrays=arrays, counts=counts,
        descriptor_names=descriptors.NAMES, tag_names=[[lo, hi] for lo, hi, _ in tags.PAIRS],
        category_names=tags.CATEGORY_NAMES, extra=extra)
