"""A seeded generator of plausible DX7 voices: the embedded default data set.

Why not uniform random parameters: most uniformly random DX7 voices are silent or
noise. Real voices have structure that depends on each operator's *role*: a
carrier's output level sets the loudness, a modulator's sets the brightness, and an
operator's 21 fields move together (fast attack with high levels, etc.).

The model is a Gaussian copula fitted to real voices: for carriers and modulators
separately, the empirical distribution of each of the 21 operator fields and the
correlation of their normal scores; likewise for the 18 voice-level fields, plus the
algorithm frequencies. Sampling draws an algorithm, then each operator's fields
jointly for its role. Only these fitted figures ship (host_training/data/
synth_figures.json, a few kB); the corpus they were fitted on does not.

Refit at development time with::

    python -m host_training.audio.synth_voices fit ../shared/dx7/corpus --out host_training/data/synth_figures.json
"""

from __future__ import annotations

import argparse
import json
from functools import lru_cache
from importlib import resources
from pathlib import Path

import numpy as np

from dx7 import PARAMS, Voice
from dx7.params import NAME_OFFSET, OPERATOR_FIELD_COUNT, VOICE_FIELD_OFFSET
from dxmacro.errors import DxmacroError

ALGORITHM = VOICE_FIELD_OFFSET + 8  # index of the algorithm parameter
_VOICE_FIELDS = [i for i in range(VOICE_FIELD_OFFSET, NAME_OFFSET) if i != ALGORITHM]
FIGURES_FORMAT = "dxmacro-synth-figures"


def carriers(algorithm: int) -> set[int]:
    """Operator numbers (1..6) that are carriers in ``algorithm`` (0..31)."""
    from dexed import get_carriers  # the engine's own algorithm table

    return {i + 1 for i in get_carriers(algorithm)}


def _op_base(op: int) -> int:
    return (6 - op) * OPERATOR_FIELD_COUNT


def _normal_scores(values: np.ndarray, highs: list[int]) -> np.ndarray:
    """Mid-rank normal scores per column of discrete data."""
    from scipy.special import ndtri

    z = np.empty(values.shape, dtype=np.float64)
    for j, high in enumerate(highs):
        counts = np.bincount(values[:, j], minlength=high + 1).astype(np.float64)
        cdf = np.cumsum(counts) / counts.sum()
        mid = cdf - counts / counts.sum() / 2
        z[:, j] = ndtri(np.clip(mid[values[:, j]], 1e-6, 1 - 1e-6))
    return z


def _block(values: np.ndarray, highs: list[int]) -> dict[str, object]:
    corr = np.corrcoef(_normal_scores(values, highs), rowvar=False)
    corr = np.nan_to_num(corr) + np.eye(len(highs)) * 1e-6  # constant columns
    return {
        "histograms": [np.bincount(values[:, j], minlength=h + 1).tolist() for j, h in enumerate(highs)],
        "correlation": np.round(corr, 4).tolist(),
    }


def fit(voices: list[Voice]) -> dict[str, object]:
    """Fitted figures (histograms and copula correlations) from real voices."""
    if len(voices) < 100:
        raise DxmacroError(f"fitting the synthetic generator needs at least 100 voices, got {len(voices)}")
    op_highs = [PARAMS[i].high for i in range(OPERATOR_FIELD_COUNT)]
    rows: dict[str, list[list[int]]] = {"carrier": [], "modulator": []}
    for v in voices:
        car = carriers(v["algorithm"])
        for op in range(1, 7):
            base = _op_base(op)
            rows["carrier" if op in car else "modulator"].append(list(v.values[base : base + OPERATOR_FIELD_COUNT]))
    voice_rows = np.array([[v.values[i] for i in _VOICE_FIELDS] for v in voices])
    return {
        "format": FIGURES_FORMAT,
        "version": 1,
        "fitted_on_voices": len(voices),
        "algorithm": np.bincount([v["algorithm"] for v in voices], minlength=32).tolist(),
        "carrier": _block(np.array(rows["carrier"]), op_highs),
        "modulator": _block(np.array(rows["modulator"]), op_highs),
        "voice": _block(voice_rows, [PARAMS[i].high for i in _VOICE_FIELDS]),
    }


@lru_cache(maxsize=1)
def default_figures() -> dict[str, object]:
    text = resources.files("host_training").joinpath("data/synth_figures.json").read_text()
    return json.loads(text)


