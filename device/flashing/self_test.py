"""A model's self-test before it drives the knobs.

``self_test(decoder)``: in this process, every anchor and the prior's centre decode to valid
voices, and a bundle's golden vectors come out of this device's kernels (the control loop at
start-up and when it follows a newly flashed model).
``python -m device.flashing.self_test --public-key K BUNDLE``: the bundle's golden vectors through
this device's TFLite runtime, in a process of its own (the flash service waits for it with a
timeout). Prints one JSON line: the figures, or {"error": reason}; exit status 0 only on a pass."""

from __future__ import annotations

import argparse
import json
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from device.control.ports import Decoder
from dx7 import Voice
from dx7.errors import DX7Error
from dx7.params import LEARNABLE_COUNT
from dxmacro.errors import DxmacroError


@dataclass(frozen=True)
class SelfTest:
    anchors: int
    exact_anchors: int
    decode_us: float


def self_test(decoder: Decoder) -> SelfTest:
    """Decode every anchor and the prior's centre; every output must be a valid voice. A bundle's
    decoder also runs its golden vectors (conversion.runtime.TFLiteDecoder.self_test: this
    device's int8 kernels must reproduce the converter's codes).
    Raises DxmacroError naming what is wrong (a tampered or truncated model shows here)."""
    golden = getattr(decoder, "self_test", None)
    if callable(golden):
        golden()
    if decoder.latent_size < 1:
        raise DxmacroError("decoder self-test: latent size must be positive")
    if not decoder.knobs:
        raise DxmacroError("decoder self-test: the bundle names no knobs")
    for k in decoder.knobs:
        if not 0 <= k.dim < decoder.latent_size or not k.low < k.high:
            raise DxmacroError(f"decoder self-test: knob {k.name!r} has dim {k.dim} / range {k.low}..{k.high}")
    probes = [np.zeros(decoder.latent_size, np.float32)] + [np.asarray(a.latent, np.float32) for a in decoder.anchors]
    exact = 0
    t0 = time.perf_counter()
    for i, z in enumerate(probes):
        try:
            out = np.asarray(decoder.decode(z))
            if out.shape != (LEARNABLE_COUNT,):
                raise ValueError(f"output shape {out.shape}, expected ({LEARNABLE_COUNT},)")
            voice = Voice.from_parameters(out, "SELFTEST")
        except Exception as exc:  # noqa: BLE001 - any failure of a model is reported as one line
            raise DxmacroError(f"decoder self-test failed on probe {i}: {exc}") from None
        if i and voice.content_key() == decoder.anchors[i - 1].voice.content_key():
            exact += 1
    us = (time.perf_counter() - t0) / len(probes) * 1e6
    return SelfTest(len(decoder.anchors), exact, us)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m device.flashing.self_test")
    p.add_argument("--public-key", required=True)
    p.add_argument("bundle")
    args = p.parse_args(argv)
    from device.flashing.bundle_check import load_public_key, self_test_figures

    try:
        figures = self_test_figures(Path(args.bundle), load_public_key(args.public_key))
    except (DxmacroError, DX7Error) as exc:
        print(json.dumps({"error": str(exc)}))
        return 1
    print(json.dumps({k: (v.item() if hasattr(v, "item") else v) for k, v in figures.items()}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
