"""What the DX7 manual says about each knob's sound, as a differentiable surrogate member.

Why: the knob loss rewards the head for moves that its descriptor surrogate reads as a rise
of the knob's score. A surrogate *fitted* on a few thousand voices believes in moves the
synth does not make (a "bright" knob that raised keyboard scaling depths and EG rates;
docs/results.md), and the head finds them. This member is not fitted to the voices' sounds
but written from how FM works, so it only rewards moves that cause the sound change:

* bright: modulators' effective levels (the modulation index), weighted by how high their
  frequency sits, plus feedback;
* aggressive: the brightness terms, the carriers' loudness and their attack speed;
* moving: LFO vibrato and tremolo depth (times their sensitivities and the LFO speed), and
  a little of the carriers' sustain (a held sound has more frames that can move);
* long: the carriers' sustain level and slow decay and release rates;
* metallic: the distance of each sounding operator's frequency ratio from a multiple of 1/2
  (the data set's inharmonicity counts sub-octaves as harmonic), and fixed-frequency operators;
* swelling: the carriers' slow attack rates;
* loud: the carriers' summed effective level.

Whether an operator is a carrier comes from the algorithm (Dexed's own table) through the
algorithm group's softmax; levels become amplitudes on the DX7's scale of about 0.75 dB a
step. Each proxy is standardised on the training voices (``calibrate``), then an affine map
with a positive slope and a tanh put it on the tag scores' [-1, 1] scale; only those 2 x 7
numbers are fitted, so the member's direction of rise is fixed by the recipe above.
"""

from __future__ import annotations

import math

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from dx7.layout import slot

# the order of host_training.dataset.tags.PAIRS, upper tag of each pair
PROXIES = ("bright", "aggressive", "moving", "long", "metallic", "swelling", "loud")
_OPS = range(1, 7)


def _op_slots(field: str) -> torch.Tensor:
    return torch.as_tensor([slot(f"op{op}_{field}").start for op in _OPS])


def _carrier_table() -> torch.Tensor:
    """(32, 6) 1 where operator op+1 is a carrier in algorithm a."""
    from dexed import get_carriers  # the engine's own algorithm table

    table = torch.zeros(32, 6)
    for a in range(32):
        table[a, list(get_carriers(a))] = 1.0
    return table


def _amp(level: torch.Tensor) -> torch.Tensor:
    """A scaled level in [0, 1] (DX7 0..99) as a linear amplitude (99 -> 1, 8 steps ~ half)."""
    return torch.exp2((level - 1.0) * 99.0 / 8.0)


