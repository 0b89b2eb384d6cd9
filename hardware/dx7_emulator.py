"""An emulated DX7 on a real MIDI port, in its own process.

It does what a DX7 does with what arrives on its MIDI IN, at the level of the bytes:

* keeps an edit buffer; a single-voice dump or a voice parameter change addressed to
  its channel (sysex sub-status channel n = channel - 1) changes it, anything for
  another channel is ignored; parameter 155 sets the operator on/off mask;
* a 32-voice bulk dump for its channel goes into internal memory (refused while
  MEMORY PROTECT is on); program change 0..31 copies an internal voice into the buffer;
* with SYS INFO UNAVAIL it ignores all system exclusive, as the DX7 does;
* answers a dump request with a single-voice dump of the edit buffer (format 0) or a
  bulk dump of its memory (format 9). (The original DX7 transmits only on a front-panel
  action; answering requests is what the TX7 and DX7II do and what our tests need);
* records (arrival time, bytes, what it did) for every message. JACK delivers an event
  whole, so all bytes of a message share its arrival time (``time.monotonic``, which
  is system-wide on Linux, so the test process can compare against its send times).

It makes no sound: what it holds is read back (``state``, ``internal``) and rendered by
whoever asks (the HIL audio check renders it with the renderer ``dxmacro hil`` passes in).

Run: ``python -m hardware.dx7_emulator --name dx7 --channel 1 [--sys-info off]``. It
offers ``NAME:midi_in`` and ``NAME:midi_out`` and takes JSON commands, one per line, on
stdin (state, log, internal, set, unplug, quit), answering one JSON line each on
stdout; end of stdin ends it. ``DX7Emulator`` is the parent-side handle.
"""

from __future__ import annotations

import argparse
import json
import os
import queue
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from dx7 import DX7Error, Voice
from dx7.sysex import (
    DUMP_BANK,
    OP_SWITCH_PARAM,
    BulkDump,
    DumpRequest,
    OtherSysex,
    ParameterChange,
    SingleVoice,
    parse_message,
)
from hardware.errors import HardwareError

ALL_OPS = 0x3F


class DX7State:
    """The synth's memory and its MIDI receive rules, without any port (testable alone)."""

    def __init__(self, channel: int = 1, *, sys_info: bool = True, memory_protect: bool = False) -> None:
        if not 1 <= channel <= 16:
            raise HardwareError(f"MIDI channel must be 1..16, got {channel}")
        self.channel = channel
        self.sys_info = sys_info
        self.memory_protect = memory_protect
        self.edit_buffer = Voice.init()
        self.op_mask = ALL_OPS
        self.internal: list[Voice] = [Voice.init()] * 32
        self.program = 0
        self.notes: set[int] = set()
        self.log: list[tuple[float, bytes, str]] = []
        self.lock = threading.Lock()

    @property
    def n(self) -> int:
        return self.channel - 1

    def receive(self, data: bytes, t: float) -> list[bytes]:
        """Apply one message; returns the replies to transmit."""
        with self.lock:
            verdict, replies = self._apply(data)
            self.log.append((t, data, verdict))
            return replies

    def _apply(self, data: bytes) -> tuple[str, list[bytes]]:
        status = data[0]
        if status == 0xF0:
            return self._sysex(data)
        kind, ch = status & 0xF0, status & 0x0F
        if ch != self.n:
            return "ignored: other channel", []
        if kind == 0x90 and len(data) == 3 and data[2] > 0:
            self.notes.add(data[1])
            return "note on", []
        if kind in (0x80, 0x90) and len(data) == 3:
            self.notes.discard(data[1])
            return "note off", []
        if kind == 0xC0 and len(data) == 2:
            if data[1] < 32:
                self.program = data[1]
                self.edit_buffer = self.internal[data[1]]
                self.op_mask = ALL_OPS
                return f"program {data[1] + 1}", []
            return "ignored: program beyond 32", []
        return "ignored: not handled", []

    def _sysex(self, data: bytes) -> tuple[str, list[bytes]]:
        if not self.sys_info:
            return "ignored: SYS INFO UNAVAIL", []
        try:
            msg = parse_message(data)
        except DX7Error as exc:
            return f"rejected: {exc}", []
        if isinstance(msg, OtherSysex):
            return "ignored: not DX7 voice data", []
        if msg.channel != self.n:
            return "ignored: other channel", []
        if isinstance(msg, SingleVoice):
            self.edit_buffer = msg.voice()
            return "voice loaded", []
        if isinstance(msg, ParameterChange):
            if msg.parameter == OP_SWITCH_PARAM:
                self.op_mask = msg.value
            else:
                self.edit_buffer = self.edit_buffer.replace({msg.parameter: msg.value})
            return f"parameter {msg.parameter} = {msg.value}", []
        if isinstance(msg, BulkDump):
            if self.memory_protect:
                return "ignored: MEMORY PROTECT on", []
            self.internal = msg.voices()
            return "bank loaded", []
        if isinstance(msg, DumpRequest):
            if msg.format == DUMP_BANK:
                return "bank dump sent", [BulkDump.of(self.internal, self.n).encode()]
            return "voice dump sent", [SingleVoice.of(self.edit_buffer, self.n).encode()]
        return "ignored", []  # pragma: no cover - every Message kind is handled above


