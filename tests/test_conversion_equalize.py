"""conversion.equalize: the rewritten flow is the same function, with a state int8 can hold."""

from __future__ import annotations

import numpy as np
import pytest

torch = pytest.importorskip("torch", reason="conversion needs torch (host extra)")

from conversion import equalize  # noqa: E402
from conversion.testing_models import MLPDecoder  # noqa: E402
from host_training.model.flows import AffineCoupling, Compose, ElementwiseAffine, MapModule, Permutation, realnvp  # noqa: E402


def _trained_looking(flow: MapModule, seed: int = 0) -> MapModule:
    """Couplings start as the identity; give every weight a value so the test is not trivial,
    and spread the dimensions' ranges over two decades as a trained flow's are."""
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for p in flow.parameters():
            p.copy_(torch.randn(p.shape, generator=g) * 0.3)
        for t in flow.transform.transforms:
            if isinstance(t, ElementwiseAffine):
                t.log_scale.copy_(torch.linspace(-2.5, 2.0, len(t.log_scale)))
    return flow.eval()


def _latents(n: int, dim: int, seed: int = 1) -> np.ndarray:
    rng = np.random.default_rng(seed)
    return (rng.standard_normal((n, dim)) * np.linspace(0.05, 1.5, dim)).astype(np.float32)


@pytest.mark.parametrize("make", [
    lambda: MapModule(realnvp(16, 3, 32, seed=2)),  # the model's stack: ends with an elementwise affine
    lambda: MapModule(realnvp(16, 3, 32, seed=3, final_affine=False)),  # ends with a coupling
    lambda: MapModule(Compose(ElementwiseAffine(15), Permutation(15, 4), AffineCoupling(15, 24),
                              ElementwiseAffine(15), AffineCoupling(15, 24))),  # odd size, affine mid-way
])
def test_equalized_flow_is_the_same_function(make):
    flow = _trained_looking(make())
    dim = flow.transform.transforms[0].log_scale.shape[0] if isinstance(flow.transform.transforms[0], ElementwiseAffine) \
        else len(flow.transform.transforms[0].perm)
    cal = _latents(400, dim)
    eq = equalize.equalize_flow(flow, cal, groups=3)
    assert isinstance(eq, equalize.EqualizedFlow)
    # on the calibration set and on latents beyond it
    for z in (cal, _latents(200, dim, seed=7) * 2.0):
        with torch.no_grad():
            a, b = flow(torch.as_tensor(z)), eq(torch.as_tensor(z))
        assert torch.allclose(a, b, rtol=1e-5, atol=1e-5 * float(a.abs().max())), float((a - b).abs().max())


def test_equalized_state_fills_minus_one_to_one_per_dimension():
    flow = _trained_looking(MapModule(realnvp(20, 4, 32, seed=5)))
    cal = _latents(500, 20)
    before = []
    x = torch.as_tensor(cal)
    with torch.no_grad():
        for t in flow.transform.transforms:
            x = t.map(x)
            if isinstance(t, AffineCoupling):
                before.append(x.abs().amax(0))
    eq = equalize.equalize_flow(flow, cal)
    states = []
    u = torch.as_tensor(cal)
    with torch.no_grad():
        for step in eq.steps:
            u = step(u)
            if isinstance(step, equalize._ScaledCoupling):
                states.append(u)
    assert len(states) == 4
    for s, raw in zip(states, before):
        reach = s.abs().amax(0)
        assert float(reach.max()) <= 1.0 + 1e-4
        assert float(reach.min()) >= 0.99  # every dimension uses the whole range, symmetric or centred
        assert float(raw.max() / raw.min()) > 3  # while the original state's dimensions did not


def test_centres_only_where_no_later_update_multiplies_them():
    # 4 dims, coupling splits 2|2: the updated half (positions 2, 3) is never centred; after an
    # elementwise affine re-maps everything, centring is free again
    c = AffineCoupling(4, 8)
    assert equalize._centrable([c], 0, 4).tolist() == [True, True, False, False]
    p = Permutation(4, 0)
    ok = equalize._centrable([p, c], 0, 4)
    assert ok[p.perm[2:]].tolist() == [False, False] and ok[p.perm[:2]].tolist() == [True, True]
    assert equalize._centrable([ElementwiseAffine(4), c], 0, 4).all()
    assert equalize._centrable([c], 1, 4).all()  # nothing after: the output may be centred


def test_other_modules_are_left_alone():
    mlp = MLPDecoder()
    assert equalize.equalize_flow(mlp, _latents(10, 225)) is mlp
