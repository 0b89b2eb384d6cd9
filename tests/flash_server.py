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

from device.flash_service import FlashHTTPServer
from device.flasher import FlashConfig, Flasher
from device.store import ModelStore
from tests.flash_fixtures import Bundles

TOKEN = "t0ken-for-the-flash-tests-0123456789"
REPO = Path(__file__).resolve().parents[1]


class Service:
    def __init__(self, root: Path, bundles: Bundles, *, status_file: Path | None = None, max_bytes: int = 1 << 20,
                 health_window_s: float = 3.0, stale_s: float = 1.5, usb_dir: Path | None = None) -> None:
        self.root = root
        self.bundles = bundles
        store = ModelStore.open(root / "store", bundles.verifier)
        cfg = FlashConfig(max_bytes=max_bytes, status_file=status_file, health_window_s=health_window_s,
                          stale_s=stale_s)
        self.flasher = Flasher(store, bundles.key_file, cfg, self_test=bundles.self_test)
        self.server = FlashHTTPServer(("127.0.0.1", 0), self.flasher, TOKEN, usb_dir)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        self.thread = threading.Thread(target=self.server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
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
