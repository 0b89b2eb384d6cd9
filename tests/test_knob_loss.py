"""The knob regularizer (host_training.model.knob_loss): score targets, the differentiable decode
view, and that the sweep loss teaches a head to move its own score and only its own."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torch import nn

from dx7 import layout
from dx7.layout import VECTOR_SIZE, categorical_groups, scaled_slots
from dx7.params import param
from host_training.dataset.descriptors import NAMES
from host_training.model.knob_loss import (PITCH_PARAMS, DescriptorSurrogate, score_targets, surrogate_loss, sweep_loss,
                                     synth_view)


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


def _surrogate_reading(slots: list[int], kind: str = "mlp") -> DescriptorSurrogate:
    """A surrogate fitted so that score j rises with scaled slot slots[j]."""
    torch.manual_seed(0)
    sur = DescriptorSurrogate(len(slots), hidden=64, kind=kind)
    opt = torch.optim.Adam(sur.parameters(), lr=1e-2)
    for _ in range(300):
        v = torch.rand(256, VECTOR_SIZE)
        target = 1.6 * v[:, slots] - 0.8  # inside tanh's range, so a linear member fits it too
        loss = surrogate_loss(sur, v, target)
        opt.zero_grad()
        loss.backward()
        opt.step()
    assert loss.item() < 0.01
    return sur


@pytest.mark.parametrize("kind", [k for k in DescriptorSurrogate.KINDS if "prior" not in k])  # fitted members only
def test_sweep_loss_teaches_the_head_to_move_its_own_score_only(kind):
    # three knobs, four scores: the fourth (a tag pair without a knob, like loudness) must stay put too
    slots = [int(s) for s in scaled_slots()[:4]]
    sur = _surrogate_reading(slots, kind)
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


def test_every_member_of_the_surrogate_must_see_the_rise():
    """With two members, a head whose moves raise the score that only one member reads has
    not met the sweep loss: the other member's shortfall remains."""
    slot_a, slot_b = (int(s) for s in scaled_slots()[:2])
    torch.manual_seed(0)
    sur = DescriptorSurrogate(1, hidden=64, kind="mlp+linear")
    opt = torch.optim.Adam(sur.parameters(), lr=1e-2)
    for _ in range(300):  # the MLP member reads slot a, the linear member slot b
        v = torch.rand(256, VECTOR_SIZE)
        pred = sur(v, members=True)
        loss = ((pred[0, :, 0] - (1.6 * v[:, slot_a] - 0.8)).pow(2).mean()
                + (pred[1, :, 0] - (1.6 * v[:, slot_b] - 0.8)).pow(2).mean())
        opt.zero_grad()
        loss.backward()
        opt.step()

    def head_moving(slot: int) -> nn.Module:
        """z -> 0.5 everywhere, but ``slot`` follows knob 0 over its travel."""
        lin = nn.Linear(VECTOR_SIZE, VECTOR_SIZE)
        with torch.no_grad():
            lin.weight.zero_()
            lin.bias.fill_(0.5)
            lin.weight[slot, 0] = 0.2
        return lin

    z = torch.zeros(256, VECTOR_SIZE)
    only_a, _ = sweep_loss(head_moving(slot_a), sur, z, 1, 2.5, 0.5, 0.0)
    both = nn.Linear(VECTOR_SIZE, VECTOR_SIZE)
    with torch.no_grad():
        both.weight.copy_(head_moving(slot_a).weight + head_moving(slot_b).weight)
        both.bias.fill_(0.5)
    met, gain = sweep_loss(both, sur, z, 1, 2.5, 0.5, 0.0)
    assert met.item() < 0.5 * only_a.item()
    assert gain.item() > 0.5


def test_an_unknown_surrogate_kind_is_refused():
    with pytest.raises(ValueError, match="unknown surrogate"):
        DescriptorSurrogate(2, kind="transformer")


