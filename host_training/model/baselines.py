"""Baselines on the same split (Esling et al.'s comparison): networks that predict the
parameter vector straight from the spectrogram (MLP, CNN, ResNet; notes as input
channels), and nearest-neighbour retrieval (the training voice whose features are
closest). The "same VAE with an MLP head" baseline is model.FlowVAE with head="mlp".
"""

from __future__ import annotations

import hashlib
import io
import os
from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np
import torch
from torch import nn

from dx7.layout import VECTOR_SIZE
from host_training.model.blocks import Normalize, Shape, mlp
from host_training.audio.sound import FLOOR_DB, features_level_db


class Normalized(nn.Module):
    """Shared front of the direct baselines: normalise and pool the (B, K, M, F) input."""

    def __init__(self, shape: Shape, pool: tuple[int, int]) -> None:
        super().__init__()
        self.norm = Normalize(shape.mean, shape.std)
        self.pool = nn.AvgPool2d(pool)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.pool(self.norm(x))


class DirectMLP(nn.Module):
    def __init__(self, shape: Shape, hidden: int = 512, pool: tuple[int, int] = (4, 4)) -> None:
        super().__init__()
        self.front = Normalized(shape, pool)
        n_in = shape.notes * (shape.mels // pool[0]) * (shape.frames // pool[1])
        self.net = mlp(n_in, hidden, VECTOR_SIZE, layers=3)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(self.front(x).flatten(1))


class DirectCNN(nn.Module):
    """A plain stack of strided convolutions (the seed's CNN), notes as channels."""

    def __init__(self, shape: Shape, channels: list[int], hidden: int = 512, pool: tuple[int, int] = (2, 1)) -> None:
        super().__init__()
        self.front = Normalized(shape, pool)
        chans = [shape.notes] + list(channels)
        layers: list[nn.Module] = []
        for a, b in zip(chans[:-1], chans[1:]):
            layers += [nn.Conv2d(a, b, 4, 2, 1), nn.BatchNorm2d(b), nn.LeakyReLU(0.1)]
        self.convs = nn.Sequential(*layers, nn.AdaptiveAvgPool2d((4, 4)))
        self.head = mlp(chans[-1] * 16, hidden, VECTOR_SIZE, layers=1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.convs(self.front(x)).flatten(1))


class ResBlock(nn.Module):
    def __init__(self, c_in: int, c_out: int, stride: int) -> None:
        super().__init__()
        self.body = nn.Sequential(nn.Conv2d(c_in, c_out, 3, stride, 1), nn.BatchNorm2d(c_out), nn.ReLU(),
                                  nn.Conv2d(c_out, c_out, 3, 1, 1), nn.BatchNorm2d(c_out))
        self.skip = (nn.Identity() if c_in == c_out and stride == 1
                     else nn.Sequential(nn.Conv2d(c_in, c_out, 1, stride), nn.BatchNorm2d(c_out)))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.relu(self.body(x) + self.skip(x))


class DirectResNet(nn.Module):
    def __init__(self, shape: Shape, channels: list[int], hidden: int = 512, pool: tuple[int, int] = (2, 1)) -> None:
        super().__init__()
        self.front = Normalized(shape, pool)
        chans = [channels[0]] + list(channels)
        self.stem = nn.Sequential(nn.Conv2d(shape.notes, channels[0], 3, 1, 1), nn.BatchNorm2d(channels[0]), nn.ReLU())
        self.blocks = nn.Sequential(*[ResBlock(a, b, 2) for a, b in zip(chans[:-1], chans[1:])],
                                    nn.AdaptiveAvgPool2d((4, 4)))
        self.head = mlp(chans[-1] * 16, hidden, VECTOR_SIZE, layers=1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.blocks(self.stem(self.front(x))).flatten(1))


def build(kind: str, shape: Shape, cfg: dict) -> nn.Module:
    channels = list(cfg.get("baseline_channels", [16, 32, 64, 128]))
    hidden = int(cfg.get("baseline_hidden", 512))
    if kind == "mlp":
        return DirectMLP(shape, hidden)
    if kind == "cnn":
        return DirectCNN(shape, channels, hidden)
    if kind == "resnet":
        return DirectResNet(shape, channels, hidden)
    raise ValueError(f"unknown model kind {kind!r}")


# -- nearest-neighbour retrieval --------------------------------------------------------
def retrieval_features(features: np.ndarray, pool: int = 4, rows: np.ndarray | None = None,
                       chunk: int = 1024) -> np.ndarray:
    """(N, K, M, F) dB -> (N, K, d) float32: log-mel averaged over pool x pool cells (so the
    search is cheap and not fooled by one-frame offsets). ``features`` may be a memory map,
    read ``chunk`` voices at a time (``rows``: those voices only), so the whole corpus never
    sits in memory as float32 (4 GB; the pooled result is 16 times smaller)."""
    index = np.arange(len(features)) if rows is None else np.asarray(rows)
    out = []
    for start in range(0, len(index), chunk):
        x = np.asarray(features[index[start:start + chunk]], dtype=np.float32)
        n, k, m, f = x.shape
        m2, f2 = m // pool, f // pool
        x = x[:, :, : m2 * pool, : f2 * pool].reshape(n, k, m2, pool, f2, pool).mean(axis=(3, 5))
        out.append(x.reshape(n, k, -1))
    if not out:
        raise ValueError("no voices to pool")
    return np.concatenate(out)


def pooled_cache_path(features_sha256: str, rows: np.ndarray, pool: int) -> Path:
    """Where ``Retrieval.of_dataset`` keeps the pooled features of one data set's rows: named by
    the features' sha256 (from the manifest), the rows and the pooling, so a rebuilt data set or
    another split never reads a stale file."""
    key = hashlib.sha256(f"{features_sha256}:{pool}:".encode() + np.ascontiguousarray(rows).tobytes()).hexdigest()
    root = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache")
    return root / "dxmacro" / "retrieval" / f"pooled-{key[:24]}.npy"


def _cached(path: Path | None, shape: tuple[int, ...], make: Callable[[], np.ndarray]) -> np.ndarray:
    """The float32 array kept at ``path`` when it has ``shape``, else ``make()``, then kept there whole
    (``dx7.files.atomic_write``) for the next time. Nothing is read or kept when ``path`` is None;
    a file that cannot be read (not there yet, cut short) is made again, and one that cannot be
    written (a read-only home, a full disk) only costs making it again next time."""
    from dx7.errors import DX7Error
    from dx7.files import atomic_write

    if path is not None:
        try:
            cached = np.load(path, allow_pickle=False)
            if cached.shape == shape and cached.dtype == np.float32:
                return cached
        except (OSError, ValueError, EOFError):
            pass
    array = make()
    if path is not None:
        buffer = io.BytesIO()
        np.save(buffer, array, allow_pickle=False)
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            atomic_write(path, buffer.getbuffer())
        except (OSError, DX7Error):
            pass
    return array


class Retrieval:
    """The training voice whose pooled log-mel is closest (L2 over the given notes); with
    one note of unknown pitch, the closest (voice, note) pair over all notes."""

    def __init__(self, train_features: np.ndarray, train_params: np.ndarray, pool: int = 4,
                 rows: np.ndarray | None = None, pooled: np.ndarray | None = None) -> None:
        self.pool = pool
        if pooled is None:
            pooled = retrieval_features(train_features, pool, rows)
        self.db = torch.from_numpy(pooled)  # (N, K, d)
        self.params = np.asarray(train_params)
        self._levels: np.ndarray | None = None
        self._cache: Path | None = None  # where of_dataset keeps the pooled features

    @classmethod
    def of_dataset(cls, ds, rows: np.ndarray, pool: int = 4) -> Retrieval:
        """Retrieval over data set ``ds``'s voices ``rows``, the pooled features kept in the
        user's cache (``pooled_cache_path``) and read from there the next time.

        Why: pooling the whole corpus's 2 GB of float16 features takes 6-12 s on 2 cores, most
        of a 10 s `match`; reading the 250 MB result back takes a fraction of a second."""
        rows = np.asarray(rows, dtype=np.int64)
        path = pooled_cache_path(ds.manifest["arrays"]["features"]["sha256"], rows, pool)
        n, k, m, f = ds.features.shape
        pooled = _cached(path, (len(rows), k, (m // pool) * (f // pool)),
                         lambda: retrieval_features(ds.features, pool, rows))
        retrieval = cls(ds.features, np.asarray(ds.params[rows]), pool, pooled=pooled)
        retrieval._cache = path
        return retrieval

    def query(self, features: np.ndarray) -> np.ndarray:
        """(B, K, M, F) all notes -> (B,) index of the nearest training voice."""
        q = torch.from_numpy(retrieval_features(features, self.pool)).flatten(1)
        return torch.cdist(q, self.db.flatten(1)).argmin(1).numpy()

    def query_single(self, note_features: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """(B, M, F) one note each -> (index, note slot, distance) of the nearest (voice, note)."""
        q = torch.from_numpy(retrieval_features(np.asarray(note_features)[:, None], self.pool))[:, 0]
        n, k, d = self.db.shape
        dist = torch.cdist(q, self.db.reshape(n * k, d))
        best = dist.argmin(1)
        return (best // k).numpy(), (best % k).numpy(), dist.gather(1, best[:, None])[:, 0].numpy()

    def nearest_pairs(self, note_features: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
        """(M, F) one note -> ``query_single``'s ``k`` nearest (voice, note slot) pairs, nearest
        first: (indices, slots)."""
        q = torch.from_numpy(retrieval_features(np.asarray(note_features)[None, None], self.pool))[:, 0]
        n, m, d = self.db.shape
        dist = torch.cdist(q, self.db.reshape(n * m, d))[0]
        top = torch.topk(dist, min(k, n * m), largest=False).indices
        return (top // m).numpy(), (top % m).numpy()

    def query_notes(self, note_features: np.ndarray, slots: Sequence[int | None] | None = None) -> int:
        """(R, M, F) notes of one sound -> index of the training voice nearest over all of them
        (squared distances summed, as ``query`` over the whole vector): note r against that
        voice's note slot ``slots[r]``, or its nearest note where the slot is None (not known).
        All slots given: ``query``'s voice; one note, slot unknown: ``query_single``'s."""
        return int(self.nearest_notes(note_features, slots, 1)[0])

    def nearest_notes(self, note_features: np.ndarray, slots: Sequence[int | None] | None, k: int) -> np.ndarray:
        """``query_notes``' ``k`` nearest training voices, nearest first."""
        q = torch.from_numpy(retrieval_features(np.asarray(note_features)[:, None], self.pool))[:, 0]
        n, m, d = self.db.shape
        dist = torch.cdist(q, self.db.reshape(n * m, d)).reshape(len(q), n, m) ** 2
        slots = [None] * len(q) if slots is None else list(slots)
        per_note = [dist[r].min(1).values if s is None else dist[r, :, s] for r, s in enumerate(slots)]
        return torch.topk(torch.stack(per_note).sum(0), min(k, n), largest=False).indices.numpy()

    def levels(self, n_mels: int) -> np.ndarray:
        """(N * K,) level (dB) of every (voice, note) on the pooled grid, computed once."""
        if self._levels is None:
            n, k, d = self.db.shape
            # 2 s over the whole corpus, of a 10 s match: kept beside the pooled features
            path = None if self._cache is None else self._cache.with_name(f"{self._cache.stem}-levels{n_mels}.npy")
            self._levels = _cached(path, (n * k,), lambda: features_level_db(
                self.db.numpy().reshape(n * k, n_mels // self.pool, -1)))
        return self._levels

    def query_level_free(self, at: Callable[[float], np.ndarray], n_mels: int, window_db: float,
                         step_db: float = 0.5) -> tuple[int, int, float]:
        """One note of unknown pitch *and* unknown gain -> (index, note slot, gain) of the
        nearest (voice, note) with the note played at that item's level.

        ``at(gain_db)`` gives the note's log-mel played ``gain_db`` louder; each item is
        compared with the note brought to the item's own level (rounded to ``step_db``), among
        the items whose gain lies within ``window_db`` of the gain that brings the note to the
        median item's level (near-copies differ in level; the window keeps out the
        quiet items that match anything brought down to the floor). The distance is the
        squared difference per cell that sounds in either (over the floor): an unnormalised
        sum favours quiet items, whose cells sit at the floor with the quiet note's."""
        flat = self.db.numpy().reshape(-1, self.db.shape[2])
        mine = float(features_level_db(self._pooled(at(0.0), n_mels)))
        levels = self.levels(n_mels)
        gain = np.round((levels - mine) / step_db) * step_db
        near = np.abs(gain - (np.median(levels) - mine)) <= window_db
        best = (np.inf, -1, 0.0)
        for g in np.unique(gain[near]):
            sel = np.nonzero(near & (gain == g))[0]
            q = self._pooled(at(float(g)), n_mels).ravel()
            sounding = np.maximum(((flat[sel] > FLOOR_DB + 0.1) | (q > FLOOR_DB + 0.1)).sum(1), 1)
            dist = ((flat[sel] - q) ** 2).sum(1) / sounding
            j = int(np.argmin(dist))
            if dist[j] < best[0]:
                best = (float(dist[j]), int(sel[j]), float(g))
        if best[1] < 0:
            raise ValueError("no training note within the level window")
        k = self.db.shape[1]
        return best[1] // k, best[1] % k, best[2]

    def _pooled(self, feat: np.ndarray, n_mels: int) -> np.ndarray:
        return retrieval_features(np.asarray(feat)[None, None], self.pool)[0, 0].reshape(n_mels // self.pool, -1)


def median_voice(train_params: np.ndarray) -> np.ndarray:
    """(145,) DX7 values of one constant voice: each numeric parameter's median over the
    training voices, each categorical one's most common value. Why report it: log-mel MAE
    rewards a typical voice, and a model that only predicts towards the middle of the data
    is no better than this constant (docs/results.md)."""
    from dx7.layout import categorical_groups, decode, encode

    vec = encode(np.asarray(train_params))
    out = np.median(vec, axis=0)
    for g in categorical_groups():
        out[g.start : g.start + g.width] = vec[:, g.start : g.start + g.width].mean(0)  # argmax = the mode
    return decode(out[None])[0]
