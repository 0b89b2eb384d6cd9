"""Training objectives: the parameter loss (MSE on scaled slots, cross-entropy on one-hot
groups), the ELBO with a flow posterior, the seed's disentangling objective on the
semantic dimensions, and Tanaka et al.'s weakly supervised contrastive loss."""

from __future__ import annotations

import functools
import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from dx7.layout import slot
from dx7.params import param
from host_training.model import knob_loss
from host_training.model.flows import has_noise, noise_off
from host_training.model.slots import GROUP_SPANS, SCALED_SLOTS

TRANSPOSE_SLOT = slot("transpose").start
LOG2PI = math.log(2 * math.pi)


@dataclass
class LossConfig:
    beta: float = 1.0
    beta_warmup_epochs: float = 5.0
    recon_weight: float = 1.0
    reg_weight: float = 20.0
    param_numeric: str = "mse"  # error on the scaled slots: "mse" or "l1" (docs/results.md)
    transpose_weight: float = 1.0  # the transpose slot's weight in that error (slot_weights)
    # squared error of each ratio-mode operator's pitch (transpose + its frequency ratio, in
    # semitones), added to that error with this weight (op_pitch_error); 0 = off
    op_pitch_weight: float = 0.0
    # 0: that error squared; > 0: log(1 + (error / scale)^2), which grows slowly past a few
    # semitones so that pitches the audio cannot settle do not swamp the other slots
    op_pitch_scale: float = 0.0
    dis_weight: float = 10.0
    dis_mu: float = 2.0
    dis_sigma: float = 0.5
    contrastive_weight: float = 0.0
    temperature: float = 0.1
    # "euclidean": similarity = -(mean squared difference) (the distance the latent is read
    # with: match, the pitch-independence ratio); "cosine": Tanaka et al.'s SupCon form
    contrastive_metric: str = "cosine"
    single_note_prob: float = 0.3
    # Knobs that move the sound (host_training.model.knob_loss): 0 switches the sweep loss off.
    knob_weight: float = 0.0
    knob_margin: float = 1.0  # own-score rise (rank units, range 2) over a full travel
    knob_cross_weight: float = 1.0
    knob_pitch_weight: float = 0.0  # squared pitch-parameter change along a sweep, per DX7 step
    # 1: that change is read from the head with its int8 noise (the pitch must hold for the int8
    # decoder); 0: from the clean head, like the rest of the sweep (better knobs, but the tiny
    # run's int8 decoder then failed issue 5's audio gate, docs/results.md); in between: that
    # share of the penalty from the noisy head, the rest from the clean one
    knob_pitch_int8: float = 1.0
    # 1: the sweeps are read as the device plays them in relative mode (each training voice plus
    # the head's change from its latent, knob_loss.relative_view); 0: the head's own voices
    knob_relative: float = 0.0
    knob_carrier_weight: float = 0.0  # squared change of a carrier's frequency along a sweep, per semitone
    knob_edit_weight: float = 0.0  # the edit's size along a sweep: summed |change| of the scaled slots (L1)
    surrogate_weight: float = 1.0
    surrogate: str = "mlp"  # the surrogate's members: "mlp", "linear", "prior" or sums such as "mlp+prior"
    surrogate_steps: float = 2000  # fitted on the training voices before the first epoch
    # every epoch, this many of the head's own knob voices are rendered (Dexed), scored and
    # added to what the surrogate learns from (host_training.dataset.rendered_scores); 0 = off
    surrogate_render_voices: float = 0
    surrogate_refit_steps: float = 300  # surrogate steps after each epoch's renders

    @property
    def knob_travel(self) -> float:
        """How far a knob's latent dimension reaches each way: the tagged voices' targets
        (dis_mu) plus one of their standard deviations."""
        return self.dis_mu + self.dis_sigma

    @classmethod
    def from_dict(cls, d: dict) -> LossConfig:
        fields = cls.__dataclass_fields__
        return cls(**{k: (str(v) if isinstance(fields[k].default, str) else float(v)) for k, v in d.items()
                      if k in fields})