def test_sweep_loss_trains_neither_the_surrogate_nor_the_latents():
    sur = DescriptorSurrogate(2, hidden=16)
    head = nn.Linear(VECTOR_SIZE, VECTOR_SIZE)
    z = torch.randn(8, VECTOR_SIZE, requires_grad=True)
    loss, _ = sweep_loss(head, sur, z, 2, 2.5, 1.0, 1.0)
    loss.backward()
    assert all(p.grad is None for p in sur.parameters())
    assert z.grad is None
    assert head.weight.grad is not None and head.weight.grad.abs().sum() > 0


TRANSPOSE = param("transpose").index


def _transpose_change(head: nn.Module, z: torch.Tensor, travel: float) -> float:
    """Mean |change| of the decoded transpose (semitones) when knob 0 goes across its travel."""
    lo, hi = z.clone(), z.clone()
    lo[:, 0], hi[:, 0] = -travel, travel
    with torch.no_grad():
        a, b = layout.decode(head(lo).numpy()), layout.decode(head(hi).numpy())
    return float(np.abs(b[:, TRANSPOSE].astype(int) - a[:, TRANSPOSE].astype(int)).mean())


def test_the_pitch_penalty_keeps_knobs_off_transpose():
    """A descriptor that reads pitch as well as timbre (score 0 rises with transpose and with a
    timbre slot alike) lets a knob meet its target by transposing; with ``pitch_weight`` the
    head must move the timbre slot instead, and the knob still raises its score."""
    assert "transpose" in PITCH_PARAMS
    tr = layout.SLOTS[TRANSPOSE].start
    timbre = int(scaled_slots()[0])
    torch.manual_seed(0)
    sur = DescriptorSurrogate(1, hidden=64)
    opt = torch.optim.Adam(sur.parameters(), lr=3e-3)
    for _ in range(300):
        v = torch.rand(256, VECTOR_SIZE)
        loss = surrogate_loss(sur, v, (v[:, tr] + v[:, timbre] - 1.0)[:, None])
        opt.zero_grad()
        loss.backward()
        opt.step()
    z = torch.randn(64, VECTOR_SIZE) * 0.5
    moved = {}
    for weight in (0.0, 0.05):
        torch.manual_seed(1)
        head = nn.Sequential(nn.Linear(VECTOR_SIZE, 64), nn.Tanh(), nn.Linear(64, VECTOR_SIZE))
        with torch.no_grad():  # transpose starts mid-range, where moving it is cheapest
            head[2].bias[tr] = 0.5
        opt = torch.optim.Adam(head.parameters(), lr=3e-3)
        for _ in range(300):
            loss, gain = sweep_loss(head, sur, torch.randn(64, VECTOR_SIZE) * 0.5, 1, 2.5, 1.0, 1.0,
                                    pitch_weight=weight)
            opt.zero_grad()
            loss.backward()
            opt.step()
        assert gain.item() > 0.8, (weight, gain.item())
        moved[weight] = _transpose_change(head, z, 2.5)
    print(f"transpose moved over a knob's travel: {moved[0.0]:.1f} semitones without the penalty, "
          f"{moved[0.05]:.1f} with it")
    assert moved[0.0] > 5.0
    assert moved[0.05] < 1.0


def test_pair_loss_reads_the_move_not_only_its_ends():
    """The surrogate must be right about a knob move's change (what the sweep loss reads): an
    offset that is the same at both ends costs only the ends' error, a flipped change costs
    more, and the right answer costs nothing. NaN scores (silent voices) are left out."""
    from host_training.model.knob_loss import pair_loss

    class Fixed(nn.Module):  # "predicts" the first n_scores slots of the vector (one member)
        def forward(self, v, members=False):
            return v[None, :, :3] if members else v[:, :3]

    va, vb = torch.zeros(4, VECTOR_SIZE), torch.zeros(4, VECTOR_SIZE)
    va[:, :3], vb[:, :3] = -0.5, 0.5
    sa, sb = va[:, :3].clone(), vb[:, :3].clone()
    assert float(pair_loss(Fixed(), va, vb, sa, sb)) == 0.0
    offset = float(pair_loss(Fixed(), va, vb, sa + 0.2, sb + 0.2))
    flipped = float(pair_loss(Fixed(), va, vb, sb, sa))
    assert abs(offset - 0.04) < 1e-6  # ends only: 0.2 squared, no change error
    assert flipped > 10 * offset  # ends 1.0 and the change error 4.0
    sa[0, 0] = float("nan")
    assert float(pair_loss(Fixed(), va, vb, sa, sb)) == 0.0


