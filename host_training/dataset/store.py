"""The data set's on-disk format: one folder, one versioned manifest, one .npy per array.

Why .npy files and not one HDF5/zarr container: numpy reads them as memory maps with no
extra dependency, a training loop touches only the pages it uses, and each file has its
own sha256 in the manifest so a corrupt or stale array is found before it trains a model.

Layout of DIR (N voices, K (note, velocity) pairs, M mel bands, F frames, D descriptors,
T tag pairs, C categories)::

    manifest.json           format, version, dxmacro_version, settings, counts, arrays (+checksums), names
    params.npy              (N, 145) uint8     dx7 Voice.parameters (unpacked, in range)
    names.json              [N names]
    sources.json            [N {"file", "slot"} or "synthetic:SEED:I"]
    features.npy            (N, K, M, F) float16  log-mel, dB re mel power 1.0 (absolute level kept)
    descriptors.npy         (N, K, D) float32
    tags.npy                (N, T) int8        -1 lower tag, +1 upper tag, 0 untagged
    categories.npy          (N, C) bool        from voice names
    split.npy               (N,) uint8         0 train, 1 validation, 2 test
    group.npy               (N,) int32         near-copy group id
    nearest_train_db.npy    (N,) float32       test voices: distance to nearest train voice; NaN elsewhere

Every file is written atomically (temporary file + rename) and manifest.json last, so a
folder with a manifest is complete; the reader checks format, version, presence, dtype and
shape on open and the checksums in :meth:`Dataset.verify`.
"""

from __future__ import annotations

import hashlib
import json
import os
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np

from dx7.files import atomic_write

from dxmacro.errors import DxmacroError

FORMAT = "dxmacro-dataset"
VERSION = 1
MANIFEST = "manifest.json"
SPLITS = {"train": 0, "validation": 1, "test": 2}
PARAMETER_COUNT = 145

# name -> (dtype, ndim). The arrays every version-1 data set holds.
ARRAY_SPECS: dict[str, tuple[str, int]] = {
    "params": ("uint8", 2),
    "features": ("float16", 4),
    "descriptors": ("float32", 3),
    "tags": ("int8", 2),
    "categories": ("bool", 2),
    "split": ("uint8", 1),
    "group": ("int32", 1),
    "nearest_train_db": ("float32", 1),
}
JSON_FILES = ("names", "sources")

Manifest = dict[str, Any]


# -- writing ---------------------------------------------------------------------------
def sha256_file(path: str | os.PathLike[str], chunk: int = 1 << 22) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while block := f.read(chunk):
            h.update(block)
    return h.hexdigest()


def _atomic_target(path: Path) -> tuple[int, str]:
    path.parent.mkdir(parents=True, exist_ok=True)
    return tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)


def atomic_write_bytes(path: str | os.PathLike[str], data: bytes) -> None:
    """dx7.files.atomic_write (durable: file and folder fsynced), creating the folder first."""
    target = Path(path)
    target.parent.mkdir(parents=True, exist_ok=True)
    atomic_write(target, data, mode=0o644)


def write_json(path: str | os.PathLike[str], obj: Any) -> None:
    atomic_write_bytes(path, (json.dumps(obj, indent=1, sort_keys=False) + "\n").encode())


def array_entry(path: Path, name: str) -> dict[str, Any]:
    """The manifest's record of an array file already written at ``path``."""
    arr = np.load(path, mmap_mode="r")
    return {"file": path.name, "dtype": str(arr.dtype), "shape": list(arr.shape), "sha256": sha256_file(path)}


def write_array(directory: str | os.PathLike[str], name: str, array: np.ndarray) -> dict[str, Any]:
    """Save ``array`` as DIR/name.npy atomically; returns its manifest entry."""
    target = Path(directory) / f"{name}.npy"
    fd, tmp = _atomic_target(target)
    try:
        with os.fdopen(fd, "wb") as f:
            np.save(f, np.ascontiguousarray(array), allow_pickle=False)
            f.flush()
            os.fsync(f.fileno())
        os.chmod(tmp, 0o644)
        os.replace(tmp, target)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return array_entry(target, name)


class ArrayWriter:
    """Fill a large .npy block by block (features do not fit in memory for the corpus);
    the file appears under its final name only when :meth:`close` succeeds."""

    def __init__(self, directory: str | os.PathLike[str], name: str, dtype: str, shape: tuple[int, ...]) -> None:
        self.target = Path(directory) / f"{name}.npy"
        self.name = name
        fd, self._tmp = _atomic_target(self.target)
        os.close(fd)
        self.array = np.lib.format.open_memmap(self._tmp, mode="w+", dtype=dtype, shape=shape)

    def close(self) -> dict[str, Any]:
        self.array.flush()
        del self.array
        with open(self._tmp, "rb+") as f:
            os.fsync(f.fileno())
        os.chmod(self._tmp, 0o644)
        os.replace(self._tmp, self.target)
        return array_entry(self.target, self.name)

    def abort(self) -> None:
        self.__dict__.pop("array", None)
        Path(self._tmp).unlink(missing_ok=True)


