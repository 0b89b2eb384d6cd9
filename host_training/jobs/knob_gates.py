"""Ship only knobs that work: the export measures every semantic dimension as the device plays it
and keeps those that pass, best first, each named by what it measurably does.

Why: a knob whose label promises "bright" and that mostly makes the voice louder, or retunes it,
or jumps between two positions, is worse than no knob (issue 33). The measure is the knob
report's (``knob_report.knob_figures``): rendered sweeps with Dexed's engine through the bundle's
own quantized decoder in relative mode, here on the *validation* split, so that the test split
stays the judge of what was chosen. A knob whose medians pass but would not in enough redraws of
its voices is undecided: ``dxmacro convert --gate-more`` measures it on further validation voices
and judges it on all of them (``pooled``).
"""

from __future__ import annotations

import tomllib
from dataclasses import dataclass, fields
from pathlib import Path
from typing import Any

import numpy as np

from dxmacro.errors import DxmacroError
from dxmacro.inputs import number


@dataclass(frozen=True)
class KnobGates:
    """What a knob must measure to ship (issue 33's gates, in relative mode)."""

    spearman_min: float = 0.9  # median Spearman of its own score with the knob position
    wrong_sign_max: float = 0.10  # share of sweeps where its own score falls (strictly below)
    selectivity_min: float = 1.5  # own score's range / largest other score's range, median
    largest_step_max_db: float = 3.0  # median of the largest step-to-step log-mel change
    pitch_changing_max: float = 0.05  # share of sweeps that change the pitch a player hears
    # share of redraws of the measured voices (bootstrap) in which every gate above still holds: a
    # median near its gate changes sides with the voices drawn (metallic's selectivity measured 1.93
    # on 32 validation voices, 1.03 on 64 test voices), and a knob shipped on luck fails the player
    steadiness_min: float = 0.8

    @classmethod
    def from_toml(cls, path: str | Path | None) -> "KnobGates":
        """The defaults, overridden by a ``[knob_gates]`` table of a TOML file."""
        if path is None:
            return cls()
        try:
            table = tomllib.loads(Path(path).read_text(encoding="utf-8")).get("knob_gates", {})
        except (OSError, UnicodeDecodeError, tomllib.TOMLDecodeError) as exc:
            raise DxmacroError(f"{path}: cannot read the knob gates: {exc}") from None
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(table) - known)
        if unknown:
            raise DxmacroError(f"{path}: [knob_gates] has unknown settings {', '.join(unknown)} "
                               f"(known: {', '.join(sorted(known))})")
        return cls(**{k: float(number(v, f"{path}: [knob_gates] {k}", lo=0.0, hi=1.0 if k == "steadiness_min" else None))
                      for k, v in table.items()})

    def failures(self, f: dict[str, Any]) -> list[str]:
        """The gates the figures ``f`` (one knob, knob_report.knob_figures) miss, as short phrases."""
        out = []
        if f["spearman"] < self.spearman_min:
            out.append(f"Spearman {f['spearman']:.2f} < {self.spearman_min:g}")
        if f["wrong_sign"] >= self.wrong_sign_max:
            out.append(f"wrong sign {f['wrong_sign']:.0%} >= {self.wrong_sign_max:.0%}")
        if f["selectivity"] < self.selectivity_min:
            out.append(f"selectivity {f['selectivity']:.2f} < {self.selectivity_min:g}")
        if f["largest_step_db"] > self.largest_step_max_db:
            out.append(f"largest step {f['largest_step_db']:.1f} dB > {self.largest_step_max_db:g}")
        if f["pitch_changing"] > self.pitch_changing_max:
            out.append(f"pitch-changing {f['pitch_changing']:.0%} > {self.pitch_changing_max:.0%}")
        return out

    def steadiness(self, f: dict[str, Any], draws: int = 1000, seed: int = 0) -> float:
        """The share of bootstrap redraws of the sweeps behind ``f`` (its ``per_sweep`` figures) whose
        medians and shares pass every gate: how sure the verdict is, not only which side it fell on."""
        per = f["per_sweep"]
        n = len(per["spearman"])
        pick = np.random.default_rng(seed).integers(0, n, size=(draws, n))
        col = {k: np.asarray(v, np.float64)[pick] for k, v in per.items()}
        holds = ((np.median(col["spearman"], 1) >= self.spearman_min)
                 & ((col["spearman"] < 0).mean(1) < self.wrong_sign_max)
                 & (np.median(col["selectivity"], 1) >= self.selectivity_min)
                 & (np.median(col["largest_step_db"], 1) <= self.largest_step_max_db)
                 & (col["pitch_changing"].mean(1) <= self.pitch_changing_max))
        return float(holds.mean())

    def undecided(self, f: dict[str, Any]) -> bool:
        """Every gate holds at the median, but not in enough redraws: more voices decide it."""
        return not self.failures(f) and self.steadiness(f) < self.steadiness_min

    def verdict(self, f: dict[str, Any]) -> tuple[list[str], float]:
        """(the gates ``f`` misses, its steadiness): a knob ships when it misses none and its
        gates hold in at least ``steadiness_min`` of the redraws."""
        out = self.failures(f)
        steady = self.steadiness(f)
        if not out and steady < self.steadiness_min:
            out.append(f"passes in only {steady:.0%} of redraws of its voices < {self.steadiness_min:.0%}")
        return out, steady