def test_probe_buffer_keeps_moves_as_encoded_vectors_and_round_trips():
    from host_training.model.knob_loss import ProbeBuffer

    from dx7.params import LEARNABLE_COUNT, PARAMS

    rng = np.random.default_rng(1)
    highs = np.array([p.high for p in PARAMS[:LEARNABLE_COUNT]])
    pa = np.floor(rng.random((5, LEARNABLE_COUNT)) * (highs + 1)).astype(np.uint8)
    pb = pa.copy()
    pb[:, 0] = highs[0] - pa[:, 0]
    buf = ProbeBuffer(2)
    buf.add(pa, pb, rng.random((5, 2)), rng.random((5, 2)))
    assert len(buf) == 5 and np.array_equal(layout.decode(buf.va), pa) and np.array_equal(layout.decode(buf.vb), pb)
    again = ProbeBuffer(2)
    again.load(buf.state())
    a = buf.sample(np.random.default_rng(7), 8)
    b = again.sample(np.random.default_rng(7), 8)
    assert all(torch.equal(x, y) for x, y in zip(a, b)) and a[0].shape == (8, VECTOR_SIZE)
    assert ProbeBuffer(2).sample(rng, 4) is None


def test_the_pitch_penalty_counts_moves_beyond_the_slot_range():
    """Clipped to the slot's range, the penalty was met by a head that pushed transpose far
    below 0, where a knob could move it freely (the shipped tiny model of an earlier session
    played every voice two octaves down): a move out there must cost as much as one inside."""
    sur = DescriptorSurrogate(1, hidden=8)
    tr = layout.SLOTS[TRANSPOSE].start
    head = nn.Linear(VECTOR_SIZE, VECTOR_SIZE)
    with torch.no_grad():
        head.weight.zero_()
        head.bias.fill_(0.5)
        head.bias[tr] = -1.0  # decodes to transpose 0 at every knob position
        head.weight[tr, 0] = 0.1
    z = torch.zeros(16, VECTOR_SIZE)
    loss = {w: sweep_loss(head, sur, z, 1, 2.5, 0.0, 0.0, w, generator=torch.Generator().manual_seed(0))[0].item()
            for w in (0.0, 1.0)}
    assert loss[1.0] - loss[0.0] > 1.0  # several DX7 steps of transpose change, squared


def test_the_pitch_penalty_reads_the_pitch_head_where_one_is_given():
    """The trainer reads the sound of a sweep from the clean head and its pitch from the head
    with int8 noise: a pitch move only the second head makes must cost, and one only the
    first makes must not."""
    sur = DescriptorSurrogate(1, hidden=8)
    tr = layout.SLOTS[TRANSPOSE].start

    def head_moving_transpose(moves: bool) -> nn.Module:
        head = nn.Linear(VECTOR_SIZE, VECTOR_SIZE)
        with torch.no_grad():
            head.weight.zero_()
            head.bias.fill_(0.5)
            head.weight[tr, 0] = 0.1 if moves else 0.0
        return head

    still, moving = head_moving_transpose(False), head_moving_transpose(True)
    z = torch.zeros(16, VECTOR_SIZE)

    def loss(head: nn.Module, pitch_head: nn.Module | None, share: float = 1.0) -> float:
        gen = torch.Generator().manual_seed(0)
        return sweep_loss(head, sur, z, 1, 2.5, 0.0, 0.0, 1.0, generator=gen, pitch_head=pitch_head,
                          pitch_head_share=share)[0].item()

    assert loss(still, None) == pytest.approx(0.0, abs=1e-9)
    assert loss(still, moving) == pytest.approx(loss(moving, None)) and loss(moving, None) > 1.0
    assert loss(moving, still) == pytest.approx(0.0, abs=1e-9)
    # a share between 0 and 1 blends the two heads' readings (knob_pitch_int8 = 0.3, say)
    assert loss(still, moving, 0.3) == pytest.approx(0.3 * loss(moving, None))
    assert loss(moving, still, 0.3) == pytest.approx(0.7 * loss(moving, None))