# -- the process ----------------------------------------------------------------------------
class _Ports:
    """The emulator's two virtual ports, closable and reopenable (to play an unplugged synth)."""

    def __init__(self, name: str, api: str, state: DX7State) -> None:
        self.name, self.api, self.state = name, api, state
        self.inp = self.out = None
        self.lock = threading.Lock()

    def open(self) -> None:
        from hardware.midi import RtMidiInput, RtMidiOutput

        self.out = RtMidiOutput("midi_out", self.api, client_name=f"{self.name}-out", virtual=True)
        self.inp = RtMidiInput("midi_in", self.api, client_name=self.name, virtual=True)
        threading.Thread(target=self._serve_midi, args=(self.inp,), daemon=True).start()

    def _serve_midi(self, inp: Any) -> None:
        """Apply what arrives and answer, off JACK's thread, until this input is closed."""
        while not inp.closed:
            try:
                got = inp.receive(timeout=0.2)
            except Exception:  # noqa: BLE001 - the port closed under us (unplug) or JACK died
                return
            if got is None:
                continue
            replies = self.state.receive(got[1], got[0])
            with self.lock:
                for reply in replies:
                    if self.out is not None:
                        self.out.send(reply)

    def close(self) -> None:
        with self.lock:
            for port in (self.inp, self.out):
                if port is not None:
                    port.close()
            self.inp = self.out = None


def _voice_json(voice: Voice) -> dict[str, Any]:
    return {"name": voice.name, "unpacked": voice.to_unpacked().hex()}


def _serve(args: argparse.Namespace) -> int:
    state = DX7State(args.channel, sys_info=args.sys_info == "on", memory_protect=args.memory_protect == "on")
    ports = _Ports(args.name, args.api, state)
    ports.open()
    out = sys.stdout

    def reply(obj: dict[str, Any]) -> None:
        out.write(json.dumps(obj) + "\n")
        out.flush()

    reply({"ready": True, "pid": os.getpid(), "in": ports.inp.name, "out": ports.out.name})
    back_at: list[float] = []
    for line in sys.stdin:
        if not line.strip():
            continue
        req: dict[str, Any] = {}
        try:
            req = json.loads(line)
            op = req.get("op")
            res: dict[str, Any] = {"id": req.get("id"), "ok": True}
            with state.lock:
                if op == "state":
                    res.update(channel=state.channel, sys_info=state.sys_info, op_mask=state.op_mask,
                               program=state.program, notes=sorted(state.notes), voice=_voice_json(state.edit_buffer),
                               ports_back_at=back_at[-1] if back_at else None)
                elif op == "log":
                    start = int(req.get("since", 0))
                    res["log"] = [[t, d.hex(), v] for t, d, v in state.log[start:]]
                elif op == "internal":
                    res["voices"] = [_voice_json(v) for v in state.internal]
                elif op == "set":
                    if "sys_info" in req:
                        state.sys_info = bool(req["sys_info"])
                    if "memory_protect" in req:
                        state.memory_protect = bool(req["memory_protect"])
                elif op not in ("unplug", "quit"):
                    raise HardwareError(f"unknown command {op!r}")
            if op == "unplug":
                ports.close()
                res["closed_at"] = time.monotonic()
                seconds = float(req.get("seconds", 1.0))

                def replug() -> None:
                    time.sleep(seconds)
                    ports.open()
                    back_at.append(time.monotonic())

                threading.Thread(target=replug, daemon=True).start()
            elif op == "quit":
                reply(res)
                break
            reply(res)
        except Exception as exc:  # noqa: BLE001 - the control channel reports every failure as one line
            reply({"id": req.get("id") if isinstance(req, dict) else None, "ok": False,
                   "error": f"{type(exc).__name__}: {exc}"})
    ports.close()
    return 0


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m hardware.dx7_emulator", description=__doc__.splitlines()[0])
    p.add_argument("--name", "--port", default="dx7", help="client name; ports NAME:midi_in and NAME:midi_out")
    p.add_argument("--channel", type=int, default=1, help="receive channel 1..16")
    p.add_argument("--sys-info", choices=("on", "off"), default="on")
    p.add_argument("--memory-protect", choices=("on", "off"), default="off")
    p.add_argument("--api", choices=("jack", "alsa"), default="jack")
    args = p.parse_args(argv)
    try:
        return _serve(args)
    except HardwareError as exc:
        print(f"dx7_emulator: error: {exc}", file=sys.stderr)
        return 1


