"""MIDI ports as one small interface with backends: rtmidi (JACK in CI, ALSA on the Pi),
a DIN output on the UART, and an in-memory sink that records what was sent and when.

Why python-rtmidi underneath rather than mido's port layer: we need the JACK/ALSA API
choice, our own client names, port listing on the same client (to notice a port that
vanished without opening probe clients every poll) and a receive with a timeout; mido's
rtmidi backend hides the first three. mido supplies the message values: ``send`` takes
raw bytes or a ``mido.Message``.

A vanished port raises ``PortGone``. ``ReopeningOutput`` turns that into a state: it
watches port names and reopens the port once it is back (within ``poll_interval``).
"""

from __future__ import annotations

import os
import queue
import threading
import time
from collections.abc import Callable, Sequence
from typing import Any, Protocol, runtime_checkable

from hardware.clock import Clock, RealClock
from hardware.errors import HardwareError, JackUnavailable, PortGone
from hardware.jack_probe import server_alive

MidiData = bytes | bytearray | Sequence[int] | Any  # Any: a mido.Message (has .bytes())
APIS = ("jack", "alsa")
LIVENESS_CHECK_S = 0.25
SEND_CHECK_S = 0.1
CONNECT_SETTLE_S = 0.05


def to_bytes(msg: MidiData) -> bytes:
    if hasattr(msg, "bytes") and callable(msg.bytes):
        return bytes(msg.bytes())
    data = bytes(msg)
    if not data or data[0] < 0x80:
        raise HardwareError(f"a MIDI message starts with a status byte, got {data[:4].hex(' ') or 'nothing'}")
    return data


@runtime_checkable
class MidiOutput(Protocol):
    name: str

    def send(self, msg: MidiData) -> None:
        """Send one complete message; raises PortGone when the port is not there."""
        ...

    def close(self) -> None: ...


@runtime_checkable
class MidiInput(Protocol):
    name: str

    def receive(self, timeout: float) -> tuple[float, bytes] | None:
        """The next message as (monotonic arrival time, bytes), or None after ``timeout``."""
        ...

    def close(self) -> None: ...


# -- in memory ---------------------------------------------------------------------------
class MemorySink:
    """An output that keeps (time, bytes) for every message. ``connected = False`` makes it
    behave like an unplugged port (send raises PortGone), for tests of reopen logic."""

    def __init__(self, name: str = "memory", clock: Clock | None = None) -> None:
        self.name = name
        self.clock = clock or RealClock()
        self.records: list[tuple[float, bytes]] = []
        self.connected = True
        self.closed = False
        self._lock = threading.Lock()

    def send(self, msg: MidiData) -> None:
        if self.closed:
            raise HardwareError(f"MIDI port {self.name!r} is closed")
        if not self.connected:
            raise PortGone(f"MIDI port {self.name!r} is gone")
        data = to_bytes(msg)
        with self._lock:
            self.records.append((self.clock.now(), data))

    def alive(self) -> bool:
        return self.connected

    def messages(self) -> list[bytes]:
        with self._lock:
            return [m for _, m in self.records]

    def clear(self) -> None:
        with self._lock:
            self.records.clear()

    def close(self) -> None:
        self.closed = True


# -- rtmidi (JACK / ALSA) -----------------------------------------------------------------
def _rtmidi():
    try:
        import rtmidi
    except ImportError as exc:  # pragma: no cover - depends on the install
        raise HardwareError("MIDI ports need python-rtmidi: pip install 'dxmacro[device]'") from exc
    return rtmidi


def _api_id(api: str) -> int:
    rtmidi = _rtmidi()
    ids = {"jack": rtmidi.API_UNIX_JACK, "alsa": rtmidi.API_LINUX_ALSA}
    if api not in ids:
        raise HardwareError(f"MIDI API must be one of {', '.join(APIS)}, got {api!r}")
    if ids[api] not in rtmidi.get_compiled_api():
        raise HardwareError(f"this python-rtmidi was built without the {api.upper()} API")
    if api == "jack":
        # Never let libjack start a server behind our back: a hidden server would hide a dead one.
        os.environ.setdefault("JACK_NO_START_SERVER", "1")
    return ids[api]


def _client(kind: str, api: str, client_name: str):
    rtmidi = _rtmidi()
    cls = rtmidi.MidiOut if kind == "output" else rtmidi.MidiIn
    try:
        return cls(_api_id(api), name=client_name)
    except rtmidi.RtMidiError as exc:  # "JACK server not running?" / ALSA open failure
        if api == "jack":
            server = os.environ.get("JACK_DEFAULT_SERVER", "default")
            raise JackUnavailable(f"cannot reach the JACK server {server!r}: {exc}") from None
        raise HardwareError(f"cannot open the {api.upper()} MIDI system: {exc}") from None


