"""The data set folder format: round trip, read-only memory maps, and clear errors for
missing, corrupt and wrong-version folders."""

from __future__ import annotations

import json

import numpy as np
import pytest

from dxmacro.errors import DxmacroError
from host_training.dataset.store import open_dataset, save_dataset


def _small(tmp_path, n=6):
    rng = np.random.default_rng(1)
    arrays = {
        "params": rng.integers(0, 100, (n, 145), dtype=np.uint8),
        "features": rng.normal(-40, 10, (n, 2, 8, 5)).astype(np.float16),
        "descriptors": rng.normal(size=(n, 2, 3)).astype(np.float32),
        "tags": rng.integers(-1, 2, (n, 2), dtype=np.int8),
        "categories": rng.integers(0, 2, (n, 4)).astype(bool),
        "split": np.array([0, 0, 1, 2, 0, 2][:n], dtype=np.uint8),
        "group": np.arange(n, dtype=np.int32),
        "nearest_train_db": np.full(n, np.nan, dtype=np.float32),
    }
    save_dataset(tmp_path, settings={"notes": [[60, 100], [72, 100]], "rate": 22050}, names=[f"V{i}" for i in range(n)],
                 sources=[f"synthetic:0:{i}" for i in range(n)], arrays=arrays, counts={"kept": n},
                 descriptor_names=["a", "b", "c"], tag_names=[["dark", "bright"], ["static", "moving"]],
                 category_names=["bass", "brass", "bell", "piano"])
    return arrays


def test_round_trip_memmaps_and_splits(tmp_path):
    arrays = _small(tmp_path)
    ds = open_dataset(tmp_path, verify=True)
    assert len(ds) == 6 and ds.names[2] == "V2" and ds.notes == [(60, 100), (72, 100)]
    for name, arr in arrays.items():
        got = getattr(ds, name)
        assert isinstance(got, np.memmap) and not got.flags.writeable
        np.testing.assert_array_equal(got, arr)
    assert ds.indices("train").tolist() == [0, 1, 4]
    assert ds.indices("test").tolist() == [3, 5]
    assert ds.tag_names == [("dark", "bright"), ("static", "moving")]
    with pytest.raises(DxmacroError, match="unknown split"):
        ds.indices("holdout")


def test_missing_corrupt_and_wrong_version(tmp_path):
    with pytest.raises(DxmacroError, match="no such data set"):
        open_dataset(tmp_path / "nope")
    with pytest.raises(DxmacroError, match="no manifest.json"):
        open_dataset(tmp_path)
    _small(tmp_path)
    # a flipped byte in an array: opens (shape/dtype fine) but fails verify
    path = tmp_path / "descriptors.npy"
    data = bytearray(path.read_bytes())
    data[-1] ^= 0xFF
    path.write_bytes(bytes(data))
    open_dataset(tmp_path)
    with pytest.raises(DxmacroError, match="descriptors.npy fails its checksum"):
        open_dataset(tmp_path, verify=True)
    # a truncated array: refused on open
    (tmp_path / "features.npy").write_bytes(b"\x93NUMPY garbage")
    with pytest.raises(DxmacroError, match="features.npy"):
        open_dataset(tmp_path)
    (tmp_path / "tags.npy").unlink()
    manifest = json.loads((tmp_path / "manifest.json").read_text())
    manifest["version"] = 99
    (tmp_path / "manifest.json").write_text(json.dumps(manifest))
    with pytest.raises(DxmacroError, match="version 99"):
        open_dataset(tmp_path)
    (tmp_path / "manifest.json").write_text("{not json")
    with pytest.raises(DxmacroError, match="corrupt manifest"):
        open_dataset(tmp_path)


def test_save_refuses_wrong_dtype(tmp_path):
    with pytest.raises(DxmacroError, match="params must be uint8"):
        save_dataset(tmp_path, settings={}, names=[], sources=[], descriptor_names=[], tag_names=[],
                     category_names=[], arrays={"params": np.zeros((1, 145), np.int64), **{
                         k: np.zeros(1) for k in ["features", "descriptors", "tags", "categories", "split", "group",
                                                 "nearest_train_db"]}})
