"""The dataset card: counts that add up, and plots a person looks at before training."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np

from host_training.dataset.store import SPLITS, Dataset

SPLIT_NAMES = {v: k for k, v in SPLITS.items()}


def card_text(ds: Dataset) -> str:
    m = ds.manifest
    c = m["counts"]
    s = m["settings"]
    lines = [f"# Dataset card: {ds.directory.name}", "",
             f"dxmacro {m['dxmacro_version']}, format {m['format']} v{m['version']}", "",
             "## Settings", "",
             f"- notes (note:velocity): {', '.join(f'{n}:{v}' for n, v in s['notes'])}",
             f"- {s['rate']} Hz, key held {s['hold']} s of {s['duration']} s",
             f"- log-mel: {s['n_mels']} bands, {s['n_fft']}-point Hann, hop {s['hop']}, {s['frames']} frames; "
             f"{s['features_unit']} (floor {s['floor_db']} dB)",
             f"- silent note: RMS below {s['silence_db']} dBFS; paired tags: lowest/highest "
             f"{s['tag_quantile']:.0%} of voices; near-copy groups: pooled log-mel RMS distance < {s['group_db']} dB",
             "", "## Counts", "",
             "| stage | count |", "|---|---|",
             f"| files found | {c['files_found']} |",
             f"| files read | {c['files_read']} |",
             f"| files bad (listed below) | {c['files_bad']} |",
             f"| voices read (slots{' + synthetic' if c['voices_synthetic'] else ''}) | {c['voices_read']} |",
             f"| of which clamped into range (kept, Dexed's rule) | {c['clamped']} |",
             f"| dropped: exact duplicates (parameters) | {c['duplicates']} |",
             f"| dropped: silent at every note | {c['silent']} |",
             f"| dropped: near duplicates | {c['near_duplicates']} |",
             f"| **kept** | **{c['kept']}** |", "",
             f"Check: {c['voices_read']} read = {c['kept']} kept + {c['duplicates']} duplicates + {c['silent']} "
             f"silent + {c['near_duplicates']} near duplicates "
             f"({'adds up' if c['voices_read'] == c['kept'] + c['duplicates'] + c['silent'] + c['near_duplicates'] else 'DOES NOT ADD UP'}).",
             f"Silent single notes among kept voices: {c['silent_notes']} (descriptors NaN there).", ""]
    if m.get("bad_files"):
        lines += ["Bad files:", ""] + [f"- `{b['file']}`: {b['error']}" for b in m["bad_files"]] + [""]
    n = len(ds)
    split = np.asarray(ds.split)
    lines += ["## Splits", "", "| split | voices | share |", "|---|---|---|"]
    for code, name in SPLIT_NAMES.items():
        k = int((split == code).sum())
        lines.append(f"| {name} | {k} | {k / n:.1%} |")
    near = np.asarray(ds.nearest_train_db)
    near = near[np.isfinite(near)]
    lines += ["", f"{c['groups']} near-copy groups, the largest holds {c['largest_group']} voices."]
    if len(near):
        q = np.quantile(near, [0.1, 0.25, 0.5, 0.75, 0.9])
        lines.append("Test voice -> nearest training voice (pooled log-mel RMS dB): "
                     + ", ".join(f"p{p} {v:.2f}" for p, v in zip([10, 25, 50, 75, 90], q)))
    tags = np.asarray(ds.tags)
    lines += ["", "## Paired tags (from descriptors)", "", "| lower | voices | upper | voices | score |",
              "|---|---|---|---|---|"]
    for j, rule in enumerate(m.get("tag_rules", [])):
        lines.append(f"| {rule['lower']} | {int((tags[:, j] == -1).sum())} | {rule['upper']} | "
                     f"{int((tags[:, j] == 1).sum())} | {rule['score']} |")
    cats = np.asarray(ds.categories)
    lines += ["", "## Categories (from voice names)", "",
              f"Keyword hit rate: {c['named_category']} of {n} voices ({c['named_category'] / n:.1%}) match at "
              "least one category.", "", "| category | voices |", "|---|---|"]
    lines += [f"| {name} | {int(cats[:, j].sum())} |" for j, name in enumerate(ds.category_names)]
    desc = np.asarray(ds.descriptors)
    lines += ["", "## Descriptors (all notes, median [p10, p90])", "", "| descriptor | median | p10 | p90 |",
              "|---|---|---|---|"]
    for j, name in enumerate(ds.descriptor_names):
        col = desc[:, :, j].ravel()
        col = col[np.isfinite(col)]
        if len(col):
            p10, med, p90 = np.quantile(col, [0.1, 0.5, 0.9])
            lines.append(f"| {name} | {med:.3g} | {p10:.3g} | {p90:.3g} |")
    return "\n".join(lines) + "\n"


def write_plots(ds: Dataset, out: str | os.PathLike[str]) -> list[Path]:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    written = []
    desc = np.asarray(ds.descriptors)
    names = ds.descriptor_names
    log_scale = {"centroid_hz", "rolloff_hz", "attack_s", "decay_s"}
    fig, axes = plt.subplots(2, (len(names) + 1) // 2, figsize=(12, 5))
    for ax, j in zip(axes.ravel(), range(len(names))):
        col = desc[:, :, j].ravel()
        col = col[np.isfinite(col)]
        if names[j] in log_scale:
            col = np.log10(np.maximum(col, 1e-4))
        ax.hist(col, bins=60, color="tab:blue")
        ax.set_title(("log10 " if names[j] in log_scale else "") + names[j], fontsize=9)
        ax.tick_params(labelsize=7)
    fig.suptitle(f"Descriptors over {len(ds)} voices x {desc.shape[1]} notes")
    fig.tight_layout()
    written.append(_save(fig, out / "descriptors.png"))

    tags = np.asarray(ds.tags)
    cats = np.asarray(ds.categories)
    fig, (a1, a2) = plt.subplots(1, 2, figsize=(12, 4))
    labels = [f"{lo}/{hi}" for lo, hi in ds.tag_names]
    y = np.arange(len(labels))
    a1.barh(y, (tags == -1).sum(0), color="tab:blue", label="lower tag")
    a1.barh(y, (tags == 1).sum(0), left=(tags == -1).sum(0), color="tab:orange", label="upper tag")
    a1.barh(y, (tags == 0).sum(0), left=(tags != 0).sum(0), color="lightgray", label="untagged")
    a1.set_yticks(y, labels, fontsize=8)
    a1.legend(fontsize=7)
    a1.set_title("paired tags")
    a2.bar(ds.category_names + ["(none)"], list(cats.sum(0)) + [int((~cats.any(1)).sum())], color="tab:green")
    a2.tick_params(axis="x", rotation=60, labelsize=8)
    a2.set_title("categories from names")
    fig.tight_layout()
    written.append(_save(fig, out / "tags.png"))

    emb = np.asarray(ds.embedding if hasattr(ds, "embedding") else ds.features.reshape(len(ds), -1),
                     dtype=np.float64)
    x = emb - emb.mean(0)
    _, _, vt = np.linalg.svd(x[:: max(1, len(x) // 4000)], full_matrices=False)
    xy = x @ vt[:2].T
    fig, (a1, a2) = plt.subplots(1, 2, figsize=(12, 5))
    split = np.asarray(ds.split)
    for code, name in SPLIT_NAMES.items():
        sel = split == code
        a1.scatter(xy[sel, 0], xy[sel, 1], s=2, alpha=0.5, label=f"{name} ({sel.sum()})")
    a1.legend(fontsize=7, markerscale=4)
    a1.set_title("voices: PCA of pooled multi-note log-mel, by split")
    j = [lo for lo, _ in ds.tag_names].index("dark") if ("dark", "bright") in ds.tag_names else 0
    sc = a2.scatter(xy[:, 0], xy[:, 1], s=2, alpha=0.5, c=tags[:, j], cmap="coolwarm")
    fig.colorbar(sc, ax=a2, label=f"{ds.tag_names[j][0]} (-1) / {ds.tag_names[j][1]} (+1)")
    a2.set_title(f"coloured by {ds.tag_names[j][0]}/{ds.tag_names[j][1]} tag")
    fig.tight_layout()
    written.append(_save(fig, out / "voice_map.png"))
    return written


def _save(fig, path: Path) -> Path:
    import io

    import matplotlib.pyplot as plt

    from host_training.dataset.store import atomic_write_bytes

    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=80)
    plt.close(fig)
    atomic_write_bytes(path, buf.getvalue())
    return path
