"""``dxmacro knobs report``: the knobs as a performer hears them.

From test-split voices of a data set, each knob of a bundle is swept over its full travel
(``steps`` positions) the way the device plays it: the int8 decoder from the bundle, in relative
mode (the voice plus the decoder's change, dx7.relative) and in absolute mode
(``decode(z)``), optionally the run's fp32 decoder in relative mode beside them. Every step is
rendered at the data set's notes with Dexed's engine and described with the data set's own
descriptor code; the tag scores are ranks against the data set's voices (so each score's spread
over the data set is the same, and changes of different scores compare directly).

Per knob and mode:
- ``spearman``: median Spearman of its own score with the knob position;
- ``wrong_sign``: share of sweeps whose Spearman is negative;
- ``selectivity``: median over sweeps of (own score's range along the sweep) / (the largest range
  of any other score), both in ranks;
- ``largest_step_db``: median over sweeps of the largest step-to-step log-mel change (middle note);
- ``pitch_changing``: share of sweeps along which the pitch a player hears changes: transpose, a
  pitch EG level, or a sounding carrier's frequency by a semitone or more (dx7.algorithms).
With a ``tune`` (host_training.jobs.knob_tune.tune_sweeps), every decoder is also swept in "tuned"
mode: relative mode as the device plays a tuned bank's voices, each knob passing on only the
parameters chosen for that voice by rendering; ``tuned_passed`` is the share of voices whose tuning
found a sweep that passes every gate one sweep can show.
Per mode: ``takeover_jump_db``, the median log-mel distance between the chosen voice and what
the synth gets at the first touch of a knob (relative: the voice itself, so 0).
"""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from dx7 import Voice
from dx7.algorithms import carrier_retune_semitones
from dx7.relative import relative_voice
from dx7.params import param
from dxmacro.errors import DxmacroError
from host_training.audio.sound import RenderSettings, VoiceRenderer, features_of
from host_training.dataset import open_dataset
from host_training.dataset.rendered_scores import Pool, ScoreRenderer, descriptor_fn
from host_training.jobs.evaluate import sweep_spearman

Decode = Callable[[np.ndarray], np.ndarray]  # (latent_size,) -> (145,) DX7 values
# (heard, scorer, voices, their relative sweeps of one knob, its score, travel) -> per voice a
# choice with .mask and .passed (host_training.jobs.knob_tune.tune_sweeps)
Tune = Callable[..., list[Any]]
_TRANSPOSE = param("transpose").index
_PITCH_EG = [param(f"pitch_eg_level{i}").index for i in range(1, 5)]


def changes_pitch(sweep: np.ndarray) -> bool:
    """Whether the knob changes the pitch a player hears along ``sweep``: a step plays at another
    pitch than the first (transpose, a pitch EG level, a sounding carrier retuned by a semitone or
    more; a carrier retuned by octaves is a register jump)."""
    base = sweep[0]
    for p in sweep[1:]:
        if p[_TRANSPOSE] != base[_TRANSPOSE] or np.any(p[_PITCH_EG] != base[_PITCH_EG]):
            return True
        if carrier_retune_semitones(base, p) >= 1.0 - 1e-9:
            return True
    return False


