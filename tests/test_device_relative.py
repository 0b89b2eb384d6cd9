"""Relative knobs: the chosen voice is held exactly at rest, and the knobs edit it.

The loop runs on a simulated clock with its knobs read by the real ADS1x15 driver from the
register-level emulation (3 LSB of board noise), into the emulated DX7, with the development
linear decoder and with the shipped model's real int8 bundle (LiteRT)."""

from __future__ import annotations

import numpy as np
import pytest

from conversion.runtime import Anchor
from dx7 import Voice
from dx7.files import read_voice_file
from dx7.layout import categorical_groups
from dx7.params import HIGHS, LEARNABLE_COUNT, param
from device.control.loop import LoopSettings
from device.control.relative import dead_zone
from dx7.relative import relative_voice
from device.twins.linear_decoder import LinearDecoder
from device.twins.sim import KnobScript, ScriptedButtons
from tests.conftest import shared_dx7_dir
from tests.device_helpers import make_loop

PERIOD = 3.0  # simulated seconds per voice: select, pick every knob up, turn it away, bring it back


def test_relative_voice_keeps_the_voice_and_applies_the_decoders_change():
    voice = np.array(Voice.init().values[:LEARNABLE_COUNT], dtype=np.int64)
    voice[param("op1_output_level").index] = 70
    at_base = voice.copy()
    at_base[param("op1_output_level").index] = 50
    moved = at_base.copy()
    assert np.array_equal(relative_voice(voice, at_base, at_base), voice)  # no change: the voice itself
    level, alg, fb = param("op1_output_level").index, param("algorithm").index, param("feedback").index
    moved[level] += 7
    moved[fb] = min(7, moved[fb] + 3)
    out = relative_voice(voice, at_base, moved)
    assert out[level] == voice[level] + 7 and out[fb] == voice[fb] + (moved[fb] - at_base[fb])
    moved[level] = 99  # 70 + 49: clipped at the top of the range
    assert relative_voice(voice, at_base, moved)[level] == 99
    # a categorical parameter keeps the voice's choice, whatever the decoder chooses
    at_base[alg], voice[alg] = 4, 20
    moved[alg] = 4
    assert relative_voice(voice, at_base, moved)[alg] == 20
    moved[alg] = 5
    assert relative_voice(voice, at_base, moved)[alg] == 20
    assert all(relative_voice(voice, at_base, moved)[g.param] <= HIGHS[g.param] for g in categorical_groups())


def test_relative_voice_never_changes_the_pitch_a_player_hears():
    """Transpose, the pitch EG and the carriers' frequencies (under the voice's algorithm) are the
    voice's; a modulator's frequency and a carrier's detune follow the decoder (timbre)."""
    from dx7.algorithms import carrier_retune_semitones, carriers

    voice = np.array(Voice.init().replace({"algorithm": 4}).values[:LEARNABLE_COUNT], dtype=np.int64)  # algorithm 5
    assert carriers(voice) == {1, 3, 5}
    at_base = voice.copy()
    moved = voice.copy()
    for name in ("transpose", "pitch_eg_level1", "pitch_eg_rate2", "op1_freq_coarse", "op3_freq_fine",
                 "op5_freq_coarse", "op2_freq_coarse", "op4_freq_fine", "op1_detune"):
        moved[param(name).index] += 2
    out = relative_voice(voice, at_base, moved)
    for name in ("transpose", "pitch_eg_level1", "pitch_eg_rate2", "op1_freq_coarse", "op3_freq_fine",
                 "op5_freq_coarse"):
        assert out[param(name).index] == voice[param(name).index], name
    for name in ("op2_freq_coarse", "op4_freq_fine", "op1_detune"):  # modulators and detune: the knob's
        assert out[param(name).index] == voice[param(name).index] + 2, name
    assert carrier_retune_semitones(voice, out) < 0.1  # detune only: a fraction of a cent per step
    # the carriers are the voice's algorithm's, not the decoder's
    moved[param("algorithm").index] = 31  # algorithm 32: every operator a carrier
    out = relative_voice(voice, at_base, moved)
    assert out[param("op2_freq_coarse").index] == voice[param("op2_freq_coarse").index] + 2


