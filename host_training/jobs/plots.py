"""Evaluation plots (matplotlib, Agg backend: no display needed)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import torch

from dx7 import PARAMS, Voice, layout


def _plt():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def training_curves(run: Path, out: Path) -> None:
    """Training and validation loss per epoch for every model of the run."""
    plt = _plt()
    out.mkdir(parents=True, exist_ok=True)
    fig, axes = plt.subplots(1, 2, figsize=(11, 4))
    for log in sorted((run / "models").glob("*/log.jsonl")):
        rows = [json.loads(line) for line in log.read_text().splitlines() if line.strip()]
        ep = [r["epoch"] for r in rows]
        for ax, split in zip(axes, ("train", "val")):
            ys = [r[split].get("param", np.nan) for r in rows]
            ax.plot(ep, ys, label=log.parent.name)
    for ax, split in zip(axes, ("train", "val")):
        ax.set(title=f"{split}: parameter loss", xlabel="epoch", yscale="log")
        ax.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(out / "training_curves.png", dpi=90)
    plt.close(fig)


def traversals(model, info: dict[str, Any], z: np.ndarray, settings, out: Path, steps: int = 7) -> None:
    """For each semantic dimension: spectrograms (middle note) and the parameters that move."""
    from host_training.audio.sound import VoiceRenderer, features_of

    plt = _plt()
    out.mkdir(parents=True, exist_ok=True)
    r = VoiceRenderer(settings)
    mid = len(settings.notes) // 2
    for sd in info["semantic_dims"]:
        pos = np.linspace(sd["low"], sd["high"], steps)
        zz = np.repeat(z[None], steps, 0).astype(np.float32)
        zz[:, sd["index"]] = pos
        with torch.no_grad():
            params = layout.decode(model.to_vector(torch.from_numpy(zz)).numpy())
        fig, axes = plt.subplots(2, steps, figsize=(2 * steps, 5), gridspec_kw={"height_ratios": [2, 1]})
        for j, p in enumerate(params):
            mel = features_of(r.audio(Voice.from_parameters(p, "T"), mid), settings.rate)[0]
            axes[0, j].imshow(mel, origin="lower", aspect="auto", vmin=-80, vmax=20)
            axes[0, j].set_title(f"{pos[j]:+.2f}", fontsize=8)
            axes[0, j].axis("off")
        moving = np.argsort(-params.astype(float).std(0))[:12]
        ax = plt.subplot2grid((3, 1), (2, 0), fig=fig)
        for a in axes[1]:
            a.remove()
        ax.imshow(params[:, moving].T, aspect="auto", cmap="viridis")
        ax.set_yticks(range(len(moving)), [PARAMS[i].name for i in moving], fontsize=6)
        ax.set_xlabel(f"dimension {sd['index']} ({sd['name']}) position")
        fig.suptitle(f"latent traversal: {sd['name']}")
        fig.savefig(out / f"traversal_{sd['index']}.png", dpi=80)
        plt.close(fig)


def latent_map(train_params: np.ndarray, gen_params: np.ndarray, out: Path) -> None:
    """Generated vs training voices on the first two principal axes of the parameter vector."""
    plt = _plt()
    out.mkdir(parents=True, exist_ok=True)
    a, b = layout.encode(train_params), layout.encode(gen_params)
    mean = a.mean(0)
    _, _, vt = np.linalg.svd(a - mean, full_matrices=False)
    pa, pb = (a - mean) @ vt[:2].T, (b - mean) @ vt[:2].T
    fig, ax = plt.subplots(figsize=(6, 5))
    ax.scatter(pa[:, 0], pa[:, 1], s=3, alpha=0.4, label="training voices")
    ax.scatter(pb[:, 0], pb[:, 1], s=5, alpha=0.7, label="generated")
    ax.legend()
    ax.set(title="generated vs training voices (PCA of the parameter vector)", xlabel="PC1", ylabel="PC2")
    fig.tight_layout()
    fig.savefig(out / "latent_map.png", dpi=90)
    plt.close(fig)
