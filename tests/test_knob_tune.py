"""Knobs tuned to a voice by rendering (host_training.jobs.knob_tune): of the changes a knob's
sweep makes, the tuning keeps those that move the knob's own score and drops those that only move
another's; and the bank command writes them for the device."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from dx7 import Voice
from dx7.params import param

pytest.importorskip("dexed", reason="dexed-py (the renderer) is not installed")

BRIGHT, LONG = 0, 3  # the data set's tag pairs: dark/bright, ..., short/long


@pytest.fixture(scope="module")
def judge(tmp_path_factory):
    """(heard, scorer) on a small synthetic data set: what the knob report reads a sweep with."""
    from host_training.audio.sound import RenderSettings
    from host_training.dataset import open_dataset
    from host_training.dataset.rendered_scores import ScoreRenderer
    from host_training.jobs.knob_report import Heard
    from model_data import make_dataset

    data = make_dataset(tmp_path_factory.mktemp("tune") / "data", n=40)
    ds = open_dataset(data)
    settings = RenderSettings.from_manifest(ds.settings)
    return Heard(settings, 1), ScoreRenderer(settings, np.asarray(ds.descriptors), len(ds.tag_names), 1)


def _two_knobs_in_one() -> tuple[np.ndarray, np.ndarray, int, int]:
    """INIT VOICE (algorithm 1: OP2 modulates the carrier OP1) and a sweep that at once opens OP2's
    level (brighter) and slows OP1's release (longer): two knobs' work in one."""
    level, release = param("op2_output_level").index, param("op1_eg_rate4").index
    base = np.array(Voice.init().values[:145], dtype=np.int64)
    sweep = np.repeat(base[None], 11, 0)
    sweep[:, level] = np.round(np.linspace(0, 75, 11))
    sweep[:, release] = np.round(np.linspace(99, 30, 11))
    return base, sweep, level, release


@pytest.mark.parametrize("own, keep, drop", [(BRIGHT, "level", "release"), (LONG, "release", "level")])
def test_the_tuning_keeps_the_change_that_moves_the_knobs_own_score(judge, own, keep, drop):
    from host_training.jobs.knob_gates import KnobGates
    from host_training.jobs.knob_report import knob_figures
    from host_training.jobs.knob_report import masked
    from host_training.jobs.knob_tune import tune_knob

    heard, scorer = judge
    base, sweep, level, release = _two_knobs_in_one()
    which = {"level": level, "release": release}
    travel = np.linspace(-1.0, 1.0, 11)
    t = tune_knob(heard, scorer, base, sweep, own, travel, KnobGates())
    assert t.mask[which[keep]] and not t.mask[which[drop]] and t.mask.sum() == 1
    both = knob_figures(heard, scorer, [sweep], own, travel)
    alone = knob_figures(heard, scorer, [masked(base, sweep, t.mask)], own, travel)
    assert alone == t.figures and alone["spearman"] > 0
    assert alone["selectivity"] > both["selectivity"]


def test_a_knob_the_decoder_does_not_move_keeps_an_empty_mask(judge):
    from host_training.jobs.knob_gates import KnobGates
    from host_training.jobs.knob_tune import tune_knob

    heard, scorer = judge
    base = np.array(Voice.init().values[:145], dtype=np.int64)
    t = tune_knob(heard, scorer, base, np.repeat(base[None], 5, 0), BRIGHT, np.linspace(0, 1, 5), KnobGates())
    assert not t.mask.any() and not t.passed
