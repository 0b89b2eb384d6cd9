"""``python -m conversion.fixture_report --kind mlp|flow``: the parity report of a fixture decoder
(conversion.testing_models) through the whole conversion, for docs/conversion.md. Host side."""

from __future__ import annotations

import argparse
import time

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from conversion import parity, pipeline
from conversion.testing_models import fixture_run


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--kind", choices=("mlp", "flow"), default="mlp")
    ap.add_argument("--steps", type=int, default=300, help="fit steps of the fixture decoder")
    ap.add_argument("--audio-voices", type=int, default=128)
    args = ap.parse_args()
    t = time.perf_counter()
    module, info = fixture_run(args.kind, steps=args.steps)
    fit_s = time.perf_counter() - t
    t = time.perf_counter()
    data, report, _ = pipeline.convert(module, info, Ed25519PrivateKey.generate(), audio_voices=args.audio_voices)
    print(f"fit {fit_s:.1f} s, convert + report {time.perf_counter() - t:.1f} s, bundle {len(data)} bytes")
    print(parity.to_markdown(report).split("| parameter")[0])


if __name__ == "__main__":
    main()
