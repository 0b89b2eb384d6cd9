"""Hostile and careless inputs, each through the real command (``dxmacro.cli.main``): one line
naming the setting or file, a non-zero exit, and nothing half-written. The table grows with every
case found (issue 36); docs/flashing.md gives its size and the command that runs it.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import stat
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from dx7 import Voice
from dx7.files import encode_banks
from dxmacro.cli import main

ROOT = Path(__file__).resolve().parents[1]
DEFAULT_RUN = ROOT / "host_training" / "default_model"
TOKEN = "0123456789abcdef0123"


def _wav(path: Path, rate: int, samples: int = 2000) -> None:
    """An 8-bit mono WAV with any ``rate`` in its header, self-consistent (bytes/s = rate)."""
    data = (128 + np.sin(np.arange(samples) * 0.1) * 100).astype(np.uint8).tobytes()
    fmt = (1).to_bytes(2, "little") + (1).to_bytes(2, "little") + rate.to_bytes(4, "little") \
        + rate.to_bytes(4, "little") + (1).to_bytes(2, "little") + (8).to_bytes(2, "little")
    body = b"WAVE" + b"fmt " + len(fmt).to_bytes(4, "little") + fmt + b"data" + len(data).to_bytes(4, "little") + data
    path.write_bytes(b"RIFF" + len(body).to_bytes(4, "little") + body)


def _bundle(folder: Path, name: str, *, manifest: dict | None = None, anchors: bytes | None = None,
            golden: bytes | None = None, raw_manifest: bytes | None = None) -> Path:
    """A bundle signed with ``folder/signing`` whose contents may be anything at all."""
    from conversion import bundle, keys

    key = keys.load_private_key(folder / "signing")
    members = {"model.tflite": b"TFL3" + bytes(200),
               "anchors.json": anchors if anchors is not None else json.dumps(
                   [{"name": "INIT", "voice": "00" * 155, "latent": [0.0] * 8}]).encode(),
               "golden.json": golden if golden is not None else json.dumps(
                   {"latents": [[0.0] * 8], "kernels": {}}).encode()}
    doc = {"model_id": "m", "version": "1.0.0", "latent_size": 8, "format": "dxmacro-bundle", "format_version": 1,
           "members": [{"name": n, "size": len(members[n]), "sha256": hashlib.sha256(members[n]).hexdigest()}
                       for n in bundle.MEMBERS]}
    doc.update(manifest or {})
    text = raw_manifest if raw_manifest is not None else json.dumps(doc).encode()
    path = folder / name
    path.write_bytes(bundle.frame(bundle.MAGIC, 1, text, key) + b"".join(members[n] for n in bundle.MEMBERS))
    return path


@pytest.fixture(scope="module")
def world(tmp_path_factory) -> Path:
    """Every hostile file the table names, made once."""
    w = tmp_path_factory.mktemp("hostile")
    from conversion import keys

    keys.generate(w / "signing")
    (w / "bank.syx").write_bytes(encode_banks([Voice.init()] * 32))
    (w / "deep.json").write_text("[" * 100_000 + "]" * 100_000)
    voice = {"name": "X", "parameters": {"algorithm": 3}}
    (w / "inf.json").write_text(json.dumps({"format": "dxmacro-voices", "voices": [voice]}).replace("3", "Infinity"))
    (w / "huge.json").write_text(json.dumps({"format": "dxmacro-voices", "voices": [voice]}).replace(": 3", ": 1e400"))
    (w / "nan.json").write_text('{"format": "dxmacro-voices", "voices": [NaN]}')
    (w / "bad-utf8.json").write_bytes(b'{"format": "\xff"}')
    os.mkfifo(w / "fifo.syx")
    os.mkfifo(w / "fifo.json")
    for rate in (0, 1, 4294967295):
        _wav(w / f"rate{rate}.wav", rate)
    # run folders: the shipped model with one part spoiled
    for name in ("run-empty-model", "run-corrupt-model", "run-evil-model", "run-json-empty", "run-json-list",
                 "run-json-deep", "run-info-empty"):
        shutil.copytree(DEFAULT_RUN, w / name)
    (w / "run-empty-model" / "models" / "flow" / "model.pt").write_bytes(b"")
    (w / "run-corrupt-model" / "models" / "flow" / "model.pt").write_bytes(b"PK\x03\x04" + bytes(300))
    _evil_checkpoint(w / "run-evil-model" / "models" / "flow" / "model.pt", w / "PWNED")
    (w / "run-json-empty" / "run.json").write_text("{}")
    (w / "run-json-list" / "run.json").write_text("[1, 2]")
    (w / "run-json-deep" / "run.json").write_text("[" * 5000 + "]" * 5000)
    (w / "run-info-empty" / "export" / "info.json").write_text("{}")
    # bundles: crafted contents under a good signature
    _bundle(w, "no-model-id.dxm", manifest={"model_id": None})
    _bundle(w, "latent-text.dxm", manifest={"latent_size": "8"})
    _bundle(w, "knob-text.dxm", manifest={"knobs": [{"dim": 0, "name": "x", "low": "a", "high": 1}]})
    _bundle(w, "knob-dim.dxm", manifest={"knobs": [{"dim": 99, "name": "x", "low": 0, "high": 1}]})
    _bundle(w, "quant-list.dxm", manifest={"quantization": [1]})
    _bundle(w, "anchors-binary.dxm", anchors=b"\xff\xfe")
    _bundle(w, "anchors-deep.dxm", anchors=b"[" * 10_000 + b"]" * 10_000)
    _bundle(w, "anchors-dict.dxm", anchors=b'{"a": 1}')
    _bundle(w, "anchors-voice.dxm", anchors=b'[{"name": "x", "voice": "zz", "latent": [0,0,0,0,0,0,0,0]}]')
    _bundle(w, "golden-list.dxm", golden=b"[1]")
    _bundle(w, "golden-ragged.dxm", golden=b'{"latents": [[1], [1, 2]]}')
    _bundle(w, "manifest-deep.dxm", raw_manifest=b"[" * 10_000 + b"]" * 10_000)
    _bundle(w, "manifest-nan.dxm", raw_manifest=b'{"format": "dxmacro-bundle", "x": NaN}')
    # configs
    for name, text in DEVICE_CONFIGS.items():
        (w / f"device-{name}.toml").write_text(text)
    for name, text in FLASH_CONFIGS.items():
        (w / f"flash-{name}.toml").write_text(text)
    (w / "out").mkdir()
    return w


class _Evil:
    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self):
        return (os.mkdir, (str(self.marker),))


def _evil_checkpoint(path: Path, marker: Path) -> None:
    """A model file that, loaded by an unrestricted unpickler, would create ``marker``."""
    import torch

    torch.save({"kind": "flow", "shape": {}, "config": {}, "state_dict": _Evil(marker)}, path)


DEVICE_CONFIGS = {
    "budget-nan": "[midi]\nbudget_fraction = nan\n",
    "cutoff-nan": "[smoothing]\nmin_cutoff_hz = nan\n",
    "beta-inf": "[smoothing]\nbeta = inf\n",
    "range-nan": "[[knob]]\nchannel = 0\nrange = [nan, 1.0]\n",
    "supply-nan": "[adc]\npot_supply_v = nan\n",
    "fail-nan": "[simulate]\nfail_rate = nan\n",
    "rate-inf": "[device]\nrate_hz = inf\n",
    "status-nofolder": "[device]\nstatus_file = \"no/such/folder/status.json\"\n",
    "unsigned": "[model]\ndecoder = \"bundle\"\nbundle = \"m.dxm\"\n",
}
FLASH_CONFIGS = {
    "window-nan": "health_window_s = nan\n",
    "bytes-negative": "max_bytes = -1\n",
    "bytes-64mib": "max_bytes = 67108864\n",
    "selftest-zero": "self_test_timeout_s = 0.0\n",
    "keep-negative": "keep_models = -3\n",
    "port-70000": "port = 70000\n",
    "port-negative": "port = -1\n",
    "stale-inf": "stale_s = inf\n",
}

# (argv with {world} for the folder, words the one line holds, exit code: 2 for argparse's usage errors)
CASES = [
    # JSON: depth, non-finite numbers, bytes that are not text
    (["voices", "inspect", "{w}/deep.json"], "deep.json: JSON nests deeper than 64", 1),
    (["voices", "convert", "{w}/deep.json", "--out", "{w}/out/o.syx"], "nests deeper", 1),
    (["voices", "inspect", "{w}/inf.json"], "inf.json: JSON holds Infinity", 1),
    (["voices", "inspect", "{w}/huge.json"], "huge.json: JSON holds 1e400, which is not a finite", 1),
    (["voices", "inspect", "{w}/nan.json"], "holds NaN", 1),
    (["voices", "inspect", "{w}/bad-utf8.json"], "bad-utf8.json: not UTF-8", 1),
    # what is not a regular file: refused before a byte is read (a FIFO would hang, /dev/zero never ends)
    (["voices", "inspect", "{w}/fifo.syx"], "fifo.syx: is not a regular file", 1),
    (["voices", "inspect", "{w}/fifo.json"], "fifo.json: is not a regular file", 1),
    (["voices", "inspect", "/dev/zero"], "/dev/zero: is not a regular file", 1),
    (["voices", "inspect", "{w}"], "is a directory", 1),
    (["bundle", "inspect", "/dev/zero"], "/dev/zero: is not a regular file", 1),
    (["bundle", "inspect", "{w}/fifo.syx"], "is not a regular file", 1),
    # numbers on the command line
    (["voices", "synth", "--seed", "-1", "--out", "{w}/out/o.syx"], "--seed: must be in 0..4294967295, got -1", 2),
    (["voices", "synth", "-n", "0", "--out", "{w}/out/o.syx"], "-n: must be in 1..100000", 2),
    (["generate", "--seed", "-1", "--out", "{w}/out/o.syx"], "--seed: must be in 0..", 2),
    (["generate", "--temperature", "nan", "--out", "{w}/out/o.syx"], "--temperature: must be a finite number", 2),
    (["convert", "--run", "{w}/run-json-empty", "--out", "{w}/out/m.dxm", "--audio-voices", "-5"],
     "--audio-voices: must be in 0..100000", 2),
    (["render", "--voices", "{w}/bank.syx", "--rate", "0", "--out", "{w}/out/o.wav"], "--rate: must be in 8000", 2),
    (["render", "--voices", "{w}/bank.syx", "--duration", "inf", "--out", "{w}/out/o.wav"], "finite", 2),
    (["voices", "convert", "{w}/bank.syx", "--out", "{w}/out/o.syx", "--channel", "17"], "--channel: must be in 1..16",
     2),
    (["flash", "--list", "--device", "http://127.0.0.1:9", "--token", TOKEN, "--timeout", "nan"], "finite", 2),
    (["dataset", "build", "--voices", "{w}/bank.syx", "--out", "{w}/out/d", "--workers", "0"], "--workers", 2),
    # WAVs with impossible rates
    (["match", "{w}/rate0.wav", "--out", "{w}/out/v.syx"], "rate0.wav: sample rate 0 Hz", 1),
    (["match", "{w}/rate1.wav", "--out", "{w}/out/v.syx"], "rate1.wav: sample rate 1 Hz", 1),
    (["match", "{w}/rate4294967295.wav", "--out", "{w}/out/v.syx"], "sample rate 4294967295 Hz", 1),
    # run folders: corrupt, empty or tampered model files; run.json that is {}, a list, too deep
    (["generate", "--run", "{w}/run-empty-model", "-n", "1", "--out", "{w}/out/o.syx"],
     "run-empty-model/models/flow/model.pt: not a usable", 1),
    (["generate", "--run", "{w}/run-corrupt-model", "-n", "1", "--out", "{w}/out/o.syx"], "not a usable", 1),
    (["generate", "--run", "{w}/run-evil-model", "-n", "1", "--out", "{w}/out/o.syx"],
     "refused: this model file holds more than tensors and plain data", 1),
    (["generate", "--run", "{w}/run-json-empty", "-n", "1", "--out", "{w}/out/o.syx"],
     "run.json: corrupt ('dataset_dir' missing", 1),
    (["generate", "--run", "{w}/run-json-list", "-n", "1", "--out", "{w}/out/o.syx"], "run.json: corrupt (a JSON list",
     1),
    (["generate", "--run", "{w}/run-json-deep", "-n", "1", "--out", "{w}/out/o.syx"], "run.json nests deeper", 1),
    (["convert", "--run", "{w}/run-info-empty", "--out", "{w}/out/m.dxm", "--key", "{w}/signing"],
     "info.json: corrupt", 1),
    (["convert", "--run", "{w}/run-evil-model", "--out", "{w}/out/m.dxm", "--key", "{w}/signing"], "refused", 1),
    (["match", "{w}/rate0.wav", "--run", "{w}/run-json-list", "--out", "{w}/out/v.syx"], "", 1),
    # bundles whose contents are crafted (signature good: verify and inspect alike)
    *[(["bundle", action, f"{{w}}/{name}.dxm", *(["--pubkey", "{w}/signing.pub"] if action == "verify" else [])],
       words, 1)
      for action in ("inspect", "verify")
      for name, words in (("no-model-id", "manifest field 'model_id'"), ("latent-text", "'latent_size'"),
                          ("knob-text", "manifest knob 0 is malformed"), ("knob-dim", "manifest knob 0"),
                          ("quant-list", "'quantization' is malformed"), ("anchors-binary", "anchors.json is not UTF-8"),
                          ("anchors-deep", "anchors.json nests deeper"), ("anchors-dict", "anchors.json is not a list"),
                          ("anchors-voice", "anchors.json entry 0 is malformed"),
                          ("golden-list", "golden.json is malformed"), ("golden-ragged", "golden.json is malformed"),
                          ("manifest-deep", "manifest nests deeper"), ("manifest-nan", "manifest holds NaN"))],
    # device.toml: NaN or inf anywhere, a status file nobody could write
    *[(["device", "run", "--config", f"{{w}}/device-{name}.toml", "--simulate", "--duration", "1"], words, 1)
      for name, words in (("budget-nan", "[midi] budget_fraction must be a finite number, got nan"),
                          ("cutoff-nan", "[smoothing] min_cutoff_hz must be a finite number"),
                          ("beta-inf", "[smoothing] beta must be a finite number, got inf"),
                          ("range-nan", "[knob 1] range must be two different numbers (finite)"),
                          ("supply-nan", "[adc] pot_supply_v must be a finite number"),
                          ("fail-nan", "[simulate] fail_rate must be a finite number"),
                          ("rate-inf", "[device] rate_hz must be a finite number"),
                          ("status-nofolder", "[device] status_file"),
                          ("unsigned", "cannot be verified without public_key"))],
    # flash.toml: every number in range before the service starts
    *[(["flash-service", "status", "--config", f"{{w}}/flash-{name}.toml"], words, 1)
      for name, words in (("window-nan", "health_window_s must be a finite number"),
                          ("bytes-negative", "max_bytes must be in 1024..8388608, got -1"),
                          ("bytes-64mib", "max_bytes must be in 1024..8388608, got 67108864"),
                          ("selftest-zero", "self_test_timeout_s must be in 1.0..3600.0"),
                          ("keep-negative", "keep_models must be in 1..100, got -3"),
                          ("port-70000", "port must be in 0..65535, got 70000"),
                          ("port-negative", "port must be in 0..65535, got -1"),
                          ("stale-inf", "stale_s must be a finite number"))],
    (["flash-service", "status", "--port", "70000"], "port must be in 0..65535", 1),
    # device URLs
    (["flash", "--list", "--device", "http://[::1", "--token", TOKEN], "--device 'http://[::1' is not a usable URL", 1),
    (["flash", "--list", "--device", "http://127.0.0.1:abc", "--token", TOKEN], "is not a usable URL", 1),
    (["flash", "--list", "--device", "http://127.0.0.1:99999", "--token", TOKEN], "is not a usable URL", 1),
]


def _run(argv: list[str], capsys) -> tuple[int, str, str]:
    try:
        code = main(argv)
    except SystemExit as exc:  # argparse's usage errors
        code = exc.code
    out, err = capsys.readouterr()
    return code, out, err


@pytest.mark.parametrize("argv, words, code", CASES, ids=[f"{i:02d}-{c[0][0]}-{Path(c[0][-1]).name}"
                                                          for i, c in enumerate(CASES)])
def test_a_hostile_input_is_one_line_naming_it(world, capsys, argv, words, code):
    if any(a in ("generate", "convert", "match") for a in argv[:1]):
        pytest.importorskip("torch", reason="host commands need the host extra")
    got, _, err = _run([a.format(w=world) for a in argv], capsys)
    left = list((world / "out").iterdir())
    shutil.rmtree(world / "out")
    (world / "out").mkdir()
    assert left == []  # nothing half-written
    assert got == code, err
    assert err.count("\n") == 1 and "Traceback" not in err and ": error: " in err, err
    assert words in err, err
    assert not (world / "PWNED").exists()  # the tampered checkpoint ran nothing


def test_an_unsigned_bundle_loads_only_when_the_config_says_so(tmp_path):
    from device.control.config import load_config

    path = tmp_path / "device.toml"
    path.write_text('[model]\ndecoder = "bundle"\nbundle = "m.dxm"\nallow_unsigned = true\n')
    cfg = load_config(path)
    assert cfg.allow_unsigned and cfg.public_key is None and cfg.bundle == tmp_path / "m.dxm"
    path.write_text('[model]\ndecoder = "bundle"\nbundle = "m.dxm"\nallow_unsigned = "yes"\n')
    with pytest.raises(Exception, match="allow_unsigned must be bool"):
        load_config(path)


def test_the_table_covers_every_class_of_the_issue():
    """Counted in docs/flashing.md (the hostile-input suite); a shrinking table is a lost case."""
    assert len(CASES) >= 80


def test_a_tampered_checkpoint_is_refused_before_anything_runs(tmp_path):
    pytest.importorskip("torch")
    from dxmacro.errors import DxmacroError
    from host_training.model.checkpoint import load_checkpoint

    path, marker = tmp_path / "checkpoint.pt", tmp_path / "PWNED"
    _evil_checkpoint(path, marker)
    with pytest.raises(DxmacroError, match="refused: this checkpoint holds more than tensors and plain data"):
        load_checkpoint(path, what="checkpoint")
    assert not marker.exists()


def test_the_signing_key_is_never_readable_by_others(tmp_path, monkeypatch):
    """The private key's file is 0600 from its creation, before the first byte goes in: a kill at
    any instant leaves nothing readable by others (umask 0 makes a late chmod visible)."""
    from conversion import keys

    opened: list[tuple[int, int]] = []
    real_fdopen = os.fdopen

    def watching_fdopen(fd, *args, **kwargs):
        st = os.fstat(fd)
        opened.append((stat.S_IMODE(st.st_mode), st.st_size))
        return real_fdopen(fd, *args, **kwargs)

    monkeypatch.setattr(os, "fdopen", watching_fdopen)
    old = os.umask(0)
    try:
        private, public = keys.generate(tmp_path / "signing")
    finally:
        os.umask(old)
    assert opened[0] == (0o600, 0)  # the private key's file, empty, already owner-only
    assert stat.S_IMODE(private.stat().st_mode) == 0o600
    assert stat.S_IMODE(public.stat().st_mode) == 0o666  # the public half is for everyone
    assert not [p for p in tmp_path.iterdir() if p.name.endswith(".tmp")]


def test_a_file_name_that_is_not_utf8_prints_on_a_strict_terminal(tmp_path):
    name = os.fsencode(tmp_path) + b"/caf\xe9.syx"
    with open(name, "wb") as f:
        f.write(encode_banks([Voice.init()] * 32))
    env = dict(os.environ, PYTHONIOENCODING="utf-8:strict", LC_ALL="C.UTF-8")
    ok = subprocess.run([sys.executable, "-m", "dxmacro", "voices", "inspect", os.fsdecode(name)],
                        capture_output=True, env=env, check=False)
    assert ok.returncode == 0 and b"caf\\udce9.syx: 32 voices" in ok.stdout, ok.stderr
    missing = subprocess.run([sys.executable, "-m", "dxmacro", "voices", "inspect", os.fsdecode(name) + ".x"],
                             capture_output=True, env=env, check=False)
    assert missing.returncode == 1 and missing.stderr.count(b"\n") == 1 and b"Traceback" not in missing.stderr
