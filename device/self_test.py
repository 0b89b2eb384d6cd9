"""``python -m device.self_test --public-key K BUNDLE``: the bundle's golden vectors through this
device's TFLite runtime, in a process of its own (the flash service waits for it with a timeout).
Prints one JSON line: the figures, or {"error": reason}; exit status 0 only on a pass."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from dx7.errors import DX7Error
from dxmacro.errors import DxmacroError


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m device.self_test")
    p.add_argument("--public-key", required=True)
    p.add_argument("bundle")
    args = p.parse_args(argv)
    from device.bundle_check import load_public_key, self_test_figures

    try:
        figures = self_test_figures(Path(args.bundle), load_public_key(args.public_key))
    except (DxmacroError, DX7Error) as exc:
        print(json.dumps({"error": str(exc)}))
        return 1
    print(json.dumps({k: (v.item() if hasattr(v, "item") else v) for k, v in figures.items()}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