def json_entry(path: Path) -> dict[str, Any]:
    return {"file": path.name, "sha256": sha256_file(path)}


def write_manifest(directory: str | os.PathLike[str], manifest: Manifest) -> None:
    """Written last: its presence marks a complete data set."""
    write_json(Path(directory) / MANIFEST, manifest)


def new_manifest(settings: dict[str, Any]) -> Manifest:
    from dxmacro import __version__

    return {"format": FORMAT, "version": VERSION, "dxmacro_version": __version__, "settings": settings,
            "counts": {}, "arrays": {}, "files": {}, "descriptor_names": [], "tag_names": [],
            "category_names": []}


def save_dataset(directory: str | os.PathLike[str], *, settings: dict[str, Any], names: list[str],
                 sources: list[Any], arrays: dict[str, np.ndarray | dict[str, Any]], counts: dict[str, Any] | None = None,
                 descriptor_names: list[str], tag_names: list[list[str]], category_names: list[str],
                 extra: dict[str, Any] | None = None) -> Manifest:
    """Write a whole data set: every array (an ndarray, or the entry of one already written,
    e.g. by :class:`ArrayWriter`), the JSON lists, then the manifest. Also how tests make
    small data sets by hand."""
    d = Path(directory)
    d.mkdir(parents=True, exist_ok=True)
    missing = sorted(set(ARRAY_SPECS) - set(arrays))
    if missing:
        raise DxmacroError(f"save_dataset: arrays missing: {missing}")
    manifest = new_manifest(settings)
    manifest["counts"] = dict(counts or {})
    manifest["descriptor_names"] = list(descriptor_names)
    manifest["tag_names"] = [list(t) for t in tag_names]
    manifest["category_names"] = list(category_names)
    manifest.update(extra or {})
    for name in list(ARRAY_SPECS) + sorted(set(arrays) - set(ARRAY_SPECS)):  # required, then added ones
        value = arrays[name]
        if isinstance(value, dict):
            manifest["arrays"][name] = value
        else:
            arr = np.asarray(value)
            dtype, ndim = ARRAY_SPECS.get(name, (str(arr.dtype), arr.ndim))
            if arr.dtype != np.dtype(dtype) or arr.ndim != ndim:
                raise DxmacroError(f"save_dataset: {name} must be {dtype} with {ndim} dimensions, "
                                   f"got {arr.dtype} {arr.shape}")
            manifest["arrays"][name] = write_array(d, name, arr)
    for name, value in (("names", names), ("sources", sources)):
        write_json(d / f"{name}.json", value)
        manifest["files"][name] = json_entry(d / f"{name}.json")
    write_manifest(d, manifest)
    return manifest


