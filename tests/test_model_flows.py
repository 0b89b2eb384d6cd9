"""The flow library and the model shapes: invertibility, log-determinants against autograd
Jacobians, and the op set of the decoder the Pi runs."""

from __future__ import annotations

import pytest
import torch

from dx7.layout import VECTOR_SIZE, decode, encode
from host_training.model.flows import AffineCoupling, Compose, ElementwiseAffine, MapModule, Permutation, noise_off, realnvp
from host_training.model.blocks import Shape
from host_training.model.vae import LATENT, build


def _randomize(t: torch.nn.Module, seed: int = 0) -> None:
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for p in t.parameters():
            p.copy_(torch.randn(p.shape, generator=g) * 0.3)


@pytest.mark.parametrize("make", [lambda: AffineCoupling(7, 16), lambda: Permutation(7, 3),
                                  lambda: ElementwiseAffine(7), lambda: realnvp(7, 3, 16, seed=1)])
def test_inverse_and_logdet_match_autograd(make):
    torch.manual_seed(0)
    t = make().double()
    _randomize(t)
    x = torch.randn(5, 7, dtype=torch.float64)
    y, ld = t(x)
    back, ld_inv = t.inverse(y)
    assert torch.allclose(back, x, atol=1e-10)
    assert torch.allclose(ld_inv, -ld, atol=1e-10)
    assert torch.allclose(t.map(x), y)
    for i in range(len(x)):
        jac = torch.autograd.functional.jacobian(lambda v: t(v[None])[0][0], x[i])
        assert torch.allclose(torch.linalg.slogdet(jac)[1], ld[i], atol=1e-8)


def test_identity_at_initialisation_and_not_after():
    t = realnvp(10, 2, 8)
    x = torch.randn(4, 10)
    perm_only = Compose(*[m for m in t.transforms if isinstance(m, Permutation)])
    assert torch.allclose(t.map(x), perm_only.map(x))
    _randomize(t)
    assert not torch.allclose(t.map(x), perm_only.map(x))


ALLOWED = {"getitem", "index_select", "mul", "add", "sub", "exp", "tanh", "cat", "truediv"}


def test_decoder_uses_only_exportable_ops():
    """The z -> parameters direction: Linear, elementwise activations, exp, add/mul,
    slicing/concat and constant index_select only (what int8 TFLite conversion needs)."""
    import torch.fx

    shape = Shape(3, 128, 24)
    model = build("flow", shape, {"enc_channels": [4, 8], "hidden": 16, "post_flow_blocks": 1,
                                  "post_flow_hidden": 16, "reg_flow_blocks": 2, "reg_flow_hidden": 16,
                                  "dec_channels": [8, 4]})
    assert isinstance(model.head, MapModule)
    gm = torch.fx.symbolic_trace(model.head)
    seen = set()
    for node in gm.graph.nodes:
        if node.op == "call_module":
            seen.add(type(gm.get_submodule(node.target)).__name__)
        elif node.op in ("call_function", "call_method"):
            seen.add(getattr(node.target, "__name__", str(node.target)))
    assert seen <= ALLOWED | {"Linear", "LeakyReLU"}, seen
    z = torch.randn(4, LATENT)
    assert torch.allclose(gm(z), model.head(z))


@pytest.mark.parametrize("kind", ["flow", "flow_nocontrastive", "vae_mlp", "mlp", "cnn", "resnet"])
def test_model_shapes(kind):
    shape = Shape(3, 128, 24, mean=-40.0, std=20.0)
    cfg = {"enc_channels": [4, 8], "hidden": 16, "post_flow_blocks": 1, "post_flow_hidden": 16,
           "reg_flow_blocks": 1, "reg_flow_hidden": 16, "dec_channels": [8, 4], "baseline_channels": [4, 8],
           "baseline_hidden": 16}
    model = build(kind, shape, cfg).eval()
    x = torch.randn(2, 3, 128, 24) * 20 - 40
    if kind in ("mlp", "cnn", "resnet"):
        assert model(x).shape == (2, VECTOR_SIZE)
        return
    z = model.encode(x)
    assert z.shape == (2, LATENT)
    assert model.encode(x[:, :1]).shape == (2, LATENT)  # one note of any pitch
    assert model.decoder(z).shape == model.recon_target(x).shape == (2, 3, 64, 24)
    v = model.to_vector(z)
    assert decode(v.detach().numpy()).shape == (2, 145)
    if kind != "vae_mlp":
        assert torch.allclose(model.from_vector(v), z, atol=1e-4)


