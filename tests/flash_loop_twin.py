"""A stand-in control loop for the flashing tests, speaking the real contract (docs/flashing.md).

It does what the device's loop does at the flashing boundary, through the same helpers:
watches the store's ``active`` pointer (PointerWatcher), loads the model it names, turns simulated
knob positions (a slow sweep, as a performer would) into a latent and decodes it every tick, and
publishes status.json (write_status). It reports ``healthy: false`` when the model cannot serve
this controller: it fails to load, or the controller's knobs map latent dimensions the model does
not have (a model trained for another knob layout passes its self-test but cannot be played).

    python tests/flash_loop_twin.py --store DIR --status FILE --public-key K [--knob-dims 0,1,2,3]
"""

from __future__ import annotations

import argparse
import math
import signal
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import numpy as np  # noqa: E402

from device.flashing.status_file import PointerWatcher, write_status  # noqa: E402

KNOB_NAMES = ["brightness", "attack", "metallic", "movement", "depth", "warmth", "bite", "air"]


def load_model(path: Path, key_file: Path):
    """(latent_size, decode(latent) -> 145 values, manifest) through the same reader as the device.
    INTERIM: the flashing tests' container until conversion/bundle.py is merged."""
    from tests.flash_fixtures import Bundles

    b = Bundles.__new__(Bundles)
    b.key_file = key_file
    m = b._read(path)
    latent = int(m.get("latent_size", 8))
    return latent, (lambda z: np.clip(np.rint(np.abs(z[: 1]).sum() * 10 + np.arange(145)), 0, 99)), m


def main() -> int:
    p = argparse.ArgumentParser()
    p.add_argument("--store", required=True)
    p.add_argument("--status", required=True)
    p.add_argument("--public-key", required=True)
    p.add_argument("--knob-dims", default="0,1,2,3")
    p.add_argument("--period", type=float, default=0.05)
    args = p.parse_args()
    dims = [int(d) for d in args.knob_dims.split(",")]
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
    watcher = PointerWatcher(args.store)
    model = None  # (latent_size, decode, manifest)
    meta: dict = {}
    errors: list[dict] = []
    healthy = False
    t0 = time.monotonic()
    while True:
        if watcher.changed():
            path = watcher.model_path()
            meta = {"file": watcher.name}
            try:
                if path is None:
                    raise RuntimeError("no active model")
                model = load_model(path, Path(args.public_key))
                meta |= {"id": model[2].get("model_id"), "version": model[2].get("version")}
                healthy = True
            except Exception as exc:  # noqa: BLE001 - reported, the loop keeps running
                model = None
                healthy = False
                errors = (errors + [{"time": time.time(), "message": f"cannot load {watcher.name}: {exc}"}])[-5:]
        now = time.monotonic()
        values = [0.5 + 0.45 * math.sin(2 * math.pi * 0.4 * (now - t0) + i) for i in range(len(dims))]
        anchor = None
        if model is not None:
            latent_size, decode, _ = model
            bad = [d for d in dims if d >= latent_size]
            if bad:
                if healthy:
                    errors = (errors + [{"time": time.time(), "message":
                                         f"knob dimensions {bad} are beyond the model's {latent_size} latent "
                                         "dimensions"}])[-5:]
                healthy = False
            else:
                z = np.zeros(latent_size, np.float32)
                z[dims] = (np.asarray(values) - 0.5) * 4
                params = decode(z)
                anchor = {"name": "TWIN ANCHOR", "index": 0, "checksum": int(np.asarray(params).sum())}
        write_status(args.status, {
            "last_tick": now, "healthy": healthy, "model": meta,
            "knobs": [{"index": i, "name": KNOB_NAMES[i % len(KNOB_NAMES)], "value": round(v, 4)}
                      for i, v in enumerate(values)],
            "anchor": anchor, "midi": {"port": "twin:out (no synth)", "state": "connected"},
            "errors": errors})
        time.sleep(args.period)


if __name__ == "__main__":
    sys.exit(main())
