"""A running flash service (and optionally the stand-in control loop) for the tests."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from pathlib import Path

from device.flashing.flash_service import FlashHTTPServer
from device.flashing.flasher import FlashConfig, Flasher
from device.flashing.store import ModelStore
from tests.flash_fixtures import Bundles

TOKEN = "t0ken-for-the-flash-tests-0123456789"
REPO = Path(__file__).resolve().parents[1]


class Service:
    def __init__(self, root: Path, bundles: Bundles, *, status_file: Path | None = None, max_bytes: int = 1 << 20,
                 health_window_s: float = 3.0, stale_s: float = 1.5, usb_dir: Path | None = None,
                 read_token: str | None = None, max_connections: int | None = None) -> None:
        self.root = root
        self.bundles = bundles
        store = ModelStore.open(root / "store", bundles.verifier)
        cfg = FlashConfig(max_bytes=max_bytes, status_file=status_file, health_window_s=health_window_s,
                          stale_s=stale_s)
        self.flasher = Flasher(store, bundles.key_file, cfg, self_test=bundles.self_test)
        caps = {} if max_connections is None else {"max_connections": max_connections}
        self.server = FlashHTTPServer(("127.0.0.1", 0), self.flasher, TOKEN, usb_dir, read_token=read_token, **caps)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()

    def request(self, method: str, path: str, body: bytes | None = None, token: str | None = TOKEN,
                headers: dict | None = None) -> tuple[int, dict]:
        req = urllib.request.Request(self.url + path, data=body, method=method, headers=dict(headers or {}))
        if token is not None:
            req.add_header("Authorization", f"Bearer {token}")
        try:
            with urllib.request.urlopen(req, timeout=30) as r:
                return r.status, json.loads(r.read())
        except urllib.error.HTTPError as e:
            return e.code, json.loads(e.read())

    def upload(self, path: Path, *, token: str | None = TOKEN, query: str = "wait=1") -> tuple[int, dict]:
        return self.request("POST", f"/api/upload?{query}", Path(path).read_bytes(), token,
                            {"Content-Type": "application/octet-stream"})


class LoopTwin:
    """tests/flash_loop_twin.py in a process of its own."""

    def __init__(self, store: Path, status: Path, key_file: Path, knob_dims: str = "0,1,2,3") -> None:
        self.status = status
        env = dict(os.environ, PYTHONPATH=str(REPO))
        self.proc = subprocess.Popen([sys.executable, str(REPO / "tests" / "flash_loop_twin.py"), "--store",
                                      str(store), "--status", str(status), "--public-key", str(key_file),
                                      "--knob-dims", knob_dims], env=env)
        deadline = time.monotonic() + 20
        while not status.exists():
            if time.monotonic() > deadline or self.proc.poll() is not None:
                raise RuntimeError("the loop twin did not start")
            time.sleep(0.05)

    def close(self) -> None:
        self.proc.terminate()
        try:
            self.proc.wait(5)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()


class RealLoop:
    """The device's own control loop (``device.runtime.run_device``, simulated knobs and synth,
    real time) following the store and publishing status.json, in a thread of this process.

    Models come from the flashing tests' interim bundles through ``interim_loader``. Versions
    in ``hang_versions`` load and pass the self-test, then hang the loop on its first decode
    (a kernel that never returns): the loop stops ticking, as a stalled process would."""

    def __init__(self, store: Path, status: Path, bundles: Bundles, hang_versions: tuple[str, ...] = ()) -> None:
        from device.control.config import parse_config
        from device.runtime import run_device

        self.status = status
        self.release = threading.Event()
        self.stop = threading.Event()
        cfg = parse_config({"device": {"status_file": str(status)},
                            "model": {"decoder": "bundle", "store": str(store)},
                            "smoothing": {"takeover": "jump"}, "midi": {"profile": "dexed"}},
                           store.parent / "device.toml")
        loader = interim_loader(bundles, hang_versions, self.release)
        self.errors: list[BaseException] = []

        def run() -> None:
            try:
                run_device(cfg, simulate=True, model_loader=loader, stop=self.stop, out=open(os.devnull, "w"))
            except BaseException as exc:  # noqa: BLE001 - reported by close()
                self.errors.append(exc)

        self.thread = threading.Thread(target=run, name="real-loop", daemon=True)
        self.thread.start()
        deadline = time.monotonic() + 20
        while not status.exists():
            if time.monotonic() > deadline or not self.thread.is_alive():
                raise RuntimeError(f"the control loop did not start: {self.errors}")
            time.sleep(0.05)

    def close(self) -> None:
        self.release.set()
        self.stop.set()
        self.thread.join(10)
        if self.errors:
            raise self.errors[0]


def interim_loader(bundles: Bundles, hang_versions: tuple[str, ...] = (), release: threading.Event | None = None):
    """Model file -> decoder, for the interim bundles: the signature and hash are verified by the
    bundles' reader; the decoder is the development linear one with the manifest's latent size
    (fewer dimensions than the knobs need = a model this controller cannot play)."""
    import numpy as np

    from device.twins.linear_decoder import LinearDecoder

    class Narrow(LinearDecoder):
        def __init__(self, latent_size: int) -> None:
            super().__init__()
            self.latent_size = latent_size

        def decode(self, latent):
            z = np.zeros(8, np.float32)
            z[: self.latent_size] = np.asarray(latent, np.float32)[: self.latent_size]
            return super().decode(z)

    class Hanging(LinearDecoder):
        calls = 0

        def decode(self, latent):
            self.calls += 1
            if self.calls > 1 + len(self.anchors):  # after the self-test's probes
                release.wait()
            return super().decode(latent)

    def load(path: Path):
        m = bundles._read(path)
        size = int(m.get("latent_size", 8))
        dec = Hanging() if m["version"] in hang_versions else (LinearDecoder() if size == 8 else Narrow(size))
        dec.manifest = m
        return dec

    return load