class _Copula:
    """Samples discrete vectors with given marginals and normal-score correlation."""

    def __init__(self, block: dict[str, object]) -> None:
        corr = np.array(block["correlation"], dtype=np.float64)
        w, vecs = np.linalg.eigh((corr + corr.T) / 2)
        self._chol = vecs * np.sqrt(np.clip(w, 1e-9, None))  # a square root of the PSD part
        self._cdfs = [np.cumsum(h) / np.sum(h) for h in block["histograms"]]

    def sample(self, rng: np.random.Generator, n: int) -> np.ndarray:
        from scipy.special import ndtr

        u = ndtr(rng.standard_normal((n, self._chol.shape[1])) @ self._chol.T)
        return np.stack([np.minimum(np.searchsorted(cdf, u[:, j], side="right"), len(cdf) - 1)
                         for j, cdf in enumerate(self._cdfs)], axis=1)


def generate(n: int, seed: int = 0, figures: dict[str, object] | None = None) -> list[Voice]:
    """``n`` voices, identical for the same seed and figures."""
    if n < 0:
        raise DxmacroError(f"number of voices must be >= 0, got {n}")
    figs = figures or default_figures()
    if figs.get("format") != FIGURES_FORMAT:
        raise DxmacroError("synthetic-voice figures have an unknown format")
    rng = np.random.default_rng(seed)
    alg_p = np.array(figs["algorithm"], dtype=np.float64)
    algorithms = rng.choice(32, size=n, p=alg_p / alg_p.sum())
    roles = {r: _Copula(figs[r]) for r in ("carrier", "modulator")}
    ops = {r: c.sample(rng, 6 * n) for r, c in roles.items()}
    voice_level = _Copula(figs["voice"]).sample(rng, n)
    out = []
    for k in range(n):
        values = [0] * NAME_OFFSET
        car = carriers(int(algorithms[k]))
        for op in range(1, 7):
            role = "carrier" if op in car else "modulator"
            base = _op_base(op)
            values[base : base + OPERATOR_FIELD_COUNT] = ops[role][6 * k + op - 1].tolist()
        for j, i in enumerate(_VOICE_FIELDS):
            values[i] = int(voice_level[k, j])
        values[ALGORITHM] = int(algorithms[k])
        out.append(Voice.from_parameters(values, name=f"S{seed % 1000:03d}-{k:05d}"))
    return out


def audibility(voices: list[Voice], notes: tuple[int, ...] = (48, 60, 72), threshold_db: float = -60.0,
               sample_rate: int = 22050) -> dict[int, float]:
    """Fraction of voices whose render (held 1 s of 1.5 s, velocity 100) is above
    ``threshold_db`` dBFS RMS, per note."""
    from host_training.audio.features import rms_db
    from host_training.audio.render import DexedRenderer, Note

    renderer = DexedRenderer(sample_rate)
    result = {}
    for note in notes:
        loud = [rms_db(renderer.render(v, Note(note, 100, 1.0, 1.5))) > threshold_db for v in voices]
        result[note] = float(np.mean(loud)) if loud else 0.0
    return result


def _main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    sub = parser.add_subparsers(dest="cmd", required=True)
    f = sub.add_parser("fit", help="fit the figures to a folder of cartridges")
    f.add_argument("corpus")
    f.add_argument("--out", required=True)
    a = sub.add_parser("audibility", help="measure how many generated voices are audible")
    a.add_argument("-n", type=int, default=500)
    a.add_argument("--seed", type=int, default=0)
    a.add_argument("--corpus", help="also measure this many corpus voices from this folder, for comparison")
    args = parser.parse_args()
    from dx7.files import atomic_write, read_voice_file

    def corpus_voices(folder: str) -> list[Voice]:
        seen, out = set(), []
        for path in sorted(Path(folder).glob("*.syx")):
            for lv in read_voice_file(path).voices:
                if lv.voice.content_key() not in seen:
                    seen.add(lv.voice.content_key())
                    out.append(lv.voice)
        return out

    if args.cmd == "fit":
        figures = fit(corpus_voices(args.corpus))
        atomic_write(args.out, json.dumps(figures, separators=(",", ":")).encode())
        print(f"fitted on {figures['fitted_on_voices']} voices -> {args.out}")
    else:
        print(f"synthetic (n={args.n}, seed={args.seed}): {audibility(generate(args.n, args.seed))}")
        if args.corpus:
            real = corpus_voices(args.corpus)
            pick = np.random.default_rng(args.seed).choice(len(real), size=args.n, replace=False)
            print(f"corpus sample (n={args.n}): {audibility([real[i] for i in pick])}")


if __name__ == "__main__":
    _main()
