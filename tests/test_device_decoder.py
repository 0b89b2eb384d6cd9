"""The development decoder and the decoder self-test."""

from __future__ import annotations

import numpy as np
import pytest

from device.twins.linear_decoder import LinearDecoder
from device.flashing.self_test import self_test
from dxmacro.errors import DxmacroError


def test_linear_decoder_is_deterministic_and_decodes_its_anchors_exactly():
    a, b = LinearDecoder(seed=0), LinearDecoder(seed=0)
    z = np.random.default_rng(1).normal(size=a.latent_size).astype(np.float32)
    assert np.array_equal(a.decode(z), b.decode(z))
    assert not np.array_equal(LinearDecoder(seed=1).decode(z), a.decode(z))
    for anchor in a.anchors:
        assert np.array_equal(a.decode(anchor.latent), anchor.voice.parameters), anchor.name
    # a knob's travel changes many parameters, as a trained decoder's does
    lo, hi = z.copy(), z.copy()
    lo[0], hi[0] = a.knobs[0].low, a.knobs[0].high
    assert (a.decode(lo) != a.decode(hi)).sum() > 20


def test_self_test_accepts_the_linear_decoder():
    result = self_test(LinearDecoder())
    assert result.anchors == 6 and result.exact_anchors == 6


class _Broken(LinearDecoder):
    def __init__(self, mode):
        super().__init__()
        self.mode = mode

    def decode(self, latent):
        out = super().decode(latent)
        if self.mode == "shape":
            return out[:100]
        if self.mode == "range":
            out = out.copy()
            out[0] = 200
            return out
        raise RuntimeError("tensor arena corrupt")


@pytest.mark.parametrize("mode,words", [("shape", "shape"), ("range", "op6_eg_rate1"), ("raise", "arena")])
def test_self_test_refuses_a_broken_decoder_with_one_line(mode, words):
    with pytest.raises(DxmacroError, match="self-test") as exc:
        self_test(_Broken(mode))
    assert words in str(exc.value) and "\n" not in str(exc.value)
