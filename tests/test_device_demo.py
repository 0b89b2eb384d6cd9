"""The device demo writes what it sent, and what it sent is valid and within budget."""

from __future__ import annotations

import json

from dx7.files import read_voice_file
from dx7.sysex import parse_stream
from device.bench.demo import run_demo
from dxmacro.errors import DxmacroError


def test_device_demo_outputs(tmp_path):
    try:
        from host_training.audio.render import DexedRenderer

        renderer = DexedRenderer(44100)
    except (ImportError, DxmacroError):
        renderer = None  # the audio render needs dexed-py; the rest is still checked
    result = run_demo(tmp_path, renderer=renderer, echo=lambda *_: None)
    assert result.synth_errors == 0 and result.final_matches
    assert result.max_window_bytes <= 2500
    lines = [json.loads(x) for x in (tmp_path / "sent.jsonl").read_text().splitlines()]
    assert len(lines) == result.messages and sum(x["bytes"] for x in lines) == result.bytes
    msgs = parse_stream((tmp_path / "sent.syx").read_bytes())
    assert len(msgs) == sum(1 for x in lines if x["hex"].startswith("f0"))
    assert read_voice_file(tmp_path / "final_voice.syx").voices[0].voice.name.strip()
    for name in ("screen.png", "knobs.png"):
        assert (tmp_path / name).read_bytes()[:4] == b"\x89PNG"
    if renderer is not None:
        from host_training.audio.features import rms_db
        from host_training.audio.render import read_wav

        audio, sr = read_wav(str(tmp_path / "performance.wav"))
        assert sr == 44100 and rms_db(audio) > -60