def match_port(names: Sequence[str], wanted: str) -> int | None:
    """Index of the port called ``wanted``: exact name, else the first name starting with it,
    else the first containing it (ALSA names carry client:port numbers that change on replug)."""
    for test in (lambda n: n == wanted, lambda n: n.startswith(wanted), lambda n: wanted in n):
        for i, name in enumerate(names):
            if test(name):
                return i
    return None


def list_ports(api: str = "jack", kind: str = "output", client_name: str = "dxmacro-probe") -> list[str]:
    """Names of the ports one can send to (kind="output") or receive from (kind="input")."""
    probe = _client(kind, api, client_name)
    try:
        return list(probe.get_ports())
    finally:
        probe.delete()


class _RtPort:
    def __init__(self, kind: str, port: str, api: str, client_name: str, virtual: bool) -> None:
        self.wanted, self.api, self.virtual = port, api, virtual
        self._checked_at = 0.0
        self._rt = _client(kind, api, client_name)
        self.closed = False
        try:
            if virtual:
                self._rt.open_virtual_port(port)
                self.name = f"{client_name}:{port}" if api == "jack" else port
            else:
                names = self._rt.get_ports()
                index = match_port(names, port)
                if index is None:
                    raise PortGone(f"no MIDI port {port!r} ({api.upper()} has: {', '.join(names) or 'none'})")
                self._rt.open_port(index, "out" if kind == "output" else "in")
                self.name = names[index]
                if api == "jack":
                    # A JACK connection takes effect a cycle or two later; events sent meanwhile were
                    # seen duplicated or lost (jackd2 1.9.21, dummy backend). Let it settle.
                    time.sleep(CONNECT_SETTLE_S)
        except BaseException:
            self._rt.delete()
            raise

    def alive(self) -> bool:
        """Whether the far end is still there. An rtmidi client of a dead JACK server lists no
        ports, so a server that died reads as gone too. A yes is remembered (``_checked_at``):
        a watcher that asks often keeps the check out of ``send``."""
        if self.closed:
            return False
        if self.api == "jack" and server_alive() is False:
            return False
        ok = self.virtual or match_port(self._rt.get_ports(), self.wanted) is not None
        if ok:
            self._checked_at = time.monotonic()
        return ok

    def close(self) -> None:
        if not self.closed:
            self.closed = True
            try:
                self._rt.close_port()
            finally:
                self._rt.delete()


class RtMidiOutput(_RtPort):
    """Send to an existing port (``virtual=False``: Dexed, a USB synth, the emulated DX7) or
    offer a port others connect to (``virtual=True``)."""

    def __init__(self, port: str, api: str = "jack", client_name: str = "dxmacro", virtual: bool = False) -> None:
        super().__init__("output", port, api, client_name, virtual)
        self.check_s = SEND_CHECK_S

    def send(self, msg: MidiData) -> None:
        """Raises PortGone when the far end or the JACK server is gone: rtmidi itself would
        accept the bytes and drop them. Checked here only when no ``alive()`` said yes in the
        last ``check_s`` (0.1 s; a check costs ~0.5 ms, up to tens of ms on a busy box: a port
        that ``ReopeningOutput`` watches is checked by its watcher, and here only when the
        watcher is three intervals late, so a knob's bytes do not wait for a check)."""
        if self.closed:
            raise HardwareError(f"MIDI port {self.name!r} is closed")
        data = to_bytes(msg)
        now = time.monotonic()
        if now - self._checked_at > self.check_s:
            if not self.alive():
                raise PortGone(f"MIDI port {self.name!r} is gone (unplugged, or its JACK server died)")
            self._checked_at = now
        try:
            self._rt.send_message(data)
        except (_rtmidi().RtMidiError, ValueError) as exc:
            raise PortGone(f"MIDI port {self.name!r}: send failed ({exc})") from None


