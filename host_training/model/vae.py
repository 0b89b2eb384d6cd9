"""The VAE with normalizing flows (Esling, Masuda et al.; Le Vaillant et al.).

* Encoder: one convolutional trunk shared by every note, then the notes' features are
  averaged (over the notes present) and an MLP gives the Gaussian posterior. Why a shared
  trunk and not "notes as input channels": a recording at *any one* pitch must encode to
  the same timbre (``dxmacro match``, the contrastive loss), and a note-agnostic trunk
  with averaging takes any subset of notes, one included, with the same weights.
* Posterior flow: a RealNVP stack refines the Gaussian sample z0 into z (log q tracked).
* Spectrogram decoder: z -> all notes' log-mel (transposed convolutions).
* Head: z -> the 225-slot parameter vector (dx7.layout), either the regression flow
  (invertible, so the latent has exactly 225 dimensions) or an MLP (baseline "vae_mlp").
  The first S latent dimensions are the semantic knobs.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import torch
from torch import nn

from dx7.layout import VECTOR_SIZE
from host_training.model import baselines
from host_training.model.blocks import Normalize, Shape, mlp
from host_training.model.flows import MapModule, realnvp

LATENT = VECTOR_SIZE  # invertibility of the regression flow: latent size == vector size


@dataclass
class ModelConfig:
    head: str = "flow"  # "flow" | "mlp"
    semantic_dims: int = 6
    pool_mel: int = 2
    pool_time: int = 1
    enc_channels: list[int] = field(default_factory=lambda: [16, 32, 64, 128])
    hidden: int = 256
    post_flow_blocks: int = 4
    post_flow_hidden: int = 256
    reg_flow_blocks: int = 6
    reg_flow_hidden: int = 256
    reg_flow_layers: int = 2
    # int8 rounding simulated as noise in the regression flow while training, in int8 steps
    # (host_training.model.flows.AffineCoupling._noise); 0 = off
    reg_flow_quant_noise: float = 0.0
    dec_channels: list[int] = field(default_factory=lambda: [128, 64, 32, 16])
    seed: int = 0

    @classmethod
    def from_dict(cls, d: dict) -> ModelConfig:
        known = {k: v for k, v in d.items() if k in cls.__dataclass_fields__}
        return cls(**known)


def conv_block(c_in: int, c_out: int) -> nn.Sequential:
    return nn.Sequential(nn.Conv2d(c_in, c_out, 4, 2, 1), nn.BatchNorm2d(c_out), nn.LeakyReLU(0.1))


class NoteEncoder(nn.Module):
    """(B, K, M, F) dB -> (B, K, H): the same trunk on every note."""

    def __init__(self, shape: Shape, cfg: ModelConfig) -> None:
        super().__init__()
        self.norm = Normalize(shape.mean, shape.std)
        self.pool = nn.AvgPool2d((cfg.pool_mel, cfg.pool_time)) if cfg.pool_mel * cfg.pool_time > 1 else nn.Identity()
        chans = [1] + list(cfg.enc_channels)
        self.convs = nn.Sequential(*[conv_block(a, b) for a, b in zip(chans[:-1], chans[1:])])
        self.squash = nn.AdaptiveAvgPool2d((4, 4))
        self.fc = nn.Sequential(nn.Linear(chans[-1] * 16, cfg.hidden), nn.LeakyReLU(0.1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b, k, m, f = x.shape
        h = self.pool(self.norm(x.reshape(b * k, 1, m, f)))
        h = self.squash(self.convs(h)).flatten(1)
        return self.fc(h).reshape(b, k, -1)


class SpecDecoder(nn.Module):
    """z -> (B, K, M, F) normalised log-mel."""

    def __init__(self, shape: Shape, cfg: ModelConfig) -> None:
        super().__init__()
        n = len(cfg.dec_channels)
        self.m0 = max(1, math.ceil(shape.mels / 2**n))
        self.f0 = max(1, math.ceil(shape.frames / 2**n))
        self.shape = shape
        c0 = cfg.dec_channels[0]
        self.fc = nn.Sequential(nn.Linear(LATENT, cfg.hidden), nn.LeakyReLU(0.1),
                                nn.Linear(cfg.hidden, c0 * self.m0 * self.f0), nn.LeakyReLU(0.1))
        layers: list[nn.Module] = []
        chans = list(cfg.dec_channels)
        for a, b in zip(chans, chans[1:] + [chans[-1]]):
            layers += [nn.ConvTranspose2d(a, b, 4, 2, 1), nn.BatchNorm2d(b), nn.LeakyReLU(0.1)]
        layers.append(nn.Conv2d(chans[-1], shape.notes, 3, 1, 1))
        self.deconv = nn.Sequential(*layers)
        self.c0 = c0

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        h = self.fc(z).reshape(z.shape[0], self.c0, self.m0, self.f0)
        return self.deconv(h)[:, :, : self.shape.mels, : self.shape.frames]


class FlowVAE(nn.Module):
    """Encoder + posterior flow + spectrogram decoder + parameter head."""

    def __init__(self, shape: Shape, cfg: ModelConfig) -> None:
        super().__init__()
        self.shape, self.cfg = shape, cfg
        self.encoder = NoteEncoder(shape, cfg)
        self.posterior = mlp(cfg.hidden, cfg.hidden, 2 * LATENT, layers=1)
        self.post_flow = realnvp(LATENT, cfg.post_flow_blocks, cfg.post_flow_hidden, seed=cfg.seed + 1,
                                 final_affine=False)
        # The decoder rebuilds the spectrogram at the encoder's pooled resolution: the
        # reconstruction organises the latent space; full resolution only costs time.
        pooled = Shape(shape.notes, shape.mels // cfg.pool_mel, shape.frames // cfg.pool_time)
        self.decoder = SpecDecoder(pooled, cfg)
        if cfg.head == "flow":
            self.reg_flow = realnvp(LATENT, cfg.reg_flow_blocks, cfg.reg_flow_hidden, cfg.reg_flow_layers,
                                    seed=cfg.seed + 2, alternate=True, lead=cfg.semantic_dims,
                                    quant_noise=float(cfg.reg_flow_quant_noise))
            self.head: nn.Module = MapModule(self.reg_flow)
        elif cfg.head == "mlp":
            self.head = mlp(LATENT, cfg.reg_flow_hidden, VECTOR_SIZE, layers=cfg.reg_flow_layers)
        else:
            raise ValueError(f"unknown head {cfg.head!r}")

    def recon_target(self, x: torch.Tensor) -> torch.Tensor:
        """What the decoder reconstructs: the normalised input, pooled like the encoder's."""
        b, k, m, f = x.shape
        h = self.encoder.pool(self.encoder.norm(x.reshape(b * k, 1, m, f)))
        return h.reshape(b, k, h.shape[-2], h.shape[-1])

    # -- encoding -----------------------------------------------------------------
    def note_features(self, x: torch.Tensor) -> torch.Tensor:
        return self.encoder(x)

    def pooled_posterior(self, h: torch.Tensor, mask: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor]:
        """Mean of the present notes' features -> (mu, logvar)."""
        if mask is None:
            pooled = h.mean(dim=1)
        else:
            w = mask.to(h.dtype).unsqueeze(-1)
            pooled = (h * w).sum(1) / w.sum(1).clamp_min(1.0)
        out = self.posterior(pooled)
        mu, logvar = out[:, :LATENT], out[:, LATENT:].clamp(-12.0, 6.0)
        return mu, logvar

    def per_note_mu(self, h: torch.Tensor) -> torch.Tensor:
        """(B, K, H) -> (B, K, L): each note encoded alone (its posterior mean)."""
        b, k, _ = h.shape
        out = self.posterior(h.reshape(b * k, -1))[:, :LATENT]
        return out.reshape(b, k, LATENT)

    def per_note_latent(self, h: torch.Tensor) -> torch.Tensor:
        """(B, K, H) -> (B, K, L): each note's deterministic latent (what ``encode`` gives for
        that note alone): the contrastive loss works where timbre is read."""
        b, k, _ = h.shape
        return self.post_flow.map(self.per_note_mu(h).reshape(b * k, -1)).reshape(b, k, LATENT)

    def sample(self, mu: torch.Tensor, logvar: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """z0 ~ q0, z = T(z0); returns (z, log q(z))."""
        std = torch.exp(0.5 * logvar)
        eps = torch.randn_like(mu)
        z0 = mu + std * eps
        log_q0 = (-0.5 * eps.pow(2) - 0.5 * logvar - 0.5 * math.log(2 * math.pi)).sum(1)
        z, logdet = self.post_flow(z0)
        return z, log_q0 - logdet

    @torch.no_grad()
    def encode(self, x: torch.Tensor, mask: torch.Tensor | None = None) -> torch.Tensor:
        """Deterministic latent: the posterior flow applied to the posterior mean."""
        mu, _ = self.pooled_posterior(self.note_features(x), mask)
        return self.post_flow.map(mu)

    # -- decoding -----------------------------------------------------------------
    def to_vector(self, z: torch.Tensor) -> torch.Tensor:
        """z -> 225-slot vector (scaled slots and one-hot logits; dx7.layout.decode reads it)."""
        return self.head(z)

    def from_vector(self, v: torch.Tensor) -> torch.Tensor:
        """Inverse of the regression flow: a parameter vector -> its latent (flow head only)."""
        if self.cfg.head != "flow":
            raise ValueError("only the flow head is invertible")
        return self.reg_flow.inverse(v)[0]


VAE_KINDS = {"flow": "flow", "flow_nocontrastive": "flow", "vae_mlp": "mlp"}
DIRECT_KINDS = ("mlp", "cnn", "resnet")
KINDS = tuple(VAE_KINDS) + DIRECT_KINDS


def build(kind: str, shape: Shape, cfg: dict) -> nn.Module:
    """The model for one name of the config's ``models`` list: a VAE ("flow": regression
    flow head; "flow_nocontrastive": the same without the contrastive loss, the ablation;
    "vae_mlp": MLP head) or a direct baseline ("mlp", "cnn", "resnet")."""
    if kind in VAE_KINDS:
        mc = ModelConfig.from_dict(cfg)
        mc.head = VAE_KINDS[kind]
        return FlowVAE(shape, mc)
    return baselines.build(kind, shape, cfg)
