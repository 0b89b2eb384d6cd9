"""Knobs that move the sound: a descriptor surrogate and a sweep loss on the parameter head.

Why: the seed's disentangling objective places tagged voices at -mu / +mu on the semantic
dimensions of the *encoder's* latent, but nothing asks the *head* (z -> parameters, what the
Pi runs) to turn a move along such a dimension into a change of the sound. The other 219
dimensions carry the same information, so the tiny run's head learnt to ignore three of its
six knobs (docs/results.md). Issue 4 allows an alternative regularizer where it measures
better; this is one, in two parts:

* ``DescriptorSurrogate``: a small MLP that reads a parameter vector and predicts the data
  set's tag scores (``dataset.tags.scores``, as percentile ranks in [-1, 1]). It learns on the
  training voices' true vectors and on the head's own (detached) predictions for them, so it
  is fitted where the sweep loss will query it.
* ``sweep_loss``: for the batch's latents, set semantic dimension t to two random positions
  a < b of the knob's travel, decode both through the head and read the scores through the
  *frozen* surrogate. Score t must rise by at least ``margin * (b - a) / travel``; the other
  scores should stay put (their squared change is penalised). Only the head learns from it:
  the latents are detached, the surrogate's weights are used as constants.
* the pitch stays where it is: the squared change of the voice's pitch parameters
  (``PITCH_PARAMS``: transpose and the pitch EG levels) along the sweep, in DX7 steps, is
  penalised too. Without it the subset run's knobs met their targets partly by transposing:
  "bright" raised transpose by 7 semitones over its travel, "metallic" lowered it by 16
  (brightness and inharmonicity descriptors read pitch as well as timbre), which a performer
  hears as a key change, and which left the transpose between two DX7 steps where the int8
  decoder rounded it the other way for a third of the voices (docs/conversion.md).

The surrogate never ships: it lives beside the model in the training objective (and in the
resume checkpoint), not in model.pt.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from dx7.algorithms import CARRIERS
from dx7.layout import SLOTS, VECTOR_SIZE, scaled_highs, slot
from dx7.params import param
from host_training.model.slots import GROUP_SPANS, SCALED_SLOTS

_HIGH = torch.as_tensor(scaled_highs(), dtype=torch.float32)
# what sets the pitch of every note the performer plays, rather than the timbre
PITCH_PARAMS = ("transpose", "pitch_eg_level1", "pitch_eg_level2", "pitch_eg_level3", "pitch_eg_level4")
_PITCH_SLOTS = torch.as_tensor([slot(n).start for n in PITCH_PARAMS])
_PITCH_HIGH = torch.as_tensor([float(param(n).high) for n in PITCH_PARAMS])


# each operator's coarse and fine frequency slots, and which algorithms make it a carrier
_COARSE = torch.as_tensor([slot(f"op{n}_freq_coarse").start for n in range(1, 7)])
_FINE = torch.as_tensor([slot(f"op{n}_freq_fine").start for n in range(1, 7)])
_ALGORITHM = slot("algorithm")
_CARRIER = torch.as_tensor([[float(n in c) for n in range(1, 7)] for c in CARRIERS])  # (32 algorithms, 6 ops)


def carrier_semitones(vec: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """(B, 225) head outputs -> ((B, 6) each operator's ratio-mode frequency in semitones above the
    note, (B, 6) the probability that it is a carrier under the head's algorithm choice). Why: a
    knob that retunes a carrier changes the pitch a player hears (a register jump), as transpose
    does; retuning a modulator changes the timbre, which knobs may do."""
    dev = vec.device
    coarse = vec.index_select(1, _COARSE.to(dev)).float().clamp(0.0, 1.0) * 31.0
    fine = vec.index_select(1, _FINE.to(dev)).float().clamp(0.0, 1.0) * 99.0
    ratio = coarse.clamp_min(0.5) * (1.0 + fine / 100.0)  # coarse 0 plays at half the note
    algorithm = F.softmax(vec[:, _ALGORITHM.start:_ALGORITHM.start + _ALGORITHM.width].float(), dim=1)
    return 12.0 * torch.log2(ratio), algorithm @ _CARRIER.to(dev)


def _held_slots() -> tuple[torch.Tensor, torch.Tensor]:
    """((225,) bool, (32, 225) bool): dx7.relative's held scaled parameters (the pitch's, and per
    algorithm its carriers' frequencies) as slots of the layout vector."""
    from dx7.relative import CARRIER_TUNING, PITCH

    def slots(params: np.ndarray) -> torch.Tensor:
        out = torch.zeros(VECTOR_SIZE, dtype=torch.bool)
        out[[SLOTS[p].start for p in np.flatnonzero(params)]] = True
        return out

    return slots(PITCH), torch.stack([slots(row) for row in CARRIER_TUNING])


_HELD_PITCH, _HELD_TUNING = _held_slots()


def relative_view(moved: torch.Tensor, base: torch.Tensor, voice: torch.Tensor) -> torch.Tensor:
    """What the device plays in relative mode (dx7.relative), with a gradient: the voice's scaled
    slots plus the head's change from ``base`` (head at the voice's latent) to ``moved``, except
    what the device holds (dx7.relative.held): each one-hot group is the voice's (as a confident
    logit), and so are the pitch's slots and the carriers' frequencies under the voice's
    algorithm. All (..., 225), broadcast; feed the result to ``synth_view``."""
    idx = SCALED_SLOTS.to(moved.device)
    shape = torch.broadcast_shapes(moved.shape, base.shape, voice.shape)
    voice = voice.expand(shape)
    out = voice.clone()
    out[..., idx] = (voice.index_select(-1, idx) + moved.index_select(-1, idx) - base.index_select(-1, idx)).expand(
        *shape[:-1], len(idx))
    algorithm = voice[..., _ALGORITHM.start:_ALGORITHM.start + _ALGORITHM.width].argmax(-1)
    hold = _HELD_PITCH.to(moved.device) | _HELD_TUNING.to(moved.device)[algorithm]
    out = torch.where(hold, voice, out)
    for start, width in GROUP_SPANS:
        out[..., start:start + width] = voice[..., start:start + width] * 20.0 - 10.0  # a confident one-hot
    return out


def pitch_steps(vec: torch.Tensor) -> torch.Tensor:
    """(B, 225) head outputs -> (B, 5) the ``PITCH_PARAMS`` in DX7 steps, unclipped."""
    return vec.index_select(1, _PITCH_SLOTS.to(vec.device)).float() * _PITCH_HIGH.to(vec.device)


def score_targets(descriptors: np.ndarray, n_sem: int) -> np.ndarray:
    """(N, K, D) descriptors -> (N, n_sem) float32 tag scores as percentile ranks in [-1, 1]
    (NaN where a voice has no score: silent at every note)."""
    import warnings

    from host_training.dataset.tags import percentile_rank, scores

    with np.errstate(all="ignore"), warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # all-NaN rows are silent voices
        s = scores(np.asarray(descriptors, dtype=np.float64))[:, :n_sem]
    out = np.full(s.shape, np.nan, dtype=np.float32)
    for j in range(s.shape[1]):
        if np.isfinite(s[:, j]).sum() >= 2:
            out[:, j] = 2.0 * percentile_rank(s[:, j]) - 1.0
    return out


def synth_view(v: torch.Tensor) -> torch.Tensor:
    """A head output as the synth will get it, with a gradient: the forward value is exactly
    what ``dx7.layout.decode`` makes of it (scaled slots clipped to [0, 1] and rounded to DX7
    steps, each one-hot group's argmax), the backward pass is a straight-through estimate
    through the clipped slots and the groups' softmax. Without the exact forward value the
    sweep loss was met by moves that decoding throws away (logits that shift without changing
    the argmax, slots that move less than half a step): a knob that did nothing on the synth."""
    idx = SCALED_SLOTS.to(v.device)
    high = _HIGH.to(v.device, v.dtype)
    soft = v.clone()
    hard = v.detach().clone()
    clipped = v.index_select(1, idx).clamp(0.0, 1.0)
    soft[:, idx] = clipped
    hard[:, idx] = torch.round(clipped.detach() * high) / high
    for start, width in GROUP_SPANS:
        logits = v[:, start : start + width]
        soft[:, start : start + width] = F.softmax(logits.float(), dim=1).to(v.dtype)
        hard[:, start : start + width] = F.one_hot(logits.detach().argmax(1), width).to(v.dtype)
    return soft + (hard - soft).detach()


class DescriptorSurrogate(nn.Module):
    """Parameter vector (B, 225) -> (B, S) predicted tag scores in [-1, 1].

    ``kind`` names its members: "mlp" (a two-layer MLP of width ``hidden``), "linear" (one
    linear map), or "mlp+linear" (both, fitted side by side; the sweep loss wants each of them
    to see a knob's rise). Why a linear member: the head meets the sweep loss with whatever
    moves the surrogate believes in, and an MLP fitted on a few thousand voices believes in
    moves the synth does not make (a "bright" knob that raised keyboard scaling depths and EG
    rates, docs/results.md); a linear map can only reward moves along the directions in which
    the training voices' scores really differ on average. "prior" is a member written from how
    FM works rather than fitted (``host_training.model.knob_prior``): it rewards only moves that
    cause the sound change, such as raising a modulator's level for "bright"."""

    KINDS = ("mlp", "linear", "mlp+linear", "prior", "mlp+prior", "mlp+linear+prior")

    def __init__(self, n_scores: int, hidden: int = 256, kind: str = "mlp") -> None:
        super().__init__()
        if kind not in self.KINDS:
            raise ValueError(f"unknown surrogate {kind!r} (one of {', '.join(self.KINDS)})")
        self.n_scores = n_scores
        nets = []
        for member in kind.split("+"):
            if member == "prior":
                from host_training.model.knob_prior import PriorMember

                nets.append(PriorMember(n_scores))
            elif member == "linear":
                nets.append(nn.Sequential(nn.Linear(VECTOR_SIZE, n_scores), nn.Tanh()))
            else:
                nets.append(nn.Sequential(nn.Linear(VECTOR_SIZE, hidden), nn.LeakyReLU(0.1), nn.Linear(hidden, hidden),
                                          nn.LeakyReLU(0.1), nn.Linear(hidden, n_scores), nn.Tanh()))
        self.nets = nn.ModuleList(nets)

    def forward(self, v: torch.Tensor, members: bool = False) -> torch.Tensor:
        """The members' mean (B, S), or with ``members`` every member's reading (E, B, S)."""
        each = torch.stack([net(v) for net in self.nets])
        return each if members else each.mean(0)


def surrogate_loss(surrogate: DescriptorSurrogate, vectors: torch.Tensor, scores: torch.Tensor) -> torch.Tensor:
    """Mean squared error of every member's predicted scores over the entries that have a score."""
    ok = torch.isfinite(scores)
    pred = surrogate(vectors.float(), members=True)
    err = (pred - torch.nan_to_num(scores, nan=0.0)).pow(2) * ok
    return err.sum() / (ok.sum() * pred.shape[0]).clamp_min(1)


def fit_surrogate(surrogate: DescriptorSurrogate, vectors: np.ndarray, scores: np.ndarray, steps: int,
                  seed: int, batch: int = 256, lr: float = 1e-3, probes: ProbeBuffer | None = None) -> float:
    """Fit the surrogate on (true parameter vector, tag scores) pairs before the VAE starts, so
    that the sweep loss reads a meaningful score from the first batch on (inside the VAE's own
    batches it would see only one small batch per step), and on rendered knob moves
    (``probes``) after each epoch's renders. Returns the last batch's loss."""
    gen = torch.Generator().manual_seed(seed)
    x, y = torch.from_numpy(np.asarray(vectors, np.float32)), torch.from_numpy(np.asarray(scores, np.float32))
    device = next(surrogate.parameters()).device
    for net in surrogate.nets:
        if hasattr(net, "calibrate"):
            net.calibrate(x.to(device))
    opt = torch.optim.AdamW(surrogate.parameters(), lr=lr, weight_decay=1e-2)
    moves = [torch.as_tensor(a) for a in probes.state().values()] if probes is not None and len(probes) else None
    loss = torch.zeros(())
    for _ in range(steps):
        i = torch.randint(0, len(x), (min(batch, len(x)),), generator=gen)
        loss = surrogate_loss(surrogate, x[i].to(device), y[i].to(device))
        if moves is not None:
            j = torch.randint(0, len(moves[0]), (min(batch, len(moves[0])),), generator=gen)
            loss = loss + pair_loss(surrogate, *(m[j].to(device) for m in moves))
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
    return float(loss.detach())


def sweep_loss(head: nn.Module, surrogate: DescriptorSurrogate, z: torch.Tensor, n_sem: int, travel: float,
               margin: float, cross_weight: float, pitch_weight: float = 0.0,
               generator: torch.Generator | None = None,
               pitch_head: Callable[[torch.Tensor], torch.Tensor] | None = None,
               pitch_head_share: float = 1.0, voices: torch.Tensor | None = None,
               carrier_weight: float = 0.0, edit_weight: float = 0.0) -> tuple[torch.Tensor, torch.Tensor]:
    """(loss, mean own-score change over a full travel) for knob sweeps from the latents ``z``.

    Each of the ``n_sem`` semantic dimensions (knob t drives score t) is set to two positions
    drawn uniformly from [-travel, travel] (sorted, a < b) for every row of ``z``; one head
    pass decodes all 2*S*B latents (two with a ``pitch_head``). Every other score the surrogate reads (the tag pairs
    without a knob too, such as loudness) counts as a cross change; ``pitch_weight`` weighs
    the squared change of the pitch parameters in DX7 steps (summed over them), read from
    ``pitch_head`` where one is given, for ``pitch_head_share`` of the penalty (the rest read
    from ``head``). The trainer passes the head with its int8 noise as ``pitch_head`` and the
    head without it as ``head``: the sound a knob makes is the clean head's, the pitch must
    hold for the int8 decoder too (with the clean head alone, the tiny run's int8 decoder
    failed issue 5's audio gate).

    ``voices`` (B, 225), the batch's real voices: the sweeps are read as the device plays them in
    relative mode (``relative_view``: each voice plus the head's change from its own latent)
    instead of the head's own voices. ``carrier_weight`` weighs the squared change, in semitones,
    of each operator's frequency times the probability that it is a carrier (a register jump).
    ``edit_weight`` weighs the size of the edit, the summed absolute change of the scaled slots
    between a sweep's ends (an L1 norm, in units of each parameter's range): the smallest edit
    that makes the knob's own score rise. Why: the whole-corpus knobs moved 20-40 parameters at
    every step of a sweep, each change adding to the other scores and to the step a player hears
    (selectivity 0.6-1.4, largest steps 4-7 dB, docs/results.md)."""
    n_scores = surrogate.n_scores
    b = z.shape[0]
    z = z.detach().float()
    pos = (torch.rand(n_sem, 2, b, generator=generator) * 2.0 - 1.0).mul(travel).sort(dim=1).values.to(z.device)
    zz = z.unsqueeze(0).unsqueeze(0).repeat(n_sem, 2, 1, 1)  # (S, 2, B, L)
    dims = torch.arange(n_sem, device=z.device)
    zz[dims, :, :, dims] = pos
    frozen = {k: p.detach() for k, p in surrogate.named_parameters()}
    flat = zz.reshape(-1, z.shape[1])
    vec = head(flat)
    heard = vec
    if voices is not None:  # relative mode: each voice plus the head's change from its own latent
        heard = relative_view(vec.reshape(n_sem, 2, b, -1), head(z).unsqueeze(0).unsqueeze(0),
                              voices.float().unsqueeze(0).unsqueeze(0)).reshape(vec.shape)
    scores = torch.func.functional_call(surrogate, frozen, (synth_view(heard),), {"members": True})
    scores = scores.reshape(-1, n_sem, 2, b, n_scores)  # (E member, S knob, 2 ends, B, T score)
    # not clipped to the slots' range: a head met a clipped penalty by pushing transpose far
    # below 0, where no knob move changes it (every voice of the tiny run played two octaves
    # down, docs/results.md)
    share = 0.0 if pitch_head is None else min(max(pitch_head_share, 0.0), 1.0)
    drift = _drift(vec, n_sem, b) if share < 1 else 0.0
    if share > 0:
        drift = (1.0 - share) * drift + share * _drift(pitch_head(flat), n_sem, b)
    pitch_term = pitch_weight * drift
    if carrier_weight > 0:  # a carrier retuned is a register jump; weighted by how surely it is a carrier
        semis, carrier = carrier_semitones(heard)
        semis, carrier = semis.reshape(n_sem, 2, b, 6), carrier.reshape(n_sem, 2, b, 6)
        pitch_term = pitch_term + carrier_weight * (carrier[:, 0] * (semis[:, 1] - semis[:, 0]).pow(2)).sum(-1).mean()
    if edit_weight > 0:
        idx = SCALED_SLOTS.to(z.device)
        ends = heard.reshape(n_sem, 2, b, -1).index_select(-1, idx).clamp(0.0, 1.0)
        pitch_term = pitch_term + edit_weight * (ends[:, 1] - ends[:, 0]).abs().sum(-1).mean()
    delta = scores[:, :, 1] - scores[:, :, 0]  # (E, S, B, T)
    frac = (pos[:, 1] - pos[:, 0]) / (2.0 * travel)  # (S, B) share of the full travel
    own = torch.stack([delta[:, t, :, t] for t in range(n_sem)], 1)  # (E, S, B)
    shortfall = F.relu(margin * frac - own).mean()  # every member must see the rise
    off = ~torch.eye(n_sem, n_scores, dtype=torch.bool, device=z.device)
    cross = (delta.pow(2) * off[None, :, None, :]).sum(-1).mean()
    gain = (own / frac.clamp_min(1e-3)).mean()
    return shortfall + cross_weight * cross + pitch_term, gain


def _drift(vec: torch.Tensor, n_sem: int, b: int) -> torch.Tensor:
    """Mean squared change of the pitch parameters (DX7 steps, summed) between a sweep's ends."""
    pitch = pitch_steps(vec).reshape(n_sem, 2, b, -1)
    return (pitch[:, 1] - pitch[:, 0]).pow(2).sum(-1).mean()


@torch.no_grad()
def knob_probes(model: nn.Module, x: torch.Tensor, n_sem: int, travel: float,
                rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """Two (N, 145) arrays of DX7 values: the head's own knob moves, where the sweep loss asks
    the surrogate. Each voice of ``x`` is encoded, one random knob is set to two random
    positions a < b of its travel, and both latents are decoded as the synth gets them."""
    from dx7.layout import decode

    z = model.encode(x).float()
    rows = torch.arange(len(z))
    knob = torch.from_numpy(rng.integers(0, n_sem, len(z)))
    pos = torch.from_numpy(np.sort(rng.uniform(-travel, travel, (len(z), 2)), axis=1)).float().to(z.device)
    ends = []
    for end in range(2):
        zz = z.clone()
        zz[rows, knob] = pos[:, end]
        ends.append(decode(model.to_vector(zz).cpu().numpy()))
    return ends[0], ends[1]


def pair_loss(surrogate: nn.Module, va: torch.Tensor, vb: torch.Tensor, sa: torch.Tensor,
              sb: torch.Tensor) -> torch.Tensor:
    """Surrogate error on rendered knob moves: each end's scores, plus the change from a to
    b, which is what the sweep loss reads (a surrogate right about voices but wrong about
    small moves lets the head meet the sweep loss with moves the synth does not make)."""
    pa, pb = surrogate(va.float(), members=True), surrogate(vb.float(), members=True)
    e = pa.shape[0]
    oka, okb = torch.isfinite(sa), torch.isfinite(sb)
    ta, tb = torch.nan_to_num(sa, nan=0.0), torch.nan_to_num(sb, nan=0.0)
    ends = ((pa - ta).pow(2) * oka).sum() + ((pb - tb).pow(2) * okb).sum()
    both = oka & okb
    delta = (((pb - pa) - (tb - ta)).pow(2) * both).sum()
    return ends / (e * (oka.sum() + okb.sum())).clamp_min(1) + delta / (e * both.sum()).clamp_min(1)


class ProbeBuffer:
    """Rendered knob moves of the head (both ends' encoded vectors and real tag scores) the
    surrogate learns from; kept in the resume checkpoint so a resumed run refits on the same
    voices."""

    FIELDS = ("va", "vb", "sa", "sb")

    def __init__(self, n_scores: int) -> None:
        self.va = self.vb = np.zeros((0, VECTOR_SIZE), np.float32)
        self.sa = self.sb = np.zeros((0, n_scores), np.float32)

    def __len__(self) -> int:
        return len(self.va)

    def add(self, params_a: np.ndarray, params_b: np.ndarray, scores_a: np.ndarray, scores_b: np.ndarray) -> None:
        from dx7.layout import encode

        new = (encode(params_a), encode(params_b), scores_a, scores_b)
        for name, arr in zip(self.FIELDS, new):
            setattr(self, name, np.concatenate([getattr(self, name), arr.astype(np.float32)]))

    def sample(self, rng: np.random.Generator, n: int) -> tuple[torch.Tensor, ...] | None:
        if not len(self):
            return None
        i = rng.integers(0, len(self), n)
        return tuple(torch.from_numpy(getattr(self, f)[i]) for f in self.FIELDS)

    def state(self) -> dict[str, torch.Tensor]:
        """Tensors, so a checkpoint loads with ``weights_only=True`` (no pickled numpy objects)."""
        return {f: torch.from_numpy(np.ascontiguousarray(getattr(self, f))) for f in self.FIELDS}

    def load(self, state: dict[str, torch.Tensor] | None) -> None:
        if state:
            for f in self.FIELDS:
                setattr(self, f, np.asarray(state[f], dtype=np.float32))
