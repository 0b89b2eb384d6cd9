"""Real MIDI ports: a private JACK server (dummy backend) for the session, and a check
after every test that it is still alive, so a server that dies mid-suite fails the test
it died in, loudly, instead of turning later tests into hangs or silent passes."""

from __future__ import annotations

import hashlib
from pathlib import Path

import pytest

from hardware.errors import HardwareError, JackUnavailable
from hardware.jack import JackServer


@pytest.fixture(scope="session")
def jack_server():
    try:
        import rtmidi
    except ImportError:
        pytest.skip("python-rtmidi is not installed (pip install 'dxmacro[device]')")
    if rtmidi.API_UNIX_JACK not in rtmidi.get_compiled_api():
        pytest.skip("this python-rtmidi was built without the JACK API")
    # One name per checkout, not per run: JACK keeps at most 8 servers in its shm registry and
    # reclaims a killed server's entry only for a server of the same name, so per-run names
    # filled the registry ("Too many servers already active") after a few runs with kill tests.
    server = JackServer(f"dxmacro-test-{hashlib.sha1(str(Path(__file__).resolve()).encode()).hexdigest()[:8]}")
    try:
        server.start()
    except JackUnavailable as exc:
        pytest.skip(f"cannot run real MIDI ports: {exc}")
    yield server
    if not server.running():  # killed by the last test: start it once more so a clean stop unregisters it
        try:
            server.start()
        except JackUnavailable:
            pass
    server.stop()
    server.restore_env()


@pytest.fixture
def jack(jack_server: JackServer):
    """The running server. A test that kills it on purpose sets ``expected_death``."""
    if not jack_server.running():  # an earlier test killed it on purpose
        try:
            jack_server.start()
        except JackUnavailable as exc:
            pytest.fail(f"could not restart jackd: {exc}")
    jack_server.expected_death = False
    yield jack_server
    if not jack_server.running() and not jack_server.expected_death:
        pytest.fail(f"jackd (pid {jack_server.pid}) died during the test; its log ends:\n{jack_server.log_tail()}")


@pytest.fixture
def emulator_factory(jack):
    from hardware.dx7_emulator import DX7Emulator

    started: list[DX7Emulator] = []

    def make(channel: int = 1, **kw) -> DX7Emulator:
        emu = DX7Emulator(f"dx7emu{len(started)}", channel, **kw)
        started.append(emu)
        try:
            return emu.start()
        except HardwareError as exc:
            pytest.fail(f"emulated DX7 did not start: {exc}")

    yield make
    for emu in started:
        emu.stop()