class Heard:
    """Renders voices once each (many sweep steps decode to the same voice) and keeps what the
    report reads of them: the data set's descriptors and the middle note's log-mel."""

    def __init__(self, settings: RenderSettings, threads: int) -> None:
        self.pool = Pool(settings, threads)
        self.describe = descriptor_fn(settings)
        self.cache: dict[bytes, tuple[np.ndarray, np.ndarray]] = {}

    def of(self, params: list[np.ndarray]) -> list[tuple[np.ndarray, np.ndarray]]:
        keys = [p.astype(np.uint8).tobytes() for p in params]
        todo = list({k: p for k, p in zip(keys, params) if k not in self.cache}.values())

        def one(r: VoiceRenderer, p: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
            v = Voice.from_parameters(p, "KNOB")
            audios = r.all_notes(v)
            return self.describe(v, audios), features_of(audios[len(audios) // 2], r.s.rate)[0]

        for p, res in zip(todo, self.pool.map(one, todo)):
            self.cache[p.astype(np.uint8).tobytes()] = res
        return [self.cache[k] for k in keys]


def judges(ds, threads: int) -> tuple[Heard, ScoreRenderer]:
    """What reads a knob's sweeps for data set ``ds``: renders at its notes (Heard) and its tag
    scores as ranks against its voices (ScoreRenderer)."""
    settings = RenderSettings.from_manifest(ds.settings)
    return Heard(settings, threads), ScoreRenderer(settings, np.asarray(ds.descriptors), len(ds.tag_names), threads)


def masked(base: np.ndarray, sweep: np.ndarray, mask: np.ndarray) -> np.ndarray:
    """(steps, 145): ``sweep`` with every parameter outside ``mask`` kept at the voice's value (a
    tuned knob's sweep, host_training.jobs.knob_tune)."""
    return np.where(mask[None, :], sweep, base[None, :])


def knob_travels(knobs, scale: float = 1.0) -> list[dict[str, Any]]:
    """A bundle's knobs (KnobInfo: dim, name, low, high) as the report's dicts, each travel cut to
    ``scale`` of itself around its centre (1: the whole travel)."""
    out = []
    for k in knobs:
        mid, half = (k.high + k.low) / 2, (k.high - k.low) / 2 * scale
        out.append({"dim": k.dim, "name": k.name, "low": mid - half, "high": mid + half})
    return out


def sweep_values(decode: Decode, base: np.ndarray, z: np.ndarray, dim: int, travel: np.ndarray,
                 mode: str) -> np.ndarray:
    """(steps, 145): what the synth gets along one knob's travel from voice ``base`` at latent ``z``."""
    zz = np.repeat(np.asarray(z, np.float32)[None], len(travel), 0)
    zz[:, dim] = travel
    moved = np.stack([np.asarray(decode(zi), dtype=np.int64) for zi in zz])
    if mode == "absolute":
        return moved
    at_base = np.asarray(decode(np.asarray(z, np.float32)), dtype=np.int64)
    return np.stack([relative_voice(base, at_base, m) for m in moved])


def knob_figures(heard: Heard, scorer: ScoreRenderer, sweeps: list[np.ndarray], own: int,
                 travel: np.ndarray) -> dict[str, Any]:
    """The figures of one knob in one mode from its sweeps (each (steps, 145))."""
    flat = [p for s in sweeps for p in s]
    got = heard.of(flat)
    scores = scorer.rank(np.stack([d for d, _ in got]))
    mels = [m for _, m in got]
    steps = len(travel)
    rho, select, jumps, change = [], [], [], []
    for i in range(len(sweeps)):
        sc = scores[i * steps:(i + 1) * steps]
        rho.append(sweep_spearman(travel, sc[:, own]))
        with np.errstate(all="ignore"):
            ranges = np.nan_to_num(np.nanmax(sc, 0) - np.nanmin(sc, 0)) if np.isfinite(sc).any() else np.zeros(sc.shape[1])
        others = np.delete(ranges, own)
        select.append(float(ranges[own] / max(others.max(initial=0.0), 1e-3)))
        change.append(sc[-1] - sc[0])
        m = mels[i * steps:(i + 1) * steps]
        jumps.append(max(float(np.mean(np.abs(a - b))) for a, b in zip(m[:-1], m[1:])))
    per_sweep = {"spearman": [float(r) for r in rho], "selectivity": select, "largest_step_db": jumps,
                 "pitch_changing": [bool(changes_pitch(s)) for s in sweeps],
                 "score_change": [[float(v) for v in c] for c in change]}
    return summarize(per_sweep)


def summarize(per_sweep: dict[str, list]) -> dict[str, Any]:
    """One knob's figures from its sweeps' own figures (``per_sweep``, as knob_figures keeps them).
    Why apart: the knob gates pool the sweeps of two draws of voices (knob_gates.pooled)."""
    rho = np.asarray(per_sweep["spearman"], np.float64)
    jumps = np.asarray(per_sweep["largest_step_db"], np.float64)
    return {"spearman": float(np.median(rho)), "wrong_sign": float(np.mean(rho < 0)),
            "selectivity": float(np.median(per_sweep["selectivity"])), "largest_step_db": float(np.median(jumps)),
            "largest_step_db_max": float(np.max(jumps)),
            "pitch_changing": float(np.mean(per_sweep["pitch_changing"])),
            # median end-to-end change of every score over the travel (ranks): what the knob does
            "score_change": [float(v) for v in _nanmedian(np.asarray(per_sweep["score_change"], np.float64))],
            # each sweep's own figures, so that a gate can ask how steady a median is (KnobGates.steadiness)
            "per_sweep": per_sweep}


def _nanmedian(a: np.ndarray) -> np.ndarray:
    """Column medians, 0 where a column is all NaN (a score no step could read)."""
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        return np.nan_to_num(np.nanmedian(a, axis=0))


def knob_report(decoders: dict[str, Decode], knobs: list[dict[str, Any]], data_dir: str | Path,
                latents: np.ndarray, voice_idx: np.ndarray, *, steps: int = 11, threads: int = 2,
                progress: Callable[[str], None] = lambda _: None,
                device_modes: tuple[str, ...] = ("relative", "absolute"), tune: Tune | None = None) -> dict[str, Any]:
    """``decoders``: name -> decode, e.g. {"int8": ..., "fp32": ...}; the report sweeps the first
    (the bundle's) in "relative" and "absolute" mode and any other decoder in "relative" mode. ``knobs``: dicts with
    dim, name, low, high (a bundle's knobs). ``latents[i]`` is the latent of data-set voice
    ``voice_idx[i]`` (the run's encoder)."""
    ds = open_dataset(data_dir)
    n_scores = len(ds.tag_names)
    heard, scorer = judges(ds, threads)
    bases = [np.asarray(ds.params[int(i)], dtype=np.int64)[:145] for i in voice_idx]
    device = next(iter(decoders))  # the bundle's decoder (int8 or int16x8) first, in ``device_modes``
    runs = [(device, m) for m in device_modes] + [(d, "relative") for d in decoders if d != device]
    if tune is not None:
        runs += [(d, "tuned") for d in decoders]
    report: dict[str, Any] = {"voices": len(bases), "steps": steps, "data": str(data_dir), "modes": {}}
    for dec_name, mode in runs:
        decode = decoders[dec_name]
        key = f"{dec_name} {mode}"
        progress(f"{key}: takeover")
        first_touch = [b if mode != "absolute" else np.asarray(decode(z), dtype=np.int64)
                       for b, z in zip(bases, latents)]
        mel_base = [m for _, m in heard.of(bases)]
        mel_touch = [m for _, m in heard.of(first_touch)]
        entry: dict[str, Any] = {"takeover_jump_db": float(np.median([np.mean(np.abs(a - b))
                                                                      for a, b in zip(mel_base, mel_touch)])),
                                 "knobs": []}
        for k in knobs:
            if not 0 <= int(k["dim"]) < n_scores:
                continue  # not a semantic dimension: no descriptor of its own to judge it by
            progress(f"{key}: {k['name']}")
            travel = np.linspace(float(k["low"]), float(k["high"]), steps).astype(np.float32)
            plays = "absolute" if mode == "absolute" else "relative"
            sweeps = [sweep_values(decode, b, z, int(k["dim"]), travel, plays) for b, z in zip(bases, latents)]
            extra = {}
            if mode == "tuned":
                tuned = tune(heard, scorer, bases, sweeps, int(k["dim"]), travel)
                sweeps = [masked(b, s, t.mask) for t, s, b in zip(tuned, sweeps, bases)]
                extra = {"tuned_passed": float(np.mean([t.passed for t in tuned])),
                         "tuned_params": float(np.median([t.mask.sum() for t in tuned]))}
            entry["knobs"].append({"name": k["name"], "dim": int(k["dim"]),
                                   "descriptor": "/".join(ds.tag_names[int(k["dim"])][::-1]),
                                   **knob_figures(heard, scorer, sweeps, int(k["dim"]), travel), **extra})
        report["modes"][key] = entry
    report["renders"] = len(heard.cache)
    return report


def markdown(report: dict[str, Any]) -> str:
    share = float(report.get("travel_scale", 1.0))
    travel = "travel" if share == 1.0 else f"travel cut to {share:.0%} around its centre"
    lines = [f"Knobs as heard: {report['voices']} test-split voices, {report['steps']} steps over each knob's "
             f"{travel}, rendered at the data set's notes.", "",
             "| mode | knob | Spearman | wrong sign | selectivity | largest step dB (max) | pitch-changing |",
             "|---|---|---|---|---|---|---|"]
    for key, entry in report["modes"].items():
        for k in entry["knobs"]:
            lines.append(f"| {key} | {k['name']} | {k['spearman']:.2f} | {k['wrong_sign']:.0%} | "
                         f"{k['selectivity']:.2f} | {k['largest_step_db']:.2f} ({k['largest_step_db_max']:.1f}) | "
                         f"{k['pitch_changing']:.0%} |")
    lines += ["", "| mode | jump at the first touch of a knob (median log-mel dB) |", "|---|---|"]
    lines += [f"| {key} | {e['takeover_jump_db']:.2f} |" for key, e in report["modes"].items()]
    return "\n".join(lines) + "\n"


def test_voices(data_dir: str | Path, n: int, seed: int = 0, split: str = "test",
                exclude: np.ndarray | tuple = ()) -> np.ndarray:
    """``n`` voices of the data set's ``split`` (seeded sample, sorted), none of ``exclude``: the
    test split for the report, the validation split where the export chooses knobs
    (host_training.jobs.knob_gates), and there further voices for a verdict still undecided.
    Fewer than ``n`` where the split has no more."""
    ds = open_dataset(data_dir)
    test = ds.indices(split)
    if len(test) == 0:
        raise DxmacroError(f"{data_dir}: the data set has no {split} split")
    if len(exclude):
        test = np.setdiff1d(test, np.asarray(exclude, dtype=np.int64))
    rng = np.random.default_rng(seed)
    return np.sort(rng.choice(test, size=min(n, len(test)), replace=False))


def write_report(out: str | Path, report: dict[str, Any]) -> None:
    from dx7.files import atomic_write

    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    atomic_write(out / "knobs.json", (json.dumps(report, indent=1) + "\n").encode())
    atomic_write(out / "knobs.md", markdown(report).encode())


__all__ = ["judges", "knob_report", "knob_travels", "markdown", "masked", "sweep_values", "changes_pitch", "summarize", "test_voices",
           "write_report"]
