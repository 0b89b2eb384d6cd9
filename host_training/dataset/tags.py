"""Tags the cartridges never carry: paired sound tags from descriptors, categories from names.

Paired tags follow the Diva tags of Esling, Masuda et al. in a semi-supervised way: for
each pair, a voice-level score is computed from the descriptors (averaged over the notes
it sounds at); the lowest ``quantile`` of voices get the lower tag (-1), the highest
``quantile`` the upper tag (+1), the middle stays untagged (0). Thresholds are quantiles
of the data set being built (recorded in the manifest), so a tag means "among the darker
quarter of these voices", not an absolute number.
"""

from __future__ import annotations

import re
import warnings
from collections.abc import Sequence

import numpy as np

from host_training.dataset.descriptors import NAMES

_D = {n: i for i, n in enumerate(NAMES)}


def _log(x: np.ndarray) -> np.ndarray:
    return np.log(np.maximum(x, 1e-6))


def percentile_rank(x: np.ndarray) -> np.ndarray:
    """Percentile rank in [0, 1]; NaN stays NaN."""
    out = np.full(x.shape, np.nan)
    ok = np.isfinite(x)
    order = np.argsort(x[ok], kind="stable")
    r = np.empty(ok.sum())
    r[order] = np.arange(ok.sum())
    out[ok] = r / max(ok.sum() - 1, 1)
    return out


def _voice_mean(desc: np.ndarray, name: str) -> np.ndarray:
    col = desc[:, :, _D[name]].astype(np.float64)
    with np.errstate(all="ignore"):
        count = np.isfinite(col).sum(axis=1)
        return np.where(count > 0, np.nansum(col, axis=1) / np.maximum(count, 1), np.nan)


# (lower tag, upper tag, how the score is made from descriptors (N, K, D) -> (N,))
PAIRS: list[tuple[str, str, str]] = [
    ("dark", "bright", "mean log spectral centroid"),
    ("soft", "aggressive", "mean percentile rank of loudness, flatness, log rolloff and -log attack"),
    ("static", "moving", "mean spectral flux (level-normalised log-mel change)"),
    ("short", "long", "mean log decay time (-20 dB)"),
    ("harmonic", "metallic", "mean inharmonicity"),
    ("sharp", "swelling", "mean log attack time (90 % of peak)"),
    ("quiet", "loud", "mean loudness (dBFS, held part)"),
]


def scores(desc: np.ndarray) -> np.ndarray:
    """(N, T) score per voice and tag pair, higher = upper tag."""
    m = {n: _voice_mean(desc, n) for n in NAMES}
    rank = percentile_rank
    aggressive = np.nanmean(np.stack([rank(m["loudness_db"]), rank(m["flatness"]), rank(_log(m["rolloff_hz"])),
                                      rank(-_log(m["attack_s"]))]), axis=0)
    cols = [_log(m["centroid_hz"]), aggressive, m["flux_db"], _log(m["decay_s"]), m["inharmonicity"],
            _log(m["attack_s"]), m["loudness_db"]]
    return np.stack(cols, axis=1)


def paired_tags(desc: np.ndarray, quantile: float = 0.25) -> tuple[np.ndarray, list[list[float]]]:
    """(N, T) int8 tags and the [low, high] thresholds used per pair."""
    with np.errstate(all="ignore"), warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # all-NaN rows: silent voices stay untagged
        s = scores(desc)
    tags = np.zeros(s.shape, dtype=np.int8)
    thresholds = []
    for j in range(s.shape[1]):
        col = s[:, j]
        ok = np.isfinite(col)
        if not ok.any():
            thresholds.append([float("nan"), float("nan")])
            continue
        lo, hi = np.quantile(col[ok], [quantile, 1 - quantile])
        tags[ok & (col <= lo), j] = -1
        tags[ok & (col >= hi) & (col > lo), j] = 1
        thresholds.append([float(lo), float(hi)])
    return tags, thresholds