def test_tuned_voice_passes_on_each_knobs_own_parameters_only():
    """A tuned voice: each knob's change reaches only the parameters its mask allows, the knobs'
    changes add up, the pitch and the categorical choices stay the voice's, and a knob without a
    mask is the plain relative rule."""
    from dx7.relative import tuned_voice

    voice = np.array(Voice.init().values[:LEARNABLE_COUNT], dtype=np.int64)
    at_base = voice.copy()
    level, rate, fb = (param(n).index for n in ("op2_output_level", "op2_eg_rate1", "feedback"))
    transpose = param("transpose").index
    bright, long_ = at_base.copy(), at_base.copy()
    bright[[level, rate, fb, transpose]] += [20, 10, 3, 5]
    long_[[level, rate]] += [5, -30]
    mask_b = np.zeros(LEARNABLE_COUNT, bool)
    mask_b[[level, fb, transpose]] = True
    assert np.array_equal(tuned_voice(voice, at_base, []), voice)
    out = tuned_voice(voice, at_base, [(bright, mask_b)])
    assert out[level] == voice[level] + 20 and out[fb] == voice[fb] + 3
    assert out[rate] == voice[rate] and out[transpose] == voice[transpose]  # not its to move; the pitch held
    both = tuned_voice(voice, at_base, [(bright, mask_b), (long_, None)])
    assert both[level] == min(99, voice[level] + 25) and both[rate] == voice[rate] - 30
    assert np.array_equal(tuned_voice(voice, at_base, [(long_, None)]), relative_voice(voice, at_base, long_))


def test_a_tuned_bank_voice_moves_only_its_knobs_tuned_parameters_on_the_device():
    """The control loop on a tuned voice: at rest the voice exactly, turned, only the parameters
    tuned for the turned knobs differ, and back at rest the voice again."""
    decoder = LinearDecoder()
    voices = _cartridge()[:4]
    latents = np.random.default_rng(3).standard_normal((4, decoder.latent_size)).astype(np.float32)
    rng = np.random.default_rng(4)
    masks = [{k.dim: rng.random(LEARNABLE_COUNT) < 0.1 for k in decoder.knobs} for _ in voices]
    allowed = [np.logical_or.reduce(list(m.values())) for m in masks]
    loop, synth, held = _play_cartridge(decoder, voices, latents, "relative", masks)
    assert synth.errors == [] and loop.stats.decode_errors == 0
    for row, v, ok in zip(held, voices, allowed):
        assert row[0].values == v.values and row[2].values == v.values
        changed = np.array(row[1].values[:LEARNABLE_COUNT]) != np.array(v.values[:LEARNABLE_COUNT])
        assert changed.any() and not (changed & ~ok).any()


def test_the_screen_marks_the_knobs_tuned_to_the_voice_and_only_in_relative_mode():
    """A performer can tell the knobs tuned to this voice (they pass the gates) from those playing
    the decoder's whole change (they do not, docs/results.md "A voice the host never tuned")."""
    from device.control.controls import anchor_choice

    decoder = LinearDecoder()
    voices = _cartridge()[:2]
    latents = np.random.default_rng(3).standard_normal((2, decoder.latent_size)).astype(np.float32)
    first = decoder.knobs[0].dim
    masks = [None, {first: np.random.default_rng(4).random(LEARNABLE_COUNT) < 0.1}]
    loop, synth, _ = _play_cartridge(decoder, voices, latents, "relative", masks)
    assert synth.errors == [] and loop.voice_name == voices[1].name
    assert [k.tuned for k in loop.display_state().knobs] == [k.dim == first for k in decoder.knobs]
    loop.select(anchor_choice(Anchor(voices[0].name, voices[0], latents[0], None)))
    assert not any(k.tuned for k in loop.display_state().knobs)
    absolute, _, _ = _play_cartridge(decoder, voices, latents, "absolute", masks)
    assert not any(k.tuned for k in absolute.display_state().knobs)  # absolute mode plays no masks