# -- the parent's handle ------------------------------------------------------------------------
@dataclass(frozen=True)
class Arrival:
    time: float
    data: bytes
    verdict: str

    def byte_times(self) -> list[float]:
        """Arrival time of each byte (one JACK event: all at once)."""
        return [self.time] * len(self.data)


class DX7Emulator:
    """Starts the emulator process and talks to it. Every call has a timeout: a dead or
    stuck emulator is an error, never a hang."""

    def __init__(self, name: str = "dx7emu", channel: int = 1, *, sys_info: bool = True,
                 memory_protect: bool = False, api: str = "jack", timeout: float = 15.0) -> None:
        self.name, self.channel, self.api, self.timeout = name, channel, api, timeout
        self._args = ["--name", name, "--channel", str(channel), "--sys-info", "on" if sys_info else "off",
                      "--memory-protect", "on" if memory_protect else "off", "--api", api]
        self.process: subprocess.Popen[str] | None = None
        self._lines: queue.Queue[str | None] = queue.Queue()
        self._next_id = 0
        self.input_port = self.output_port = ""
        self.pid: int | None = None
        self._stderr: Any = None

    def start(self) -> DX7Emulator:
        root = str(Path(__file__).resolve().parents[1])
        env = dict(os.environ, PYTHONPATH=os.pathsep.join([root, os.environ.get("PYTHONPATH", "")]).rstrip(os.pathsep))
        # stderr to a file, not a pipe: libjack chatters there, and a full pipe would block the emulator
        self._stderr = tempfile.TemporaryFile(mode="w+")
        self.process = subprocess.Popen([sys.executable, "-m", "hardware.dx7_emulator", *self._args],
                                        stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=self._stderr,
                                        text=True, env=env)
        threading.Thread(target=self._read, daemon=True).start()
        ready = self._next_line(self.timeout, "start")
        self.pid = ready["pid"]
        self.input_port, self.output_port = ready["in"], ready["out"]
        return self

    def _read(self) -> None:
        assert self.process and self.process.stdout
        for line in self.process.stdout:
            self._lines.put(line)
        self._lines.put(None)

    def _next_line(self, timeout: float, what: str) -> dict[str, Any]:
        try:
            line = self._lines.get(timeout=timeout)
        except queue.Empty:
            raise HardwareError(f"emulated DX7 {self.name!r} did not answer {what!r} within {timeout:.0f} s") from None
        if line is None:
            err = self.stderr_text()
            tail = " | ".join(err.strip().splitlines()[-3:])
            raise HardwareError(f"emulated DX7 {self.name!r} exited ({what}): {tail or 'no message'}")
        return json.loads(line)

    def stderr_text(self) -> str:
        if self._stderr is None:
            return ""
        self._stderr.seek(0)
        return self._stderr.read()

    def call(self, op: str, timeout: float | None = None, **kw: Any) -> dict[str, Any]:
        if self.process is None or self.process.poll() is not None:
            raise HardwareError(f"emulated DX7 {self.name!r} is not running")
        self._next_id += 1
        try:
            self.process.stdin.write(json.dumps({"op": op, "id": self._next_id, **kw}) + "\n")
            self.process.stdin.flush()
        except BrokenPipeError:
            raise HardwareError(f"emulated DX7 {self.name!r} is not running") from None
        res = self._next_line(timeout or self.timeout, op)
        if not res.get("ok"):
            raise HardwareError(f"emulated DX7 {self.name!r}: {op}: {res.get('error')}")
        return res

    def state(self) -> dict[str, Any]:
        return self.call("state")

    def edit_buffer(self) -> Voice:
        return Voice.from_unpacked(bytes.fromhex(self.state()["voice"]["unpacked"]))

    def internal(self) -> list[Voice]:
        return [Voice.from_unpacked(bytes.fromhex(v["unpacked"])) for v in self.call("internal")["voices"]]

    def log(self, since: int = 0) -> list[Arrival]:
        return [Arrival(t, bytes.fromhex(h), v) for t, h, v in self.call("log", since=since)["log"]]

    def set(self, **kw: bool) -> None:
        self.call("set", **kw)

    def unplug(self, seconds: float) -> float:
        """Close its ports now and reopen them after ``seconds``; returns the close time."""
        return self.call("unplug", seconds=seconds)["closed_at"]

    def stop(self) -> None:
        if self.process is None:
            return
        if self.process.poll() is None:
            try:
                self.process.stdin.close()  # end of stdin ends it
                self.process.wait(timeout=5)
            except (subprocess.TimeoutExpired, BrokenPipeError, OSError):
                self.process.kill()
                self.process.wait(timeout=5)
        if self.process.stdout:
            self.process.stdout.close()

    def kill(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.kill()
            self.process.wait(timeout=5)

    def __enter__(self) -> DX7Emulator:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()


if __name__ == "__main__":
    sys.exit(main())