class PriorMember(nn.Module):
    """Parameter vector (B, 225), as the synth gets it (``knob_loss.synth_view``) -> (B, 7)."""

    def __init__(self, n_scores: int) -> None:
        super().__init__()
        if n_scores != len(PROXIES):
            raise ValueError(f"the prior surrogate reads {len(PROXIES)} tag scores ({', '.join(PROXIES)}), "
                             f"not {n_scores}")
        self.register_buffer("carriers", _carrier_table())
        self.register_buffer("mean", torch.zeros(n_scores))
        self.register_buffer("std", torch.ones(n_scores))
        self.slope = nn.Parameter(torch.full((n_scores,), math.log(math.e - 1.0)))  # softplus -> 1
        self.bias = nn.Parameter(torch.zeros(n_scores))
        alg = slot("algorithm")
        self._alg = slice(alg.start, alg.start + alg.width)
        assert slot("op1_osc_mode").width == 2  # ("ratio", "fixed")
        self._fixed = torch.as_tensor([slot(f"op{op}_osc_mode").start + 1 for op in _OPS])
        self._op = {f: _op_slots(f) for f in ("output_level", "eg_rate1", "eg_rate2", "eg_rate3", "eg_rate4",
                                               "eg_level1", "eg_level2", "eg_level3", "amp_mod_sens",
                                               "freq_coarse", "freq_fine")}
        self._voice = {n: slot(n).start for n in ("feedback", "lfo_speed", "lfo_pm_depth", "lfo_am_depth",
                                             "pitch_mod_sens")}

    def proxies(self, v: torch.Tensor) -> torch.Tensor:
        """(B, 7) raw proxies, larger = more of the upper tag."""
        op = {f: v[:, s.to(v.device)] for f, s in self._op.items()}
        voice = {n: v[:, s] for n, s in self._voice.items()}
        carrier = v[:, self._alg] @ self.carriers  # (B, 6) chance each operator is a carrier
        modulator = 1.0 - carrier
        # effective amplitude: output level times the envelope's mean level over attack to sustain
        env = (_amp(op["eg_level1"]) + _amp(op["eg_level2"]) + _amp(op["eg_level3"])) / 3.0
        amp = _amp(op["output_level"]) * env
        coarse = (op["freq_coarse"] * 31.0).clamp_min(0.5)  # coarse 0 plays half the frequency
        ratio = coarse * (1.0 + op["freq_fine"])
        fixed = v[:, self._fixed.to(v.device)].clamp(0.0, 1.0)

        index = modulator * amp  # how much each operator modulates (B, 6)
        bright = (index * (1.0 + torch.log2(1.0 + ratio))).sum(1) + 0.3 * voice["feedback"]
        loud_lin = (carrier * amp).sum(1)
        loud = torch.log2(loud_lin + 1e-3)
        weight = carrier * amp + 1e-4  # the carriers that are heard
        heard = lambda x: (weight * x).sum(1) / weight.sum(1)  # noqa: E731
        attack_speed = heard(op["eg_rate1"])
        aggressive = bright + 0.5 * loud + attack_speed
        lfo = 0.5 + voice["lfo_speed"]
        vibrato = voice["lfo_pm_depth"] * voice["pitch_mod_sens"]
        tremolo = voice["lfo_am_depth"] * (op["amp_mod_sens"] * _amp(op["output_level"])).mean(1)
        moving = lfo * (vibrato + tremolo) + 0.1 * heard(op["eg_level3"])
        long = heard(op["eg_level3"] + 3.0 - op["eg_rate2"] - op["eg_rate3"] - op["eg_rate4"])
        off_whole = torch.sin(2.0 * math.pi * ratio).pow(2).maximum(fixed)
        metallic = ((index + 0.5 * carrier * amp) * off_whole).sum(1)
        second_rise = F.relu(op["eg_level2"] - op["eg_level1"])  # a slow second stage still rising
        swelling = heard(1.0 - op["eg_rate1"] + 0.5 * (1.0 - op["eg_rate2"]) * second_rise)
        return torch.stack([bright, aggressive, moving, long, metallic, swelling, loud], 1)

    @torch.no_grad()
    def calibrate(self, vectors: torch.Tensor) -> None:
        """Standardise each proxy on these (training) vectors."""
        raw = self.proxies(vectors.float())
        self.mean.copy_(raw.mean(0))
        self.std.copy_(raw.std(0).clamp_min(1e-6))

    def forward(self, v: torch.Tensor) -> torch.Tensor:
        z = (self.proxies(v) - self.mean) / self.std
        return torch.tanh(F.softplus(self.slope) * z + self.bias)


def proxy_correlations(vectors: np.ndarray, scores: np.ndarray) -> np.ndarray:
    """Spearman correlation of each raw proxy with its tag score over voices that have one
    (how far the recipe is right, for docs and tests)."""
    from scipy.stats import spearmanr

    with torch.no_grad():
        raw = PriorMember(len(PROXIES)).proxies(torch.as_tensor(vectors, dtype=torch.float32)).numpy()
    out = np.full(len(PROXIES), np.nan)
    for j in range(len(PROXIES)):
        ok = np.isfinite(scores[:, j])
        if ok.sum() > 2:
            out[j] = spearmanr(raw[ok, j], scores[ok, j]).statistic
    return out