def test_dead_zone_is_exact_inside_and_continuous_outside():
    assert dead_zone(0.51, 0.5, 0.02) == 0.5 and dead_zone(0.48, 0.5, 0.02) == 0.5
    assert dead_zone(0.6, 0.5, 0.02) == pytest.approx(0.58) and dead_zone(0.4, 0.5, 0.02) == pytest.approx(0.42)
    assert dead_zone(0.5200001, 0.5, 0.02) == pytest.approx(0.5, abs=1e-6)  # no step at the edge


def _cartridge() -> list[Voice]:
    """32 real DX7 voices (a corpus cartridge where the development data is here), else 32 edits
    of INIT VOICE far from any decoder's output."""
    shared = shared_dx7_dir()
    if shared is not None:
        files = sorted((shared / "corpus").glob("*.syx"))
        for f in files[:40]:
            try:
                voices = [v.voice for v in read_voice_file(f).voices]
            except Exception:  # noqa: BLE001 - a corrupt cartridge of the corpus: take the next
                continue
            if len(voices) == 32:
                return voices
    rng = np.random.default_rng(5)
    return [Voice.init().replace({"algorithm": int(rng.integers(0, 32)), "feedback": int(rng.integers(0, 8)),
                                  "op1_output_level": int(rng.integers(60, 100)),
                                  "op2_freq_coarse": int(rng.integers(0, 32))}, name=f"EDIT {i:02d}")
            for i in range(32)]


def _play_cartridge(decoder, voices: list[Voice], latents: np.ndarray, mode: str, masks=None):
    """Each voice selected in turn (next), every knob picked up at its pickup point, turned to the
    far end and brought back. Returns the loop, the emulated DX7 and, per voice, what the synth held
    after selection, at the far end and after the return. ``masks``: each voice's tuned knobs."""
    masks = masks or [None] * len(voices)
    anchors = tuple(Anchor(v.name, v, z, m) for v, z, m in zip(voices, latents, masks))
    knobs = decoder.knobs
    script = KnobScript(len(knobs), [0.5] * len(knobs))
    presses, moments = [], []
    for i, z in enumerate(latents):
        t0 = i * PERIOD
        if i:
            presses.append((t0, "next"))
        for k, info in enumerate(knobs):
            span = info.high - info.low
            pickup = min(1.0, max(0.0, (float(z[info.dim]) - info.low) / span))
            far = 0.0 if pickup > 0.5 else 1.0
            script.move(k, t0 + 0.3, pickup, 0.2)
            script.move(k, t0 + 0.8, far, 0.3)
            script.move(k, t0 + 1.6, pickup, 0.3)
        moments.append((t0 + 0.7, t0 + 1.5, t0 + 2.9))
    settings = LoopSettings(knob_mode=mode, random_seed=0)
    loop, clock, adc, synth = make_loop(script, decoder=decoder, buttons=lambda c: ScriptedButtons(c, presses),
                                        settings=settings, voices=anchors)
    held = []
    for moment in moments:
        row = []
        for t in moment:
            loop.run(until=t)
            row.append(synth.voice)
        held.append(row)
    return loop, synth, held


@pytest.mark.parametrize("mode", ["relative", "absolute"])
def test_at_rest_the_synth_holds_each_cartridge_voice_exactly(mode):
    decoder = LinearDecoder()
    voices = _cartridge()
    latents = np.random.default_rng(1).standard_normal((32, decoder.latent_size)).astype(np.float32)
    loop, synth, held = _play_cartridge(decoder, voices, latents, mode)
    assert synth.errors == []
    selected = [row[0].values == v.values for row, v in zip(held, voices)]
    moved = [row[1].values != v.values for row, v in zip(held, voices)]
    returned = [row[2].values == v.values for row, v in zip(held, voices)]
    if mode == "relative":
        assert all(selected) and all(returned), (selected, returned)
        assert sum(moved) >= 30  # the knobs do edit the voice when turned
    else:  # absolute: the first touch replaces the voice with the decoder's own (the reason for relative)
        assert sum(returned) <= 2


