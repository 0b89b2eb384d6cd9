"""End to end on a tiny real data set (Dexed renders): training, resume, export, generate,
match, evaluate, and the CLI's one-line errors."""

from __future__ import annotations

import json
import re
from pathlib import Path

import numpy as np
import pytest
import torch

from dxmacro.cli import main
from dxmacro.errors import DxmacroError

SMOKE = """
[run]
models = {models}
[train]
seed = 3
epochs = 2
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
reg_flow_quant_noise = 1.0
dec_channels = [8, 4]
baseline_channels = [4, 8]
baseline_hidden = 32
[loss]
contrastive_weight = 1.0
beta_warmup_epochs = 1
knob_weight = 20.0
knob_pitch_weight = 1.0
transpose_weight = 48.0
surrogate = "mlp+linear+prior"
surrogate_steps = 50
surrogate_render_voices = 6
surrogate_refit_steps = 20
[evaluate]
max_test = 4
n_ood = 3
n_foreign = 2
knob_voices = 2
knob_steps = 3
generate_n = 12
interp_pairs = 1
interp_steps = 3
match_candidates = 4
threads = 2
"""


@pytest.fixture(scope="module")
def data(tmp_path_factory) -> Path:
    pytest.importorskip("dexed", reason="dexed-py (the renderer) is not installed")
    from model_data import make_dataset

    return make_dataset(tmp_path_factory.mktemp("ds") / "data", n=56)


def _config(tmp: Path, models: list[str]) -> Path:
    p = tmp / "smoke.toml"
    p.write_text(SMOKE.format(models=json.dumps(models)))
    return p


@pytest.fixture(scope="module")
def run(data, tmp_path_factory) -> Path:
    tmp = tmp_path_factory.mktemp("run")
    cfg = _config(tmp, ["flow", "vae_mlp", "cnn"])
    assert main(["train", "--data", str(data), "--out", str(tmp / "run"), "--config", str(cfg), "--quiet"]) == 0
    return tmp / "run"


def test_training_writes_weights_logs_and_export(run):
    for kind in ("flow", "vae_mlp", "cnn"):
        assert (run / "models" / kind / "model.pt").is_file()
        rows = [json.loads(x) for x in (run / "models" / kind / "log.jsonl").read_text().splitlines()]
        assert [r["epoch"] for r in rows] == [1, 2]
        assert all(np.isfinite(v) for r in rows for v in r["train"].values())
        # the knob terms run with the VAEs only (and resume with them: test_resume_gives_the_same_weights)
        assert all(("knob_gain" in r["train"]) == (kind != "cnn") for r in rows)
    assert list((run / "tb" / "flow").glob("events.*")), "TensorBoard events missing"
    from host_training.jobs.export import load_decoder, read_run, representative_latents

    head, info = load_decoder(run)
    assert info["latent_size"] == 225 and info["head"] == "flow"
    assert [k["name"] for k in info["knobs"]] == ["bright/dark", "aggressive/soft"]
    assert [k["dim"] for k in info["knobs"]] == [0, 1]
    for k in info["knobs"]:
        assert k["range"][0] < k["range"][1]
    z = torch.from_numpy(representative_latents(run, 16))
    assert z.shape == (16, 225)
    assert head(z).shape == (16, 225)
    a = info["anchors"][0]
    assert a["voice"].to_unpacked() and len(a["latent"]) == 225
    # the parity report's test set is the encoded test split, the int8 calibration the training one
    from host_training.dataset import open_dataset

    n_test = len(open_dataset(read_run(run)["dataset_dir"]).indices("test"))
    assert n_test and info["test_latents"].shape == (min(n_test, 1024), 225)
    assert info["calibration_latents"].shape[1] == 225
    from conversion.pipeline import check_info

    check_info(info)  # what `dxmacro convert` requires of a run


def test_another_vae_model_of_the_run_is_exported_on_demand(run):
    """`dxmacro convert --kind vae_mlp`: the MLP head with its own encoder's latents, made from the
    run's data set in memory (RUN/export/ stays the main model's)."""
    from host_training.jobs.export import load_decoder

    before = (run / "export" / "info.json").read_bytes()
    head, info = load_decoder(run, "vae_mlp")
    flow_head, flow_info = load_decoder(run)
    assert info["head"] == "mlp" and flow_info["head"] == "flow" and info["model_id"].startswith("vae_mlp-")
    assert info["test_latents"].shape == flow_info["test_latents"].shape  # the same test voices...
    assert not np.allclose(info["test_latents"], flow_info["test_latents"])  # ...through another encoder
    keys = [[a["voice"].content_key() for a in i["anchors"]] for i in (info, flow_info)]
    assert keys[0] == keys[1]
    assert head(torch.from_numpy(info["test_latents"][:4])).shape == (4, 225)
    assert (run / "export" / "info.json").read_bytes() == before
    with pytest.raises(DxmacroError, match="no VAE model 'cnn'"):
        load_decoder(run, "cnn")


def test_rendered_scores_agree_with_the_data_set_s_own(data):
    """The trainer's probe scores (rendered now, ranked against the data set) are on the
    scale of the data set's own scores: its voices re-rendered get back their ranks."""
    from host_training.model.knob_loss import score_targets
    from host_training.dataset import open_dataset
    from host_training.dataset.rendered_scores import ScoreRenderer
    from host_training.audio.sound import RenderSettings

    ds = open_dataset(data)
    own = score_targets(np.asarray(ds.descriptors), 7)
    scorer = ScoreRenderer(RenderSettings.from_manifest(ds.settings), ds.descriptors, 7, threads=2)
    idx = np.arange(0, len(own), 5)
    got = scorer.scores(np.asarray(ds.params[idx]))
    assert got.shape == (len(idx), 7)
    assert np.array_equal(np.isnan(got), np.isnan(own[idx]))
    # the same descriptors; ranks differ only where voices tie (decay times at the render's
    # end, say: the data set orders ties arbitrarily, a probe gets their middle rank) and in
    # "aggressive", which ranks loudness etc. inside the population the probes join
    from scipy.stats import spearmanr

    for j in range(7):
        ok = np.isfinite(own[idx, j])
        assert spearmanr(got[ok, j], own[idx][ok, j]).statistic > 0.85, j
        assert np.abs(got[ok, j] - own[idx][ok, j]).mean() < 0.15, j  # of a width-2 scale
    # INIT VOICE (a sine) against the same voice with OP2 modulating OP1: the FM one is brighter
    from dx7 import Voice
    from dx7.params import param

    sine = Voice.init().parameters
    fm = sine.copy()
    fm[param("op2_output_level").index] = 85
    s = scorer.scores(np.stack([sine, fm]))
    assert s[1, 0] > s[0, 0] + 0.2


