"""Train / validation / test splits that stay put and keep near-copies together.

* Stable: a voice's split comes from the sha256 of its 145 parameters, not from its
  position, so adding voices never moves an old one to another split.
* Leak-proof: DX7 collections hold many voices a few parameter steps apart. Voices whose
  pooled multi-note log-mel (analysis.embed) differ by less than ``group_db`` (RMS, dB) are
  linked, linked voices form a group (single linkage), and the whole group takes the split
  of its member with the smallest parameter hash. So the test split measures
  generalisation, not memory. (A new voice can bridge two old groups; only then can an
  old voice change split.)
* For the evaluation's strata, each test voice records its distance to the nearest
  training voice (same metric).
"""

from __future__ import annotations

import hashlib

import numpy as np

SPLIT_FRACTIONS = (0.8, 0.1, 0.1)
BLOCK = 1024


def param_hashes(params: np.ndarray) -> list[bytes]:
    return [hashlib.sha256(np.ascontiguousarray(row, dtype=np.uint8).tobytes()).digest() for row in params]


def hash_split(digest: bytes, fractions: tuple[float, float, float] = SPLIT_FRACTIONS) -> int:
    u = int.from_bytes(digest[:8], "big") / 2.0**64
    return 0 if u < fractions[0] else 1 if u < fractions[0] + fractions[1] else 2


class _UnionFind:
    def __init__(self, n: int) -> None:
        self.parent = np.arange(n)

    def find(self, i: int) -> int:
        p = self.parent
        root = i
        while p[root] != root:
            root = p[root]
        while p[i] != root:
            p[i], i = root, p[i]
        return root

    def union(self, a: int, b: int) -> None:
        ra, rb = self.find(a), self.find(b)
        if ra != rb:
            self.parent[max(ra, rb)] = min(ra, rb)


def _blocks(emb: np.ndarray, rows: np.ndarray | None = None, cols: np.ndarray | None = None):
    """Yield (offset into rows, (block, cols) squared RMS distances in dB^2) block by block."""
    x = emb.astype(np.float64)
    x -= x.mean(axis=0)
    a_all = x if rows is None else x[rows]
    y = x if cols is None else x[cols]
    sq_y = np.einsum("ij,ij->i", y, y)
    dim = x.shape[1]
    for start in range(0, len(a_all), BLOCK):
        a = a_all[start : start + BLOCK]
        d = np.einsum("ij,ij->i", a, a)[:, None] + sq_y[None, :] - 2.0 * (a @ y.T)
        yield start, np.maximum(d, 0.0) / dim


def nearest_distances(emb: np.ndarray) -> np.ndarray:
    """(N,) RMS dB distance of each voice to its nearest other voice."""
    out = np.full(len(emb), np.inf)
    for start, d in _blocks(emb):
        rows = np.arange(start, start + len(d))
        d[np.arange(len(d)), rows] = np.inf
        out[rows] = np.sqrt(d.min(axis=1)) if d.shape[1] else np.inf
    return out


def near_copy_groups(emb: np.ndarray, threshold_db: float) -> np.ndarray:
    """(N,) int32 group ids, numbered by first member in row order."""
    n = len(emb)
    uf = _UnionFind(n)
    t2 = threshold_db**2
    for start, d in _blocks(emb):
        r, c = np.nonzero(d < t2)
        for i, j in zip(r + start, c):
            if i < j:
                uf.union(int(i), int(j))
    roots = np.array([uf.find(i) for i in range(n)])
    _, first, inverse = np.unique(roots, return_index=True, return_inverse=True)
    rank = np.empty(len(first), dtype=np.int64)
    rank[np.argsort(first, kind="stable")] = np.arange(len(first))
    return rank[inverse].astype(np.int32)


def assign_splits(params: np.ndarray, groups: np.ndarray,
                  fractions: tuple[float, float, float] = SPLIT_FRACTIONS) -> np.ndarray:
    """(N,) uint8 split per voice: each group takes its smallest-hash member's split."""
    hashes = param_hashes(params)
    best: dict[int, bytes] = {}
    for g, h in zip(groups.tolist(), hashes):
        if g not in best or h < best[g]:
            best[g] = h
    return np.array([hash_split(best[g], fractions) for g in groups.tolist()], dtype=np.uint8)


def nearest_train(emb: np.ndarray, split: np.ndarray) -> np.ndarray:
    """(N,) float32: each test voice's RMS dB distance to its nearest training voice; NaN elsewhere."""
    out = np.full(len(emb), np.nan, dtype=np.float32)
    train = np.flatnonzero(split == 0)
    test = np.flatnonzero(split == 2)
    if len(train) == 0 or len(test) == 0:
        return out
    for start, d in _blocks(emb, rows=test, cols=train):
        out[test[start : start + len(d)]] = np.sqrt(d.min(axis=1))
    return out