@pytest.fixture(scope="module")
def shipped_decoder(tmp_path_factory):
    """The shipped default model converted to its signed int8 bundle and loaded as the device does."""
    pytest.importorskip("torch", reason="converting the shipped model needs the host extra")
    from conversion import keys, pipeline, runtime
    from host_training.jobs.export import load_decoder
    from host_training.jobs.runs import default_model_dir

    folder = tmp_path_factory.mktemp("shipped")
    module, info = load_decoder(default_model_dir())
    private, public = keys.generate(folder / "key", overwrite=True)
    data, _, _ = pipeline.convert(module, info, keys.load_private_key(private), audio_voices=0)
    (folder / "model.dxm").write_bytes(data)
    return runtime.load_decoder(folder / "model.dxm", keys.load_public_key(public))


def test_the_shipped_int8_bundle_holds_every_voice_and_edits_it(shipped_decoder):
    voices = _cartridge()
    anchors = shipped_decoder.anchors
    rng = np.random.default_rng(2)  # latents where the model's voices live: its anchors, nudged
    latents = np.stack([anchors[i % len(anchors)].latent + 0.3 * rng.standard_normal(shipped_decoder.latent_size)
                        for i in range(32)]).astype(np.float32)
    loop, synth, held = _play_cartridge(shipped_decoder, voices, latents, "relative")
    assert synth.errors == [] and loop.stats.decode_errors == 0
    assert all(row[0].values == v.values for row, v in zip(held, voices))
    assert all(row[2].values == v.values for row, v in zip(held, voices))
    changed = [sum(a != b for a, b in zip(row[1].values, v.values)) for row, v in zip(held, voices)]
    assert np.median(changed) >= 3  # turned to the far end, the knobs change the voice


def test_the_shipped_bundle_exposes_its_measured_knobs_and_plays_its_anchors_tuned(shipped_decoder):
    """The default model ships a measured knob choice (scripts/ship_default_model.py --knobs-from):
    at least three knobs, each named by what it does and carrying the figures that let it ship, and
    anchors tuned to every one of them. On the loop, turning the knobs of an anchor moves only the
    parameters tuned for those knobs, and turning them back restores the anchor exactly."""
    knobs = shipped_decoder.bundle.manifest["knobs"]
    assert len(knobs) >= 3 and [k["index"] for k in knobs] == list(range(len(knobs)))
    for k in knobs:
        f = k["measured"]
        assert f["spearman"] >= 0.9 and f["selectivity"] >= 1.5 and f["largest_step_db"] <= 3.0, k
        assert f["wrong_sign"] < 0.1 and f["pitch_changing"] <= 0.05 and f["steadiness"] >= 0.8, k
    anchors = shipped_decoder.anchors
    dims = {k.dim for k in shipped_decoder.knobs}
    assert all(a.knob_masks is not None and set(a.knob_masks) == dims for a in anchors)
    sizes = [int(m.sum()) for a in anchors for m in a.knob_masks.values()]
    assert min(sizes) > 0 and np.median(sizes) < 20  # mostly a few of the 50-80 parameters the decoder moves
    voices = [a.voice for a in anchors]
    latents = np.stack([a.latent for a in anchors])
    masks = [a.knob_masks for a in anchors]
    allowed = [np.logical_or.reduce(list(m.values())) for m in masks]
    loop, synth, held = _play_cartridge(shipped_decoder, voices, latents, "relative", masks)
    assert synth.errors == [] and loop.stats.decode_errors == 0
    moved = 0
    for row, v, ok in zip(held, voices, allowed):
        assert row[0].values == v.values and row[2].values == v.values
        changed = np.array(row[1].values[:LEARNABLE_COUNT]) != np.array(v.values[:LEARNABLE_COUNT])
        assert not (changed & ~ok).any()
        moved += bool(changed.any())
    assert moved >= len(voices) - 1  # turned to the far end, the tuned knobs still edit the anchors