def test_training_renders_the_head_s_own_knob_moves(run):
    """surrogate_render_voices: every epoch the head's knob moves are rendered and kept (with
    real scores) in the checkpoint, for the surrogate and for an exact resume."""
    ck = torch.load(run / "models" / "flow" / "checkpoint.pt", weights_only=True)
    pr = ck["probes"]
    assert pr["va"].shape == pr["vb"].shape == (2 * 6, 225)  # 2 epochs x 6 moves
    assert pr["sa"].shape == pr["sb"].shape == (12, 7)
    scores = np.concatenate([pr["sa"], pr["sb"]])
    assert (np.abs(scores[np.isfinite(scores)]) <= 1).all()
    # the two ends of a move differ (the knob moved the decoded voice) and are valid encodings
    assert (np.abs(pr["va"] - pr["vb"]).sum(1) > 0).any()
    from dx7 import Voice, layout
    from host_training.jobs.export import read_run
    from host_training.audio.sound import SILENCE_DB, RenderSettings, VoiceRenderer, level_db

    vectors = np.concatenate([pr["va"], pr["vb"]])
    assert np.array_equal(layout.encode(layout.decode(vectors)), vectors)
    # a probe without scores is a voice silent at every note (a two-epoch head makes many)
    r = VoiceRenderer(RenderSettings.from_manifest(read_run(run)["dataset_settings"]))
    for vec, sc in zip(vectors, scores):
        levels = [level_db(a) for a in r.all_notes(Voice.from_parameters(layout.decode(vec[None])[0]))]
        assert np.isnan(sc).all() == (max(levels) < SILENCE_DB)


def test_resume_gives_the_same_weights(data, tmp_path):
    cfg = _config(tmp_path, ["flow"])
    from host_training.jobs.train import train_run

    train_run(data, tmp_path / "a", str(cfg), progress=False)
    train_run(data, tmp_path / "b", str(cfg), stop_after=1, progress=False)
    assert not (tmp_path / "b" / "models" / "flow" / "model.pt").exists()
    train_run(data, tmp_path / "b", str(cfg), progress=False)  # resumes at epoch 2
    sa = torch.load(tmp_path / "a" / "models" / "flow" / "model.pt", weights_only=True)["state_dict"]
    sb = torch.load(tmp_path / "b" / "models" / "flow" / "model.pt", weights_only=True)["state_dict"]
    assert sa.keys() == sb.keys()
    for k in sa:
        assert torch.equal(sa[k], sb[k]), k
    other = tmp_path / "other.toml"
    other.write_text(cfg.read_text().replace("seed = 3", "seed = 4"))
    assert main(["train", "--data", str(data), "--out", str(tmp_path / "b"), "--config", str(other)]) == 1


def test_generate_writes_a_valid_bank(run, tmp_path):
    from dx7.files import read_voice_file

    out = tmp_path / "bank.syx"
    assert main(["generate", "--run", str(run), "-n", "40", "--out", str(out)]) == 0
    voices = [lv.voice for lv in read_voice_file(out, strict=True).voices]
    assert len(voices) == 64  # two banks, the second padded
    assert len({v.content_key() for v in voices[:40]}) == 40


def test_match_on_a_rendered_wav(run, data, tmp_path, capsys):
    from dx7.files import read_voice_file
    from host_training.dataset import open_dataset
    from host_training.audio.render import DexedRenderer, Note, write_wav

    ds = open_dataset(data)
    voice = ds.voice(int(ds.indices("train")[0]))
    wav = tmp_path / "in.wav"
    write_wav(str(wav), DexedRenderer(22050).render(voice, Note(66, 100, 0.5, 0.75)), 22050)  # off-grid pitch and rate
    out = tmp_path / "m.syx"
    assert main(["match", str(wav), "--run", str(run), "--out", str(out)]) == 0
    assert len(read_voice_file(out, strict=True).voices) == 1
    # a recording that starts before the note, over a noise floor: matched from the note, the floor taken out
    note = DexedRenderer(22050).render(voice, Note(66, 100, 0.5, 0.75))
    lead = np.concatenate([np.zeros(11025, np.float32), note])
    write_wav(str(wav), lead + np.random.default_rng(0).normal(0, 1e-4, lead.size).astype(np.float32), 22050)
    capsys.readouterr()
    assert main(["match", str(wav), "--run", str(run), "--out", str(out)]) == 0
    said = capsys.readouterr().out
    assert f"{wav}: the note starts 0.5" in said and f"{wav}: noise floor -80 dBFS before the note" in said
    assert "DC offset" not in said
    # the same over a DC offset of -46 dBFS: read before the note and taken out
    write_wav(str(wav), lead + 0.005 + np.random.default_rng(0).normal(0, 1e-4, lead.size).astype(np.float32), 22050)
    assert main(["match", str(wav), "--run", str(run), "--out", str(out)]) == 0
    said = capsys.readouterr().out
    assert f"{wav}: the note starts 0.5" in said and f"{wav}: DC offset +0.0050 (-46 dBFS) before the note" in said
    # a file of DC alone is no recording of a note
    write_wav(str(wav), np.full(22050, 0.5, np.float32), 22050)
    assert main(["match", str(wav), "--run", str(run), "--out", str(out)]) == 1
    assert "the recording is silent" in capsys.readouterr().err
    # recorded 15 dB quieter than the data set's renders: the gain is read against the training voices
    write_wav(str(wav), note * 10 ** (-15 / 20), 22050)
    capsys.readouterr()
    assert main(["match", str(wav), "--run", str(run), "--out", str(out)]) == 0
    out_text = capsys.readouterr().out
    said = re.search(r"matched ([-+][0-9.]+) dB from its recorded level", out_text)
    assert said and 9.0 <= float(said.group(1)) <= 21.0
    # played at F#4 (66), between the data set's notes (48, 60, 72): heard there, up to the octave
    heard = re.search(r"heard at MIDI note ([0-9]+), up to the octave, and matched there", out_text)
    assert heard and int(heard.group(1)) % 12 == 66 % 12
    assert main(["match", str(wav), "--run", str(run), "--out", str(out), "--note", "66"]) == 0
    assert "heard at" not in capsys.readouterr().out
    with pytest.raises(SystemExit):
        main(["match", str(wav), "--run", str(run), "--out", str(out), "--note", "200"])
    assert "'200' is neither auto nor a MIDI note 0-127" in capsys.readouterr().err
    assert main(["match", str(wav), "--run", str(run), "--out", str(out), "--gain", "0"]) == 0
    assert "recorded level" not in capsys.readouterr().out
    with pytest.raises(SystemExit) as exc:
        main(["match", str(wav), "--run", str(run), "--out", str(out), "--gain", "loud"])
    assert exc.value.code == 2 and "'loud' is neither auto nor a gain in dB" in capsys.readouterr().err
    # with its data set gone there is nothing to read the level against: matched as recorded, and said so
    import shutil

    moved = tmp_path / "run_moved"
    shutil.copytree(run, moved)
    info = json.loads((moved / "run.json").read_text())
    (moved / "run.json").write_text(json.dumps({**info, "dataset_dir": str(tmp_path / "gone")}))
    assert main(["match", str(wav), "--run", str(moved), "--out", str(out)]) == 0
    said = capsys.readouterr().out
    assert f"{wav}: matched at its recorded level: no data set to read the level against" in said
    assert re.search(r"heard at MIDI note ([0-9]+)", said)
    # silence would "match" a silent training voice at 0 dB: refused, naming the file
    write_wav(str(wav), np.zeros(11025, np.float32), 22050)
    capsys.readouterr()
    assert main(["match", str(wav), "--run", str(run), "--out", str(tmp_path / "s.syx")]) == 1
    err = capsys.readouterr().err
    assert f"{wav}: the recording is silent" in err and "Traceback" not in err and not (tmp_path / "s.syx").exists()