def test_parameter_loss_prefers_the_truth():
    import numpy as np

    from host_training.model.losses import param_loss
    from host_training.audio.synth_voices import generate

    target = torch.from_numpy(encode(np.stack([v.parameters for v in generate(4, 0)])))
    from dx7.layout import categorical_groups

    logits = target.clone()
    for g in categorical_groups():  # one-hot groups as confident, right logits
        logits[:, g.start : g.start + g.width] = target[:, g.start : g.start + g.width] * 20 - 10
    good = param_loss(logits, target)[0]
    bad = param_loss(torch.roll(logits, 1, 0), target)[0]
    assert (good < bad).all()
    assert (decode(logits.numpy()) == decode(target.numpy())).all()


def test_param_loss_l1_is_the_absolute_error_and_pulls_to_the_median():
    """[loss] param_numeric = "l1": the scaled slots' absolute error, whose minimiser over a
    bimodal set of targets is a value the targets have (the median), not their mean."""
    from dx7.layout import VECTOR_SIZE
    from host_training.model.losses import SCALED_SLOTS, param_loss

    target = torch.zeros(3, VECTOR_SIZE)
    target[:, SCALED_SLOTS] = torch.tensor([[0.0], [1.0], [1.0]])  # an operator off once, on twice
    for numeric, best in (("mse", 2 / 3), ("l1", 1.0)):
        grid = torch.linspace(0, 1, 31)
        costs = []
        for g in grid:
            pred = target.clone()
            pred[:, SCALED_SLOTS] = g
            costs.append(float(param_loss(pred, target, numeric)[1].sum()))
        assert abs(float(grid[int(torch.tensor(costs).argmin())]) - best) < 0.04, numeric
    pred = target.clone()
    pred[:, SCALED_SLOTS] = 0.5
    assert torch.allclose(param_loss(pred, target, "l1")[1], torch.full((3,), 0.5 * len(SCALED_SLOTS)))


def test_transpose_weight_scales_the_transpose_error_only():
    """[loss] transpose_weight: an octave of transpose error weighs ``transpose_weight`` times
    what it weighed; the same error on any other scaled slot is unchanged."""
    from dx7.layout import VECTOR_SIZE, slot
    from dx7.params import param
    from host_training.model.losses import SCALED_SLOTS, param_loss, slot_weights

    tr = slot("transpose").start
    other = int(SCALED_SLOTS[0])
    target = torch.full((1, VECTOR_SIZE), 0.5)
    octave = 12 / param("transpose").high
    for slot, factor in ((tr, 48.0), (other, 1.0)):
        pred = target.clone()
        pred[0, slot] += octave
        plain = param_loss(pred, target, "l1")[1]
        weighted = param_loss(pred, target, "l1", slot_weights(48.0))[1]
        assert torch.allclose(weighted, plain * factor)
        assert torch.allclose(plain, torch.tensor([octave]))


