"""A private JACK server with the dummy backend, for real MIDI ports where there is no
sound card and no ALSA sequencer (CI, containers).

``jackd -n NAME -d dummy`` runs the real JACK MIDI graph with a timer in place of audio
hardware. Clients find the server through ``JACK_DEFAULT_SERVER``, which ``start``
sets for this process and its children. libjack is told never to start a server on
its own (``JACK_NO_START_SERVER``), so a dead server is an error, not a silent respawn.

The server dies with the process that started it, however that process ends (on Linux, by
``PR_SET_PDEATHSIG``): a test run or bench killed mid-way used to leave its jackd holding the
server's fixed name, and every later run then failed to start its own.
"""

from __future__ import annotations

import ctypes
import os
import shutil
import signal
import subprocess
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

from hardware.errors import JackUnavailable
from hardware.jack_probe import server_alive, server_socket
from hardware.midi import list_ports

INSTALL_HINT = "install Debian's jackd2 (apt-get install --no-install-recommends jackd2)"
_PR_SET_PDEATHSIG = 1  # linux/prctl.h


def _die_with_us() -> Callable[[], None] | None:
    """What jackd's process runs between fork and exec: ask the kernel for SIGTERM (jackd's clean
    shutdown, which unregisters its name) when the thread that started it ends, and end at once
    if that thread is already gone. None where prctl is missing (not Linux). prctl is looked up
    here, before the fork: the child of a threaded process must not load anything."""
    try:
        prctl = ctypes.CDLL(None, use_errno=True).prctl
    except (OSError, AttributeError):
        return None
    parent = os.getpid()

    def arm() -> None:
        prctl(_PR_SET_PDEATHSIG, signal.SIGTERM)
        if os.getppid() != parent:
            os._exit(1)

    return arm


class JackServer:
    """One private jackd (dummy backend) under ``name``; it lives as long as the thread that
    started it, so start it from the thread that owns the run (main thread, a pytest fixture)."""

    def __init__(self, name: str | None = None, *, rate: int = 48000, period: int = 1024) -> None:
        self.name = name or f"dxmacro-{os.getpid()}"
        self.rate, self.period = rate, period
        self.process: subprocess.Popen[bytes] | None = None
        self._log = Path(tempfile.gettempdir()) / f"jackd-{self.name}.log"
        self._saved_env: dict[str, str | None] = {}

    @property
    def pid(self) -> int | None:
        return self.process.pid if self.process else None

    def running(self) -> bool:
        return self.process is not None and self.process.poll() is None

    def log_tail(self, lines: int = 12) -> str:
        try:
            return "\n".join(self._log.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return "(no log)"

    def start(self, timeout: float = 10.0) -> JackServer:
        jackd = shutil.which("jackd")
        if jackd is None:
            raise JackUnavailable(f"jackd is not installed: {INSTALL_HINT}")
        for key, value in (("JACK_DEFAULT_SERVER", self.name), ("JACK_NO_START_SERVER", "1"),
                           ("JACK_NO_AUDIO_RESERVATION", "1")):
            self._saved_env.setdefault(key, os.environ.get(key))
            os.environ[key] = value
        # Realtime scheduling where allowed (jackd2 falls back when it is not) and 21 ms periods:
        # with --no-realtime and 5 ms periods on a busy 2-core CI box, clients missed cycles and
        # JACK then delivered one event twice and dropped the next.
        # -S (synchronous): the server waits for every client to finish its cycle (up to -t ms) instead
        # of marking it late (XRun) and dropping what it had not delivered. On a loaded CI box a
        # client's process thread was seen starved for 100 ms at a time; in async mode that lost
        # bursts of events and repeated one event dozens of times. With a timer instead of a sound
        # card nothing is lost by waiting: the graph just runs late.
        cmd = [jackd, "-n", self.name, "-S", "-t", "2000", "-d", "dummy", "-r", str(self.rate), "-p", str(self.period)]
        with open(self._log, "wb") as log:
            self.process = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                                            preexec_fn=_die_with_us())
        try:
            deadline = time.monotonic() + timeout
            while time.monotonic() < deadline:
                if not self.running():
                    raise JackUnavailable(f"jackd exited at start (code {self.process.returncode}): "
                                          f"{self.log_tail(4)}")
                if self._accepts_clients():
                    return self
                time.sleep(0.1)
            raise JackUnavailable(f"jackd did not accept clients within {timeout:.0f} s: {self.log_tail(4)}")
        except BaseException:
            self.stop()  # never leave a half-started server behind
            raise

    def _accepts_clients(self) -> bool:
        if not server_alive(self.name):
            return False
        try:
            list_ports("jack", "output", "dxmacro-jack-probe")
            return True
        except JackUnavailable:
            return False

    def kill(self) -> None:
        """SIGKILL, as a crash would: for tests of what clients do when the server dies."""
        if self.running():
            self.process.send_signal(signal.SIGKILL)
            self.process.wait(timeout=5)
            self._remove_litter()

    def _remove_litter(self) -> None:
        # A killed jackd leaves its socket and semaphores in /dev/shm; they carry our private
        # server name, so removing them touches no other server. (Its big shared-memory
        # segments are reclaimed by the next jackd that starts.)
        uid = os.getuid()
        for path in [server_socket(self.name), *Path("/dev/shm").glob(f"jack_sem.{uid}_{self.name}_*")]:
            try:
                path.unlink()
            except OSError:
                pass

    def stop(self) -> None:
        if self.running():
            self.process.terminate()
            try:
                self.process.wait(timeout=5)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(timeout=5)
        self._remove_litter()  # clients that outlive the server leave their semaphores behind

    def restore_env(self) -> None:
        for key, value in self._saved_env.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value
        self._saved_env.clear()

    def __enter__(self) -> JackServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()
        self.restore_env()