@pytest.mark.parametrize("hold, length", [(0.6, 1.1), (2.5, 2.5)])
def test_match_prints_the_distance_to_the_recording_at_its_timing(run, data, tmp_path, capsys, hold, length):
    """The distance `match` prints is the benchmark's (scripts/match_bench.py): the voice written,
    rendered at the recording's note and timing, against the recording over its own length;
    --seconds bounds the match; --candidates writes a ranked bank whose first voice is the match."""
    import time

    from dx7.files import read_voice_file
    from host_training.audio.render import DexedRenderer, Note, write_wav
    from host_training.audio.sound import features_of
    from host_training.dataset import open_dataset

    from host_training.audio.onset import find_onset

    ds = open_dataset(data)
    rate = 16000  # the data set's rate: a recording is judged at it (resampled when it is not)
    r = DexedRenderer(rate)
    renders = (r.render(ds.voice(int(i)), Note(60, 100, hold, length)) for i in ds.indices("test"))
    # a voice whose onset is heard at note-on (the recording is judged from the onset heard)
    audio = next(a for a in renders if np.abs(a).max() > 0.01 and find_onset(a, rate).start == 0)
    wav, out = tmp_path / "in.wav", tmp_path / "m.syx"
    write_wav(str(wav), audio, rate)
    capsys.readouterr()
    t0 = time.monotonic()
    assert main(["match", str(wav), "--run", str(run), "--out", str(out), "--note", "60", "--gain", "0",
                 "--hold", str(hold), "--seconds", "5", "--candidates", "5"]) == 0
    took = time.monotonic() - t0
    said = capsys.readouterr().out
    said_d = re.search(r"log-mel distance ([0-9.]+) dB to the recording at note 60 velocity ([0-9]+)", said)
    printed, velocity = float(said_d.group(1)), int(said_d.group(2))  # the velocity of the training note retrieved
    voice = read_voice_file(out, strict=True).voices[0].voice
    mine = features_of(r.render(voice, Note(60, velocity, hold, length)), rate)[0]
    target = features_of(audio, rate)[0]
    assert mine.shape == target.shape and abs(float(np.mean(np.abs(mine - target))) - printed) < 0.006
    assert took < 5 * 1.1 + 1.0  # the match's 5 s, and the CLI's start before them
    assert f"key held {'to the end' if hold >= length else f'{hold:.3f} s'} of {length:.2f} s (given)" in said
    bank = [lv.voice for lv in read_voice_file(tmp_path / "m-candidates.syx", strict=True).voices]
    dists = [float(v.name.split()[1].removesuffix("dB")) for v in bank[:5]]
    assert len(bank) == 32 and [v.name.split()[0] for v in bank[:5]] == ["1", "2", "3", "4", "5"]
    assert dists == sorted(dists) and abs(dists[0] - printed) < 0.051
    assert np.array_equal(bank[0].parameters, voice.parameters)
    # the note-off read from the recording: the distance printed is the one at the hold printed
    assert main(["match", str(wav), "--run", str(run), "--out", str(out), "--note", "60", "--gain", "0",
                 "--seconds", "5"]) == 0
    said = capsys.readouterr().out
    held = re.search(r"key held (to the end|([0-9.]+) s) of ([0-9.]+) s \(read from the recording", said)
    read = length if held.group(1) == "to the end" else float(held.group(2))
    said_d = re.search(r"log-mel distance ([0-9.]+) dB to the recording at note 60 velocity ([0-9]+)", said)
    printed, velocity = float(said_d.group(1)), int(said_d.group(2))
    voice = read_voice_file(out, strict=True).voices[0].voice
    mine = features_of(r.render(voice, Note(60, velocity, read, length)), rate)[0]
    assert abs(float(np.mean(np.abs(mine - target))) - printed) < 0.02  # the hold printed is rounded to 1 ms


def test_an_octave_not_sure_is_searched_both_ways_and_the_closer_kept(run, data, monkeypatch):
    """Where the octave heard is not sure, `match` searches the two closest octaves (the time
    shared) and keeps the closer match: a training voice played at note 60, offered at 72 first
    and 60 second, comes back at 60 and close (retrieval finds it there), and says both were searched."""
    from host_training.audio.render import DexedRenderer, Note
    from host_training.dataset import open_dataset
    from host_training.jobs.match import Matcher, matcher_for_run, prepare

    ds = open_dataset(data)
    m = matcher_for_run(run, data)
    r = DexedRenderer(m.s.rate)
    audio = next(a for a in (r.render(ds.voice(int(i)), Note(60, 100, 1.0, 1.5)) for i in ds.indices("train"))
                 if np.abs(a).max() > 0.01)
    rec = prepare(audio, m.s.rate, m.s)
    tried = []

    def unsure(self, take, voices, renderer):
        tried.append(take.note)
        return [[take.at(note=72)], [take.at(note=60)]], "not sure: offered by the test; both searched"

    monkeypatch.setattr(Matcher, "_octave", unsure)
    res = m.match_recordings([rec], 0.0, None, seconds=4, hold=1.0)
    assert tried and res.notes == (60,) and "both searched" in res.octave
    assert res.distance_db < 1.0


