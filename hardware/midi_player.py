"""A MIDI controller's twin in a process of its own: it offers a virtual output port and plays what
it is told, at the times it is told, as a performer's controller would (knob sweeps, notes).

Run: ``python -m hardware.midi_player --name ctl [--api jack]``; it offers ``ctl:out`` (JACK) and
reads one JSON command per line on stdin: ``{"play": [[delay_s, "hex bytes"], ...]}`` sends each
message ``delay_s`` after the previous one (with ``"at": T``: at T + delay_s, T a time.monotonic(),
which is system-wide, so several players can keep one schedule) and answers ``{"ok": true, "sent":
[t, ...]}`` with each send's time.monotonic(); ``{"op": "quit"}`` or the end of stdin ends it. ``MidiPlayer`` is the
parent's handle; ``stop`` closes its port and ends it, as a controller pulled from USB.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from hardware.errors import HardwareError


def _serve(args: argparse.Namespace) -> int:
    from hardware.midi import RtMidiOutput

    port = RtMidiOutput("out", args.api, client_name=args.name, virtual=True)
    print(json.dumps({"ready": True, "pid": os.getpid(), "port": port.name}), flush=True)
    for line in sys.stdin:
        if not line.strip():
            continue
        req = json.loads(line)
        if req.get("op") == "quit":
            break
        sent = []
        at = req.get("at")
        for delay, data in req.get("play", []):
            wait = at + delay - time.monotonic() if at is not None else delay
            if wait > 0:
                time.sleep(wait)
            port.send(bytes.fromhex(data))
            sent.append(time.monotonic())
        print(json.dumps({"ok": True, "sent": sent}), flush=True)
    port.close()
    return 0


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m hardware.midi_player", description=__doc__.splitlines()[0])
    p.add_argument("--name", default="controller")
    p.add_argument("--api", choices=("jack", "alsa"), default="jack")
    try:
        return _serve(p.parse_args(argv))
    except HardwareError as exc:
        print(f"midi_player: error: {exc}", file=sys.stderr)
        return 1


class MidiPlayer:
    """Starts the player process and plays through it; every call has a timeout."""

    def __init__(self, name: str = "controller", api: str = "jack", timeout: float = 15.0) -> None:
        self.name, self.api, self.timeout = name, api, timeout
        self.process: subprocess.Popen[str] | None = None
        self.port = ""

    def start(self) -> MidiPlayer:
        root = str(Path(__file__).resolve().parents[1])
        env = dict(os.environ, PYTHONPATH=os.pathsep.join([root, os.environ.get("PYTHONPATH", "")]).rstrip(os.pathsep))
        self.process = subprocess.Popen([sys.executable, "-m", "hardware.midi_player", "--name", self.name,
                                         "--api", self.api], stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                        stderr=subprocess.DEVNULL, text=True, env=env)
        self.port = self._answer()["port"]
        return self

    def _answer(self) -> dict[str, Any]:
        import select

        assert self.process is not None and self.process.stdout is not None
        ready, _, _ = select.select([self.process.stdout], [], [], self.timeout)
        line = self.process.stdout.readline() if ready else ""
        if not line:
            raise HardwareError(f"MIDI player {self.name!r} did not answer (exit code {self.process.poll()})")
        return json.loads(line)

    def play(self, messages: list[tuple[float, bytes]]) -> list[float]:
        """Send each message ``delay`` seconds after the previous one; their send times."""
        self.start_play(messages)
        return self.sent()

    def start_play(self, messages: list[tuple[float, bytes]], at: float | None = None) -> None:
        """Start playing and return at once (``sent`` waits); with ``at`` (a time.monotonic()),
        each message's time is ``at`` + its offset instead of a delay after the previous one."""
        assert self.process is not None and self.process.stdin is not None
        req: dict[str, Any] = {"play": [[d, m.hex()] for d, m in messages]}
        if at is not None:
            req["at"] = at
        self.process.stdin.write(json.dumps(req) + "\n")
        self.process.stdin.flush()

    def sent(self, timeout: float | None = None) -> list[float]:
        """The send times of what ``start_play`` asked for, once it is all sent."""
        saved, self.timeout = self.timeout, timeout or self.timeout
        try:
            return self._answer()["sent"]
        finally:
            self.timeout = saved

    def kill(self) -> None:
        """The controller unplugged: the process and its port vanish at once."""
        if self.process is not None and self.process.poll() is None:
            self.process.kill()
            self.process.wait(timeout=5)

    def stop(self) -> None:
        if self.process is None or self.process.poll() is not None:
            return
        try:
            self.process.stdin.close()  # type: ignore[union-attr]
            self.process.wait(timeout=5)
        except (subprocess.TimeoutExpired, OSError):
            self.kill()


if __name__ == "__main__":
    sys.exit(main())