def test_op_pitch_error_is_zero_for_every_split_that_sounds_the_same():
    """[loss] op_pitch_weight: transpose an octave down with every ratio doubled sounds the same
    and costs nothing; an octave of transpose alone costs 144 semitones^2 per sounding
    ratio-mode operator, weighted by its level; fixed-mode and silent operators cost nothing."""
    import numpy as np

    from dx7.params import param
    from host_training.model.losses import op_pitch_error
    from host_training.audio.synth_voices import generate

    p = np.stack([v.parameters for v in generate(8, 3)]).astype(np.int64)
    ops = range(1, 7)
    mode = [param(f"op{k}_osc_mode").index for k in ops]
    coarse = [param(f"op{k}_freq_coarse").index for k in ops]
    level = [param(f"op{k}_output_level").index for k in ops]
    tr = param("transpose").index
    p[:, mode] = 0  # ratio
    p[:, coarse] = np.clip(p[:, coarse], 1, 15)
    p[:, tr] = 24
    p[:, level[5]] = 0  # op 6 silent
    target = torch.from_numpy(encode(p))
    split = p.copy()
    split[:, tr] = 12
    split[:, coarse] *= 2
    assert torch.allclose(op_pitch_error(torch.from_numpy(encode(split)), target), torch.zeros(8), atol=1e-6)
    up = p.copy()
    up[:, tr] = 36
    expected = 144.0 * (p[:, level] / 99.0).sum(1)
    assert np.allclose(op_pitch_error(torch.from_numpy(encode(up)), target).numpy(), expected, rtol=1e-4)
    robust = op_pitch_error(torch.from_numpy(encode(up)), target, scale=2.0).numpy()  # log(1 + 144 / 4)
    assert np.allclose(robust, np.log1p(36.0) * (p[:, level] / 99.0).sum(1), rtol=1e-4)
    fixed = p.copy()
    fixed[:, mode] = 1
    assert torch.allclose(op_pitch_error(torch.from_numpy(encode(up)), torch.from_numpy(encode(fixed))),
                          torch.zeros(8))


def test_contrastive_loss_rewards_same_voice_agreement():
    from host_training.model.losses import supervised_contrastive

    torch.manual_seed(0)
    centres = torch.randn(8, 1, 16)
    aligned = centres + 0.01 * torch.randn(8, 3, 16)
    scrambled = torch.randn(8, 3, 16)
    assert supervised_contrastive(aligned, 0.1) < supervised_contrastive(scrambled, 0.1)


def _conditioning(flow: Compose) -> list[list[bool]]:
    """Per input dimension: in which couplings it sits in the conditioning half."""
    out = []
    for d in range(VECTOR_SIZE):
        pos, seen = d, []
        for t in flow.transforms:
            if isinstance(t, Permutation):
                pos = int((t.perm == pos).nonzero()[0])
            elif isinstance(t, AffineCoupling):
                seen.append(pos < t.split)
        out.append(seen)
    return out


def test_alternating_flow_lets_every_dimension_condition_and_knobs_lead():
    """Random permutations left a knob's dimension in the transformed half of every coupling
    (it reached the output through one slot); the regression flow's alternating ones cannot."""
    flow = realnvp(VECTOR_SIZE, 4, 16, seed=2, alternate=True, lead=6)
    cond = _conditioning(flow)
    assert all(c[0] for c in cond[:6])  # the knobs condition the first coupling
    assert all(any(c) for c in cond)
    assert sum(c[0] and c[2] or c[1] and c[3] for c in cond) >= VECTOR_SIZE - 4  # every other coupling
    x = torch.randn(5, VECTOR_SIZE)
    y, logdet = flow(x)
    back, inv_logdet = flow.inverse(y)
    assert torch.allclose(back, x, atol=1e-5) and torch.allclose(logdet, -inv_logdet, atol=1e-5)
    random = _conditioning(realnvp(VECTOR_SIZE, 4, 16, seed=2))
    assert not all(any(c) for c in random)  # what the old permutations did at this seed