def test_a_note_that_died_while_held_is_judged_held_to_the_end_and_the_reading_checked_by_ear(run, data,
                                                                                              monkeypatch):
    """A percussive note silent long before the file ends shows no note-off: `match` judges every
    candidate with the key held to the end (a voice that dies by itself fits whenever it was let
    go), unless listening finds a hold where a candidate renders much closer; a sustained note
    whose release the level misreads is put right by listening with its near-copy."""
    from dx7 import Voice
    from dx7.params import param
    from host_training.audio.render import DexedRenderer, Note
    from host_training.jobs import match as hm

    m = hm.matcher_for_run(run, data)
    r = DexedRenderer(m.s.rate)
    p = Voice.init().parameters.copy()
    for name, value in {"eg_rate1": 99, "eg_rate2": 60, "eg_level2": 0, "eg_level3": 0, "eg_rate4": 99}.items():
        p[param(f"op1_{name}").index] = value
    rec = hm.prepare(r.render(Voice.from_parameters(p, "PLUCK"), Note(60, 100, 1.5, 2.0)), m.s.rate, m.s)
    monkeypatch.setattr(hm, "NEAR_COPY_DB", 0.0)  # listening never overrules the reading
    monkeypatch.setattr(hm, "LISTENED_SHARE", 0.0)
    res = m.match_recordings([rec], 0.0, [60], seconds=3)
    assert res.held == ("died",) and res.holds[0] == pytest.approx(res.lengths[0])
    # a sustained training voice; the level reading is made wrong (a note-off 0.1 s after the
    # onset): listening with the one-note retrieval's voice (the voice itself) restores 1.0 s
    monkeypatch.undo()
    from host_training.audio.release import NoteOff
    from host_training.dataset import open_dataset

    ds = open_dataset(data)
    audio = next(a for a in (r.render(ds.voice(int(i)), Note(60, 100, 1.0, 1.5)) for i in ds.indices("train"))
                 if np.abs(a).max() > 0.01 and hm.read_note_off(a, m.s.rate).ended == "release")
    monkeypatch.setattr(hm, "how_held", lambda rec: NoteOff(0.1, 30.0, "release", rec.length_s))
    res = m.match_recordings([hm.prepare(audio, m.s.rate, m.s)], 0.0, [60], seconds=4)
    assert abs(res.holds[0] - 1.0) < 0.03 and res.distance_db < 0.5 and res.held == ("listened",)
    # a release read where the level was already falling may be a faster stage of the decay: the
    # same voice cut while held, read as let go at 0.2 s with the level falling before, is
    # searched held to the end as well, and kept there (the voice renders closest there)
    cut = next(a for a in (r.render(ds.voice(int(i)), Note(60, 100, 1.2, 1.2)) for i in ds.indices("train"))
               if np.abs(a).max() > 0.01 and hm.read_note_off(a, m.s.rate).ended == "held")
    monkeypatch.setattr(hm, "how_held", lambda rec: NoteOff(0.2, 30.0, "release", rec.length_s, 25.0))
    monkeypatch.setattr(hm, "NEAR_COPY_DB", 0.0)  # listening alone would find it too: left out here
    monkeypatch.setattr(hm, "LISTENED_SHARE", 0.0)
    res = m.match_recordings([hm.prepare(cut, m.s.rate, m.s)], 0.0, [60], seconds=4)
    assert res.held == ("decaying",) and res.holds[0] == pytest.approx(res.lengths[0]) and res.distance_db < 0.5


def test_match_at_several_notes_retrieves_over_all_of_them_and_is_never_farther_than_retrieval(run, data):
    from host_training.model.baselines import Retrieval
    from host_training.dataset import open_dataset
    from host_training.jobs.match import matcher_for_run

    ds = open_dataset(data)
    train, test = ds.indices("train"), ds.indices("test")
    retrieval = Retrieval.of_dataset(ds, train)
    own = np.asarray(ds.features[train[3]], dtype=np.float32)
    assert retrieval.query_notes(own) == 3  # a training voice's own notes find it
    assert retrieval.query_notes(own[1:2]) == retrieval.query_single(own[1:2])[0][0]  # one note: query_single's
    m = matcher_for_run(run, data, polish_renders=8)
    slots = list(range(len(m.s.notes)))
    for i in test[:2]:
        feats = list(np.asarray(ds.features[i], dtype=np.float32))
        nn = ds.voice(int(train[retrieval.query(np.stack(feats)[None])[0]]))
        res = m.match_notes(feats, slots, name="T")
        assert res.notes == tuple(n for n, _ in m.s.notes) and len(res.voice.parameters) == 145
        assert np.isclose(res.distance_db, m.distance_notes(res.voice, feats, slots), atol=1e-4)
        assert res.distance_db <= m.distance_notes(nn, feats, slots) + 1e-6


def test_retrieval_keeps_its_pooled_features_in_the_cache_and_survives_a_broken_one(data, tmp_path, monkeypatch):
    from host_training.model.baselines import Retrieval, pooled_cache_path, retrieval_features
    from host_training.dataset import open_dataset

    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))
    ds = open_dataset(data)
    train, test = ds.indices("train"), ds.indices("test")
    sha = ds.manifest["arrays"]["features"]["sha256"]
    path = pooled_cache_path(sha, train, 4)
    assert not path.exists()
    fresh = Retrieval.of_dataset(ds, train)
    expected = retrieval_features(ds.features, 4, train)
    assert path.is_file() and np.array_equal(np.load(path), expected)
    assert np.array_equal(Retrieval.of_dataset(ds, train).db.numpy(), fresh.db.numpy())
    assert pooled_cache_path(sha, test, 4) != path and pooled_cache_path(sha, train, 2) != path
    path.write_bytes(path.read_bytes()[:1000])  # half a file: pooled again and written whole
    assert np.array_equal(Retrieval.of_dataset(ds, train).db.numpy(), expected)
    assert np.array_equal(np.load(path), expected)
    np.save(path, expected[:1])  # a file of the wrong shape is not trusted either
    assert np.array_equal(Retrieval.of_dataset(ds, train).db.numpy(), expected)
    assert [p.name for p in path.parent.iterdir()] == [path.name]  # no temp file left behind
    n_mels = ds.features.shape[2]
    levels = Retrieval.of_dataset(ds, train).levels(n_mels)  # computed, then kept beside the features
    kept = path.with_name(f"{path.stem}-levels{n_mels}.npy")
    assert np.array_equal(np.load(kept), levels)
    assert np.array_equal(Retrieval.of_dataset(ds, train).levels(n_mels), levels)
    assert np.array_equal(Retrieval(ds.features, ds.params[train], rows=train).levels(n_mels), levels)


