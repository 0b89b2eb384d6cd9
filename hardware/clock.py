"""Time as a parameter: the real monotonic clock on the Pi, a simulated one in tests.

Why: "ten simulated minutes with knobs untouched" must run in seconds, and the ADC
emulation must honour conversion times on whatever clock the driver uses. Everything
in hardware/ that waits or timestamps takes a ``Clock``.
"""

from __future__ import annotations

import threading
import time
from typing import Protocol, runtime_checkable


@runtime_checkable
class Clock(Protocol):
    def now(self) -> float:
        """Seconds on a monotonic scale (origin arbitrary)."""
        ...

    def sleep(self, seconds: float) -> None:
        """Let ``seconds`` pass on this clock."""
        ...

    def sleep_until(self, t: float) -> None:
        """Let time pass until ``t`` (no-op when it has): the control loop's deadline schedule."""
        ...


class RealClock:
    """``time.monotonic``: system-wide on Linux, so two processes can compare stamps.

    ``spin_s`` trades CPU for punctuality: the last ``spin_s`` of every sleep is spent
    polling the clock instead of in the kernel, whose wake-ups come late by 50-100 us on a
    busy machine. The ADC scan waits for a conversion several times a scan, so those late
    wake-ups add up to a tenth of the chip's rate; spinning the last 0.3 ms wins it back."""

    def __init__(self, spin_s: float = 0.0) -> None:
        self.spin_s = float(spin_s)

    def now(self) -> float:
        return time.monotonic()

    def sleep(self, seconds: float) -> None:
        if seconds <= 0:
            return
        deadline = time.monotonic() + seconds
        if seconds > self.spin_s:
            time.sleep(seconds - self.spin_s)
        while time.monotonic() < deadline:
            pass

    def sleep_until(self, t: float) -> None:
        self.sleep(t - time.monotonic())


class SimClock:
    """Simulated time: ``sleep`` advances it instantly. Thread-safe; ``advance`` is for tests
    that want time to pass without anyone sleeping."""

    def __init__(self, start: float = 0.0) -> None:
        self._now = float(start)
        self._lock = threading.Lock()

    def now(self) -> float:
        with self._lock:
            return self._now

    def sleep(self, seconds: float) -> None:
        if seconds < 0:
            raise ValueError(f"cannot sleep a negative time ({seconds})")
        with self._lock:
            self._now += seconds

    advance = sleep

    def sleep_until(self, t: float) -> None:
        with self._lock:
            if t > self._now:
                self._now = float(t)