class RtMidiInput(_RtPort):
    """Receive from an existing port, or offer one. Sysex is passed through (rtmidi drops it
    by default); timing clock and active sensing are dropped.

    No Python runs in JACK's process thread: a Python callback there must take the GIL and
    can make the client miss its cycle, after which JACK was seen delivering one event
    twice and dropping the next. rtmidi queues in C instead, and Python polls that queue:

    * ``threaded=True`` (the default): a reader thread polls every ``POLL_S`` (1 ms) and
      queues; ``receive`` waits on that queue.
    * ``threaded=False``: no thread; whoever calls ``wait``, ``drain`` or ``receive`` polls
      rtmidi itself, every ``WAIT_POLL_S`` (0.25 ms) while it waits. The device's loop reads
      its controller this way: a CC handed from a reader thread to the loop waited for a
      wake-up and then for the GIL, which a thread polling every 0.25 ms kept taking (0.4 ms
      more at the median, 4-5 ms at the tail: CPython's 5-ms switch interval).

    Arrival times come from rtmidi's own inter-message deltas (measured in the JACK thread),
    anchored to the poll before the one that found the first of a burst: a message is never
    stamped later than it came, so the time it waited for the poll is counted."""

    POLL_S = 0.001
    WAIT_POLL_S = 0.00025

    def __init__(self, port: str, api: str = "jack", client_name: str = "dxmacro-in", virtual: bool = False,
                 clock: Clock | None = None, *, threaded: bool = True) -> None:
        self.clock = clock or RealClock()
        self.threaded = threaded
        self._queue: queue.Queue[tuple[float, bytes]] = queue.Queue()
        self.arrived = threading.Event()  # set when the reader thread queued a message
        self._rt_lock = threading.Lock()  # threaded=False: a watcher may close while the owner polls
        self._last_poll = self.clock.now()
        self._last_arrival: float | None = None
        super().__init__("input", port, api, client_name, virtual)
        self._rt.ignore_types(sysex=False, timing=True, active_sense=True)
        self._stop = threading.Event()
        self._reader: threading.Thread | None = None
        if threaded:
            self._reader = threading.Thread(target=self._read, name=f"midi-in:{self.name}", daemon=True)
            self._reader.start()

    def _collect(self) -> bool:
        """Move what rtmidi holds into the queue, stamped; True when anything came. One thread
        at a time: the reader thread, or the owner when not threaded."""
        came = False
        while True:
            got = self._rt.get_message()
            now = self.clock.now()
            if got is None:
                self._last_arrival = None
                self._last_poll = now
                return came
            data, delta = got
            if self._last_arrival is None:  # first of a burst: it came after the previous empty poll
                arrival = max(self._last_poll, now - delta) if delta > 0 else now
            else:
                arrival = min(self._last_arrival + delta, now)
            self._last_arrival = arrival
            self._queue.put((arrival, bytes(data)))
            came = True

    def _collect_owned(self) -> bool:
        if self.threaded:
            return False
        with self._rt_lock:
            return not self.closed and self._collect()

    def _read(self) -> None:
        while not self._stop.is_set():
            if self._collect():
                self.arrived.set()
            else:
                time.sleep(self.POLL_S)

    def close(self) -> None:
        self._stop.set()
        if self._reader is not None and self._reader.is_alive() and self._reader is not threading.current_thread():
            self._reader.join(timeout=1)
        with self._rt_lock:
            super().close()

    def wait(self, timeout: float) -> bool:
        """Block until a message is there or ``timeout`` passes; True when one is."""
        if self.threaded:
            got = self.arrived.wait(max(0.0, timeout))
            self.arrived.clear()  # before the caller drains: nothing queued after this is missed
            return got or not self._queue.empty()
        end = self.clock.now() + timeout
        while True:
            if not self._queue.empty() or self._collect_owned():
                return True
            left = end - self.clock.now()
            if left <= 0 or self.closed:
                return False
            time.sleep(min(self.WAIT_POLL_S, left))

    def receive(self, timeout: float) -> tuple[float, bytes] | None:
        """Waits at most ``timeout`` seconds; checks every 0.25 s that the source is still
        there, so a vanished port or a dead JACK server fails fast instead of waiting out
        the timeout."""
        deadline = self.clock.now() + timeout
        while True:
            left = deadline - self.clock.now()
            if left <= 0:
                return None
            if not self.threaded:
                self.wait(min(left, LIVENESS_CHECK_S))
            try:
                if self.threaded:
                    return self._queue.get(timeout=min(left, LIVENESS_CHECK_S))
                return self._queue.get_nowait()
            except queue.Empty:
                if not self.alive():
                    raise PortGone(f"MIDI port {self.name!r} is gone (unplugged, or its JACK server died)") from None

    def drain(self) -> list[tuple[float, bytes]]:
        """Everything that came, oldest first, with its arrival stamp; never blocks."""
        self._collect_owned()
        out = []
        while True:
            try:
                out.append(self._queue.get_nowait())
            except queue.Empty:
                return out