# -- reading ---------------------------------------------------------------------------
class Dataset:
    """A built data set. Arrays are read-only memory maps: opening costs nothing, and a
    training loop reads only what it indexes."""

    params: np.ndarray
    features: np.ndarray
    descriptors: np.ndarray
    tags: np.ndarray
    categories: np.ndarray
    split: np.ndarray
    group: np.ndarray
    nearest_train_db: np.ndarray

    def __init__(self, directory: str | os.PathLike[str], manifest: Manifest) -> None:
        self.directory = Path(directory)
        self.manifest = manifest
        for name in manifest["arrays"]:
            setattr(self, name, self._load(name))
        self.names: list[str] = self._json("names")
        self.sources: list[Any] = self._json("sources")
        n = len(self.params)
        if len(self.names) != n or len(self.sources) != n:
            raise DxmacroError(f"{self.directory}: names.json/sources.json do not hold {n} entries")

    def _load(self, name: str) -> np.ndarray:
        entry = self.manifest["arrays"][name]
        path = self.directory / entry["file"]
        try:
            arr = np.load(path, mmap_mode="r", allow_pickle=False)
        except FileNotFoundError:
            raise DxmacroError(f"{self.directory}: array file {entry['file']} is missing") from None
        except (ValueError, OSError) as exc:
            raise DxmacroError(f"{self.directory}: array file {entry['file']} is corrupt ({exc})") from None
        if str(arr.dtype) != entry["dtype"] or list(arr.shape) != list(entry["shape"]):
            raise DxmacroError(f"{self.directory}: {entry['file']} is {arr.dtype}{list(arr.shape)}, the manifest "
                               f"says {entry['dtype']}{list(entry['shape'])} (corrupt or from another build)")
        return arr

    def _json(self, name: str) -> Any:
        path = self.directory / f"{name}.json"
        try:
            value = json.loads(path.read_text())
        except FileNotFoundError:
            raise DxmacroError(f"{self.directory}: {path.name} is missing") from None
        except (ValueError, UnicodeDecodeError) as exc:
            raise DxmacroError(f"{self.directory}: {path.name} is corrupt ({exc})") from None
        if not isinstance(value, list):
            raise DxmacroError(f"{self.directory}: {path.name} is not a list")
        return value

    def __len__(self) -> int:
        return int(self.params.shape[0])

    @property
    def settings(self) -> dict[str, Any]:
        return self.manifest["settings"]

    @property
    def notes(self) -> list[tuple[int, int]]:
        return [(int(n), int(v)) for n, v in self.settings["notes"]]

    @property
    def descriptor_names(self) -> list[str]:
        return list(self.manifest["descriptor_names"])

    @property
    def tag_names(self) -> list[tuple[str, str]]:
        return [(lo, hi) for lo, hi in self.manifest["tag_names"]]

    @property
    def category_names(self) -> list[str]:
        return list(self.manifest["category_names"])

    def indices(self, split: str | int) -> np.ndarray:
        """Row indices of one split ("train", "validation", "test" or 0/1/2), ascending."""
        code = SPLITS.get(split) if isinstance(split, str) else int(split)
        if code not in SPLITS.values():
            raise DxmacroError(f"unknown split {split!r} (known: {', '.join(SPLITS)})")
        return np.flatnonzero(np.asarray(self.split) == code)

    def voice(self, i: int):  # -> dx7.Voice
        from dx7 import Voice

        return Voice.from_parameters(self.params[i], self.names[i])

    def verify(self) -> None:
        """Check every file's sha256 against the manifest; raise naming the first mismatch."""
        for name, entry in self.manifest["arrays"].items():
            got = sha256_file(self.directory / entry["file"])
            if got != entry["sha256"]:
                raise DxmacroError(f"{self.directory}: {entry['file']} fails its checksum (corrupt or modified)")
        for name, entry in self.manifest.get("files", {}).items():
            path = self.directory / entry["file"]
            if not path.is_file() or sha256_file(path) != entry["sha256"]:
                raise DxmacroError(f"{self.directory}: {entry['file']} fails its checksum (corrupt or modified)")

    def __iter__(self) -> Iterator[int]:
        return iter(range(len(self)))


def read_manifest(directory: str | os.PathLike[str]) -> Manifest:
    d = Path(directory)
    if not d.is_dir():
        raise DxmacroError(f"{d}: no such data set folder")
    path = d / MANIFEST
    if not path.is_file():
        raise DxmacroError(f"{d}: not a dxmacro data set (no {MANIFEST}; an interrupted build? run it again)")
    try:
        manifest = json.loads(path.read_text())
    except (ValueError, UnicodeDecodeError) as exc:
        raise DxmacroError(f"{path}: corrupt manifest ({exc})") from None
    if not isinstance(manifest, dict) or manifest.get("format") != FORMAT:
        raise DxmacroError(f"{path}: not a dxmacro data set manifest (format {FORMAT!r})")
    if manifest.get("version") != VERSION:
        raise DxmacroError(f"{path}: data set format version {manifest.get('version')!r}; this dxmacro reads "
                           f"version {VERSION} (rebuild it with `dxmacro dataset build`)")
    arrays = manifest.get("arrays")
    if not isinstance(arrays, dict) or set(ARRAY_SPECS) - set(arrays):
        missing = sorted(set(ARRAY_SPECS) - set(arrays or {}))
        raise DxmacroError(f"{path}: manifest lacks arrays {missing}")
    for name, (dtype, ndim) in ARRAY_SPECS.items():
        e = arrays[name]
        if e.get("dtype") != dtype or len(e.get("shape", ())) != ndim:
            raise DxmacroError(f"{path}: array {name} should be {dtype} with {ndim} dimensions")
    return manifest


def open_dataset(directory: str | os.PathLike[str], *, verify: bool = False) -> Dataset:
    """Open a built data set (read-only memory maps). ``verify=True`` also checks checksums
    (reads every byte: seconds for the corpus)."""
    ds = Dataset(directory, read_manifest(directory))
    n = len(ds)
    for name in ARRAY_SPECS:
        if getattr(ds, name).shape[0] != n:
            raise DxmacroError(f"{directory}: {name} has {getattr(ds, name).shape[0]} rows, params has {n}")
    if ds.params.shape[1] != PARAMETER_COUNT:
        raise DxmacroError(f"{directory}: params has {ds.params.shape[1]} columns, expected {PARAMETER_COUNT}")
    if verify:
        ds.verify()
    return ds


__all__ = ["FORMAT", "VERSION", "SPLITS", "ARRAY_SPECS", "Manifest", "Dataset", "open_dataset", "read_manifest",
           "save_dataset", "write_array", "write_json", "write_manifest", "new_manifest", "ArrayWriter", "sha256_file"]
