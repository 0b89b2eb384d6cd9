"""The private JACK server (hardware.jack) never outlives the process that started it."""

from __future__ import annotations

import hashlib
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from hardware.errors import JackUnavailable
from hardware.jack import JackServer
from hardware.jack_probe import server_alive

pytestmark = [pytest.mark.hil, pytest.mark.timeout(60)]

ROOT = Path(__file__).resolve().parents[2]
# one name per checkout, as the suite's own server (tests/hil/conftest.py): JACK's registry holds 8
NAME = f"dxmacro-orphan-{hashlib.sha1(str(ROOT).encode()).hexdigest()[:8]}"
OWNER = """
import sys, time
from hardware.errors import JackUnavailable
from hardware.jack import JackServer
try:
    server = JackServer(sys.argv[1]).start()
except JackUnavailable as exc:
    print("unavailable", exc, flush=True)
    sys.exit(0)
print(server.pid, flush=True)
time.sleep(60)
"""


def gone(pid: int) -> bool:
    """No such process, or a zombie nobody has reaped yet (it runs nothing)."""
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return True
    return state == "Z"


def test_a_killed_owner_takes_its_jackd_with_it():
    if sys.platform != "linux":
        pytest.skip("the server dies with its owner on Linux only (prctl)")
    owner = subprocess.Popen([sys.executable, "-c", OWNER, NAME], cwd=ROOT, stdout=subprocess.PIPE, text=True)
    line = owner.stdout.readline().strip()
    if line.startswith("unavailable") or not line:
        owner.wait(timeout=10)
        pytest.skip(f"cannot run a JACK server here: {line or 'the owner printed nothing'}")
    jackd = int(line)
    assert not gone(jackd) and server_alive(NAME)
    owner.send_signal(signal.SIGKILL)  # as a killed CI run: no finally, no atexit
    owner.wait(timeout=10)
    deadline = time.monotonic() + 10
    while not gone(jackd) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert gone(jackd), f"jackd {jackd} outlived the process that started it"
    # and the name is free again: a later run starts its own server under it
    try:
        with JackServer(NAME) as again:
            assert again.running() and server_alive(NAME)
    except JackUnavailable as exc:
        pytest.fail(f"the killed owner's server name stayed taken: {exc}")
    assert os.environ.get("JACK_DEFAULT_SERVER") != NAME  # the context restored this process's env