# Category keywords, matched against the upper-cased name with punctuation as spaces.
# DX7 names are 10 characters, so abbreviations matter ("E.PNO", "BRS", "STRGS").
# A name may hit several categories ("BRASS BASS"); order is irrelevant.
CATEGORIES: dict[str, list[str]] = {
    "bass": [r"BASS(?!OON)", r"\bBS\b", r"\bBAS\b", r"\bSLAP", r"FRETLES", r"SYNTHBS", r"SYNBS", r"SYNBAS"],
    "brass": [r"BRASS", r"\bBRS", r"BRAS\b", r"TRUMP", r"\bTRP", r"\bTPT", r"TROMB", r"\bHORN", r"TUBA",
              r"FLUGEL", r"CORNET", r"FLUEGEL", r"SYNBR", r"\bBR\b"],
    "bell": [r"BELL", r"CHIME", r"GLOCK", r"CELES", r"GAMELAN", r"\bGONG", r"\bTUB\b", r"TUBULAR"],
    "piano": [r"PIANO", r"\bPNO", r"PIAN\b", r"E\s?PNO", r"RHODES", r"WURL", r"\bEP\s?\d*\b", r"\bE\s?P\b",
              r"GRAND", r"\bCLAV", r"HARPSI", r"HPSCH", r"HARPSCH", r"CEMBAL", r"RHODS", r"STEINW"],
    "organ": [r"ORGAN", r"\bORG\b", r"HAMMOND", r"\bB3\b", r"PIPE", r"CHURCH", r"FARFIS", r"CALLIOP", r"CALIOP", r"ORGN", r"LESLIE"],
    "strings": [r"STRING", r"\bSTR", r"STRG", r"VIOLIN", r"VIOLA", r"CELLO", r"FIDDLE", r"ENSEMB", r"ORCH",
                r"PIZZ", r"\bSTG", r"\bBOW", r"\bENS\b"],
    "pad": [r"\bPAD", r"\bPD\b", r"SWEEP", r"\bWARM", r"ATMOS", r"\bSPACE", r"CHOIR", r"VOX", r"VOICE", r"AAH",
            r"OOH", r"\bGLASS"],
    "lead": [r"LEAD", r"\bLD\b", r"SOLO", r"\bSYNC", r"\bSQUARE", r"\bSAW", r"\bMOOG", r"\bMINI"],
    "percussion": [r"DRUM", r"SNARE", r"\bSNR", r"KICK", r"\bTOM", r"CYMB", r"HI\s?HAT", r"\bHAT", r"CONGA",
                   r"BONGO", r"TIMPAN", r"TIMBAL", r"MARIM", r"XYLO", r"VIBE", r"MALLET", r"PERC", r"CLAP",
                   r"COWBELL", r"BLOCK", r"STEEL", r"TABLA", r"KALIMB", r"\bLOG\b", r"SIMM", r"SIMSNAR", r"\bDRM", r"\bPRC\b", r"TRIANGL"],
    "fx": [r"\bFX", r"\bSFX", r"EFFECT", r"NOISE", r"WIND\b", r"\bSURF", r"OCEAN", r"\bRAIN", r"THUNDER",
           r"\bBIRD", r"LASER", r"SIREN", r"ALARM", r"EXPLO", r"\bUFO", r"\bZAP", r"HELICOP", r"TRAIN", r"\bWAVES",
           r"SCREAM", r"\bSPLASH", r"\bEFX", r"LAZER"],
    "wind": [r"FLUTE", r"\bFLT", r"CLARI", r"OBOE", r"BASSOON", r"\bSAX", r"RECORDER", r"PICCOL", r"\bPAN\s?FL",
             r"\bREED", r"SHAKU", r"OCARIN", r"WHISTL", r"HARMONIC?A\b", r"BAGPIP", r"\bFL\b"],
    "pluck": [r"GUITAR", r"GUIT", r"\bGTR", r"HARP(?!SI)", r"\bKOTO", r"SITAR", r"BANJO", r"MANDOL", r"PLUCK",
              r"LUTE", r"\bSHAMI", r"\bDULCI", r"ZITHER", r"\bHARPE", r"PLUK", r"NYLON"],
}

_COMPILED = {c: re.compile("|".join(f"(?:{k})" for k in ks)) for c, ks in CATEGORIES.items()}
CATEGORY_NAMES = list(CATEGORIES)


def normalise_name(name: str) -> str:
    return re.sub(r"[^A-Z0-9]+", " ", name.upper()).strip()


def categories(names: Sequence[str]) -> np.ndarray:
    """(N, C) bool: which category keywords each name hits."""
    out = np.zeros((len(names), len(CATEGORY_NAMES)), dtype=bool)
    for i, name in enumerate(names):
        n = normalise_name(name)
        for j, c in enumerate(CATEGORY_NAMES):
            out[i, j] = bool(_COMPILED[c].search(n))
    return out
