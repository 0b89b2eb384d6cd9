"""The training loop for every model of a run: seeded, checkpointed per epoch (resume gives
the same weights as an uninterrupted run), progress bar, TensorBoard logs, mixed
precision on CUDA, and DistributedDataParallel when launched under ``torchrun``.

A run folder holds::

    config.toml   the resolved configuration        run.json  data set, manifest sha256, shape
    models/NAME/  checkpoint.pt (resume), model.pt (weights only), log.jsonl (curves)
    tb/NAME/      TensorBoard events                 export/   info.json, latents.npy (see export.py)
"""

from __future__ import annotations

import json
import math
import os
import shutil
import time
import tomllib
from dataclasses import asdict
from importlib import resources
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from dxmacro.errors import DxmacroError
from host_training.jobs.runs import manifest_sha256, write_json
from host_training.jobs.training_data import Data
from host_training.model import flows, losses
from host_training.model.checkpoint import LOAD_ERRORS, load_checkpoint, save_model
from host_training.model.vae import DIRECT_KINDS, KINDS, VAE_KINDS, build

SECTIONS = {
    "train": {"seed", "epochs", "batch_size", "lr", "weight_decay", "amp", "max_train", "max_val", "grad_clip",
              "threads"},
    "model": {"semantic_dims", "pool_mel", "pool_time", "enc_channels", "hidden", "post_flow_blocks",
              "post_flow_hidden", "reg_flow_blocks", "reg_flow_hidden", "reg_flow_layers", "dec_channels",
              "baseline_channels", "baseline_hidden", "reg_flow_quant_noise"},
    "loss": set(losses.LossConfig.__dataclass_fields__),
    "run": {"models"},
    "evaluate": {"max_test", "n_ood", "knob_voices", "knob_steps", "generate_n", "interp_pairs", "interp_steps",
                 "near_copy_db", "match_candidates", "match_polish_renders", "register", "ood_seed", "n_foreign",
                 "threads"},
}


# -- configuration --------------------------------------------------------------------------
SHIPPED_CONFIGS = ("tiny", "cpu", "full")  # a subset on CPU, the whole corpus on CPU, the GPU run


def config_path(name_or_path: str | None) -> Path:
    """``tiny``/``cpu``/``full`` (shipped configs) or a path to a TOML file."""
    name = name_or_path or "tiny"
    if name in SHIPPED_CONFIGS:
        return Path(str(resources.files("host_training") / "configs" / f"{name}.toml"))
    return Path(name)


def load_config(name_or_path: str | None) -> dict[str, Any]:
    path = config_path(name_or_path)
    try:
        cfg = tomllib.loads(path.read_text())
    except FileNotFoundError:
        raise DxmacroError(f"{path}: no such config file") from None
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
        raise DxmacroError(f"{path}: not valid TOML ({exc})") from None
    validate_config(cfg, str(path))
    return cfg


def validate_config(cfg: dict[str, Any], where: str) -> None:
    for section, body in cfg.items():
        if section not in SECTIONS or not isinstance(body, dict):
            raise DxmacroError(f"{where}: unknown section [{section}] (known: {', '.join(SECTIONS)})")
        unknown = set(body) - SECTIONS[section]
        if unknown:
            raise DxmacroError(f"{where}: unknown key(s) {sorted(unknown)} in [{section}]")
    models = cfg.get("run", {}).get("models", [])
    bad = [m for m in models if m not in KINDS]
    if not models or bad:
        raise DxmacroError(f"{where}: [run] models must list some of {list(KINDS)} (bad: {bad})")
    numeric = cfg.get("loss", {}).get("param_numeric", "mse")
    if numeric not in ("mse", "l1"):
        raise DxmacroError(f"{where}: [loss] param_numeric must be \"mse\" or \"l1\" (got {numeric!r})")
    metric = cfg.get("loss", {}).get("contrastive_metric", "cosine")
    if metric not in ("cosine", "euclidean"):
        raise DxmacroError(f"{where}: [loss] contrastive_metric must be \"cosine\" or \"euclidean\" (got {metric!r})")
    if not isinstance(cfg.get("evaluate", {}).get("register", True), bool):
        raise DxmacroError(f"{where}: [evaluate] register must be true or false")
    from host_training.model.knob_loss import DescriptorSurrogate

    surrogate = cfg.get("loss", {}).get("surrogate", "mlp")
    if surrogate not in DescriptorSurrogate.KINDS:
        raise DxmacroError(f"{where}: [loss] surrogate must be one of {', '.join(DescriptorSurrogate.KINDS)} "
                           f"(got {surrogate!r})")
    t = cfg.get("train", {})
    for key in ("epochs", "batch_size"):
        if not isinstance(t.get(key), int) or t[key] < 1:
            raise DxmacroError(f"{where}: [train] {key} must be a positive integer")