def test_euclidean_contrastive_prefers_close_notes_of_one_voice():
    from host_training.model.losses import supervised_contrastive

    torch.manual_seed(0)
    voices = torch.randn(8, 1, 32) * 3
    tight = voices + 0.1 * torch.randn(8, 4, 32)
    loose = voices + 2.0 * torch.randn(8, 4, 32)
    for metric in ("euclidean", "cosine"):
        assert supervised_contrastive(tight, 0.1, metric) < supervised_contrastive(loose, 0.1, metric)
    # scaled up, directions stay but distances grow: only the euclidean form sees it
    assert torch.isclose(supervised_contrastive(tight * 5, 0.1, "cosine"), supervised_contrastive(tight, 0.1, "cosine"))
    assert not torch.isclose(supervised_contrastive(tight * 5, 0.1, "euclidean"),
                             supervised_contrastive(tight, 0.1, "euclidean"))
    with pytest.raises(ValueError, match="unknown contrastive metric"):
        supervised_contrastive(tight, 0.1, "l1")


def test_quant_noise_is_training_only_sized_in_int8_steps_and_not_saved():
    """``quant_noise`` (int8 rounding simulated while the regression flow trains) must leave the
    function the Pi runs, the inverse and the saved weights alone, and its size must follow q."""
    torch.manual_seed(0)
    flow = realnvp(VECTOR_SIZE, 2, 32, seed=1, alternate=True, lead=6)
    _randomize(flow, 3)
    keys = set(flow.state_dict())
    x = torch.randn(256, VECTOR_SIZE)
    clean = flow.map(x)
    couplings = [t for t in flow.transforms if isinstance(t, AffineCoupling)]
    deviation = {}
    for q in (1.0, 2.0):
        for t in couplings:
            t.quant_noise = q
        flow.eval()
        assert torch.equal(flow.map(x), clean) and torch.equal(flow(x)[0], clean)
        flow.train()
        a, b = flow.map(x), flow.map(x)
        assert not torch.allclose(a, b)  # fresh noise each pass
        deviation[q] = float((a - clean).pow(2).mean().sqrt())
    out = couplings[-1].peaks["out"]  # the last coupling's state: one int8 step is 2 * peak / 255
    assert out.shape == (VECTOR_SIZE - VECTOR_SIZE // 2,)
    step = float((2 * out / 255).median())
    print(f"RMS deviation {deviation[1.0]:.4f} at q=1, {deviation[2.0]:.4f} at q=2; median state step {step:.4f}")
    assert 0.2 * step < deviation[1.0] < 20 * step
    assert 1.6 < deviation[2.0] / deviation[1.0] < 2.4
    assert set(flow.state_dict()) == keys  # ranges are not saved: model.pt files keep loading
    flow = flow.double().eval()
    back, _ = flow.inverse(flow(x.double())[0])
    assert torch.allclose(back, x.double(), atol=1e-8)


def test_noise_off_gives_the_clean_map_in_training_and_restores_the_noise():
    """The knob sweep loss runs the head under ``noise_off``: the clean function, no widening
    of the noise's running ranges, and the noise back afterwards (even after an error)."""
    torch.manual_seed(0)
    flow = realnvp(VECTOR_SIZE, 2, 32, seed=1, alternate=True, lead=6)
    _randomize(flow, 3)
    couplings = [t for t in flow.transforms if isinstance(t, AffineCoupling)]
    for t in couplings:
        t.quant_noise = 4.0
    x = torch.randn(64, VECTOR_SIZE)
    flow.eval()
    clean = flow.map(x)
    flow.train()
    flow.map(x)  # the noise's ranges from ordinary latents
    peaks = {k: v.clone() for k, v in couplings[0].peaks.items()}
    with noise_off(flow):
        assert torch.equal(flow.map(x), clean)
        flow.map(x * 10.0)  # far latents, like a sweep's ends
    assert all(torch.equal(couplings[0].peaks[k], v) for k, v in peaks.items())
    with pytest.raises(RuntimeError), noise_off(flow):
        raise RuntimeError("a failing batch")
    assert all(t.quant_noise == 4.0 for t in couplings)
    assert not torch.allclose(flow.map(x), clean)

