"""The knob surrogate's written-down member (host_training.model.knob_prior): each proxy rises with
the edit FM theory says raises its sound, and Dexed's renders of those edits move the data
set's own descriptors the same way."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from dx7 import Voice, layout
from host_training.model.knob_loss import DescriptorSurrogate, fit_surrogate
from host_training.model.knob_prior import PROXIES, PriorMember

# a two-operator voice to edit: INIT VOICE (algorithm 1, OP1 the carrier) with OP2
# modulating it at a moderate level, and OP1 decaying to a quieter sustain so that "long" can move
BASE = Voice.init().replace({"op2_output_level": 60, "op1_eg_level3": 60,
                             "op1_eg_rate3": 70, "op1_eg_rate4": 60, "op1_output_level": 85})

# (proxy, the edit that should raise it); each edit changes what its comment says and no more
EDITS = {
    "bright": {"op2_output_level": 85},  # a stronger modulator: a higher modulation index
    "aggressive": {"op2_output_level": 85, "op1_eg_rate1": 99},
    "moving": {"lfo_pm_depth": 30, "pitch_mod_sens": 3, "lfo_speed": 40},  # vibrato
    "long": {"op1_eg_rate3": 50},  # a slower decay
    "metallic": {"op2_freq_fine": 41},  # a modulator off the harmonic series (ratio 1.41)
    "swelling": {"op1_eg_rate1": 35},  # a slow attack
    "loud": {"op1_output_level": 99},
}


def _vec(voice: Voice) -> torch.Tensor:
    return torch.as_tensor(layout.encode(voice.parameters[None, :].astype(np.int64)), dtype=torch.float32)


def test_each_proxy_rises_with_the_edit_that_raises_its_sound():
    member = PriorMember(len(PROXIES))
    base = member.proxies(_vec(BASE))[0]
    for name, edit in EDITS.items():
        after = member.proxies(_vec(BASE.replace(edit)))[0]
        j = PROXIES.index(name)
        assert after[j] > base[j] + 1e-3, (name, float(base[j]), float(after[j]))
    # a carrier's level is loudness, not brightness: the modulation index stays
    louder = member.proxies(_vec(BASE.replace({"op1_output_level": 99})))[0]
    assert louder[PROXIES.index("bright")] == pytest.approx(float(base[PROXIES.index("bright")]))
    # and a modulator's level is brightness, not loudness
    brighter = member.proxies(_vec(BASE.replace({"op2_output_level": 85})))[0]
    assert brighter[PROXIES.index("loud")] == pytest.approx(float(base[PROXIES.index("loud")]))


def test_which_operator_is_a_carrier_follows_the_algorithm():
    member = PriorMember(len(PROXIES))
    # algorithm 32 (stored 31): every operator is a carrier, so OP2's level is loudness there
    alg32 = BASE.replace({"algorithm": 31})
    a, b = member.proxies(_vec(alg32))[0], member.proxies(_vec(alg32.replace({"op2_output_level": 85})))[0]
    assert b[PROXIES.index("loud")] > a[PROXIES.index("loud")]
    assert b[PROXIES.index("bright")] == pytest.approx(float(a[PROXIES.index("bright")]))


def test_dexed_renders_of_the_edits_move_the_descriptors_the_proxies_predict():
    from host_training.dataset import tags
    from host_training.dataset.rendered_scores import Pool, descriptor_fn
    from host_training.audio.sound import RenderSettings

    settings = RenderSettings(notes=((48, 100), (60, 100), (72, 100)), rate=16000, hold=1.0, duration=2.0)
    describe, pool = descriptor_fn(settings), Pool(settings, threads=2)
    voices = [BASE] + [BASE.replace(edit) for edit in EDITS.values()]
    desc = np.stack(pool.map(lambda r, v: describe(v, r.all_notes(v)), voices)).astype(np.float64)
    raw = tags.scores(desc)  # (voices, pairs); "aggressive" is a rank inside this population
    for k, name in enumerate(EDITS, start=1):
        j = PROXIES.index(name)
        if name == "aggressive":
            continue  # a rank among these eight voices: the edit's own figures are below
        assert raw[k, j] > raw[0, j], (name, raw[0, j], raw[k, j])


def test_the_member_is_calibrated_on_the_training_voices_and_fitted_as_a_surrogate_member():
    rng = np.random.default_rng(0)
    from host_training.audio.synth_voices import generate

    params = np.stack([v.parameters for v in generate(300, seed=3)])
    vectors = layout.encode(params.astype(np.int64))
    # scores that follow the proxies' order (with noise): the fitted slopes must stay positive
    raw = PriorMember(len(PROXIES)).proxies(torch.as_tensor(vectors)).numpy()
    desc_free = raw + rng.normal(0, raw.std(0) * 0.3, raw.shape)
    scores = np.stack([2 * (np.argsort(np.argsort(c)) / (len(c) - 1)) - 1 for c in desc_free.T], 1).astype(np.float32)
    sur = DescriptorSurrogate(len(PROXIES), kind="prior")
    fit_surrogate(sur, vectors, scores, steps=300, seed=0, lr=1e-2)
    member = sur.nets[0]
    assert torch.allclose(member.mean, torch.as_tensor(raw.mean(0)), rtol=1e-4, atol=1e-5)
    with torch.no_grad():
        pred = sur(torch.as_tensor(vectors)).numpy()
    for j in range(len(PROXIES)):
        assert np.corrcoef(pred[:, j], scores[:, j])[0, 1] > 0.8
    # the member survives a checkpoint: calibration and fitted slopes are in its state
    again = DescriptorSurrogate(len(PROXIES), kind="prior")
    again.load_state_dict(sur.state_dict())
    with torch.no_grad():
        assert torch.allclose(again(torch.as_tensor(vectors)), sur(torch.as_tensor(vectors)))


def test_the_prior_member_refuses_a_data_set_with_other_tag_pairs():
    with pytest.raises(ValueError, match="reads 7 tag scores"):
        DescriptorSurrogate(4, kind="mlp+prior")


def test_the_proxies_come_in_the_tag_pairs_order():
    from host_training.dataset.tags import PAIRS

    assert tuple(upper for _, upper, _ in PAIRS) == PROXIES