# -- data --------------------------------------------------------------------------------------
# -- distributed ----------------------------------------------------------------------------
def dist_info() -> tuple[int, int, int]:
    """(rank, world size, local rank); launched under torchrun when WORLD_SIZE > 1."""
    world = int(os.environ.get("WORLD_SIZE", "1"))
    return int(os.environ.get("RANK", "0")), world, int(os.environ.get("LOCAL_RANK", "0"))


class LossModule(nn.Module):
    """The model plus its objective, so that DistributedDataParallel sees one forward()."""

    def __init__(self, kind: str, model: nn.Module, lcfg: losses.LossConfig, n_scores: int = 0) -> None:
        super().__init__()
        self.kind, self.model, self.lcfg = kind, model, lcfg
        # the knob surrogate trains beside the VAE and never ships (host_training.model.knob_loss)
        self.surrogate = None
        if kind in VAE_KINDS and lcfg.knob_weight > 0 and n_scores > 0:
            from host_training.model.knob_loss import DescriptorSurrogate

            self.surrogate = DescriptorSurrogate(n_scores, kind=lcfg.surrogate)

    def forward(self, x, target, tags, scores, mask, beta: float, probe=None):
        if self.kind in VAE_KINDS:
            return losses.vae_loss(self.model, x, target, tags, self.lcfg, beta, mask,
                                   contrastive=self.kind != "flow_nocontrastive", scores=scores,
                                   surrogate=self.surrogate, probe=probe)
        return losses.direct_loss(self.model, x, target, self.lcfg)