def test_match_several_recordings_of_one_sound(run, data, tmp_path, capsys):
    from dx7 import Voice
    from dx7.files import read_voice_file
    from host_training.dataset import open_dataset
    from host_training.audio.render import DexedRenderer, Note, write_wav

    ds = open_dataset(data)
    voice = ds.voice(int(ds.indices("train")[0]))  # one whose pitch is heard (test_match_on_a_rendered_wav)
    wavs = []
    for note in (54, 66, 78):  # off the data set's grid, the same sound at three pitches
        wavs.append(str(tmp_path / f"n{note}.wav"))
        write_wav(wavs[-1], DexedRenderer(22050).render(voice, Note(note, 100, 1.5, 2.0)), 22050)
    out = tmp_path / "m.syx"
    capsys.readouterr()
    assert main(["match", *wavs, "--run", str(run), "--out", str(out)]) == 0
    said = capsys.readouterr().out
    assert len(read_voice_file(out, strict=True).voices) == 1
    for wav, note in zip(wavs, (54, 66, 78)):
        heard = re.search(re.escape(wav) + r": heard at MIDI note ([0-9]+)", said)
        assert heard and int(heard.group(1)) % 12 == note % 12
    mean = re.search(r"log-mel distance ([0-9.]+) dB to the recording at notes ([0-9]+), ([0-9]+), ([0-9]+) \(mean\)",
                     said)
    assert mean and float(mean.group(1)) < 30
    assert main(["match", *wavs, "--run", str(run), "--out", str(out), "--note", "54,66,78"]) == 0
    assert "heard at" not in capsys.readouterr().out
    assert main(["match", *wavs, "--run", str(run), "--out", str(out), "--note", "54,66"]) == 1
    assert "--note gives 2 note(s) for 3 recording(s): one per file" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        main(["match", *wavs, "--run", str(run), "--out", str(out), "--note", "54,x,78"])
    assert "'x' is neither auto nor a MIDI note 0-127" in capsys.readouterr().err
    # a sine heard at 57 and 69: whatever octave the retrieval guesses for each, the interval between the files stays
    sines = []
    for note in (57, 69):
        sines.append(str(tmp_path / f"sine{note}.wav"))
        write_wav(sines[-1], DexedRenderer(22050).render(Voice.init(), Note(note, 100, 1.5, 2.0)), 22050)
    assert main(["match", *sines, "--run", str(run), "--out", str(out)]) == 0
    at = re.search(r"at notes ([0-9]+), ([0-9]+) \(mean\)", capsys.readouterr().out)
    assert at and int(at.group(2)) - int(at.group(1)) == 12
    # one bad file among them is named, and nothing is written
    (tmp_path / "bad.wav").write_bytes(b"RIFF")
    assert main(["match", wavs[0], str(tmp_path / "bad.wav"), "--run", str(run), "--out", str(tmp_path / "b.syx")]) == 1
    err = capsys.readouterr().err
    assert "bad.wav" in err and "Traceback" not in err and not (tmp_path / "b.syx").exists()


def test_match_polish_walks_back_to_a_voice_it_was_moved_from(run, data):
    """The polish step of `dxmacro match`, on real renders: a voice with two operators' output
    levels moved off is matched back towards the voice it came from, never farther."""
    from dx7 import Voice
    from dx7.params import param
    from host_training.jobs.export import load_vae
    from host_training.jobs.match import Matcher
    from host_training.audio.sound import RenderSettings, features_of

    from host_training.dataset import open_dataset

    ds = open_dataset(data)
    settings = RenderSettings.from_manifest(ds.settings)
    m = Matcher(load_vae(run), settings, polish_renders=40)
    target = Voice.init().parameters.copy()
    target[param("op2_output_level").index] = 70
    feat = features_of(m.renderer.audio(Voice.from_parameters(target, "T"), 1), settings.rate)[0]
    start = target.copy()
    start[param("op1_output_level").index] -= 12
    start[param("op2_output_level").index] += 12
    d0 = m.distance(Voice.from_parameters(start, "S"), feat, 1)
    polished, d = m.polish(Voice.from_parameters(start, "S"), [feat], [1], d0)
    assert d < 0.25 * d0
    assert np.isclose(d, m.distance(polished, feat, 1))  # the distance it reports is its render's
    moved = np.abs(polished.parameters.astype(int) - target.astype(int)).sum()
    assert moved < np.abs(start.astype(int) - target.astype(int)).sum()
    assert m.polish(Voice.from_parameters(target, "T"), [feat], [1], 0.0)[1] == 0.0  # nothing beats the voice itself