@functools.lru_cache(maxsize=None)
def slot_weights(transpose_weight: float = 1.0) -> torch.Tensor:
    """Weight of each scaled slot's error (``SCALED_SLOTS`` order): 1, but ``transpose_weight``
    for the transpose. Why: a slot's error is in units of its parameter's whole range, so an
    octave of transpose (12 of 48 steps) costs as much as an output level 25 steps off, while
    in sound it puts every note in another octave; unweighted, every model of the tiny run got
    the transpose exactly right for 7 % of the test voices (docs/results.md). Built once per
    weight (every batch asks for it); callers must not modify it."""
    w = torch.ones(len(SCALED_SLOTS))
    w[(SCALED_SLOTS == TRANSPOSE_SLOT).nonzero()] = float(transpose_weight)
    return w


def param_loss(pred: torch.Tensor, target: torch.Tensor, numeric: str = "mse",
               weights: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Per voice: (total, error summed over scaled slots, cross-entropy summed over the one-hot
    groups). The groups' slots are logits (layout.decode takes their argmax). ``numeric``:
    "mse" (squared error) or "l1" (absolute error); ``weights``: per scaled slot
    (``slot_weights``), 1 when omitted."""
    idx = SCALED_SLOTS.to(pred.device)
    err = pred.index_select(1, idx) - target.index_select(1, idx)
    per_slot = err.abs() if numeric == "l1" else err.pow(2)
    if weights is not None:
        per_slot = per_slot * weights.to(per_slot.device, per_slot.dtype)
    num = per_slot.sum(1)
    ce = pred.new_zeros(pred.shape[0])
    for start, width in GROUP_SPANS:
        logits = pred[:, start : start + width]
        ce = ce + F.cross_entropy(logits.float(), target[:, start : start + width].argmax(1), reduction="none")
    return num + ce, num, ce


_OPS = range(1, 7)
_TRANSPOSE_HIGH = float(param("transpose").high)  # 48
_COARSE_HIGH = float(param("op1_freq_coarse").high)  # 31
_FINE_HIGH = float(param("op1_freq_fine").high)  # 99: ratio x (1 + fine / 100)
_COARSE = torch.as_tensor([slot(f"op{k}_freq_coarse").start for k in _OPS])
_FINE = torch.as_tensor([slot(f"op{k}_freq_fine").start for k in _OPS])
_LEVEL = torch.as_tensor([slot(f"op{k}_output_level").start for k in _OPS])
_RATIO_MODE = torch.as_tensor([slot(f"op{k}_osc_mode").start for k in _OPS])  # choice 0 = "ratio"


def op_pitches(vec: torch.Tensor) -> torch.Tensor:
    """(B, VECTOR_SIZE) -> (B, 6): each operator's pitch above the played note in ratio mode,
    in semitones (transpose plus 12 log2 of coarse (0 = 0.5) times 1 + fine / 100), from the
    scaled slots, clipped to their DX7 ranges as decoding does."""
    dev = vec.device
    tr = vec[:, TRANSPOSE_SLOT].float().clamp(0.0, 1.0) * _TRANSPOSE_HIGH
    coarse = (vec.index_select(1, _COARSE.to(dev)).float() * _COARSE_HIGH).clamp(0.5, _COARSE_HIGH)
    fine = vec.index_select(1, _FINE.to(dev)).float().clamp(0.0, 1.0) * _FINE_HIGH
    return tr[:, None] + 12.0 * torch.log2(coarse * (1.0 + fine / 100.0))


def op_pitch_error(pred: torch.Tensor, target: torch.Tensor, scale: float = 0.0) -> torch.Tensor:
    """Per voice: squared pitch error (semitones^2; with ``scale`` > 0, log(1 + (error /
    scale)^2)) summed over the target's ratio-mode operators, each weighted by its output
    level (0..1). Why: the audio fixes an operator's pitch, not how it splits into transpose
    and ratio (an octave up in one is an octave down in the other), so slot errors alone pull
    both to the mean of the splits they cannot tell apart and the decoded voice sounds in
    another key; this term is zero for every split that sounds right (docs/results.md,
    "Operator pitch")."""
    dev = target.device
    weight = target.index_select(1, _LEVEL.to(dev)).float() * target.index_select(1, _RATIO_MODE.to(dev)).float()
    err = (op_pitches(pred) - op_pitches(target)).pow(2)
    if scale > 0:
        err = torch.log1p(err / (scale * scale))
    return (weight * err).sum(1)


def head_loss(pred: torch.Tensor, target: torch.Tensor,
              cfg: LossConfig) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
    """Per voice: (parameter loss with the operator-pitch term, scaled-slot error, one-hot
    cross-entropy, operator-pitch error), as ``cfg`` sets them; the VAE's head and the
    direct baselines are trained on the same one."""
    reg, num, ce = param_loss(pred, target, cfg.param_numeric, slot_weights(cfg.transpose_weight))
    if cfg.op_pitch_weight > 0:
        pitch = op_pitch_error(pred, target, cfg.op_pitch_scale)
        reg = reg + cfg.op_pitch_weight * pitch
    else:
        pitch = reg.new_zeros(reg.shape)
    return reg, num, ce, pitch


def disentangle(z: torch.Tensor, tags: torch.Tensor, mu: float, sigma: float) -> tuple[torch.Tensor, torch.Tensor]:
    """The seed's Flow_dis objective on the first T latent dimensions: a voice tagged -1/+1
    for tag t is pulled to N(-mu, sigma^2)/N(+mu, sigma^2) on dimension t; untagged entries
    are left to the standard-normal prior. Returns (per-voice negative log-likelihood of the
    tagged entries, mask of the entries it replaced in the prior)."""
    t = tags.shape[1]
    tagged = tags != 0
    zs = z[:, :t]
    nll = 0.5 * ((zs - tags * mu) / sigma).pow(2) + math.log(sigma) + 0.5 * LOG2PI
    return (nll * tagged).sum(1), tagged


def kl_mc(z: torch.Tensor, log_q: torch.Tensor, replaced: torch.Tensor | None) -> torch.Tensor:
    """log q(z) - log p(z), one sample, p standard normal on every entry not replaced by a
    disentangling target."""
    log_p = -0.5 * z.pow(2) - 0.5 * LOG2PI
    if replaced is not None:
        log_p = log_p.clone()
        log_p[:, : replaced.shape[1]] = log_p[:, : replaced.shape[1]].masked_fill(replaced, 0.0)
    return log_q - log_p.sum(1)


def supervised_contrastive(emb: torch.Tensor, temperature: float, metric: str = "cosine") -> torch.Tensor:
    """Tanaka et al.'s weakly supervised contrastive loss on single-note encodings.
    ``emb`` is (B, K, L): the same voice at another note is a positive, every other voice a
    negative (SupCon form over ``temperature``). ``metric`` "cosine" is their similarity;
    "euclidean" uses minus the mean squared difference, so that what it pulls together is
    the distance the latent space is read with, not only the direction."""
    b, k, n = emb.shape
    if k < 2 or b < 2:
        return emb.new_zeros(())
    flat = emb.reshape(b * k, -1).float()
    if metric == "euclidean":
        sim = -torch.cdist(flat, flat).pow(2) / (n * temperature)
    elif metric == "cosine":
        e = F.normalize(flat, dim=1)
        sim = e @ e.t() / temperature
    else:
        raise ValueError(f"unknown contrastive metric {metric!r} (cosine or euclidean)")
    voice = torch.arange(b, device=emb.device).repeat_interleave(k)
    self_mask = torch.eye(b * k, dtype=torch.bool, device=emb.device)
    pos = (voice[:, None] == voice[None, :]) & ~self_mask
    sim = sim.masked_fill(self_mask, -1e9)
    log_prob = sim - torch.logsumexp(sim, dim=1, keepdim=True)
    return -(log_prob * pos).sum(1).div(pos.sum(1)).mean()


def note_mask(b: int, k: int, single_prob: float, generator: torch.Generator | None = None) -> torch.Tensor:
    """Which notes the encoder sees: all of them, or (with ``single_prob``) one random note,
    so that one recording at one pitch encodes like the whole set."""
    mask = torch.ones(b, k, dtype=torch.bool)
    single = torch.rand(b, generator=generator) < single_prob
    pick = torch.randint(0, k, (b,), generator=generator)
    one = torch.zeros(b, k, dtype=torch.bool)
    one[torch.arange(b), pick] = True
    return torch.where(single[:, None], one, mask)


def vae_loss(model, x: torch.Tensor, target: torch.Tensor, tags: torch.Tensor, cfg: LossConfig, beta: float,
             mask: torch.Tensor | None, contrastive: bool, scores: torch.Tensor | None = None,
             surrogate: nn.Module | None = None,
             probe: tuple[torch.Tensor, ...] | None = None) -> tuple[torch.Tensor, dict[str, float]]:
    """The whole VAE objective for one batch; returns (loss, figures for the logs).
    ``scores`` (B, T tag scores, every tag pair) and ``surrogate`` switch on the knob terms
    (host_training.model.knob_loss); ``probe`` is a batch of rendered knob moves of the head
    (knob_loss.ProbeBuffer.sample) the surrogate also learns from."""
    h = model.note_features(x)
    mu, logvar = model.pooled_posterior(h, mask)
    z, log_q = model.sample(mu, logvar)
    recon = model.decoder(z)
    xn = model.recon_target(x)
    rec = 0.5 * (recon.float() - xn.float()).pow(2).flatten(1).sum(1)
    dis, replaced = disentangle(z, tags.to(z.dtype), cfg.dis_mu, cfg.dis_sigma)
    kl = kl_mc(z, log_q, replaced)
    vec = model.to_vector(z)
    reg, num, ce, pitch = head_loss(vec, target, cfg)
    loss = (cfg.recon_weight * rec + beta * kl + cfg.dis_weight * dis + cfg.reg_weight * reg).mean()
    con = x.new_zeros(())
    if contrastive and cfg.contrastive_weight > 0:
        con = supervised_contrastive(model.per_note_latent(h), cfg.temperature, cfg.contrastive_metric)
        loss = loss + cfg.contrastive_weight * con
    figures = {"recon": rec.mean().item(), "kl": kl.mean().item(), "dis": dis.mean().item(),
               "param": reg.mean().item(), f"param_{cfg.param_numeric}": num.mean().item(),
               "param_ce": ce.mean().item(), "op_pitch": pitch.mean().item(),
               "contrastive": con.item()}
    if surrogate is not None and scores is not None and cfg.knob_weight > 0:
        if probe is not None:  # the head's knob moves with the scores their renders really have
            second = knob_loss.pair_loss(surrogate, *probe)
        else:  # without renders: the head's prediction labelled with its target's scores
            second = knob_loss.surrogate_loss(surrogate, knob_loss.synth_view(vec.detach()), scores)
        fit = 0.5 * (knob_loss.surrogate_loss(surrogate, target, scores) + second)

        def clean_head(latents: torch.Tensor) -> torch.Tensor:
            with noise_off(model):  # what a knob does to the sound, not what int8 noise does
                return model.to_vector(latents)

        # the pitch must hold along a sweep as the int8 decoder plays it: the noisy head
        noisy = cfg.knob_pitch_int8 > 0 and model.training and has_noise(model)
        pitch_head = model.to_vector if noisy else None
        sweep, gain = knob_loss.sweep_loss(clean_head, surrogate, z, tags.shape[1], cfg.knob_travel, cfg.knob_margin,
                                           cfg.knob_cross_weight, cfg.knob_pitch_weight, pitch_head=pitch_head,
                                           pitch_head_share=cfg.knob_pitch_int8,
                                           voices=target if cfg.knob_relative > 0 else None,
                                           carrier_weight=cfg.knob_carrier_weight,
                                           edit_weight=cfg.knob_edit_weight)
        loss = loss + cfg.surrogate_weight * fit + cfg.knob_weight * sweep
        figures.update(surrogate=fit.item(), knob_sweep=sweep.item(), knob_gain=gain.item())
    figures["loss"] = loss.item()
    return loss, figures


def direct_loss(model, x: torch.Tensor, target: torch.Tensor,
                cfg: LossConfig) -> tuple[torch.Tensor, dict[str, float]]:
    reg, num, ce, pitch = head_loss(model(x), target, cfg)
    loss = reg.mean()
    return loss, {"loss": loss.item(), "param": loss.item(), f"param_{cfg.param_numeric}": num.mean().item(),
                  "param_ce": ce.mean().item(), "op_pitch": pitch.mean().item()}