def train_one(kind: str, data: Data, cfg: dict[str, Any], run: Path, *, stop_after: int | None = None,
              device: torch.device, rank: int, world: int, progress: bool = True) -> dict[str, Any]:
    """Train (or resume) one model of the run; returns its final figures."""
    t = cfg["train"]
    seed = int(t.get("seed", 0))
    epochs = int(t["epochs"])
    mcfg = dict(cfg.get("model", {}), seed=seed)
    lcfg = losses.LossConfig.from_dict(cfg.get("loss", {}))
    out = run / "models" / kind
    out.mkdir(parents=True, exist_ok=True)
    torch.manual_seed(seed)
    model = build(kind, data.shape, mcfg).to(device)
    objective = LossModule(kind, model, lcfg, data.scores.shape[1]).to(device)
    module: nn.Module = objective
    opt = torch.optim.AdamW(objective.parameters(), lr=float(t.get("lr", 1e-3)), weight_decay=float(t.get("weight_decay", 0)))
    sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, T_max=epochs)
    use_amp = bool(t.get("amp", True)) and device.type == "cuda"
    scaler = torch.amp.GradScaler("cuda", enabled=use_amp)
    ckpt_path = out / "checkpoint.pt"
    start = 0
    probes, scorer = None, None
    if objective.surrogate is not None and lcfg.surrogate_render_voices > 0:
        from host_training.model.knob_loss import ProbeBuffer
        from host_training.dataset.rendered_scores import ScoreRenderer
        from host_training.audio.sound import RenderSettings

        probes = ProbeBuffer(data.scores.shape[1])
        scorer = ScoreRenderer(RenderSettings.from_manifest(data.ds.settings), data.ds.descriptors,
                               data.scores.shape[1], int(t.get("threads") or 2))
    if ckpt_path.exists():
        try:
            ck = load_checkpoint(ckpt_path, device, "checkpoint")
            model.load_state_dict(ck["model"])
            if objective.surrogate is not None:
                objective.surrogate.load_state_dict(ck["surrogate"])
            opt.load_state_dict(ck["optimizer"])
            sched.load_state_dict(ck["scheduler"])
            scaler.load_state_dict(ck["scaler"])
            flows.load_noise_peaks(model, {k: v.to(device) for k, v in ck.get("noise_peaks", {}).items()})
            if probes is not None:
                probes.load(ck.get("probes"))
            start = int(ck["epoch"])
        except LOAD_ERRORS as exc:
            raise DxmacroError(f"{ckpt_path}: cannot resume ({str(exc).splitlines()[0]}); delete it to start over") from None
    if objective.surrogate is not None and start == 0:
        from host_training.model.knob_loss import fit_surrogate

        fit_surrogate(objective.surrogate, data.targets[data.train], data.scores[data.train],
                      int(lcfg.surrogate_steps), seed)
    if world > 1:
        from torch.nn.parallel import DistributedDataParallel

        module = DistributedDataParallel(module, device_ids=[device.index] if device.type == "cuda" else None)
    writer = None
    if rank == 0:
        try:
            from torch.utils.tensorboard import SummaryWriter

            writer = SummaryWriter(str(run / "tb" / kind), purge_step=start)
        except ImportError:  # tensorboard is in the host extra; logs still go to log.jsonl
            writer = None
    bs = int(t["batch_size"])
    last = min(epochs, stop_after) if stop_after is not None else epochs
    figures: dict[str, Any] = {}
    for epoch in range(start, last):
        # Everything random in an epoch derives from (seed, epoch): resuming at an epoch
        # boundary replays exactly what an uninterrupted run does.
        rng = np.random.default_rng([seed, epoch])
        torch.manual_seed(seed * 100003 + epoch)
        gen = torch.Generator().manual_seed(seed * 7919 + epoch)
        perm = rng.permutation(data.train)
        perm = perm[rank::world]
        # the same number of batches on every rank (DDP all-reduces once per batch)
        n_batches = max(1, (len(data.train) // world) // bs)
        beta = lcfg.beta * min(1.0, (epoch + 1) / max(lcfg.beta_warmup_epochs, 1e-9))
        if probes is not None:
            refresh_surrogate(objective.surrogate, model, data, probes, scorer, lcfg, seed, epoch, device)
        module.train()
        sums: dict[str, float] = {}
        bar = _bar(n_batches, f"{kind} {epoch + 1}/{epochs}", progress and rank == 0)
        for b in range(n_batches):
            x, target, tags, scores = (t.to(device) for t in data.batch(perm[b * bs : (b + 1) * bs]))
            mask = losses.note_mask(len(x), x.shape[1], lcfg.single_note_prob, gen).to(device)
            probe = probes.sample(rng, len(x)) if probes is not None else None
            if probe is not None:
                probe = tuple(p.to(device) for p in probe)
            with torch.autocast(device.type, dtype=torch.float16, enabled=use_amp):
                loss, figs = module(x, target, tags, scores, mask, beta, probe)
            opt.zero_grad(set_to_none=True)
            scaler.scale(loss).backward()
            scaler.unscale_(opt)
            nn.utils.clip_grad_norm_(objective.parameters(), float(t.get("grad_clip", 10.0)))
            scaler.step(opt)
            scaler.update()
            for k, v in figs.items():
                sums[k] = sums.get(k, 0.0) + v
            if bar is not None:
                bar.update(1)
                bar.set_postfix(loss=f"{figs['loss']:.3g}")
        if bar is not None:
            bar.close()
        sched.step()
        train_figs = {k: v / n_batches for k, v in sums.items()}
        if not all(math.isfinite(v) for v in train_figs.values()):
            raise DxmacroError(f"{kind}: training diverged in epoch {epoch + 1} (non-finite loss); lower [train] lr")
        val_figs = evaluate_loss(module, kind, data, bs, device, lcfg, beta) if len(data.val) else {}
        # batches and world size say how the epoch was split (torchrun: each rank its share)
        figures = {"epoch": epoch + 1, "train": train_figs, "val": val_figs, "time": time.time(),
                   "batches": n_batches, "world": world}
        if rank == 0:
            with open(out / "log.jsonl", "a") as f:
                f.write(json.dumps(figures) + "\n")
            if writer is not None:
                for split, figs in (("train", train_figs), ("val", val_figs)):
                    for k, v in figs.items():
                        writer.add_scalar(f"{split}/{k}", v, epoch + 1)
                writer.flush()
            tmp = ckpt_path.with_suffix(".tmp")
            torch.save({"model": model.state_dict(), "optimizer": opt.state_dict(), "scheduler": sched.state_dict(),
                        "scaler": scaler.state_dict(), "epoch": epoch + 1, "noise_peaks": flows.noise_peaks(model),
                        "surrogate": objective.surrogate.state_dict() if objective.surrogate is not None else None,
                        "probes": probes.state() if probes is not None else None},
                       tmp)
            os.replace(tmp, ckpt_path)
    if rank == 0:
        if writer is not None:
            writer.close()
        if last >= epochs:
            save_model(out / "model.pt", kind, data.shape, mcfg, model.cpu())
            model.to(device)
    return figures


def refresh_surrogate(surrogate: nn.Module, model: nn.Module, data: Data, probes, scorer, lcfg: losses.LossConfig,
                      seed: int, epoch: int, device: torch.device) -> None:
    """Render some of the head's own knob voices (host_training.model.knob_loss.knob_probes), score
    them for real and refit the surrogate on the corpus plus every voice rendered so far.
    Everything derives from (seed, epoch) and the model, so every DDP rank does the same."""
    from host_training.model.knob_loss import fit_surrogate, knob_probes

    rng = np.random.default_rng([seed, epoch, 1])
    idx = rng.choice(data.train, min(int(lcfg.surrogate_render_voices), len(data.train)), replace=False)
    model.eval()
    x = data.batch(idx)[0].to(device)
    pa, pb = knob_probes(model, x, data.tags.shape[1], lcfg.knob_travel, rng)
    scores = scorer.scores(np.concatenate([pa, pb]))
    probes.add(pa, pb, scores[: len(pa)], scores[len(pa):])
    fit_surrogate(surrogate, data.targets[data.train], data.scores[data.train], int(lcfg.surrogate_refit_steps),
                  seed * 7 + epoch, probes=probes)


@torch.no_grad()
def evaluate_loss(module: nn.Module, kind: str, data: Data, bs: int, device: torch.device,
                  lcfg: losses.LossConfig, beta: float) -> dict[str, float]:
    """Mean validation figures (all notes seen by the encoder)."""
    module.eval()
    inner = module.module if hasattr(module, "module") else module
    sums: dict[str, float] = {}
    n = 0
    for b in range(0, len(data.val), bs):
        x, target, tags, scores = (t.to(device) for t in data.batch(data.val[b : b + bs]))
        _, figs = inner(x, target, tags, scores, None, beta)
        for k, v in figs.items():
            sums[k] = sums.get(k, 0.0) + v * len(x)
        n += len(x)
    return {k: v / n for k, v in sums.items()}


def _bar(total: int, desc: str, enabled: bool):
    if not enabled:
        return None
    from tqdm import tqdm

    return tqdm(total=total, desc=desc, leave=False, dynamic_ncols=True, disable=None)


def train_run(data_dir: str | Path, run_dir: str | Path, config: str | None = None, *, stop_after: int | None = None,
              progress: bool = True, command: str = "") -> Path:
    """Train every model the config lists into ``run_dir`` (resuming what is there)."""
    cfg = load_config(config)
    run = Path(run_dir)
    rank, world, local = dist_info()
    if world > 1:
        import torch.distributed as dist

        backend = "nccl" if torch.cuda.is_available() else "gloo"
        dist.init_process_group(backend)
    device = torch.device(f"cuda:{local}" if torch.cuda.is_available() else "cpu")
    if device.type == "cuda":
        torch.cuda.set_device(device)
    threads = cfg["train"].get("threads")
    if threads and device.type == "cpu":
        torch.set_num_threads(int(threads))
    data = Data(data_dir, cfg)
    sha = manifest_sha256(data_dir)
    run_json = run / "run.json"
    if run_json.exists():
        prev = json.loads(run_json.read_text())
        if prev.get("dataset_manifest_sha256") != sha:
            raise DxmacroError(f"{run}: this run was trained on another data set ({prev.get('dataset_dir')}); "
                               "use a new --out folder")
        if prev.get("config") != cfg:
            raise DxmacroError(f"{run}: this run was started with another config; use a new --out folder")
    elif rank == 0:
        run.mkdir(parents=True, exist_ok=True)
        info = {"dataset_dir": str(Path(data_dir).resolve()), "dataset_manifest_sha256": sha, "config": cfg,
                "config_file": str(config_path(config)), "shape": asdict(data.shape), "command": command,
                "models": cfg["run"]["models"], "dataset_settings": data.ds.settings,
                "descriptor_names": data.ds.descriptor_names, "tag_names": [list(t) for t in data.ds.tag_names]}
        write_json(run_json, info)
        shutil.copyfile(config_path(config), run / "config.toml")
    for kind in cfg["run"]["models"]:
        if (run / "models" / kind / "model.pt").exists():
            continue
        train_one(kind, data, cfg, run, stop_after=stop_after, device=device, rank=rank, world=world,
                  progress=progress)
    # a run of direct baselines alone (for comparisons) has no latent space to export
    if rank == 0 and any(k in VAE_KINDS for k in cfg["run"]["models"]) and all(
            (run / "models" / k / "model.pt").exists() for k in cfg["run"]["models"]):
        from host_training.jobs.export import finalize

        finalize(run, data)
    if world > 1:
        import torch.distributed as dist

        dist.destroy_process_group()
    return run


__all__ = ["train_run", "train_one", "load_config", "DIRECT_KINDS"]