def test_match_takes_the_retrieved_voice_its_judge_finds_nearest(run, data):
    """At the data set's notes the matcher judges the retrieval's nearest voices by their stored
    renders, as it judges every candidate (mean log-mel distance): the voice it keeps is the
    nearest of them by that measure, and is the nearest of all training voices when the input is
    one of them. At other notes it keeps the retrieval's nearest."""
    from dx7 import Voice
    from host_training.audio.sound import RenderSettings
    from host_training.dataset import open_dataset
    from host_training.jobs.export import load_vae
    from host_training.jobs.match import Matcher, Rows
    from host_training.model.baselines import Retrieval

    ds = open_dataset(data)
    train = ds.indices("train")
    m = Matcher(load_vae(run), RenderSettings.from_manifest(ds.settings), Retrieval.of_dataset(ds, train),
                np.asarray(ds.params[train]), Rows(ds.features, train), retrieve_k=8)
    slots = list(range(len(m.s.notes)))

    def judged(r, feats):  # the distance the matcher would render: stored renders are those renders
        return np.mean([m.distance(Voice.from_parameters(m.train_params[r], "R"), f, k) for f, k in zip(feats, slots)])

    rng = np.random.default_rng(3)
    for i in (0, 5):
        own = [np.asarray(f, np.float32) for f in ds.features[train[i]]]
        assert m.nearest_voice(own, slots, own, slots) == i  # a training voice finds itself
        # a voice of the test split: the one kept is the nearest, by the judge, of the retrieval's 8
        test = [np.asarray(f, np.float32) + rng.normal(0, 2, f.shape).astype(np.float32)
                for f in ds.features[ds.indices("test")[i % len(ds.indices("test"))]]]
        shortlist = m.retrieval.nearest_notes(np.stack(test), slots, 8)
        kept = m.nearest_voice(test, slots, test, slots)
        assert kept in shortlist
        assert judged(kept, test) <= min(judged(r, test) for r in shortlist) + 0.05
    other = m.at_notes([(50, 100)] * len(slots))  # no stored renders at those notes
    assert other.nearest_voice(test, slots, test, slots) == int(shortlist[0])
    # one note of unknown slot: the (voice, slot) pair the judge finds nearest among the retrieval's 8
    one = test[1]
    rows, pair_slots = m.retrieval.nearest_pairs(one, 8)
    slot, kept = m.nearest_pair(one, one)
    assert (kept, slot) in set(zip(rows.tolist(), pair_slots.tolist()))
    best = min(m.distance(Voice.from_parameters(m.train_params[r], "R"), one, k) for r, k in zip(rows, pair_slots))
    assert m.distance(Voice.from_parameters(m.train_params[kept], "R"), one, slot) <= best + 0.05
    assert other.nearest_pair(one, one) == (int(pair_slots[0]), int(rows[0]))


def test_evaluate_writes_its_report(run, data, tmp_path):
    out = tmp_path / "report"
    assert main(["evaluate", "--run", str(run), "--data", str(data), "--out", str(out), "--quiet"]) == 0
    rep = json.loads((out / "report.json").read_text())
    assert set(rep["methods"]) >= {"flow", "vae_mlp", "cnn", "nn", "nn_1note", "flow_1note", "match_1note", "match",
                                   "median_voice"}
    # the register search keeps each voice's transpose only where no octave sounds closer to
    # the input, and the input is the reference's own log-mel: no voice gets farther, so
    # neither does any order statistic
    for kind in ("flow", "vae_mlp", "cnn"):
        for stratum in ("all", "ood"):
            plain, reg = (rep["methods"][k][stratum]["logmel_mae_db"] for k in (kind, f"{kind}+register"))
            assert reg["median"] <= plain["median"] + 1e-9 and reg["mean"] <= plain["mean"] + 1e-9
    # the constant baseline is one voice for every input
    assert rep["methods"]["median_voice"]["all"]["param_mae"]["median"] > 0
    from host_training.dataset import open_dataset

    n_test = min(4, len(open_dataset(data).indices("test")))
    assert rep["methods"]["nn"]["all"]["n"] == n_test > 0 and rep["methods"]["flow"]["ood"]["n"] == 3
    # match at every note has the all-note retrieval's voice among its candidates, judged on those notes
    for stratum in ("all", "ood", "foreign"):
        lm = {k: rep["methods"][k][stratum]["logmel_mae_db"]["median"] for k in ("match", "nn")}
        assert lm["match"] <= lm["nn"] + 1e-6, (stratum, lm)
    # the foreign sounds are scored on audio alone: they have no DX7 parameters to compare
    for name in ("flow", "nn", "match_1note"):
        foreign = rep["methods"][name]["foreign"]
        assert foreign["n"] == 2 and foreign["param_mae"] is None and foreign["categorical_acc"] is None
        assert 0 < foreign["logmel_mae_db"]["median"] < 80 and np.isfinite(foreign["mfcc13_mae"]["median"])
    knobs = rep["knobs"]
    assert "skipped" not in knobs and len(knobs["dims"]) == 2
    assert all(-1 <= d["spearman_own_median"] <= 1 for d in knobs["dims"])
    assert all(d["transpose_range_median"] >= 0 and 0 <= d["sweeps_transposing"] <= 1 for d in knobs["dims"])
    g = rep["generation"]
    assert g["valid"] == 1.0 and g["n"] == 12
    md = (out / "report.md").read_text()
    assert "| flow |" in md and "## Stratum: foreign" in md
    for name in ("training_curves.png", "latent_map.png", "traversal_0.png"):
        assert (out / "plots" / name).stat().st_size > 1000


def test_references_put_foreign_sounds_at_the_test_voices_level_and_may_be_none(data):
    from host_training.dataset import open_dataset
    from host_training.jobs.evaluate import references
    from host_training.audio.foreign_sounds import sounds
    from host_training.dataset.rendered_scores import Pool
    from host_training.audio.sound import RenderSettings, features_level_db

    ds = open_dataset(data)
    pool = Pool(RenderSettings.from_manifest(ds.settings), 2)
    test = ds.indices("test")[:3]
    x, true, refs = references(pool, ds, test, [], [])  # no out-of-domain voices, no foreign sounds
    assert x.shape == (3,) + ds.features.shape[1:] and true.shape == (3, ds.params.shape[1]) and len(refs) == 3
    foreign = [s.__class__(s.kind, s.seed, gain=0.05) for s in sounds(2, 7)]  # played far too quietly
    x, true, refs = references(pool, ds, test, [], foreign)
    assert x.shape[0] == 5 and np.isnan(true[3:]).all() and np.isfinite(true[:3]).all()
    level = np.median(features_level_db(np.asarray(ds.features[test], dtype=np.float32)))
    for i in (3, 4):  # brought up to the test voices' median level, every note by the same gain
        assert abs(np.mean(features_level_db(x[i])) - level) < 0.5
        assert len(refs[i]) == x.shape[1]


def test_pitch_drift_counts_semitones_and_pitch_eg_steps():
    from dx7.params import PARAMS, param
    from host_training.jobs.evaluate import pitch_drift

    base = np.array([min(p.high, 50) for p in PARAMS], dtype=np.uint8)
    base[param("transpose").index] = 24
    sweeps = [np.repeat(base[None], 5, 0) for _ in range(4)]
    sweeps[0][:, param("transpose").index] = [24, 25, 26, 27, 27]  # a knob that transposes by 3
    sweeps[1][:, param("transpose").index] = [19, 20, 24, 24, 24]  # by 5
    sweeps[2][:, param("pitch_eg_level3").index] = [50, 52, 54, 56, 58]  # bends the held pitch by 8 EG steps
    d = pitch_drift(sweeps)
    assert d == {"transpose_range_median": 1.5, "sweeps_transposing": 0.5, "pitch_eg_range_median": 0.0}
    assert pitch_drift(sweeps[2:3])["pitch_eg_range_median"] == 8.0


