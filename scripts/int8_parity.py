"""int8 parity of a run's decoder without audio renders, for comparing conversion settings.

    python scripts/int8_parity.py RUN [PARTS]

PARTS: how many parts each coupling's update is split into (conversion/equalize.py, GROUPS).
Prints, per int8 kernel set, the share of DX7 values within one step of fp32 and the
categorical agreement (the same figures as `dxmacro convert`'s parity report).
"""

import sys
import tempfile
from pathlib import Path

from conversion import equalize, keys, pipeline
from host_training.export import load_decoder


def main() -> None:
    run = sys.argv[1]
    parts = int(sys.argv[2]) if len(sys.argv) > 2 else equalize.GROUPS
    module, info = load_decoder(run)
    with tempfile.TemporaryDirectory() as tmp:
        private, _ = keys.generate(Path(tmp) / "key")
        _, report, _ = pipeline.convert(module, info, keys.load_private_key(private), audio_voices=0, groups=parts)
    for name, part in report["kernels"].items():
        v = part["values"]
        print(f"{run} parts={parts} {name}: {v['within_one_step']:.4f} within one step, "
              f"{v['categorical_agreement']:.4f} categorical")


if __name__ == "__main__":
    main()
