"""systemd's sd_notify protocol, done directly: one datagram per state to the socket
named in $NOTIFY_SOCKET ("@" = Linux abstract namespace). Fifteen lines do not justify
a dependency, and the protocol is frozen (man sd_notify).

READY=1 goes out once the decoder passed its self-test; WATCHDOG=1 only from a healthy
loop, at half of $WATCHDOG_USEC, so a hung or failing loop gets restarted by systemd.
"""

from __future__ import annotations

import os
import socket


class Notifier:
    def __init__(self, environ: dict[str, str] | None = None) -> None:
        env = os.environ if environ is None else environ
        self.address = env.get("NOTIFY_SOCKET") or None
        usec = env.get("WATCHDOG_USEC", "")
        pid = env.get("WATCHDOG_PID", "")
        mine = not pid or pid == str(os.getpid())
        self.watchdog_interval = int(usec) / 2e6 if usec.isdigit() and int(usec) > 0 and mine else None
        self._last_ping = float("-inf")
        self.sent: list[str] = []

    @property
    def enabled(self) -> bool:
        return self.address is not None

    def notify(self, state: str) -> bool:
        """Send one state line (e.g. "READY=1"); False when not under systemd or it failed."""
        if not self.address:
            return False
        addr = "\0" + self.address[1:] if self.address.startswith("@") else self.address
        try:
            with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM | socket.SOCK_CLOEXEC) as s:
                s.connect(addr)
                s.sendall(state.encode())
        except OSError:
            return False
        self.sent.append(state)
        return True

    def ready(self, status: str = "") -> bool:
        return self.notify("READY=1" + (f"\nSTATUS={status}" if status else ""))

    def watchdog(self, now: float, healthy: bool) -> bool:
        """Ping if the interval has passed and the caller is healthy."""
        if self.watchdog_interval is None or not healthy or now - self._last_ping < self.watchdog_interval:
            return False
        self._last_ping = now
        return self.notify("WATCHDOG=1")

    def stopping(self) -> bool:
        return self.notify("STOPPING=1")
