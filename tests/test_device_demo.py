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


def test_device_demo_plays_a_cartridge_through_relative_knobs_and_program_changes(tmp_path):
    import numpy as np

    from dx7 import Voice
    from dx7.files import encode_banks

    rng = np.random.default_rng(4)
    cartridge = [Voice.init().replace({"algorithm": int(rng.integers(0, 32)), "op2_output_level": int(rng.integers(0, 99)),
                                       "feedback": int(rng.integers(0, 8))}, name=f"DEMO {i:02d}") for i in range(32)]
    cart = tmp_path / "cart.syx"
    cart.write_bytes(encode_banks(cartridge))
    script = tmp_path / "perf.toml"
    script.write_text("""duration_s = 12.0
[[note]]
t = 0.8
note = 60
[[move]]
t = 1.0
knob = 0
to = 0.0
over = 1.0
[[move]]
t = 2.0
knob = 0
to = 1.0
over = 1.0
[[note]]
t = 3.5
note = 60
[[program]]
t = 4.0
number = 5
[[note]]
t = 5.0
note = 60
[[program]]
t = 6.0
number = 130
[[program]]
t = 7.0
number = 2
[[note]]
t = 8.0
note = 60
""")
    result = run_demo(tmp_path / "out", script=script, cartridge=cart, echo=lambda *_: None)
    assert result.synth_errors == 0 and result.final_matches
    first, edited, fifth, second = result.heard
    assert first == cartridge[0] and edited != cartridge[0]  # held exactly, then edited by the knob
    assert fifth == cartridge[5] and second == cartridge[2]  # Program Change (130 is beyond the 32: ignored)


def test_make_demo_plays_the_shipped_model_through_its_verified_bundle(tmp_path):
    """What `make demo` runs: the shipped model converted, signed, verified by the device config
    (a bundle is refused without its public key) and played."""
    import pytest

    pytest.importorskip("torch", reason="converting the shipped model needs the host extra")
    pytest.importorskip("dexed", reason="the demo renders with dexed-py")
    from dxmacro.cli import main

    out = tmp_path / "demo"
    assert main(["demo", "--device", "--out", str(out)]) == 0
    assert (out / "performance.wav").stat().st_size > 44100 and (out / "final_voice.syx").is_file()
