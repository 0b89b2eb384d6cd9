"""Building small data sets for real (Dexed renders): counts that add up, bad files listed,
stable splits, and a killed build that resumes to identical arrays."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from dx7 import Voice
from dxmacro.cli import main
from dxmacro.errors import DxmacroError
from host_training.dataset.build import BuildSettings, build_dataset
from host_training.dataset.store import open_dataset

pytest.importorskip("dexed", reason="dexed-py (the renderer) is not installed")

REPO = Path(__file__).resolve().parents[1]
# short renders keep the suite fast; two notes are enough to exercise the multi-note layout
FAST = BuildSettings(notes=((48, 100), (72, 60)), duration=0.4, hold=0.25, rate=16000)


def _variants(n: int) -> list[Voice]:
    """Distinct audible voices derived from INIT VOICE (no shared data needed)."""
    base = Voice.init()
    out = []
    for i in range(n):
        out.append(base.replace({"op2_output_level": 40 + (3 * i) % 60, "op2_freq_coarse": 1 + i % 7,
                                 "op1_eg_rate1": 40 + i % 60, "algorithm": i % 32}, name=f"BRASS {i}" if i % 3 == 0
                                else f"VOICE {i}"))
    return out


def test_counts_add_up_and_bad_files_listed(tmp_path, corpus_files):
    folder = tmp_path / "in"
    folder.mkdir()
    good = corpus_files[0].read_bytes()
    (folder / "a.syx").write_bytes(good)
    (folder / "copy.syx").write_bytes(good)  # 32 exact duplicates
    (folder / "broken.syx").write_bytes(good[:2000])
    (folder / "junk.SYX").write_bytes(b"not a voice file at all")
    silent = Voice.init().replace({"op1_output_level": 0}, name="SILENT")
    res = build_dataset([folder, silent], tmp_path / "ds", FAST, workers=1)
    c = res.manifest["counts"]
    assert c["files_found"] == 4 and c["files_read"] == 2 and c["files_bad"] == 2
    assert c["voices_read"] == 65 and c["duplicates"] == 32 and c["silent"] >= 1
    assert c["voices_read"] == c["kept"] + c["duplicates"] + c["silent"] + c["near_duplicates"]
    assert c["train"] + c["validation"] + c["test"] == c["kept"]
    bad = {Path(b["file"]).name: b["error"] for b in res.manifest["bad_files"]}
    assert set(bad) == {"broken.syx", "junk.SYX"} and "truncated" in bad["broken.syx"]
    ds = open_dataset(tmp_path / "ds", verify=True)
    assert len(ds) == c["kept"] and "SILENT" not in [n.strip() for n in ds.names]
    assert ds.features.shape == (c["kept"], 2, 128, 1 + 6400 // 512) and ds.features.dtype == np.float16
    assert ds.descriptors.shape == (c["kept"], 2, len(ds.descriptor_names))
    # every kept voice is the one its source names
    src = ds.sources[3]
    assert src["file"].endswith("a.syx")
    from dx7.files import read_voice_file
    np.testing.assert_array_equal(read_voice_file(src["file"]).voices[src["slot"]].voice.parameters, ds.params[3])
    # tags: both sides of each pair used, the middle untagged
    tags = np.asarray(ds.tags)
    assert ((tags == -1).sum(0) > 0).all() and ((tags == 1).sum(0) > 0).all() and ((tags == 0).sum(0) > 0).all()
    # nearest training distance only for test voices
    split = np.asarray(ds.split)
    assert np.isfinite(ds.nearest_train_db[split == 2]).all() and np.isnan(ds.nearest_train_db[split != 2]).all()


def test_split_is_stable_when_the_set_grows(tmp_path):
    voices = _variants(24)
    small = build_dataset(voices[:12], tmp_path / "small", FAST).manifest
    big = build_dataset(voices, tmp_path / "big", FAST).manifest
    a, b = open_dataset(tmp_path / "small"), open_dataset(tmp_path / "big")
    pos = {bytes(p): i for i, p in enumerate(np.asarray(b.params))}
    # a voice keeps its split unless the new voices joined it to another near-copy group
    for i, p in enumerate(np.asarray(a.params)):
        j = pos[bytes(p)]
        if np.sum(b.group == b.group[j]) == np.sum(a.group == a.group[i]):
            assert a.split[i] == b.split[j]
    assert small["counts"]["kept"] == 12 and big["counts"]["kept"] == 24


def test_near_copies_share_a_split(tmp_path):
    base = _variants(6)
    twins = [v.replace({"op1_eg_rate4": v["op1_eg_rate4"] - 1}, name=v.name + "b") for v in base]
    res = build_dataset(base + twins, tmp_path / "ds", BuildSettings(**{**FAST.__dict__, "group_db": 1.0}))
    ds = open_dataset(tmp_path / "ds")
    for i in range(6):
        assert ds.group[i] == ds.group[6 + i] and ds.split[i] == ds.split[6 + i]
    assert res.manifest["counts"]["groups"] <= 6


def _files(d: Path) -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in sorted(d.glob("*.npy"))}


def test_killed_build_resumes_to_identical_arrays(tmp_path):
    # 100 chunks of 4 voices: a chunk renders in milliseconds, so a short build could finish
    # between two polls and leave nothing to resume
    n, chunk = 400, 4
    voices = _variants(n)
    ref = build_dataset(voices, tmp_path / "ref", FAST, workers=1, chunk=chunk).manifest
    out = tmp_path / "killed"
    script = (
        "import sys; sys.path.insert(0, sys.argv[1]);"
        "from tests.test_dataset_build import _variants, FAST;"
        "from host_training.dataset.build import build_dataset;"
        f"build_dataset(_variants({n}), sys.argv[2], FAST, workers=2, chunk={chunk})"
    )
    proc = subprocess.Popen([sys.executable, "-c", script, str(REPO), str(out)], start_new_session=True)
    deadline = time.time() + 120
    try:
        while len(list((out / ".build").glob("chunk-*.npz"))) < 3:
            assert proc.poll() is None, "the build finished before it could be killed"
            assert time.time() < deadline, "no chunk rendered in 120 s"
            time.sleep(0.005)
    finally:
        os.killpg(proc.pid, signal.SIGKILL)  # the build and its workers, as a crash would
        proc.wait()
    done = len(list((out / ".build").glob("chunk-*.npz")))
    assert 3 <= done < n // chunk and not (out / "manifest.json").exists()
    with pytest.raises(DxmacroError, match="no manifest.json"):
        open_dataset(out)
    res = build_dataset(voices, out, FAST, workers=1, chunk=chunk)
    assert res.resumed_chunks >= 3
    assert _files(out) == _files(tmp_path / "ref")
    assert res.manifest["arrays"] == ref["arrays"]
    assert not (out / ".build").exists()
    # a finished build is not redone
    assert build_dataset(voices, out, FAST, workers=1, chunk=chunk).resumed_chunks == 0


def test_cli_build_report_verify(tmp_path, corpus_files, capsys):
    out = tmp_path / "ds"
    rc = main(["dataset", "build", "--voices", str(corpus_files[1]), "--synthetic", "8", "--out", str(out),
               "--notes", "60:100", "--duration", "0.4", "--hold", "0.2", "--rate", "16000", "--workers", "2",
               "--quiet"])
    assert rc == 0
    c = json.loads((out / "manifest.json").read_text())["counts"]
    assert c["voices_synthetic"] == 8 and c["voices_from_files"] == 32
    assert main(["dataset", "report", str(out), "--card", str(tmp_path / "card")]) == 0
    text = (tmp_path / "card" / "README.md").read_text()
    assert "adds up" in text and f"| **kept** | **{c['kept']}** |" in text
    for png in ("descriptors.png", "tags.png", "voice_map.png"):
        assert (tmp_path / "card" / png).read_bytes()[:4] == b"\x89PNG"
    assert main(["dataset", "verify", str(out)]) == 0
    (out / "split.npy").write_bytes((out / "split.npy").read_bytes()[:-1] + b"\x07")
    capsys.readouterr()
    assert main(["dataset", "verify", str(out)]) == 1
    assert "split.npy fails its checksum" in capsys.readouterr().err
    assert main(["dataset", "report", str(tmp_path / "missing")]) == 1
    assert main(["dataset", "build", "--out", str(out)]) == 1