def test_bad_inputs_give_one_line_errors(data, tmp_path, capsys):
    bad = tmp_path / "bad.toml"
    bad.write_text("[train]\nepochs = 0\nbatch_size = 4\n[run]\nmodels = ['flow']\n")
    assert main(["train", "--data", str(data), "--out", str(tmp_path / "r"), "--config", str(bad)]) == 1
    bad.write_text("[trian]\n")
    assert main(["train", "--data", str(data), "--out", str(tmp_path / "r"), "--config", str(bad)]) == 1
    bad.write_text("[train]\nepochs = 1\nbatch_size = 4\n[run]\nmodels = ['flow']\n[loss]\ncontrastive_metric = 'l1'\n")
    assert main(["train", "--data", str(data), "--out", str(tmp_path / "r"), "--config", str(bad)]) == 1
    bad.write_text("[train]\nepochs = 1\nbatch_size = 4\n[run]\nmodels = ['mlp']\n[loss]\nparam_numeric = 'l2'\n")
    assert main(["train", "--data", str(data), "--out", str(tmp_path / "r"), "--config", str(bad)]) == 1
    bad.write_text("[train]\nepochs = 1\nbatch_size = 4\n[run]\nmodels = ['flow']\n[loss]\nsurrogate = 'gp'\n")
    assert main(["train", "--data", str(data), "--out", str(tmp_path / "r"), "--config", str(bad)]) == 1
    bad.write_text("[train]\nepochs = 1\nbatch_size = 4\n[run]\nmodels = ['flow']\n[evaluate]\nregister = 'no'\n")
    assert main(["train", "--data", str(data), "--out", str(tmp_path / "r"), "--config", str(bad)]) == 1
    assert main(["generate", "--run", str(tmp_path), "--out", str(tmp_path / "x.syx")]) == 1
    wav = tmp_path / "x.wav"
    wav.write_bytes(b"")
    assert main(["match", str(wav), "--seconds", "-1", "--out", str(tmp_path / "m.syx")]) == 1
    err = capsys.readouterr().err
    assert "Traceback" not in err and err.count("dxmacro: error:") == 8
    assert "contrastive_metric" in err and "param_numeric" in err and "--seconds must be 5 to 3600" in err
    assert "[evaluate] register must be true or false" in err
    kinds = "mlp, linear, mlp+linear, prior, mlp+prior, mlp+linear+prior"
    assert f"[loss] surrogate must be one of {kinds} (got 'gp')" in err


def test_a_run_of_baselines_alone_trains_and_evaluate_says_why_it_cannot(data, tmp_path, capsys):
    """Direct baselines can be trained on their own for comparisons; such a run has no latent
    space, so there is nothing to export, and `evaluate` refuses it before any rendering."""
    out = tmp_path / "base"
    assert main(["train", "--data", str(data), "--out", str(out), "--config", str(_config(tmp_path, ["mlp"])),
                 "--quiet"]) == 0
    assert (out / "models" / "mlp" / "model.pt").exists() and not (out / "export").exists()
    capsys.readouterr()
    assert main(["evaluate", "--run", str(out), "--data", str(data), "--out", str(tmp_path / "rep")]) == 1
    err = capsys.readouterr().err
    assert "Traceback" not in err and "no trained VAE model" in err and not (tmp_path / "rep").exists()


def test_shipped_default_model_decodes_and_generates(tmp_path):
    """The stand-in default model in the package: the conversion contract and `generate`
    without --run."""
    pytest.importorskip("dexed", reason="dexed-py (the renderer) is not installed")
    from dx7.files import read_voice_file
    from host_training.jobs.export import load_decoder, representative_latents
    from host_training.jobs.runs import default_model_dir

    head, info = load_decoder(default_model_dir())
    assert info["head"] == "flow" and len(info["knobs"]) == 6
    z = torch.from_numpy(representative_latents(default_model_dir(), 8))
    assert head(z).shape == (8, 225)
    out = tmp_path / "bank.syx"
    assert main(["generate", "-n", "8", "--out", str(out)]) == 0
    assert len(read_voice_file(out, strict=True).voices) == 32


def test_convert_a_trained_run_to_a_verified_bundle(run, tmp_path, capsys):
    """host_training -> conversion end to end: the run's regression flow becomes a signed int8
    bundle that verifies and self-tests on the device runtime."""
    pytest.importorskip("tensorflow", reason="tensorflow-cpu (the int8 converter) is not installed")
    from conversion import keys
    from conversion.runtime import load_decoder as load_bundle

    private, public = keys.generate(tmp_path / "key")
    out = tmp_path / "model.dxm"
    assert main(["convert", "--run", str(run), "--out", str(out), "--key", str(private), "--audio-voices", "2"]) == 0
    assert "parity, xnnpack kernels:" in capsys.readouterr().out
    decoder = load_bundle(out, keys.load_public_key(public))
    assert decoder.self_test()["vectors"] > 0
    assert [k.name for k in decoder.knobs] == ["bright/dark", "aggressive/soft"]
    assert decoder.decode(decoder.anchors[0].latent).shape == (145,)


