"""The knob regularizer (host_training.knob_loss): score targets, the differentiable decode
view, and that the sweep loss teaches a head to move its own score and only its own."""

from __future__ import annotations

import numpy as np
import torch
from torch import nn

from dx7 import layout
from dx7.layout import VECTOR_SIZE, categorical_groups, scaled_slots
from host_training.dataset.descriptors import NAMES
from host_training.knob_loss import DescriptorSurrogate, score_targets, synth_view, surrogate_loss, sweep_loss


def test_score_targets_are_ranks_in_minus_one_one_with_silence_kept():
    rng = np.random.default_rng(0)
    desc = rng.uniform(0.01, 1.0, size=(50, 2, len(NAMES)))
    desc[7] = np.nan  # a voice silent at every note has no score
    s = score_targets(desc, 3)
    assert s.shape == (50, 3)
    assert np.isnan(s[7]).all()
    ok = np.delete(s, 7, axis=0)
    for j in range(3):
        assert ok[:, j].min() == -1.0 and ok[:, j].max() == 1.0
        assert len(np.unique(ok[:, j])) == 49  # a rank each
    # brightness (the first pair) follows the spectral centroid's order
    centroid = np.delete(desc[:, :, NAMES.index("centroid_hz")].mean(1), 7)
    assert (np.argsort(centroid) == np.argsort(ok[:, 0])).all()


def test_synth_view_is_what_the_synth_gets_with_a_gradient():
    v = (torch.randn(16, VECTOR_SIZE) * 0.6 + 0.5).requires_grad_(True)
    out = synth_view(v)
    # forward: exactly the decoded voice, encoded again
    again = layout.encode(layout.decode(v.detach().numpy()))
    assert np.allclose(out.detach().numpy(), again, atol=1e-6)
    # backward: straight through the clipped slots and the groups' softmax
    (out * torch.randn_like(out)).sum().backward()
    sc = torch.as_tensor(scaled_slots())
    inside = (v[:, sc] > 0) & (v[:, sc] < 1)
    assert (v.grad[:, sc][inside] != 0).all() and (v.grad[:, sc][~inside] == 0).all()
    g = categorical_groups()[0]
    assert (v.grad[:, g.start : g.start + g.width] != 0).any()


def _surrogate_reading(slots: list[int]) -> DescriptorSurrogate:
    """A surrogate fitted so that score j rises with scaled slot slots[j]."""
    torch.manual_seed(0)
    sur = DescriptorSurrogate(len(slots), hidden=64)
    opt = torch.optim.Adam(sur.parameters(), lr=3e-3)
    for _ in range(300):
        v = torch.rand(256, VECTOR_SIZE)
        target = 2 * v[:, slots] - 1
        loss = surrogate_loss(sur, v, target)
        opt.zero_grad()
        loss.backward()
        opt.step()
    assert loss.item() < 0.01
    return sur


def test_sweep_loss_teaches_the_head_to_move_its_own_score_only():
    # three knobs, four scores: the fourth (a tag pair without a knob, like loudness) must stay put too
    slots = [int(s) for s in scaled_slots()[:4]]
    sur = _surrogate_reading(slots)
    torch.manual_seed(1)
    # a head that starts by ignoring the semantic dimensions: its output depends on z[:, 3:]
    head = nn.Sequential(nn.Linear(VECTOR_SIZE, 64), nn.Tanh(), nn.Linear(64, VECTOR_SIZE))
    with torch.no_grad():
        head[0].weight[:, :3] = 0
    z = torch.randn(64, VECTOR_SIZE) * 0.5
    _, gain0 = sweep_loss(head, sur, z, n_sem=3, travel=2.5, margin=1.0, cross_weight=1.0)
    assert abs(gain0.item()) < 0.05
    opt = torch.optim.Adam(head.parameters(), lr=3e-3)
    for _ in range(300):
        loss, gain = sweep_loss(head, sur, torch.randn(64, VECTOR_SIZE) * 0.5, 3, 2.5, 1.0, 1.0)
        opt.zero_grad()
        loss.backward()
        opt.step()
    # Each knob's full travel now raises its own score by about the margin ...
    assert gain.item() > 0.9
    # ... and moves the other scores little: sweep each knob and read all three scores
    with torch.no_grad():
        zz = z.repeat(2, 1)
        for t in range(3):
            lo, hi = zz[:64].clone(), zz[64:].clone()
            lo[:, t], hi[:, t] = -2.5, 2.5
            delta = (sur(synth_view(head(hi))) - sur(synth_view(head(lo)))).mean(0)
            assert delta[t] > 0.9
            assert delta[[u for u in range(4) if u != t]].abs().max() < 0.2


def test_sweep_loss_trains_neither_the_surrogate_nor_the_latents():
    sur = DescriptorSurrogate(2, hidden=16)
    head = nn.Linear(VECTOR_SIZE, VECTOR_SIZE)
    z = torch.randn(8, VECTOR_SIZE, requires_grad=True)
    loss, _ = sweep_loss(head, sur, z, 2, 2.5, 1.0, 1.0)
    loss.backward()
    assert all(p.grad is None for p in sur.parameters())
    assert z.grad is None
    assert head.weight.grad is not None and head.weight.grad.abs().sum() > 0