@pytest.mark.parametrize("int8", [1.0, 0.3, 0.0])
def test_the_trainer_reads_the_sweep_s_sound_clean_and_its_pitch_as_knob_pitch_int8_says(monkeypatch, int8):
    """vae_loss hands sweep_loss a head without the int8 noise, and the noisy head for the
    pitch penalty only while ``knob_pitch_int8`` is on, with that option as its share."""
    from host_training.model import knob_loss
    from host_training.model.flows import AffineCoupling
    from host_training.model.losses import LossConfig, vae_loss
    from host_training.model.blocks import Shape
    from host_training.model.vae import build

    torch.manual_seed(0)
    model = build("flow", Shape(3, 128, 24, mean=-40.0, std=20.0),
                  {"enc_channels": [4, 8], "hidden": 16, "post_flow_blocks": 1, "post_flow_hidden": 16,
                   "reg_flow_blocks": 1, "reg_flow_hidden": 16, "dec_channels": [8, 4],
                   "reg_flow_quant_noise": 10.0}).train()
    for m in model.modules():
        if isinstance(m, AffineCoupling):
            torch.nn.init.normal_(m.net[-1].weight, std=0.1)  # away from the identity, so noise shows
    seen = {}

    def spy(head, surrogate, z, *args, pitch_head=None, **kw):
        zz = torch.randn(8, z.shape[1])
        seen["clean"] = torch.equal(head(zz), head(zz))
        seen["pitch"] = None if pitch_head is None else not torch.equal(pitch_head(zz), pitch_head(zz))
        seen["share"] = kw.get("pitch_head_share")
        return z.new_zeros(()), z.new_zeros(())

    monkeypatch.setattr(knob_loss, "sweep_loss", spy)
    cfg = LossConfig.from_dict({"knob_weight": 1.0, "knob_pitch_weight": 1.0, "knob_pitch_int8": int8})
    x = torch.randn(4, 3, 128, 24) * 20 - 40
    target = torch.as_tensor(layout.encode(np.zeros((4, 145), np.int64)))
    sur = DescriptorSurrogate(2, hidden=8)
    vae_loss(model, x, target, torch.zeros(4, 2), cfg, 1.0, None, False, scores=torch.zeros(4, 2), surrogate=sur)
    assert seen["clean"]  # the same latents decode the same: no noise in the sound's head
    assert seen["pitch"] is (True if int8 else None)  # fresh noise in each pass of the pitch head
    assert seen["share"] == pytest.approx(int8)