def measured_name(figures: dict[str, Any], tag_names: list[tuple[str, str]]) -> str:
    """The tag pair whose score the knob moves most over its travel, the way it moves it first:
    "bright/dark" for a knob that brightens as it turns up, "dark/bright" for one that darkens."""
    change = figures["score_change"]
    t = max(range(len(change)), key=lambda i: abs(change[i]))
    low, high = tag_names[t]
    return f"{high}/{low}" if change[t] >= 0 else f"{low}/{high}"


def rank_key(figures: dict[str, Any]) -> float:
    """Best first: a knob that tracks its descriptor and leaves the others alone."""
    return figures["spearman"] * min(figures["selectivity"], 3.0)


GATED = ("spearman", "wrong_sign", "selectivity", "largest_step_db", "pitch_changing")  # the figures a gate reads


def choose(knobs: list[dict[str, Any]], figures: list[dict[str, Any]], gates: KnobGates,
           tag_names: list[tuple[str, str]]) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """(shipped, verdicts): the knobs (bundle manifest form: dim, name, low, high) that pass,
    best first, each renamed by what it measurably does and carrying its figures; and one verdict
    per measured knob (name, dim, figures, failures) in the input order."""
    verdicts, passed = [], []
    for k, f in zip(knobs, figures):
        failures, steady = gates.verdict(f)
        verdict = {"name": k["name"], "dim": int(k["dim"]), "failures": failures, "steadiness": steady,
                   "voices": len(f["per_sweep"]["spearman"]),
                   **{key: f[key] for key in GATED}}
        verdicts.append(verdict)
        if not failures:
            passed.append((rank_key(f), k, f, verdict))
    passed.sort(key=lambda item: -item[0])
    shipped = [{**k, "name": measured_name(f, tag_names), "trained_as": k["name"],
                "measured": {**{key: round(float(v[key]), 4) for key in GATED}, "steadiness": round(v["steadiness"], 3)}}
               for _, k, f, v in passed]
    return shipped, verdicts


def pooled(a: dict[str, Any], b: dict[str, Any]) -> dict[str, Any]:
    """One knob's figures over the sweeps behind ``a`` and those behind ``b`` (two draws of voices)."""
    from host_training.jobs.knob_report import summarize

    return summarize({k: list(a["per_sweep"][k]) + list(b["per_sweep"][k]) for k in a["per_sweep"]})


def measure(decoder, run_dir: str | Path, data_dir: str | Path, voices: int, *, threads: int = 2,
            progress=lambda _: None, tune=None, only: set[int] | None = None,
            exclude: np.ndarray | tuple = ()) -> tuple[list[dict[str, Any]], list[tuple[str, str]], np.ndarray]:
    """(figures per knob of ``decoder`` in its order, the data set's tag names, the voices measured):
    each knob (of latent dims ``only``, default all) swept from ``voices`` validation-split voices
    (none of ``exclude``) through ``decoder`` (a bundle's TFLiteDecoder), the latents from the
    run's encoder, in relative mode; with ``tune`` (host_training.jobs.knob_tune.tune_sweeps), in
    tuned mode: each voice's knobs tuned by rendering, as a tuned bank plays them."""
    from host_training.dataset import open_dataset
    from host_training.jobs import knob_report
    from host_training.jobs.export import encode_all, load_vae

    ds = open_dataset(data_dir)
    idx = knob_report.test_voices(data_dir, voices, split="validation", exclude=exclude)
    if len(idx) == 0:  # every validation voice is measured already
        return [], [tuple(t) for t in ds.tag_names], idx
    latents = encode_all(load_vae(run_dir), ds.features, idx)
    knobs = [k for k in knob_report.knob_travels(decoder.knobs) if only is None or k["dim"] in only]
    report = knob_report.knob_report({"device": decoder.decode}, knobs, data_dir, latents, idx, threads=threads,
                                     progress=progress, device_modes=() if tune else ("relative",), tune=tune)
    figures = {k["dim"]: k for k in report["modes"]["device tuned" if tune else "device relative"]["knobs"]}
    missing = [k["name"] for k in knobs if k["dim"] not in figures]
    if missing:
        raise DxmacroError(f"knobs {', '.join(missing)} move no semantic dimension: no descriptor to judge them by")
    return [figures[k["dim"]] for k in knobs], [tuple(t) for t in ds.tag_names], idx


__all__ = ["KnobGates", "choose", "measure", "measured_name", "pooled", "rank_key"]