def test_convert_ships_only_the_knobs_that_pass_the_gates(run, tmp_path, capsys):
    """`dxmacro convert --knob-gates`: every knob is swept through the converted decoder in
    relative mode and rendered; a knob ships only if it passes, renamed by what it measurably
    does, with its figures in the manifest; too few passing knobs write nothing."""
    pytest.importorskip("tensorflow", reason="tensorflow-cpu (the int8 converter) is not installed")
    from conversion import keys
    from conversion.runtime import load_decoder as load_bundle
    from host_training.dataset import open_dataset
    from host_training.jobs.export import read_run

    private, public = keys.generate(tmp_path / "key")
    loose = tmp_path / "loose.toml"
    loose.write_text("[knob_gates]\nspearman_min = 0.0\nwrong_sign_max = 1.01\nselectivity_min = 0.0\n"
                     "largest_step_max_db = 1000.0\npitch_changing_max = 1.0\n")
    out = tmp_path / "model.dxm"
    args = ["convert", "--run", str(run), "--out", str(out), "--key", str(private), "--audio-voices", "0",
            "--knob-gates", "--gate-voices", "3"]
    assert main(args + ["--gates", str(loose)]) == 0
    printed = capsys.readouterr().out
    assert printed.count("-> ships") == 2, printed
    knobs = load_bundle(out, keys.load_public_key(public)).bundle.manifest["knobs"]
    tags = {f"{hi}/{lo}" for lo, hi in open_dataset(read_run(run)["dataset_dir"]).tag_names}
    tags |= {f"{lo}/{hi}" for lo, hi in open_dataset(read_run(run)["dataset_dir"]).tag_names}
    assert [k["index"] for k in knobs] == [0, 1] and {k["trained_as"] for k in knobs} == {"bright/dark", "aggressive/soft"}
    for k in knobs:
        assert k["name"] in tags and set(k["measured"]) == {"spearman", "wrong_sign", "selectivity",
                                                           "largest_step_db", "pitch_changing", "steadiness"}
    ranked = [k["measured"]["spearman"] * min(k["measured"]["selectivity"], 3.0) for k in knobs]
    assert ranked == sorted(ranked, reverse=True)  # best first
    # judged as a tuned bank plays them: the same knobs, measured on tuned sweeps
    tuned = tmp_path / "tuned.dxm"
    assert main(args[:4] + [str(tuned)] + args[5:] + ["--gates", str(loose), "--gate-mode", "tuned"]) == 0
    captured = capsys.readouterr()
    assert "in tuned mode" in captured.err and captured.out.count("-> ships") == 2
    assert len(load_bundle(tuned, keys.load_public_key(public)).bundle.manifest["knobs"]) == 2
    # an impossible gate: nothing passes, nothing is written, one line says why
    strict = tmp_path / "strict.toml"
    strict.write_text("[knob_gates]\nspearman_min = 1.5\n")
    out2 = tmp_path / "none.dxm"
    assert main(args[:4] + [str(out2)] + args[5:] + ["--gates", str(strict)]) == 1
    err = capsys.readouterr().err
    assert "0 of 2 knobs pass the knob gates" in err and not out2.exists()
    strict.write_text("[knob_gates]\nspearman_min = nan\n")
    assert main(args[:4] + [str(out2)] + args[5:] + ["--gates", str(strict)]) == 1
    assert "[knob_gates] spearman_min must be a finite number" in capsys.readouterr().err


def test_convert_measures_a_knob_on_a_gates_edge_on_more_voices(run, tmp_path, capsys, monkeypatch):
    """A knob that passes every gate at the median but not steadily is measured again on further
    validation voices (none measured before) and judged on all of them; with --gate-more 0 it is
    judged on the first draw alone. The tiny run's knobs measure the same on any voices, so here
    steadiness is what more voices would make of it: unsteady on 3 voices, steady on more."""
    pytest.importorskip("tensorflow", reason="tensorflow-cpu (the int8 converter) is not installed")
    from conversion import keys
    from host_training.jobs import knob_gates

    def steadiness(self, f, draws=1000, seed=0):
        return 0.5 if len(f["per_sweep"]["spearman"]) <= 3 else 1.0

    monkeypatch.setattr(knob_gates.KnobGates, "steadiness", steadiness)
    private, _ = keys.generate(tmp_path / "key")
    gates = tmp_path / "gates.toml"
    gates.write_text("[knob_gates]\nspearman_min = 0.0\nwrong_sign_max = 1.01\nselectivity_min = 0.0\n"
                     "largest_step_max_db = 1000.0\npitch_changing_max = 1.0\n")
    args = ["convert", "--run", str(run), "--key", str(private), "--audio-voices", "0", "--knob-gates",
            "--gate-voices", "3", "--gates", str(gates)]
    measured: list[np.ndarray] = []
    measure = knob_gates.measure

    def spy(*a, **kw):
        got = measure(*a, **kw)
        measured.append(got[2])
        return got

    monkeypatch.setattr(knob_gates, "measure", spy)
    out = tmp_path / "alone.dxm"
    assert main(args + ["--out", str(out), "--gate-more", "0"]) == 1
    assert "0 of 2 knobs pass" in capsys.readouterr().err and not out.exists()
    assert len(measured) == 1
    out = tmp_path / "pooled.dxm"
    assert main(args + ["--out", str(out), "--report", str(tmp_path / "pooled"), "--gate-more", "2"]) == 0
    captured = capsys.readouterr()
    assert "bright/dark, aggressive/soft: passing at the median but not steadily" in captured.err
    assert captured.out.count("-> ships") == 2 and "of 5 voices" in captured.out
    first, more = measured[1:]
    assert len(first) == 3 and len(more) == 2 and not set(first) & set(more)
    verdicts = json.loads((tmp_path / "pooled" / "parity.json").read_text())["knob_gates"]["verdicts"]
    assert [v["voices"] for v in verdicts] == [5, 5]


def test_torchrun_trains_one_run_split_over_two_processes(data, tmp_path):
    """Data parallel under torchrun (gloo on the CPU here, NCCL on a GPU host): one run folder, each
    process its share of every epoch, one line of output, weights that load."""
    import os
    import subprocess
    import sys

    import torch.distributed as dist

    if not (dist.is_available() and dist.is_gloo_available()):
        pytest.skip("this torch has no torch.distributed with the gloo backend")
    cfg = _config(tmp_path, ["flow", "cnn"])
    out = tmp_path / "run"
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node=2",
           "-m", "dxmacro", "train", "--data", str(data), "--out", str(out), "--config", str(cfg), "--quiet"]
    env = dict(os.environ, OMP_NUM_THREADS="1")
    p = subprocess.run(cmd, capture_output=True, text=True, timeout=600, env=env)
    assert p.returncode == 0, p.stderr[-3000:]
    assert p.stdout.count("run in ") == 1, p.stdout
    from host_training.dataset import open_dataset

    n_train = len(open_dataset(data).indices("train"))
    for kind in ("flow", "cnn"):
        rows = [json.loads(x) for x in (out / "models" / kind / "log.jsonl").read_text().splitlines()]
        assert [r["epoch"] for r in rows] == [1, 2]  # rank 0 alone writes the log
        assert all(r["world"] == 2 and r["batches"] == max(1, (n_train // 2) // 8) for r in rows)
        assert all(np.isfinite(v) for r in rows for v in r["train"].values())
        state = torch.load(out / "models" / kind / "model.pt", weights_only=True)["state_dict"]
        assert all(torch.isfinite(t).all() for t in state.values() if t.is_floating_point())
    from host_training.jobs.export import load_decoder

    head, info = load_decoder(out)
    assert info["head"] == "flow" and head(torch.zeros(1, info["latent_size"])).shape == (1, 225)
