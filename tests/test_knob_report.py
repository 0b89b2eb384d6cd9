"""``dxmacro knobs report`` end to end on a tiny trained run: what the synth gets along each knob,
rendered and measured, in relative and absolute mode; and the pitch a player hears."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from dx7 import Voice
from dxmacro.cli import main
from host_training.jobs.knob_report import changes_pitch, sweep_values

CONFIG = """
[run]
models = ["flow"]
[train]
seed = 1
epochs = 1
batch_size = 8
threads = 2
[model]
semantic_dims = 2
enc_channels = [4, 8]
hidden = 32
post_flow_blocks = 1
post_flow_hidden = 32
reg_flow_blocks = 2
reg_flow_hidden = 32
dec_channels = [8, 4]
[loss]
knob_weight = 0.0
"""


def _sweep(*edits: dict) -> np.ndarray:
    return np.stack([np.array(Voice.init().replace(e).values[:145]) for e in edits])


def test_pitch_a_player_hears():
    assert not changes_pitch(_sweep({}, {"op1_output_level": 50}, {"op2_freq_coarse": 9}))  # loudness, a modulator
    assert changes_pitch(_sweep({}, {"transpose": 25}))
    assert changes_pitch(_sweep({}, {"pitch_eg_level2": 60}))
    assert changes_pitch(_sweep({}, {}, {"op1_freq_coarse": 3}))  # the carrier of algorithm 1, by octaves
    assert not changes_pitch(_sweep({}, {"op1_freq_fine": 2}))  # 2 % of a ratio: a third of a semitone
    five = {"algorithm": 4, "op5_output_level": 80}  # OP5 is a carrier of algorithm 5 (when it sounds)
    assert changes_pitch(_sweep(five, {**five, "op5_freq_coarse": 2}))
    assert not changes_pitch(_sweep({"algorithm": 4}, {"algorithm": 4, "op5_freq_coarse": 2}))  # silent there


def test_relative_sweeps_start_from_the_voice_and_absolute_from_the_decoder():
    voice = np.array(Voice.init().replace({"op1_output_level": 70}).values[:145], dtype=np.int64)

    def decode(z):  # a decoder whose OP1 level follows latent dimension 0
        out = np.array(Voice.init().values[:145], dtype=np.int64)
        out[16 + 5 * 21] = int(np.clip(50 + 10 * z[0], 0, 99))  # op1_output_level
        return out

    z = np.zeros(4, np.float32)
    travel = np.array([-2.0, 0.0, 2.0], np.float32)
    level = 16 + 5 * 21
    rel = sweep_values(decode, voice, z, 0, travel, "relative")
    assert rel[:, level].tolist() == [50, 70, 90]  # the voice's 70, moved as the decoder moves
    assert sweep_values(decode, voice, z, 0, travel, "absolute")[:, level].tolist() == [30, 50, 70]


@pytest.fixture(scope="module")
def trained(tmp_path_factory) -> tuple[Path, Path, Path]:
    """(data set, run, signed int8 bundle of that run, its public key)."""
    pytest.importorskip("dexed", reason="dexed-py (the renderer) is not installed")
    pytest.importorskip("torch", reason="training needs the host extra")
    from model_data import make_dataset

    tmp = tmp_path_factory.mktemp("knobs")
    data = make_dataset(tmp / "data", n=40)
    (tmp / "cfg.toml").write_text(CONFIG)
    assert main(["train", "--data", str(data), "--out", str(tmp / "run"), "--config", str(tmp / "cfg.toml"),
                 "--quiet"]) == 0
    assert main(["keys", "generate", "--out", str(tmp / "k.key")]) == 0
    assert main(["convert", "--run", str(tmp / "run"), "--out", str(tmp / "model.dxm"), "--key", str(tmp / "k.key"),
                 "--audio-voices", "0"]) == 0
    return data, tmp / "run", tmp / "model.dxm"


def _report(trained, out: Path, *flags: str) -> dict:
    """`dxmacro knobs report` on the tiny run, 3 test voices, 4 steps, with ``flags``: its JSON."""
    data, run, bundle = trained
    assert main(["knobs", "report", "--bundle", str(bundle), "--public-key", str(bundle.parent / "k.key.pub"),
                 "--data", str(data), "--run", str(run), "--voices", "3", "--steps", "4", *flags,
                 "--out", str(out)]) == 0
    return json.loads((out / "knobs.json").read_text())


def test_the_report_measures_each_knob_in_both_modes(trained, tmp_path, capsys):
    out = tmp_path / "report"
    report = _report(trained, out, "--fp32")
    assert set(report["modes"]) == {"int8 relative", "int8 absolute", "fp32 relative"}
    assert report["voices"] == 3 and report["steps"] == 4
    rel, ab = report["modes"]["int8 relative"], report["modes"]["int8 absolute"]
    assert rel["takeover_jump_db"] == 0.0  # the first touch keeps the chosen voice
    assert ab["takeover_jump_db"] > 0.5  # a tiny model's reconstruction is far from the voice
    for entry in report["modes"].values():
        assert [k["name"] for k in entry["knobs"]] == ["bright/dark", "aggressive/soft"]
        for k in entry["knobs"]:
            assert -1 <= k["spearman"] <= 1 and 0 <= k["wrong_sign"] <= 1 and 0 <= k["pitch_changing"] <= 1
            assert k["selectivity"] >= 0 and 0 <= k["largest_step_db"] <= k["largest_step_db_max"]
    assert "| int8 relative | bright/dark |" in (out / "knobs.md").read_text()
    assert "jump at the first touch" in capsys.readouterr().out


def test_a_bundle_of_another_model_is_refused_in_one_line(trained, capsys):
    data, run, bundle = trained
    from host_training.jobs.runs import default_model_dir

    code = main(["knobs", "report", "--bundle", str(bundle), "--data", str(data), "--run", str(default_model_dir()),
                 "--voices", "2"])
    err = capsys.readouterr().err.strip().splitlines()
    assert code != 0 and len(err) == 1 and "give --run the run the bundle was converted from" in err[0]


def test_the_report_measures_only_the_knobs_named(trained, tmp_path, capsys):
    """--knob NAME: one knob of the bundle, in every mode; a name the bundle lacks is refused in
    one line naming its knobs."""
    report = _report(trained, tmp_path / "report", "--knob", "aggressive/soft")
    for entry in report["modes"].values():
        assert [k["name"] for k in entry["knobs"]] == ["aggressive/soft"]
    capsys.readouterr()
    data, run, bundle = trained
    code = main(["knobs", "report", "--bundle", str(bundle), "--data", str(data), "--run", str(run),
                 "--knob", "shiny/dull"])
    err = capsys.readouterr().err.strip().splitlines()
    assert code != 0 and len(err) == 1 and "no knob shiny/dull (its knobs: bright/dark, aggressive/soft)" in err[0]


def test_further_validation_voices_are_new_ones(trained):
    """The knob gates' second draw (knob_gates.measure with ``exclude``) takes none of the first,
    and the first draw is what it always was."""
    from host_training.jobs.knob_report import test_voices

    data = trained[0]
    first = test_voices(data, 2, split="validation")
    assert list(first) == list(test_voices(data, 2, split="validation", exclude=()))
    more = test_voices(data, 100, split="validation", exclude=first)
    assert len(more) > 0 and not set(first) & set(more)
    assert sorted(set(first) | set(more)) == sorted(test_voices(data, 100, split="validation"))


def test_tuned_mode_keeps_the_voice_at_the_first_touch_and_reports_the_tuning(trained, tmp_path):
    """--tuned: each decoder also in tuned mode, which keeps the chosen voice at the first touch
    and says how many voices' tunings pass and how many parameters a tuned knob moves. (That a
    tuned knob moves nothing its relative sweep does not is checked on a tuned bank, below.)"""
    report = _report(trained, tmp_path / "report", "--tuned")
    assert set(report["modes"]) == {"int8 relative", "int8 absolute", "int8 tuned"}
    tuned = report["modes"]["int8 tuned"]
    assert tuned["takeover_jump_db"] == 0.0
    for k in tuned["knobs"]:
        assert 0 <= k["tuned_passed"] <= 1 and k["tuned_params"] >= 0


def test_bank_build_tunes_every_voice_s_knobs_for_the_device(trained, tmp_path, capsys):
    """`dxmacro bank build --tune-knobs`: a format 2 bank whose masks allow, per voice and knob, only
    parameters that knob's relative sweep moves; without --bundle, one line and nothing written."""
    from conversion import keys, runtime, voice_bank
    from dx7.files import encode_banks
    from dx7.relative import relative_voice

    data, run, bundle = trained
    key = bundle.parent / "k.key"
    voices = [Voice.init().replace({"algorithm": a, "op2_output_level": 40 + 10 * a, "feedback": a % 8})
              for a in range(3)]
    cart = tmp_path / "three.syx"
    cart.write_bytes(encode_banks(voices))
    out = tmp_path / "tuned.dxb"
    assert main(["bank", "build", str(cart), "--run", str(run), "--key", str(key), "--out", str(out),
                 "--tune-knobs", "--bundle", str(bundle), "--data", str(data), "--threads", "1"]) == 0
    assert "knobs tuned" in capsys.readouterr().out
    public = keys.load_public_key(str(key) + ".pub")
    bank = voice_bank.read(out, public)
    decoder = runtime.load_decoder(bundle, public)
    assert bank.manifest["format_version"] == 2 and bank.manifest["knob_dims"] == [k.dim for k in decoder.knobs]
    for anchor in bank.anchors():
        base = np.array(anchor.voice.values[:145], dtype=np.int64)
        at_base = np.asarray(decoder.decode(anchor.latent), dtype=np.int64)
        for k in decoder.knobs:
            moves = np.zeros(145, bool)
            for end in np.linspace(k.low, k.high, 11, dtype=np.float32):
                z = anchor.latent.copy()
                z[k.dim] = end
                moves |= relative_voice(base, at_base, decoder.decode(z)) != base
            assert not (anchor.knob_masks[k.dim] & ~moves).any()
    assert main(["bank", "inspect", str(out), "--pubkey", str(key) + ".pub"]) == 0
    assert f"knobs tuned for latent dims {[k.dim for k in decoder.knobs]} by {data}" in capsys.readouterr().out
    code = main(["bank", "build", str(cart), "--run", str(run), "--key", str(key), "--out", str(tmp_path / "x.dxb"),
                 "--tune-knobs"])
    err = capsys.readouterr().err.strip().splitlines()
    assert code != 0 and len(err) == 1 and "--tune-knobs needs --bundle" in err[0]
    assert not (tmp_path / "x.dxb").exists()