def test_relative_view_is_the_voice_at_rest_and_the_voice_plus_the_change_when_moved():
    from dx7 import Voice
    from host_training.model.knob_loss import relative_view, synth_view

    voice = Voice.init().replace({"algorithm": 7, "op1_output_level": 60, "feedback": 3})
    target = torch.from_numpy(layout.encode(np.array(voice.values[:145])[None])).float()
    base = torch.rand(1, VECTOR_SIZE)  # the head's (poor) reconstruction of the voice
    at_rest = synth_view(relative_view(base, base, target))
    assert layout.decode(at_rest.detach().numpy())[0].tolist() == list(voice.values[:145])
    moved = base.clone()
    lvl = param("op1_output_level").index
    moved[0, layout.SLOTS[lvl].start] += 10 / 99  # the head's op1 level rises 10 steps
    out = layout.decode(synth_view(relative_view(moved, base, target)).detach().numpy())[0]
    assert out[lvl] == 70 and out[param("algorithm").index] == 7  # the voice's algorithm, the head's change
    alg = layout.SLOTS[param("algorithm").index]
    moved[0, alg.start:alg.start + alg.width] = 0.0
    moved[0, alg.start + 20] = 50.0  # the head's choice of algorithm changes: the voice's stays
    assert layout.decode(synth_view(relative_view(moved, base, target)).detach().numpy())[0][param("algorithm").index] == 7
    # what dx7.relative holds, the view holds too: one voice, one rule on both sides
    from dx7.relative import relative_voice

    for name in ("transpose", "pitch_eg_level2", "op1_freq_coarse", "op3_freq_fine", "op2_freq_coarse"):
        s = layout.SLOTS[param(name).index]
        moved[0, s.start] += 3 / param(name).high
    heard = layout.decode(synth_view(relative_view(moved, base, target)).detach().numpy())[0]
    device = relative_voice(np.array(voice.values[:145]), layout.decode(base.numpy())[0],
                            layout.decode(moved.numpy())[0])
    for name in ("transpose", "pitch_eg_level2", "op1_freq_coarse", "op3_freq_fine", "op2_freq_coarse", "algorithm"):
        assert heard[param(name).index] == device[param(name).index], name
    assert heard[param("op2_freq_coarse").index] != voice.values[param("op2_freq_coarse").index]  # a modulator moves


def test_carrier_retuning_is_penalised_and_modulator_retuning_is_not():
    """Algorithm 1: OP1 and OP3 are carriers, OP2 a modulator. A head whose knob retunes OP1 pays
    the carrier term; one that retunes OP2 (a timbre change a knob may make) does not."""
    sur = DescriptorSurrogate(1, hidden=8)

    def head_retuning(op: int) -> nn.Module:
        lin = nn.Linear(VECTOR_SIZE, VECTOR_SIZE)
        with torch.no_grad():
            lin.weight.zero_()
            lin.bias.fill_(0.1)
            alg = layout.SLOTS[param("algorithm").index]
            lin.bias[alg.start:alg.start + alg.width] = -10.0
            lin.bias[alg.start] = 10.0  # algorithm 1, confidently
            lin.weight[layout.SLOTS[param(f"op{op}_freq_coarse").index].start, 0] = 0.05
        return lin

    z = torch.zeros(32, VECTOR_SIZE)

    def loss(op: int, w: float) -> float:
        return sweep_loss(head_retuning(op), sur, z, 1, 2.5, 0.0, 0.0, carrier_weight=w,
                          generator=torch.Generator().manual_seed(0))[0].item()

    assert loss(1, 1.0) > 100 * max(loss(1, 0.0), 1e-3)  # OP1 retuned: the carrier term dominates
    assert loss(2, 1.0) == pytest.approx(loss(2, 0.0), abs=1e-4)  # OP2 retuned: next to nothing added


def test_the_edit_term_prices_each_parameter_a_knob_moves():
    """A knob that moves ten slots pays ten times the edit term of one that moves one by the same
    amount; a head that moves nothing pays nothing."""
    sur = DescriptorSurrogate(1, hidden=8)

    def head_moving(n: int) -> nn.Module:
        lin = nn.Linear(VECTOR_SIZE, VECTOR_SIZE)
        with torch.no_grad():
            lin.weight.zero_()
            lin.bias.fill_(0.5)
            for i in range(n):
                lin.weight[layout.SLOTS[param(f"op{1 + i % 6}_eg_rate{1 + i // 6}").index].start, 0] = 0.05
        return lin

    z = torch.zeros(16, VECTOR_SIZE)

    def edit(n: int) -> float:
        def run(w: float) -> float:
            return sweep_loss(head_moving(n), sur, z, 1, 2.5, 0.0, 0.0, edit_weight=w,
                              generator=torch.Generator().manual_seed(0))[0].item()
        return run(1.0) - run(0.0)

    assert edit(0) == pytest.approx(0.0, abs=1e-6)
    assert edit(1) > 0.01 and edit(10) == pytest.approx(10 * edit(1), rel=1e-3)