# -- DIN out on the UART --------------------------------------------------------------------
class SerialDinOutput:
    """MIDI on a 5-pin DIN socket driven by the Pi's UART TX (see hardware/README.md for the
    circuit). 31250 baud 8N1; pyserial sets that custom rate directly on Linux. With
    ``dtoverlay=midi-uart0`` instead, the UART clock is scaled so that a requested 38400
    gives 31250 on the wire: pass ``baudrate=38400`` then. ``url`` may be any pyserial URL
    (``loop://`` in tests)."""

    def __init__(self, url: str = "/dev/serial0", baudrate: int = 31250) -> None:
        try:
            import serial
        except ImportError as exc:  # pragma: no cover - depends on the install
            raise HardwareError("DIN MIDI needs pyserial: pip install 'dxmacro[device]'") from exc
        self.name = url
        try:
            self._serial = serial.serial_for_url(url, baudrate=baudrate, bytesize=8, parity="N", stopbits=1,
                                                 timeout=0, write_timeout=1.0)
        except (serial.SerialException, OSError) as exc:
            raise PortGone(f"cannot open UART {url} for DIN MIDI: {exc}") from None
        self._error = serial.SerialException

    @property
    def serial(self) -> Any:
        return self._serial

    def send(self, msg: MidiData) -> None:
        data = to_bytes(msg)
        try:
            self._serial.write(data)
        except (self._error, OSError) as exc:
            raise PortGone(f"UART {self.name}: write failed ({exc})") from None

    def alive(self) -> bool:
        return bool(self._serial.is_open)

    def close(self) -> None:
        self._serial.close()


# -- reopening --------------------------------------------------------------------------------
class ReopeningOutput:
    """An output that survives its port going away: ``send`` raises PortGone while it is
    gone, and ``check`` (called by the watcher thread every ``poll_interval``, or by a
    control loop) notices a vanished port and reopens it once its name is back."""

    def __init__(self, opener: Callable[[], Any], name: str, *, poll_interval: float = 0.2,
                 clock: Clock | None = None) -> None:
        self.opener, self.name, self.poll_interval = opener, name, poll_interval
        self.clock = clock or RealClock()
        self._port: Any = None
        self._lock = threading.RLock()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self.reopened_at: float | None = None
        self.gone_since: float | None = None
        self.opens = 0
        self.last_error: str | None = None
        self.check()

    @property
    def connected(self) -> bool:
        return self._port is not None

    def _drop(self, why: str) -> None:
        port, self._port = self._port, None
        self.last_error = why
        if self.gone_since is None:
            self.gone_since = self.clock.now()
        if port is not None:
            try:
                port.close()
            except Exception:  # noqa: BLE001 - closing a dead port may fail any way it likes
                pass

    def check(self) -> bool:
        """Bring the state up to date; True when the port is open.

        A JACK port is checked without the lock: libjack is thread-safe, and the check (a
        connect to the server, the port list) took 0.5 ms at the median and 3-50 ms at the tail
        on a busy box, which a send waiting on the lock paid. ALSA's sequencer handle is not
        to be used from two threads at once: checked under the lock."""
        with self._lock:
            port = self._port
        if port is not None and getattr(port, "api", None) == "jack":
            ok = self._alive(port)
            with self._lock:
                if not ok and self._port is port:
                    self._drop(f"MIDI port {self.name!r} vanished")
            return ok
        with self._lock:
            if self._port is not None:
                ok = self._alive(self._port)
                if not ok:
                    self._drop(f"MIDI port {self.name!r} vanished")
                return ok
            try:
                self._port = self.opener()
            except HardwareError as exc:
                self.last_error = str(exc)
                return False
            self.opens += 1
            self._watched(self._port)
            if self.gone_since is not None or self.opens > 1:
                self.reopened_at = self.clock.now()
            self.gone_since = None
            return True

    def _alive(self, port: Any) -> bool:
        try:
            return bool(port.alive())
        except HardwareError as exc:
            self.last_error = str(exc)
            return False

    def _watched(self, port: Any) -> None:
        """A port this watcher checks needs no check of its own before each send (unless the
        watcher is late: three of its intervals)."""
        if self._thread is not None and hasattr(port, "check_s"):
            port.check_s = max(port.check_s, 3 * self.poll_interval)

    def send(self, msg: MidiData) -> None:
        with self._lock:
            if self._port is None:
                raise PortGone(f"MIDI port {self.name!r} is gone ({self.last_error})")
            try:
                self._port.send(msg)
            except PortGone as exc:
                self._drop(str(exc))
                raise

    def start(self) -> ReopeningOutput:
        """Watch in a daemon thread (the Pi's control loop may call ``check`` itself instead)."""
        if self._thread is None:
            self._stop.clear()
            self._thread = threading.Thread(target=self._watch, name=f"midi-watch:{self.name}", daemon=True)
            self._thread.start()
            with self._lock:
                self._watched(self._port)
        return self

    def _watch(self) -> None:
        while not self._stop.wait(self.poll_interval):
            self.check()

    def close(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=2)
            self._thread = None
        with self._lock:
            if self._port is not None:
                self._port.close()
                self._port = None
