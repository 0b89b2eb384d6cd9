"""The register search (host_training.jobs.register) on real Dexed renders."""

from __future__ import annotations

import numpy as np

from dx7 import Voice
from dx7.params import param
from host_training.jobs.register import REGISTERS, read_register, with_transpose
from host_training.audio.sound import RenderSettings, VoiceRenderer, feature_distance, features_of

SETTINGS = RenderSettings(notes=((48, 100), (60, 100)), rate=16000, hold=0.5, duration=0.8)
T = param("transpose").index


def _input(r: VoiceRenderer, params: np.ndarray) -> list[np.ndarray]:
    v = Voice.from_parameters(params, "IN")
    return [features_of(r.audio(v, k), SETTINGS.rate)[0] for k in range(len(SETTINGS.notes))]


def _voice() -> np.ndarray:
    """INIT VOICE with a second operator modulating, so the octave is audible in the spectrum."""
    p = Voice.init().parameters.copy()
    p[param("op2_output_level").index] = 80
    p[param("op2_freq_coarse").index] = 2
    return p


def test_a_voice_a_fifth_off_is_put_back_in_its_octave():
    r = VoiceRenderer(SETTINGS)
    truth = with_transpose(_voice(), 12)
    feats = _input(r, truth)
    fixed, d = read_register(r, with_transpose(truth, 19), feats, [0, 1])  # what the flow decodes
    assert fixed[T] == 12 and d == 0.0
    assert np.array_equal(np.delete(fixed, T), np.delete(truth, T))  # nothing else moves


def test_the_own_transpose_wins_when_it_is_right_and_the_result_is_never_farther():
    r = VoiceRenderer(SETTINGS)
    truth = with_transpose(_voice(), 17)  # not an octave: only the voice's own value reaches it
    feats = _input(r, truth)
    assert read_register(r, truth, feats, [0, 1])[0][T] == 17
    # another voice (other ratios): whatever wins is at most as far as the voice as decoded
    other = _voice()
    other[param("op2_freq_coarse").index] = 5
    other = with_transpose(other, 30)
    fixed, d = read_register(r, other, feats, [0, 1])
    own = np.mean([feature_distance(r, Voice.from_parameters(other, "O"), f, k) for f, k in zip(feats, [0, 1])])
    assert fixed[T] in REGISTERS + (30,) and d <= own


def test_one_note_is_enough_and_reads_the_note_it_is_given():
    r = VoiceRenderer(SETTINGS)
    truth = with_transpose(_voice(), 36)
    feats = _input(r, truth)
    assert read_register(r, with_transpose(truth, 24), [feats[1]], [1])[0][T] == 36
    assert read_register(r, with_transpose(truth, 24), [feats[0]], [0])[0][T] == 36
